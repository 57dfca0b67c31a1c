//! One module per `cumulo` subcommand.
pub mod bench;
pub mod catalog;
pub mod invoice;
pub mod offers;
pub mod portfolio;
pub mod simulate;
pub mod usage;
pub mod validate;
pub mod bench_slurm;
pub mod bench_submit;
pub mod fleet;
pub mod jobs;
pub mod remote;
pub mod server;
