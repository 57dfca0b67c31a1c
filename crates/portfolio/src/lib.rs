//! Contracts and what they mean for placement: the portfolio file, burn-down against each
//! contract's schedule, and the effective (marginal) price of every offer given that state.
//!
//! Pure apart from reading files: time always comes in as an argument (`at`, `now`).

pub mod burndown;
pub mod clauses;
pub mod clock;
mod demo;
pub mod model;
pub mod offers;
pub mod pricing;
pub mod usage;

pub use burndown::{BurnDown, ContractBurn, Status};
pub use demo::DEMO_PORTFOLIO_YAML;
pub use model::{
    Clauses, Contract, Delivered, Delivery, Expansion, FirstRefusal, MinimumSpend, Period, Portfolio, RampStep, Rate,
};
pub use usage::{Forecast, Usage, UsageRecord};

/// Errors raised while reading or checking a portfolio or a usage file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read `{path}`: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("portfolio `{source_name}`: {reason}")]
    Yaml { source_name: String, reason: String },
    #[error("contract `{contract}` field `{field}`: {reason}")]
    Invalid { contract: String, field: String, reason: String },
    #[error("portfolio field `{field}`: {reason}")]
    InvalidPortfolio { field: String, reason: String },
    #[error("usage `{source_name}` line {line}: {reason}")]
    Usage { source_name: String, line: u64, reason: String },
    #[error("invalid usage contract `{contract}`: expected one of {known}")]
    UnknownUsageContract { contract: String, known: String },
    #[error("invalid {what} `{value}`: expected {expected}")]
    Value { what: &'static str, value: String, expected: &'static str },
}
