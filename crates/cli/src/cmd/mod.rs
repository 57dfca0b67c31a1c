//! One module per `cumulo` subcommand.
pub mod bench;
pub mod bench_slurm;
pub mod bench_submit;
pub mod bench_usage;
pub mod catalog;
pub mod fleet;
pub mod invoice;
pub mod jobs;
pub mod offers;
pub mod portfolio;
pub mod remote;
pub mod server;
pub mod simulate;
pub mod up_lock;
pub mod upload;
pub mod usage;
pub mod validate;
