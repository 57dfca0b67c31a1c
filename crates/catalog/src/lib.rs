//! Cloud offers: instance types with their GPUs and hourly prices, per provider and region.
//!
//! Offers come from SkyPilot catalog CSVs (`import_dir`, columns read by header name) or from the
//! built-in catalog compiled into the binary (`Catalog::builtin`). A `Catalog` keeps an index by GPU
//! model so that a lookup for "8 × H100" touches only the H100 offers.

mod builtin;
mod import;
mod offer;

pub use builtin::BUILTIN_SOURCE;
pub use import::{FileSummary, ImportReport, SkippedRow, import_dir, import_file};
pub use offer::{Catalog, Offer};

/// Errors raised while loading a catalog. A bad row is not an error: it is skipped and reported.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read catalog `{path}`: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("catalog file `{path}` has no column `{column}` (required: {required})")]
    MissingColumn { path: String, column: &'static str, required: String },
    #[error("catalog file `{path}` line {line}: {reason}")]
    Csv { path: String, line: u64, reason: String },
    #[error("catalog directory `{0}` holds no catalog CSV files (expected `<cloud>/vms.csv`)")]
    Empty(String),
    #[error("built-in catalog line {line}: {reason}")]
    Builtin { line: u64, reason: String },
}
