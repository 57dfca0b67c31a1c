//! One module per `cumulo` subcommand.
