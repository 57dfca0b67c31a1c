//! Narrowing: a rule outside the core (a portfolio's contract clauses, `cumulo_portfolio::clauses`)
//! that takes GPU models of a queued job's resource options away from some providers, depending
//! on how long the job has waited.
//!
//! The core applies it while interning request shapes, once per distinct (shape, regime): the
//! queue is walked once, and binding grows with the shapes, not with the jobs. The core keeps
//! each entry's own options; a placement names the option by its index among the job's own, and
//! a job the rule leaves nowhere waits with [`PendingReason::ContractClause`](crate::PendingReason).
//! A kept scheduler (the simulator's) keeps its shapes between passes only while the narrowing's
//! [`Narrowing::key`] stays the same: a contract starting or ending changes what binds.

use std::sync::Arc;

use cumulo_types::ResourceOption;

use crate::Timestamp;

/// What narrows a job's resource options by its wait.
pub trait Narrowing {
    /// A key for what binds after a wait of `waited_s`: two waits with one regime narrow any
    /// options alike.
    fn regime(&self, waited_s: u64) -> u64;

    /// `options` narrowed for a job that has waited `waited_s`.
    fn narrow(&self, options: &[ResourceOption], waited_s: u64) -> Narrowed;

    /// Two narrowings with one key narrow any options and waits alike. [`NOTHING_BINDS`] says
    /// that this one leaves every option untouched: the core then skips it per job.
    fn key(&self) -> u64;
}

/// What a [`Narrowing`] leaves of a job's options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Narrowed {
    /// Nothing binds them: the job is placed on its own options.
    Untouched,
    /// The options left (split or dropped), and the index among the job's own options of each.
    To { options: Arc<[ResourceOption]>, origins: Arc<[u32]> },
    /// No provider may take any of them.
    Nowhere,
}

/// The [`Narrowing::key`] of a narrowing that leaves every option untouched.
pub const NOTHING_BINDS: u64 = 0;

/// The narrowing of a plain pass: nothing binds.
pub struct Unnarrowed;

impl Narrowing for Unnarrowed {
    fn regime(&self, _waited_s: u64) -> u64 {
        0
    }

    fn narrow(&self, _options: &[ResourceOption], _waited_s: u64) -> Narrowed {
        Narrowed::Untouched
    }

    fn key(&self) -> u64 {
        NOTHING_BINDS
    }
}

/// How long a job submitted at `submitted_at` has waited at `now`.
pub fn waited_s(now: Timestamp, submitted_at: Timestamp) -> u64 {
    now.saturating_sub(submitted_at)
}
