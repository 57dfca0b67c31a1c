//! One module per `cumulo` subcommand.
pub mod bench;
pub mod catalog;
pub mod invoice;
pub mod offers;
pub mod portfolio;
pub mod usage;
pub mod validate;
