//! The server's history for the dashboard's charts: [`sample`] reads queue depth by state, GPU
//! utilisation by provider and metered cost by tenant and by provider (dollars so far, at the
//! prices that applied), each contract's consumed and scheduled spend (its burn-down), and the
//! server stores them every few seconds; `GET /v1/history` answers
//! them over a time range, at most [`MAX_POINTS`] per series (the last sample of each step), so a
//! reload of the page keeps its charts. A member or viewer sees cost of its own tenant only.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Extension, State};
use chrono::{DateTime, Duration, Utc};
use cumulo_ledger::{GroupBy, UsageFilter};
use cumulo_store::HistoryPoint;
use serde::{Deserialize, Serialize};

use crate::auth::Principal;
use crate::{ApiError, AppState};

/// The most points per series in one answer.
pub const MAX_POINTS: i64 = 240;

/// Metric names, as stored.
pub const JOBS: &str = "jobs";
pub const GPU_UTILISATION: &str = "gpu_utilisation";
pub const COST_BY_TENANT: &str = "cost_by_tenant";
pub const COST_BY_PROVIDER: &str = "cost_by_provider";
pub const CONTRACT_CONSUMED: &str = "contract_consumed";
pub const CONTRACT_SCHEDULED: &str = "contract_scheduled";

/// One sample of everything the charts show, at `now`.
pub async fn sample(state: &AppState, now: DateTime<Utc>) -> Result<Vec<HistoryPoint>, ApiError> {
    let point = |metric: &str, label: &str, value: f64| HistoryPoint {
        at: now,
        metric: metric.to_string(),
        label: label.to_string(),
        value,
    };
    let mut points = Vec::new();
    for (job_state, count) in state.store.job_counts_by_state().await? {
        if !job_state.is_terminal() {
            points.push(point(JOBS, job_state.as_str(), count as f64));
        }
    }
    let mut by_provider: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for ((provider, _gpu), (total, used_milli)) in crate::fleet::gpu_use_by_provider_and_model(state).await? {
        let entry = by_provider.entry(provider).or_default();
        entry.0 += total;
        entry.1 += used_milli;
    }
    for (provider, (total, used_milli)) in by_provider {
        if total > 0 {
            points.push(point(GPU_UTILISATION, &provider, used_milli as f64 / 1000.0 / total as f64));
        }
    }
    // Stores without usage tables answer an error: no cost series then.
    if let Ok(records) = state.store.usage_between(None, Some(now)).await {
        for (metric, group_by) in [(COST_BY_TENANT, GroupBy::Tenant), (COST_BY_PROVIDER, GroupBy::Provider)] {
            for row in cumulo_ledger::usage_by(&records, &UsageFilter::default(), group_by) {
                points.push(point(metric, &row.group, row.cost.as_dollars_f64()));
            }
        }
        if let Some(portfolio) = &state.fleet.portfolio {
            for c in cumulo_ledger::burn_down(portfolio, records.iter(), now).contracts {
                points.push(point(CONTRACT_CONSUMED, &c.contract, c.consumed.as_dollars_f64()));
                points.push(point(CONTRACT_SCHEDULED, &c.contract, c.scheduled.as_dollars_f64()));
            }
        }
    }
    Ok(points)
}

/// Query of `GET /v1/history`.
#[derive(Debug, Default, Deserialize)]
pub struct HistoryQuery {
    /// `15m`, `1h` (default), `6h`, `24h` or `7d`.
    pub range: Option<String>,
}

/// One series: a metric for one label, `[unix ms, value]` oldest first.
#[derive(Debug, Serialize, Deserialize)]
pub struct Series {
    pub metric: String,
    pub label: String,
    pub points: Vec<(i64, f64)>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct HistoryAnswer {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// Seconds between the points of a series at most.
    pub step_s: i64,
    /// `cost_*` series are dollars metered so far, `gpu_utilisation` a share (0 to 1), `jobs` counts.
    pub units: BTreeMap<String, String>,
    pub series: Vec<Series>,
}

/// Parses a range such as `90m`, `6h` or `7d`, at most 31 days.
pub fn parse_range(text: &str) -> Result<Duration, ApiError> {
    let bad = || {
        ApiError::bad_request(
            "range",
            format!("invalid range `{text}`: expected minutes, hours or days such as 15m, 6h or 7d (at most 31d)"),
        )
    };
    let text = text.trim();
    let unit = text.chars().last().ok_or_else(bad)?;
    let number = &text[..text.len() - unit.len_utf8()];
    // At most 31 days in minutes: larger numbers are refused before any arithmetic.
    let n: i64 = number.parse().ok().filter(|n| (1..=31 * 24 * 60).contains(n)).ok_or_else(bad)?;
    let range = match unit {
        'm' => Duration::try_minutes(n),
        'h' => Duration::try_hours(n),
        'd' => Duration::try_days(n),
        _ => None,
    }
    .ok_or_else(bad)?;
    if range > Duration::days(31) {
        return Err(bad());
    }
    Ok(range)
}

/// `GET /v1/history?range=1h`.
pub(crate) async fn handler(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    crate::extract::ApiQuery(query): crate::extract::ApiQuery<HistoryQuery>,
) -> Result<Json<HistoryAnswer>, ApiError> {
    let range = parse_range(query.range.as_deref().filter(|r| !r.is_empty()).unwrap_or("1h"))?;
    let until = Utc::now();
    let since = until - range;
    let step_ms = (range.num_milliseconds() / MAX_POINTS).max(1);
    let mut series: BTreeMap<(String, String), BTreeMap<i64, (i64, f64)>> = BTreeMap::new();
    for p in state.store.history_since(since).await? {
        let hidden = p.metric == COST_BY_TENANT && !principal.may_read_tenant(&p.label)
            || [COST_BY_PROVIDER, CONTRACT_CONSUMED, CONTRACT_SCHEDULED].contains(&p.metric.as_str())
                && !principal.is_admin();
        if hidden {
            continue;
        }
        let ms = p.at.timestamp_millis();
        // The last sample of each step stands for it.
        series.entry((p.metric, p.label)).or_default().insert((ms - since.timestamp_millis()) / step_ms, (ms, p.value));
    }
    let units = [
        (JOBS, "jobs"),
        (GPU_UTILISATION, "share of GPUs"),
        (COST_BY_TENANT, "USD so far"),
        (COST_BY_PROVIDER, "USD so far"),
    ]
    .into_iter()
    .map(|(m, u)| (m.to_string(), u.to_string()))
    .collect();
    Ok(Json(HistoryAnswer {
        since,
        until,
        step_s: (step_ms / 1000).max(1),
        units,
        series: series
            .into_iter()
            .map(|((metric, label), points)| Series { metric, label, points: points.into_values().collect() })
            .collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::parse_range;

    #[test]
    fn ranges_read_like_durations() {
        assert_eq!(parse_range("15m").unwrap().num_minutes(), 15);
        assert_eq!(parse_range("6h").unwrap().num_hours(), 6);
        assert_eq!(parse_range("7d").unwrap().num_days(), 7);
        for bad in ["", "h", "0h", "-1h", "3w", "32d", "1.5h", "\u{80}", "1\u{80}", "9223372036854775807d"] {
            let err = parse_range(bad).unwrap_err().to_string();
            assert!(err.contains("expected minutes, hours or days"), "{bad}: {err}");
        }
    }
}
