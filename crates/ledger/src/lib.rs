//! Cumulo's metering: node-time from attempts becomes usage records rated at the price that applied,
//! and the records become invoices, chargeback, contract burn-down and a FOCUS export.
//!
//! The crate is pure: no I/O, no clock, no randomness. Time always comes in as an argument, prices come
//! in as a [`PriceBook`] (built by hand, or from a portfolio and a catalog), and every figure is exact
//! integer micro-dollars ([`Money`]). Contract burn-down reuses the portfolio crate's maths.
//!
//! Rating is *telescoping*: the cost of node-time at rate `r` between `a` and `b` (Unix seconds) is
//! `F(b) − F(a)` with `F(t) = round(r × t / 3600)`. Splitting an interval anywhere therefore never changes
//! its cost by a single micro-dollar, which keeps invoices, chargeback and clipped views consistent.

pub mod commitments;
pub mod contracts;
pub mod focus;
pub mod invoice;
pub mod meter;
pub mod price;
pub mod time;
pub mod views;

pub use commitments::{CommitmentPeriod, CommitmentUse, IdleCapacity, commitments};
pub use contracts::{burn_down, contract_spend};
pub use focus::{FocusOptions, focus_commitment_rows, focus_header, focus_rows, to_focus_csv, write_focus_rows};
pub use invoice::{Invoice, InvoiceLine, invoice};
pub use meter::{Ingested, Ledger, MAX_RECORD_SECONDS, NodeMeta, Observation, UsageRecord};
pub use price::{PriceBook, PriceKey, cost_between};
pub use time::{Month, Timestamp, parse_time};
pub use views::{ChargebackRow, GroupBy, UsageFilter, UsageRow, chargeback, usage_by};

pub use cumulo_types::Money;

/// Everything that can go wrong while metering or reading usage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("invalid {field} `{value}`: expected {expected}")]
    Invalid { field: &'static str, value: String, expected: &'static str },
    #[error("no {what} price for {key} at {at}")]
    NoPrice { what: &'static str, key: String, at: String },
    #[error(
        "observation for attempt {attempt} node {node_rank} conflicts with what is already metered: \
         {field} was `{before}`, now `{after}`"
    )]
    ConflictingObservation { attempt: String, node_rank: u32, field: &'static str, before: String, after: String },
    #[error("usage record for attempt {attempt} node {node_rank} from {start}: {reason}")]
    BadRecord { attempt: String, node_rank: u32, start: String, reason: String },
    #[error("focus export failed: {0}")]
    Focus(String),
}
