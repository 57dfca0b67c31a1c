//! Tenants' monthly budgets in the reconcile loop: the budgets in force (the fleet file's, each
//! overridden by one stored over the API), the money each tenant spent this month (read from the
//! store's usage once per month, then kept up to date by metering), and the caps the gate
//! (`cumulo_sched::budget::gate`) holds jobs back with.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use cumulo_sched::budget::SpendCap;
use cumulo_store::budget::{Budget, BudgetKind, month_start};
use cumulo_types::Money;

use crate::{Controller, Error};

/// Money spent per tenant since `start` (a month's first second, UTC).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct MonthSpend {
    pub start: DateTime<Utc>,
    pub by_tenant: BTreeMap<String, Money>,
}

impl MonthSpend {
    /// Adds money metered for seconds ending at `at` (ignored when `at` is before this month).
    pub fn add(&mut self, tenant: &str, at: DateTime<Utc>, cost: Money) {
        if at > self.start {
            *self.by_tenant.entry(tenant.to_string()).or_default() += cost;
        }
    }
}

impl Controller {
    /// The budgets in force by tenant: the fleet file's, overridden by the stored ones.
    pub async fn budgets(&self) -> Result<BTreeMap<String, Budget>, Error> {
        let mut budgets = self.options.budgets.clone();
        for stored in self.options.store.budgets().await? {
            budgets.insert(stored.tenant, stored.budget);
        }
        Ok(budgets)
    }

    /// Money each tenant spent in the month holding `now`: metered usage at the price paid.
    pub async fn month_spend(&self, now: DateTime<Utc>) -> Result<BTreeMap<String, Money>, Error> {
        let start = month_start(now);
        if let Some(spend) = self.lock().month_spend.as_ref().filter(|s| s.start == start) {
            return Ok(spend.by_tenant.clone());
        }
        let records = self.options.store.usage_between(Some(start), None).await?;
        let mut spend = MonthSpend { start, by_tenant: BTreeMap::new() };
        for record in records.iter().filter(|r| r.start >= start) {
            *spend.by_tenant.entry(record.tenant.clone()).or_default() += record.cost;
        }
        let by_tenant = spend.by_tenant.clone();
        self.lock().month_spend = Some(spend);
        Ok(by_tenant)
    }

    /// The hard budgets as caps for the gate, with this month's spend; none (and no usage read)
    /// when no tenant has a hard budget. Soft budgets exceeded are logged.
    pub(crate) async fn spend_caps(&self, now: DateTime<Utc>) -> Result<Vec<SpendCap>, Error> {
        let budgets = self.budgets().await?;
        if budgets.is_empty() {
            return Ok(Vec::new());
        }
        let spent = self.month_spend(now).await?;
        let mut caps = Vec::new();
        let month = month_start(now);
        for (tenant, budget) in budgets {
            let so_far = spent.get(&tenant).copied().unwrap_or_default();
            match budget.kind {
                BudgetKind::Hard => caps.push(SpendCap { tenant, budget: budget.monthly, spent: so_far }),
                BudgetKind::Soft if so_far > budget.monthly => {
                    if self.lock().soft_warned.insert((tenant.clone(), month)) {
                        tracing::warn!(
                            %tenant, budget = %budget.monthly.usd(), spent = %so_far.usd(),
                            "tenant is past its soft monthly budget"
                        );
                    }
                }
                BudgetKind::Soft => {}
            }
        }
        Ok(caps)
    }
}
