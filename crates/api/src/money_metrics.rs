//! The money families of `/metrics`: cost by tenant, provider and contract, each tenant's monthly
//! budget and what it used this month, and each contract's projected shortfall and overrun (the
//! portfolio's one burn-down definition, `portfolio::BurnDown` through `ledger::burn_down`).
//!
//! Sums over metered usage are cached for [`MONEY_TTL`]: a scrape reads the store's usage at most
//! once per TTL, however often Prometheus asks. Budgets are read on every scrape (a few rows), so
//! a budget just set shows at once.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use cumulo_types::Money;

use crate::AppState;
use crate::error::ApiError;
use crate::tenants::BudgetView;

/// How long sums over metered usage are reused between scrapes.
pub const MONEY_TTL: Duration = Duration::from_secs(30);

/// Sums over metered usage, as of `at`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UsageTotals {
    pub at: DateTime<Utc>,
    /// Money metered at the price paid, by (tenant, provider, contract or "" for none).
    pub cost: BTreeMap<(String, String, String), Money>,
    /// Money metered in the calendar month (UTC) holding `at`, by tenant.
    pub month_spend: BTreeMap<String, Money>,
    /// Per contract: (projected shortfall, projected overrun) at term end.
    pub contracts: BTreeMap<String, (Money, Money)>,
}

/// The cache of [`UsageTotals`], kept in [`crate::metrics::Metrics`].
#[derive(Debug, Default)]
pub struct MoneyCache(Mutex<Option<(Instant, Arc<UsageTotals>)>>);

impl UsageTotals {
    /// Sums `records` as of `at`, with the burn-down of `portfolio` when there is one.
    pub fn of(
        records: &[cumulo_ledger::UsageRecord],
        portfolio: Option<&cumulo_portfolio::Portfolio>,
        at: DateTime<Utc>,
    ) -> UsageTotals {
        let month = cumulo_store::budget::month_start(at);
        let mut totals = UsageTotals { at, ..UsageTotals::default() };
        for r in records {
            let key = (r.tenant.clone(), r.provider.to_string(), r.contract.clone().unwrap_or_default());
            *totals.cost.entry(key).or_default() += r.cost;
            if r.start >= month {
                *totals.month_spend.entry(r.tenant.clone()).or_default() += r.cost;
            }
        }
        if let Some(portfolio) = portfolio {
            let burn = cumulo_ledger::burn_down(portfolio, records.iter(), at);
            for c in burn.contracts {
                totals.contracts.insert(c.contract, (c.projected_shortfall, c.projected_overrun));
            }
        }
        totals
    }
}

impl AppState {
    /// The usage sums, from the cache when younger than [`MONEY_TTL`].
    async fn usage_totals(&self) -> Result<Arc<UsageTotals>, ApiError> {
        if let Ok(cache) = self.metrics.money.0.lock()
            && let Some((when, totals)) = cache.as_ref()
            && when.elapsed() < MONEY_TTL
        {
            return Ok(totals.clone());
        }
        let records = self.store.usage_between(None, None).await?;
        let totals = Arc::new(UsageTotals::of(&records, self.fleet.portfolio.as_deref(), Utc::now()));
        if let Ok(mut cache) = self.metrics.money.0.lock() {
            *cache = Some((Instant::now(), totals.clone()));
        }
        Ok(totals)
    }
}

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Appends the money families to `out`.
pub fn render(totals: &UsageTotals, budgets: &BTreeMap<String, BudgetView>, out: &mut String) {
    let dollars = |m: Money| m.as_dollars_f64();
    let _ = writeln!(
        out,
        "# HELP cumulo_cost_dollars_total Money metered at the price paid, by tenant, provider and contract (\"\" for none)."
    );
    let _ = writeln!(out, "# TYPE cumulo_cost_dollars_total counter");
    for ((tenant, provider, contract), cost) in &totals.cost {
        let _ = writeln!(
            out,
            "cumulo_cost_dollars_total{{tenant=\"{}\",provider=\"{}\",contract=\"{}\"}} {}",
            escape(tenant),
            escape(provider),
            escape(contract),
            dollars(*cost)
        );
    }
    let _ = writeln!(
        out,
        "# HELP cumulo_budget_dollars Each tenant's monthly budget, by kind (hard holds jobs back, soft alerts only)."
    );
    let _ = writeln!(out, "# TYPE cumulo_budget_dollars gauge");
    let mut amounts = BTreeMap::new();
    for (tenant, budget) in budgets {
        let Ok(amount) = Money::parse_dollars(&budget.monthly) else { continue };
        amounts.insert(tenant.clone(), (amount, budget.kind.clone()));
        let _ = writeln!(
            out,
            "cumulo_budget_dollars{{tenant=\"{}\",kind=\"{}\"}} {}",
            escape(tenant),
            escape(&budget.kind),
            dollars(amount)
        );
    }
    let _ =
        writeln!(out, "# HELP cumulo_budget_used_dollars Money each tenant spent in the current calendar month (UTC).");
    let _ = writeln!(out, "# TYPE cumulo_budget_used_dollars gauge");
    let mut tenants: Vec<&String> = totals.month_spend.keys().chain(amounts.keys()).collect();
    tenants.sort();
    tenants.dedup();
    for tenant in &tenants {
        let used = totals.month_spend.get(*tenant).copied().unwrap_or_default();
        let _ = writeln!(out, "cumulo_budget_used_dollars{{tenant=\"{}\"}} {}", escape(tenant), dollars(used));
    }
    let _ = writeln!(out, "# HELP cumulo_budget_used_ratio This month's spend over the monthly budget (1 = all used).");
    let _ = writeln!(out, "# TYPE cumulo_budget_used_ratio gauge");
    for (tenant, (amount, kind)) in &amounts {
        let used = totals.month_spend.get(tenant).copied().unwrap_or_default();
        let ratio =
            if amount.0 == 0 { if used.0 > 0 { f64::INFINITY } else { 0.0 } } else { used.0 as f64 / amount.0 as f64 };
        let ratio = if ratio.is_infinite() { "+Inf".to_string() } else { ratio.to_string() };
        let _ = writeln!(
            out,
            "cumulo_budget_used_ratio{{tenant=\"{}\",kind=\"{}\"}} {ratio}",
            escape(tenant),
            escape(kind)
        );
    }
    let _ = writeln!(
        out,
        "# HELP cumulo_contract_projected_shortfall_dollars Commitment a contract is projected to leave unconsumed at term end (burn-down)."
    );
    let _ = writeln!(out, "# TYPE cumulo_contract_projected_shortfall_dollars gauge");
    for (contract, (shortfall, _)) in &totals.contracts {
        let _ = writeln!(
            out,
            "cumulo_contract_projected_shortfall_dollars{{contract=\"{}\"}} {}",
            escape(contract),
            dollars(*shortfall)
        );
    }
    let _ = writeln!(
        out,
        "# HELP cumulo_contract_projected_overrun_dollars Spend a contract is projected to take beyond its commitment at term end (burn-down)."
    );
    let _ = writeln!(out, "# TYPE cumulo_contract_projected_overrun_dollars gauge");
    for (contract, (_, overrun)) in &totals.contracts {
        let _ = writeln!(
            out,
            "cumulo_contract_projected_overrun_dollars{{contract=\"{}\"}} {}",
            escape(contract),
            dollars(*overrun)
        );
    }
}

/// The money families' text for `/metrics`.
pub(crate) async fn scrape(state: &AppState) -> Result<String, ApiError> {
    let totals = state.usage_totals().await?;
    let budgets = state.budgets().await?;
    let mut out = String::new();
    render(&totals, &budgets, &mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(text: &str) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (key, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value in `{line}`"));
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in `{line}`"));
            assert!(out.insert(key.to_string(), value).is_none(), "duplicate sample `{key}`");
        }
        out
    }

    #[test]
    fn the_money_families_show_cost_budgets_and_each_contracts_projection() {
        let portfolio = cumulo_portfolio::Portfolio::demo().unwrap();
        let at = chrono::DateTime::parse_from_rfc3339("2026-06-15T00:00:00Z").unwrap().with_timezone(&Utc);
        let mut totals = UsageTotals::of(&[], Some(&portfolio), at);
        let burn = cumulo_ledger::burn_down(&portfolio, [].iter(), at);
        assert_eq!(totals.contracts.len(), burn.contracts.len(), "one projection per contract");
        totals
            .cost
            .insert(("research".into(), "aws".into(), "aws-2025".into()), Money::parse_dollars("1200.50").unwrap());
        totals.month_spend.insert("research".into(), Money::from_dollars(400));
        let budgets = BTreeMap::from([
            ("research".to_string(), BudgetView { monthly: "1000".into(), kind: "hard".into(), source: "api".into() }),
            (
                "agents".to_string(),
                BudgetView { monthly: "50".into(), kind: "soft".into(), source: "fleet file".into() },
            ),
        ]);
        let mut text = String::new();
        render(&totals, &budgets, &mut text);
        let s = samples(&text);
        assert_eq!(s["cumulo_cost_dollars_total{tenant=\"research\",provider=\"aws\",contract=\"aws-2025\"}"], 1200.5);
        assert_eq!(s["cumulo_budget_dollars{tenant=\"research\",kind=\"hard\"}"], 1000.0);
        assert_eq!(s["cumulo_budget_dollars{tenant=\"agents\",kind=\"soft\"}"], 50.0);
        assert_eq!(s["cumulo_budget_used_dollars{tenant=\"research\"}"], 400.0);
        assert_eq!(s["cumulo_budget_used_dollars{tenant=\"agents\"}"], 0.0, "a budget with nothing spent shows 0");
        assert_eq!(s["cumulo_budget_used_ratio{tenant=\"research\",kind=\"hard\"}"], 0.4);
        for c in &burn.contracts {
            let key = |family: &str| format!("{family}{{contract=\"{}\"}}", c.contract);
            assert_eq!(s[&key("cumulo_contract_projected_shortfall_dollars")], c.projected_shortfall.as_dollars_f64());
            assert_eq!(s[&key("cumulo_contract_projected_overrun_dollars")], c.projected_overrun.as_dollars_f64());
        }
        assert!(
            burn.contracts.iter().any(|c| c.projected_shortfall > Money::ZERO),
            "with nothing consumed some contract projects a shortfall"
        );
    }
}
