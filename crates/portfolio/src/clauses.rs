//! Contract clauses (`exclusive`, `first_refusal`) as one rule that both the offer ranking and
//! the live scheduler apply: [`ActiveClauses::block`] says whether a clause keeps work on a GPU
//! model from a provider, and with which words.
//!
//! `offers` asks it per candidate offer. The reconcile loop (and anything else that hands a job
//! to the scheduling core) asks [`ActiveClauses::bind`], which narrows each of the job's resource
//! options to the provider the clauses leave its GPU models, splitting an option whose models are
//! bound differently; the core then honours the clauses without knowing about contracts. Both
//! answer from the same `block`, so a provider is open to a GPU model in one exactly when it is in
//! the other.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use cumulo_sched::QueuedJob;
use cumulo_types::{GpuModel, GpuSelector, InfraSelector, JobId, ResourceOption};

use crate::Portfolio;
use crate::clock::format_duration_s;
use crate::model::in_scope;

/// One binding clause: which contract, its provider (the holder) and the GPU models it covers.
struct Clause<'a> {
    contract: &'a str,
    holder: &'a str,
    gpus: &'a [GpuModel],
    /// First refusal: how long other providers wait. `None` for an exclusive clause.
    wait_s: Option<u64>,
}

/// The clauses of the contracts whose term runs at one instant.
pub struct ActiveClauses<'a> {
    exclusive: Vec<Clause<'a>>,
    first_refusal: Vec<Clause<'a>>,
}

/// Which clause keeps work from a provider, and why (the words `offers` and pending jobs show).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Block {
    Exclusive(String),
    FirstRefusal(String),
}

impl Block {
    pub fn reason(&self) -> &str {
        match self {
            Block::Exclusive(r) | Block::FirstRefusal(r) => r,
        }
    }
}

/// A resource option narrowed by the clauses, and the index of the job's option it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BoundOption {
    pub option: ResourceOption,
    pub original: usize,
}

/// A job's resource options after [`ActiveClauses::bind`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bound {
    /// The options left, in the job's order; empty when the clauses leave the job nowhere to go.
    pub options: Vec<BoundOption>,
    /// The clause that narrowed or removed (part of) an option, first one met: why the job
    /// waits when `options` is empty, or is kept from other providers otherwise.
    pub reason: Option<String>,
}

/// Where clauses let work on one GPU model go.
enum Allowed<'a> {
    Anywhere,
    Only(&'a str),
    /// Two clauses name different holders: no provider is open.
    Nowhere,
}

impl<'a> ActiveClauses<'a> {
    /// The clauses of `portfolio`'s contracts that run at `now` (none without a portfolio).
    pub fn at(portfolio: Option<&'a Portfolio>, now: DateTime<Utc>) -> ActiveClauses<'a> {
        let mut out = ActiveClauses { exclusive: Vec::new(), first_refusal: Vec::new() };
        for c in portfolio.into_iter().flat_map(|p| &p.contracts).filter(|c| c.is_active(now)) {
            let (contract, holder) = (c.id.as_str(), c.provider.as_str());
            if let Some(scope) = &c.clauses.exclusive {
                out.exclusive.push(Clause { contract, holder, gpus: scope, wait_s: None });
            }
            if let Some(fr) = &c.clauses.first_refusal {
                out.first_refusal.push(Clause { contract, holder, gpus: &fr.gpus, wait_s: Some(fr.wait_s) });
            }
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.exclusive.is_empty() && self.first_refusal.is_empty()
    }

    /// The clause that keeps work on `gpu` from `provider` once the job has waited `waited_s`:
    /// an exclusive clause of another provider covering the model, else a first refusal of
    /// another provider covering it whose wait has not passed. CPU work is never kept.
    pub fn block(&self, provider: &str, gpu: Option<GpuModel>, waited_s: u64) -> Option<Block> {
        let model = gpu.map_or("", |g| g.name());
        if let Some(c) = self.exclusive.iter().find(|c| in_scope(c.gpus, gpu) && provider != c.holder) {
            return Some(Block::Exclusive(format!(
                "exclusive clause of {}: {model} work only on {}",
                c.contract, c.holder
            )));
        }
        let binding = |c: &&Clause<'_>| c.wait_s.is_some_and(|w| waited_s < w);
        if let Some(c) =
            self.first_refusal.iter().filter(binding).find(|c| in_scope(c.gpus, gpu) && provider != c.holder)
        {
            return Some(Block::FirstRefusal(format!(
                "first refusal of {}: {model} work is offered to {} first; other providers after {} (waited {})",
                c.contract,
                c.holder,
                format_duration_s(c.wait_s.unwrap_or(0)),
                format_duration_s(waited_s)
            )));
        }
        None
    }

    /// The one provider the clauses leave work on `gpu`, if they bind it: `block` is `None`
    /// exactly for that provider (or for every provider when nothing binds).
    fn allowed(&self, gpu: GpuModel, waited_s: u64) -> Allowed<'a> {
        let binding = self
            .exclusive
            .iter()
            .chain(self.first_refusal.iter().filter(|c| c.wait_s.is_some_and(|w| waited_s < w)))
            .filter(|c| in_scope(c.gpus, Some(gpu)));
        let mut only: Option<&'a str> = None;
        for c in binding {
            match only {
                Some(h) if h != c.holder => return Allowed::Nowhere,
                _ => only = Some(c.holder),
            }
        }
        only.map_or(Allowed::Anywhere, Allowed::Only)
    }

    /// A job's resource options with the clauses applied, for a job that has waited `waited_s`;
    /// `None` when no clause touches any of them (the job goes to the scheduler as it is).
    ///
    /// Each option's GPU models are grouped by where the clauses let them go: models left free
    /// keep the option's `infra`; models bound to a holder get the holder as `infra` provider (an
    /// option whose `infra` names another provider loses them); models no provider may take are
    /// dropped.
    pub fn bind(&self, resources: &[ResourceOption], waited_s: u64) -> Option<Bound> {
        if self.is_empty() || !resources.iter().any(|o| self.touches(o, waited_s)) {
            return None;
        }
        let mut bound = Bound::default();
        let mut touched = false;
        for (original, option) in resources.iter().enumerate() {
            let Some(demand) = &option.accelerators else {
                bound.options.push(BoundOption { option: option.clone(), original });
                continue;
            };
            let models: Vec<GpuModel> = GpuModel::ALL.iter().copied().filter(|m| demand.selector.accepts(*m)).collect();
            let mut free = Vec::new();
            let mut held: Vec<(&str, Vec<GpuModel>)> = Vec::new();
            for &model in &models {
                match self.allowed(model, waited_s) {
                    Allowed::Anywhere => free.push(model),
                    Allowed::Only(holder) => match held.iter_mut().find(|(h, _)| *h == holder) {
                        Some((_, list)) => list.push(model),
                        None => held.push((holder, vec![model])),
                    },
                    Allowed::Nowhere => {
                        touched = true;
                        bound.reason.get_or_insert_with(|| self.first_reason(model, waited_s));
                    }
                }
            }
            if held.is_empty() && free.len() == models.len() {
                bound.options.push(BoundOption { option: option.clone(), original });
                continue;
            }
            touched = true;
            let with_models = |models: Vec<GpuModel>, infra: Option<InfraSelector>| {
                let mut narrowed = option.clone();
                if let Some(a) = narrowed.accelerators.as_mut() {
                    a.selector = GpuSelector::Models(models);
                }
                narrowed.infra = infra;
                BoundOption { option: narrowed, original }
            };
            if !free.is_empty() {
                bound.options.push(with_models(free, option.infra.clone()));
            }
            for (holder, models) in held {
                match &option.infra {
                    Some(infra) if infra.provider.as_deref().is_some_and(|p| !p.eq_ignore_ascii_case(holder)) => {
                        let other = infra.provider.as_deref().unwrap_or_default();
                        let block = self.block(other, Some(models[0]), waited_s);
                        bound.reason.get_or_insert_with(|| block.map(|b| b.reason().to_string()).unwrap_or_default());
                    }
                    infra => {
                        bound.reason.get_or_insert_with(|| self.first_reason(models[0], waited_s));
                        let mut narrowed = infra.clone().unwrap_or_default();
                        narrowed.provider = Some(holder.to_string());
                        bound.options.push(with_models(models, Some(narrowed)));
                    }
                }
            }
        }
        touched.then_some(bound)
    }

    /// Whether a clause binding after `waited_s` covers a GPU model `option` accepts (cheap: no
    /// allocation, the common case of a job no clause touches).
    fn touches(&self, option: &ResourceOption, waited_s: u64) -> bool {
        let Some(demand) = &option.accelerators else { return false };
        let covers = |model: GpuModel| {
            self.exclusive.iter().any(|c| in_scope(c.gpus, Some(model)))
                || self
                    .first_refusal
                    .iter()
                    .any(|c| c.wait_s.is_some_and(|w| waited_s < w) && in_scope(c.gpus, Some(model)))
        };
        match &demand.selector {
            GpuSelector::Models(models) => models.iter().any(|m| covers(*m)),
            selector => GpuModel::ALL.iter().any(|m| selector.accepts(*m) && covers(*m)),
        }
    }

    /// The words of the first clause binding `gpu` (for a model no provider may take).
    fn first_reason(&self, gpu: GpuModel, waited_s: u64) -> String {
        let holders: Vec<&str> =
            self.exclusive.iter().chain(&self.first_refusal).map(|c| c.holder).chain(["any other provider"]).collect();
        holders
            .iter()
            .find_map(|h| self.block(h, Some(gpu), waited_s))
            .map(|b| b.reason().to_string())
            .unwrap_or_default()
    }

    /// Why every offer is excluded when exclusive clauses rule them all out.
    pub fn exclusive_reason(&self, demand: &str) -> String {
        let names: Vec<String> = self.exclusive.iter().map(|c| format!("{} (only {})", c.contract, c.holder)).collect();
        format!(
            "every offer for {demand} is excluded by an exclusive clause: {}, and that provider has no matching offer",
            names.join(", ")
        )
    }
}

/// A queue bound by the clauses: jobs whose options changed map their new option indices back
/// to the job's own, and jobs the clauses leave nowhere to go wait with the clause's words.
#[derive(Default)]
pub struct BoundQueue {
    pub queue: Vec<QueuedJob>,
    /// (job, replica) → the job's option index of each queued option, where they differ.
    pub origins: HashMap<(JobId, u32), Vec<u32>>,
    /// Jobs held back by a clause, with the reason.
    pub held: Vec<(JobId, String)>,
    /// Jobs a clause kept from some providers, with the clause's words (added to a pending reason).
    pub narrowed: HashMap<JobId, String>,
}

/// Binds each queued job's options by `clauses`, for the time it has waited by `now` (the
/// scheduler's timestamp): what the reconcile loop and `cumulo bench sched --portfolio` hand to the
/// scheduling core.
pub fn bind_queue(queue: Vec<QueuedJob>, clauses: &ActiveClauses<'_>, now: u64) -> BoundQueue {
    let mut out = BoundQueue { queue: Vec::with_capacity(queue.len()), ..BoundQueue::default() };
    for mut job in queue {
        let waited_s = now.saturating_sub(job.submitted_at);
        match clauses.bind(&job.resources, waited_s) {
            None => out.queue.push(job),
            Some(bound) if bound.options.is_empty() => {
                // a job's replicas are queued one after another: one reason per job
                if out.held.last().is_none_or(|(id, _)| *id != job.id) {
                    out.held.push((job.id, bound.reason.unwrap_or_default()));
                }
            }
            Some(bound) => {
                if let Some(reason) = bound.reason {
                    out.narrowed.insert(job.id, reason);
                }
                out.origins.insert((job.id, job.replica), bound.options.iter().map(|o| o.original as u32).collect());
                job.resources = bound.options.into_iter().map(|o| o.option).collect();
                out.queue.push(job);
            }
        }
    }
    out
}
