//! One module per `cumulo` subcommand.
pub mod invoice;
pub mod usage;
pub mod validate;
