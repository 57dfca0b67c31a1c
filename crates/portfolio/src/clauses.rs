//! Contract clauses (`exclusive`, `first_refusal`) as one rule that both the offer ranking and
//! the live scheduler apply: [`ActiveClauses::block`] says whether a clause keeps work on a GPU
//! model from a provider, and with which words.
//!
//! `offers` asks it per candidate offer. The reconcile loop (and anything else that hands a queue
//! to the scheduling core) passes the clauses to the core as its [`Narrowing`]: per distinct
//! (request shape, regime) the core asks [`ActiveClauses::bind`]'s rule, which narrows each of the
//! job's resource options to the provider the clauses leave its GPU models, splitting an option
//! whose models are bound differently; the core then honours the clauses without knowing about
//! contracts. Both answer from the same `block`, so a provider is open to a GPU model in one
//! exactly when it is in the other. After the pass, [`ClauseNotes`] words the clause behind each
//! waiting job.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use cumulo_sched::{Narrowed, Narrowing, QueuedJob};
use cumulo_types::{GpuModel, GpuSelector, InfraSelector, ResourceOption};
use rustc_hash::FxHashMap;

use crate::clock::format_duration_s;
use crate::model::in_scope;
use crate::{Contract, Portfolio};

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

/// A clause's words for one job: the clause's text, and the job's wait where the clause names it
/// (a first refusal says how long the job has waited). The text is shared by every job a binding
/// serves; the whole is formatted only when shown (`Display`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClauseWords {
    text: Arc<str>,
    waited_s: Option<u64>,
}

impl ClauseWords {
    /// The same words for a job that has waited `waited_s`.
    fn for_wait(&self, waited_s: u64) -> ClauseWords {
        ClauseWords { text: Arc::clone(&self.text), waited_s: self.waited_s.map(|_| waited_s) }
    }
}

impl fmt::Display for ClauseWords {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)?;
        match self.waited_s {
            Some(waited_s) => write!(f, " (waited {})", format_duration_s(waited_s)),
            None => Ok(()),
        }
    }
}

/// What [`ActiveClauses::bind`] decides for one list of resource options, before the words are
/// given a job's wait: computed once per distinct (shape, regime) by the core, through
/// [`Narrowing`], and once per distinct (options, regime) by [`ClauseNotes`].
struct Binding {
    options: Vec<BoundOption>,
    /// The bound options as queued: one list shared by every job of the binding.
    queued: Arc<[ResourceOption]>,
    /// The job's option index of each bound option; `None` where each is its own (no option
    /// split or dropped).
    origins: Option<Arc<[u32]>>,
    words: Option<ClauseWords>,
}

impl<'a> ActiveClauses<'a> {
    /// The clauses of `portfolio`'s contracts that run at `now` (none without a portfolio).
    pub fn at(portfolio: Option<&'a Portfolio>, now: DateTime<Utc>) -> ActiveClauses<'a> {
        ActiveClauses::of(portfolio.into_iter().flat_map(|p| &p.contracts), now)
    }

    /// The clauses of `contracts` that run at `now` (the simulator holds a portfolio's contracts
    /// one by one).
    pub fn of(contracts: impl IntoIterator<Item = &'a Contract>, now: DateTime<Utc>) -> ActiveClauses<'a> {
        let mut out = ActiveClauses { exclusive: Vec::new(), first_refusal: Vec::new() };
        for c in contracts.into_iter().filter(|c| c.is_active(now)) {
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
        let (clause, words) = self.blocking(provider, gpu, waited_s)?;
        Some(match clause.wait_s {
            None => Block::Exclusive(words.to_string()),
            Some(_) => Block::FirstRefusal(words.to_string()),
        })
    }

    /// [`block`](Self::block)'s clause and words (the one rule behind `block` and `bind`).
    fn blocking(&self, provider: &str, gpu: Option<GpuModel>, waited_s: u64) -> Option<(&Clause<'a>, ClauseWords)> {
        let model = gpu.map_or("", |g| g.name());
        if let Some(c) = self.exclusive.iter().find(|c| in_scope(c.gpus, gpu) && provider != c.holder) {
            let text = format!("exclusive clause of {}: {model} work only on {}", c.contract, c.holder);
            return Some((c, ClauseWords { text: text.into(), waited_s: None }));
        }
        let binding = |c: &&Clause<'_>| c.wait_s.is_some_and(|w| waited_s < w);
        let c = self.first_refusal.iter().filter(binding).find(|c| in_scope(c.gpus, gpu) && provider != c.holder)?;
        let text = format!(
            "first refusal of {}: {model} work is offered to {} first; other providers after {}",
            c.contract,
            c.holder,
            format_duration_s(c.wait_s.unwrap_or(0)),
        );
        Some((c, ClauseWords { text: text.into(), waited_s: Some(waited_s) }))
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

    /// Which clauses bind after a wait of `waited_s`: every exclusive clause, and the first
    /// refusals whose wait has not passed. Two waits with the same regime bind any options alike
    /// (only the words' "waited" differs). With more first refusals than bits, the wait itself.
    fn regime(&self, waited_s: u64) -> u64 {
        if self.first_refusal.len() > 64 {
            return waited_s;
        }
        self.first_refusal
            .iter()
            .enumerate()
            .filter(|(_, c)| c.wait_s.is_some_and(|w| waited_s < w))
            .fold(0, |mask, (i, _)| mask | 1 << i)
    }

    /// A job's resource options with the clauses applied, for a job that has waited `waited_s`;
    /// `None` when no clause touches any of them (the job goes to the scheduler as it is).
    ///
    /// Each option's GPU models are grouped by where the clauses let them go: models left free
    /// keep the option's `infra`; models bound to a holder get the holder as `infra` provider (an
    /// option whose `infra` names another provider loses them); models no provider may take are
    /// dropped.
    pub fn bind(&self, resources: &[ResourceOption], waited_s: u64) -> Option<Bound> {
        let binding = self.binding(resources, waited_s)?;
        Some(Bound { options: binding.options, reason: binding.words.map(|w| w.to_string()) })
    }

    /// [`bind`](Self::bind) with the words unformatted.
    fn binding(&self, resources: &[ResourceOption], waited_s: u64) -> Option<Binding> {
        if self.is_empty() || !resources.iter().any(|o| self.touches(o, waited_s)) {
            return None;
        }
        let mut options = Vec::new();
        let mut words: Option<ClauseWords> = None;
        let mut touched = false;
        for (original, option) in resources.iter().enumerate() {
            let Some(demand) = &option.accelerators else {
                options.push(BoundOption { option: option.clone(), original });
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
                        if words.is_none() {
                            words = self.first_words(model, waited_s);
                        }
                    }
                }
            }
            if held.is_empty() && free.len() == models.len() {
                options.push(BoundOption { option: option.clone(), original });
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
                options.push(with_models(free, option.infra.clone()));
            }
            for (holder, models) in held {
                match &option.infra {
                    Some(infra) if infra.provider.as_deref().is_some_and(|p| !p.eq_ignore_ascii_case(holder)) => {
                        let other = infra.provider.as_deref().unwrap_or_default();
                        if words.is_none() {
                            words = self.blocking(other, Some(models[0]), waited_s).map(|(_, w)| w);
                        }
                    }
                    infra => {
                        if words.is_none() {
                            words = self.first_words(models[0], waited_s);
                        }
                        let mut narrowed = infra.clone().unwrap_or_default();
                        narrowed.provider = Some(holder.to_string());
                        options.push(with_models(models, Some(narrowed)));
                    }
                }
            }
        }
        let queued = options.iter().map(|o| o.option.clone()).collect();
        let own = options.len() == resources.len() && options.iter().enumerate().all(|(i, o)| o.original == i);
        let origins = (!own).then(|| options.iter().map(|o| o.original as u32).collect());
        touched.then_some(Binding { options, queued, origins, words })
    }

    /// Whether a clause binding after `waited_s` covers a GPU model `option` accepts (cheap: no
    /// allocation, the common case of a job no clause touches).
    fn touches(&self, option: &ResourceOption, waited_s: u64) -> bool {
        let Some(demand) = &option.accelerators else { return false };
        match &demand.selector {
            GpuSelector::Models(models) => models.iter().any(|m| self.covers(*m, waited_s)),
            selector => GpuModel::ALL.iter().any(|m| selector.accepts(*m) && self.covers(*m, waited_s)),
        }
    }

    /// Whether a clause binding after `waited_s` covers `model`.
    fn covers(&self, model: GpuModel, waited_s: u64) -> bool {
        self.exclusive.iter().any(|c| in_scope(c.gpus, Some(model)))
            || self
                .first_refusal
                .iter()
                .any(|c| c.wait_s.is_some_and(|w| waited_s < w) && in_scope(c.gpus, Some(model)))
    }

    /// The words of the first clause binding `gpu` (for a model no provider may take).
    fn first_words(&self, gpu: GpuModel, waited_s: u64) -> Option<ClauseWords> {
        let holders: Vec<&str> =
            self.exclusive.iter().chain(&self.first_refusal).map(|c| c.holder).chain(["any other provider"]).collect();
        holders.iter().find_map(|h| self.blocking(h, Some(gpu), waited_s)).map(|(_, w)| w)
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

/// The clauses as the scheduling core's narrowing: the core calls `narrow` once per distinct
/// (request shape, regime) while it interns the queue.
impl Narrowing for ActiveClauses<'_> {
    fn regime(&self, waited_s: u64) -> u64 {
        ActiveClauses::regime(self, waited_s)
    }

    /// The binding clauses' contracts, in order: the same contracts' clauses bind alike.
    fn key(&self) -> u64 {
        if self.is_empty() {
            return cumulo_sched::narrow::NOTHING_BINDS;
        }
        let mut h = rustc_hash::FxHasher::default();
        for c in self.exclusive.iter().chain(&self.first_refusal) {
            (c.contract, c.holder, c.gpus, c.wait_s).hash(&mut h);
        }
        h.finish().max(1)
    }

    fn narrow(&self, options: &[ResourceOption], waited_s: u64) -> Narrowed {
        match self.binding(options, waited_s) {
            None => Narrowed::Untouched,
            Some(b) if b.queued.is_empty() => Narrowed::Nowhere,
            Some(b) => {
                let origins = b.origins.unwrap_or_else(|| (0..b.queued.len() as u32).collect());
                Narrowed::To { options: b.queued, origins }
            }
        }
    }
}

/// The words of the clause behind each waiting queue entry, for its pending reason: the clause
/// that held the job back or narrowed its options, with the job's own wait. `bind`'s rule runs
/// once per distinct (option list, regime); entries no clause binding after their wait covers (a
/// model mask per regime) are passed over without it. Used after a pass, on the entries left
/// waiting.
pub struct ClauseNotes<'c, 'a> {
    clauses: &'c ActiveClauses<'a>,
    now: u64,
    /// Option list → its words per regime (`None`: no clause touches it).
    seen: FxHashMap<Arc<[ResourceOption]>, Vec<SeenRegime>>,
    covered: CoveredModels,
}

struct SeenRegime {
    regime: u64,
    words: Option<ClauseWords>,
}

impl<'c, 'a> ClauseNotes<'c, 'a> {
    /// Notes for a queue scheduled at `now` (the scheduler's timestamp).
    pub fn new(clauses: &'c ActiveClauses<'a>, now: u64) -> ClauseNotes<'c, 'a> {
        ClauseNotes { clauses, now, seen: FxHashMap::default(), covered: CoveredModels::default() }
    }

    /// The words of the clause that held `job` back or kept its options from some providers,
    /// with its wait; `None` where no clause touches it.
    pub fn words(&mut self, job: &QueuedJob) -> Option<ClauseWords> {
        if self.clauses.is_empty() {
            return None;
        }
        let waited_s = cumulo_sched::narrow::waited_s(self.now, job.submitted_at);
        let regime = self.clauses.regime(waited_s);
        let covered = self.covered.of(self.clauses, regime, waited_s);
        if !job.resources.iter().any(|o| covered & accepted_models(o) != 0) {
            return None;
        }
        let known = self.seen.get(&job.resources[..]).and_then(|r| r.iter().find(|s| s.regime == regime));
        let words = match known {
            Some(seen) => seen.words.clone(),
            None => {
                let words = self.clauses.binding(&job.resources, waited_s).and_then(|b| b.words);
                let regimes = self.seen.entry(Arc::clone(&job.resources)).or_default();
                regimes.push(SeenRegime { regime, words: words.clone() });
                words
            }
        };
        words.map(|w| w.for_wait(waited_s))
    }
}

/// The GPU models the clauses binding in one regime cover, as a mask of `GpuModel` bits; the
/// last regime's is kept (a queue holds few regimes, mostly in runs).
#[derive(Default)]
struct CoveredModels {
    /// The regime `mask` is for; `None` before the first.
    regime: Option<u64>,
    mask: u64,
}

impl CoveredModels {
    fn of(&mut self, clauses: &ActiveClauses<'_>, regime: u64, waited_s: u64) -> u64 {
        if self.regime != Some(regime) {
            self.mask =
                GpuModel::ALL.iter().filter(|m| clauses.covers(**m, waited_s)).fold(0, |mask, m| mask | model_bit(*m));
            self.regime = Some(regime);
        }
        self.mask
    }
}

fn model_bit(model: GpuModel) -> u64 {
    debug_assert!(GpuModel::ALL.len() <= 64, "GPU models fit a u64 mask");
    1 << (model as u32)
}

/// The GPU models an option accepts, as a mask (0 for CPU work).
fn accepted_models(option: &ResourceOption) -> u64 {
    match option.accelerators.as_ref().map(|d| &d.selector) {
        None => 0,
        Some(GpuSelector::Models(models)) => models.iter().fold(0, |mask, m| mask | model_bit(*m)),
        Some(selector) => {
            GpuModel::ALL.iter().filter(|m| selector.accepts(**m)).fold(0, |mask, m| mask | model_bit(*m))
        }
    }
}
