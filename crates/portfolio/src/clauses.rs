//! Contract clauses as scheduler constraints: `exclusive` and `first_refusal` turned into deny
//! entries on a job, so the scheduling core honours them without knowing about contracts.
//!
//! A clause binds a job only when every GPU model the job accepts is in the clause's scope; a job
//! that also accepts a model outside the scope is left free (the offer ranking in `offers` checks
//! clauses per offer and is exact in that case).

use chrono::{DateTime, Utc};
use cumulo_types::{GpuModel, GpuSelector, InfraSelector, JobSpec};
use serde::Serialize;

use crate::Portfolio;
use crate::clock::format_duration_s;
use crate::model::in_scope;

/// One provider a clause keeps a job from, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Denial {
    pub deny: InfraSelector,
    pub reason: String,
}

/// The GPU models a job accepts across its resource options; `None` when an option is CPU-only
/// (clauses never bind CPU work).
fn accepted_models(job: &JobSpec) -> Option<Vec<GpuModel>> {
    let mut models = Vec::new();
    for option in &job.resources {
        let demand = option.accelerators.as_ref()?;
        match &demand.selector {
            GpuSelector::Models(m) => models.extend(m.iter().copied()),
            selector @ (GpuSelector::MinMemoryGb(_) | GpuSelector::Named(_)) => {
                models.extend(GpuModel::ALL.iter().copied().filter(|m| selector.accepts(*m)))
            }
        }
    }
    models.sort();
    models.dedup();
    Some(models)
}

/// The providers among `providers` that the portfolio's clauses keep `job` from at `now`, given
/// that it has waited `waited_s` seconds. Add them to `job.constraints.deny` before scheduling.
pub fn clause_denials(
    job: &JobSpec,
    portfolio: &Portfolio,
    now: DateTime<Utc>,
    waited_s: u64,
    providers: &[String],
) -> Vec<Denial> {
    let Some(models) = accepted_models(job) else { return Vec::new() };
    if models.is_empty() {
        return Vec::new();
    }
    let covered = |scope: &[GpuModel]| models.iter().all(|m| in_scope(scope, Some(*m)));
    let mut out: Vec<Denial> = Vec::new();
    let mut deny = |provider: &str, reason: String| {
        if !out.iter().any(|d| d.deny.provider.as_deref() == Some(provider)) {
            out.push(Denial {
                deny: InfraSelector { provider: Some(provider.to_string()), region: None, zone: None },
                reason,
            });
        }
    };
    for contract in portfolio.contracts.iter().filter(|c| c.is_active(now)) {
        let holder = contract.provider.as_str();
        if let Some(scope) = &contract.clauses.exclusive
            && covered(scope)
        {
            for p in providers.iter().filter(|p| p.as_str() != holder) {
                deny(p, format!("exclusive clause of {}: this work only on {holder}", contract.id));
            }
        }
        if let Some(fr) = &contract.clauses.first_refusal
            && covered(&fr.gpus)
            && waited_s < fr.wait_s
        {
            for p in providers.iter().filter(|p| p.as_str() != holder) {
                deny(
                    p,
                    format!(
                        "first refusal of {}: offered to {holder} first for {} (waited {})",
                        contract.id,
                        format_duration_s(fr.wait_s),
                        format_duration_s(waited_s)
                    ),
                );
            }
        }
    }
    out
}
