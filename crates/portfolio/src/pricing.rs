//! Effective price: the marginal cost of placing one more node-hour on an offer, given the
//! portfolio's state at `now`.
//!
//! - committed capacity behind its burn schedule is nearly free: its spend is paid anyway, so it
//!   costs a token share of its rate (`behind_schedule_bps`, 1% by default), enough to rank the
//!   cheaper contract first;
//! - committed capacity on or ahead of schedule costs its contract rate;
//! - an expansion option costs its option rate (it is new spend);
//! - on-demand costs its list price;
//! - spot costs its price plus a premium for the risk of preemption (`spot_premium_bps`).
//!
//! So every effective price lies in `0 ..= list + premium`, which a property test keeps.

use chrono::{DateTime, TimeZone, Utc};
use cumulo_sched::{Snapshot, Timestamp};
use cumulo_types::{CapacityKind, Money};
use serde::Serialize;

use crate::{Contract, Portfolio, Status, Usage};

/// Knobs of the effective-price model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct PricingConfig {
    /// Premium on spot prices for preemption risk, in basis points of the spot price.
    pub spot_premium_bps: u32,
    /// Share of the contract rate charged for capacity behind schedule, in basis points.
    pub behind_schedule_bps: u32,
}

impl Default for PricingConfig {
    fn default() -> Self {
        PricingConfig { spot_premium_bps: 2500, behind_schedule_bps: 100 }
    }
}

impl PricingConfig {
    /// The effective price per node-hour of committed capacity at `rate` in `status`; `None`
    /// outside the contract's term.
    pub fn committed_price(&self, rate: Money, status: Status) -> Option<Money> {
        match status {
            Status::NotStarted | Status::Ended => None,
            Status::Behind { .. } => Some(rate.mul_div(i64::from(self.behind_schedule_bps), 10_000)),
            Status::OnSchedule | Status::Ahead { .. } => Some(rate),
        }
    }

    /// The preemption-risk premium on a spot `price`.
    pub fn spot_premium(&self, price: Money) -> Money {
        price.mul_div(i64::from(self.spot_premium_bps), 10_000)
    }
}

/// A price per node-hour with its reasoning.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EffectivePrice {
    pub capacity: CapacityKind,
    /// The nominal price: list for on-demand, the spot price for spot, the rate for a contract.
    pub list: Money,
    /// The risk premium included in `effective` (spot only).
    pub premium: Money,
    pub effective: Money,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contract: Option<String>,
    pub why: String,
}

pub fn on_demand(list: Money) -> EffectivePrice {
    EffectivePrice {
        capacity: CapacityKind::OnDemand,
        list,
        premium: Money::ZERO,
        effective: list,
        contract: None,
        why: "on-demand at list price".to_string(),
    }
}

pub fn spot(price: Money, config: &PricingConfig) -> EffectivePrice {
    let premium = config.spot_premium(price);
    EffectivePrice {
        capacity: CapacityKind::Spot,
        list: price,
        premium,
        effective: price + premium,
        contract: None,
        why: format!("spot {price} + {}% preemption-risk premium", crate::usage::format_bps(config.spot_premium_bps)),
    }
}

/// The effective price of a contract's committed capacity of `node_type` at `now`; `None` when
/// the contract has no rate for it or its term does not run at `now`.
pub fn committed(
    contract: &Contract,
    node_type: &str,
    usage: &Usage,
    now: DateTime<Utc>,
    config: &PricingConfig,
) -> Option<EffectivePrice> {
    let rate = contract.rate(node_type)?;
    let status = Status::of(contract, usage.consumed(&contract.id), now);
    let effective = config.committed_price(rate, status)?;
    let tail = if matches!(status, Status::Behind { .. }) { "committed spend is paid anyway" } else { "contract rate" };
    Some(EffectivePrice {
        capacity: CapacityKind::Contract,
        list: rate,
        premium: Money::ZERO,
        effective,
        contract: Some(contract.id.clone()),
        why: format!("{} contract {}: {tail}", contract.id, status.describe()),
    })
}

/// The effective price of the contract's expansion option at `now`, while it can be exercised.
pub fn expansion(contract: &Contract, now: DateTime<Utc>) -> Option<EffectivePrice> {
    let e = contract.expansion.as_ref()?;
    if !contract.is_active(now) || now >= crate::clock::start_of(e.until.succ_opt()?) {
        return None;
    }
    Some(EffectivePrice {
        capacity: CapacityKind::Contract,
        list: e.per_node_hour,
        premium: Money::ZERO,
        effective: e.per_node_hour,
        contract: Some(contract.id.clone()),
        why: format!("{} expansion option (until {}): option rate, new spend", contract.id, e.until),
    })
}

/// What `price_pools` set on one pool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PoolPrice {
    pub pool: u32,
    pub name: String,
    pub before: Money,
    pub price: EffectivePrice,
}

/// Converts the scheduler's `Timestamp` (seconds since the epoch) to a UTC time.
pub fn timestamp_to_utc(ts: Timestamp) -> DateTime<Utc> {
    Utc.timestamp_opt(i64::try_from(ts).unwrap_or(i64::MAX), 0).single().unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// How one pool's capacity is held: what its effective price is made of.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Terms {
    /// Bought by the hour at a list price.
    OnDemand { list: Money },
    /// Spot capacity at its price (the preemption-risk premium is added).
    Spot { price: Money },
    /// Committed capacity of `node_type` under the portfolio's contract `contract`.
    Contract { contract: String, node_type: String },
}

/// The effective price of capacity held on `terms` at `now`, with the very functions the offer
/// ranking uses ([`on_demand`], [`spot`], [`committed`]): the reconcile loop and `cumulo bench
/// sched --portfolio` price every pool through it. `None` for a contract the portfolio lacks, a
/// node type without a rate in it, or a term that does not run at `now`.
pub fn live_price(
    terms: &Terms,
    portfolio: &Portfolio,
    usage: &Usage,
    now: DateTime<Utc>,
    config: &PricingConfig,
) -> Option<EffectivePrice> {
    match terms {
        Terms::OnDemand { list } => Some(on_demand(*list)),
        Terms::Spot { price } => Some(spot(*price, config)),
        Terms::Contract { contract, node_type } => {
            committed(portfolio.contract(contract)?, node_type, usage, now, config)
        }
    }
}

/// Writes effective prices into the scheduler's pools: pool `i` is held on `terms[i]` and gets
/// [`live_price`]; a pool without a live price (a contract outside its term) keeps its price.
/// Returns what was set on each priced pool, for explanations.
pub fn price_pools(
    snapshot: &mut Snapshot,
    terms: &[Terms],
    portfolio: &Portfolio,
    usage: &Usage,
    now: DateTime<Utc>,
    config: &PricingConfig,
) -> Vec<PoolPrice> {
    debug_assert_eq!(snapshot.pools.len(), terms.len(), "one set of terms per pool");
    let mut out = Vec::with_capacity(snapshot.pools.len());
    for (pool, terms) in snapshot.pools.iter_mut().zip(terms) {
        let Some(price) = live_price(terms, portfolio, usage, now, config) else { continue };
        let before = pool.price_per_node_hour;
        pool.price_per_node_hour = price.effective;
        out.push(PoolPrice { pool: pool.id.0, name: pool.name.clone(), before, price });
    }
    out
}
