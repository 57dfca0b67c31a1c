//! Bridges to the contract world: price books built from a portfolio and a catalog, and contract
//! burn-down from metered usage computed by the portfolio crate's maths (not duplicated here).

use std::collections::BTreeMap;

use cumulo_catalog::Catalog;
use cumulo_portfolio::{BurnDown, Forecast, Portfolio, UsageRecord as ContractSpend};
use cumulo_types::{Money, Provider};

use crate::Error;
use crate::meter::UsageRecord;
use crate::price::{PriceBook, PriceKey};
use crate::time::{Timestamp, at, secs};

/// Seconds in a week: metered spend reaches the burn-down in weekly buckets.
const WEEK: i64 = 7 * 86_400;

impl PriceBook {
    /// Every contract's rates from the start of its term, and its end: node-time after the end is
    /// rated on-demand.
    pub fn add_portfolio(&mut self, portfolio: &Portfolio) -> Result<&mut Self, Error> {
        for contract in &portfolio.contracts {
            for rate in &contract.rates {
                let key = PriceKey::contract(&contract.provider, &rate.node_type, &contract.id);
                self.set_price(key, contract.term_start(), rate.per_node_hour)?;
            }
            self.set_contract_end(&contract.id, contract.term_end());
        }
        Ok(self)
    }

    /// On-demand and spot list prices of a catalog, in force from `from`. A catalog prices an
    /// instance type per region; the book keeps the lowest regional price per provider and type.
    pub fn add_catalog(&mut self, catalog: &Catalog, from: Timestamp) -> Result<&mut Self, Error> {
        let mut lowest: BTreeMap<PriceKey, Money> = BTreeMap::new();
        for offer in catalog.offers() {
            let provider = Provider::new(&offer.provider).map_err(|_| Error::Invalid {
                field: "provider",
                value: offer.provider.clone(),
                expected: "lowercase letters, digits or '-'",
            })?;
            let priced = [
                (offer.price, PriceKey::on_demand(&provider, &offer.instance_type)),
                (offer.spot_price, PriceKey::spot(&provider, &offer.instance_type)),
            ];
            for (price, key) in priced {
                if let Some(price) = price {
                    let entry = lowest.entry(key).or_insert(price);
                    *entry = (*entry).min(price);
                }
            }
        }
        for (key, price) in lowest {
            self.set_price(key, from, price)?;
        }
        Ok(self)
    }
}

/// Metered spend under each contract of `portfolio` as the portfolio crate's usage series: one bucket
/// per week counted back from `as_of` (or from the term's end, if earlier) to the start of the term,
/// zero-spend weeks included. The series carries its last bucket's utilisation forward, so a
/// projection follows the trailing week's burn rate.
pub fn contract_spend<'a>(
    portfolio: &Portfolio,
    records: impl IntoIterator<Item = &'a UsageRecord>,
    as_of: Timestamp,
) -> Forecast {
    let records: Vec<&UsageRecord> = records.into_iter().collect();
    let mut series = Vec::new();
    for contract in &portfolio.contracts {
        let (start, end) = (secs(contract.term_start()), secs(contract.term_end()).min(secs(as_of)));
        // bucket bounds, oldest first: start, ..., end − 2 weeks, end − 1 week, end
        let mut bounds = vec![end];
        while *bounds.last().expect("non-empty") - WEEK > start {
            bounds.push(bounds.last().expect("non-empty") - WEEK);
        }
        bounds.push(start);
        bounds.reverse();
        let mine: Vec<&UsageRecord> =
            records.iter().copied().filter(|r| r.contract.as_deref() == Some(contract.id.as_str())).collect();
        for w in bounds.windows(2).filter(|w| w[1] > w[0]) {
            let (a, b) = (at(w[0]), at(w[1]));
            let spend = mine.iter().filter_map(|r| r.clip(Some(a), Some(b))).map(|r| r.cost).sum();
            series.push(ContractSpend { contract: contract.id.clone(), start: a, end: b, spend });
        }
    }
    Forecast::Series(series)
}

/// The portfolio's burn-down at `as_of` with consumption taken from metered usage: consumed is what
/// was metered under each contract; the projection carries the trailing week's utilisation forward.
pub fn burn_down<'a>(
    portfolio: &Portfolio,
    records: impl IntoIterator<Item = &'a UsageRecord>,
    as_of: Timestamp,
) -> BurnDown {
    BurnDown::compute(portfolio, &contract_spend(portfolio, records, as_of), as_of)
}
