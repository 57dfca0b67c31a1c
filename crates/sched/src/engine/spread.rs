//! The spread stage: where a spread job's replicas run (tallied per pass) and the providers
//! (regions) its next replica must or would rather avoid. The stage's result is [`Avoid`].

use super::*;

/// Where a job's replicas are, for jobs with a spread policy: built the first time a pass meets
/// such a job, so passes without one pay nothing.
pub(super) struct Spread {
    /// Per pool, its provider's id and its (provider, region)'s id.
    pub(super) provider_of: Vec<u32>,
    pub(super) region_of: Vec<u32>,
    pub(super) provider_names: Vec<String>,
    pub(super) region_names: Vec<String>,
    /// Per (job, policy): replicas per provider (region) id, running and placed in this pass.
    pub(super) tallies: FxMap<(JobId, SpreadPolicy), Tally>,
}

#[derive(Default)]
pub(super) struct Tally {
    pub(super) counts: Vec<(u32, u32)>,
    /// Replicas placed in this pass: while non-zero the job's running replicas are not preempted,
    /// so what the placements were spread against stays.
    pub(super) placed: u32,
}

/// Spread keys a replica must (`hard`) or would rather (soft) not use.
pub(super) struct Avoid {
    pub(super) by_region: bool,
    pub(super) keys: Vec<u32>,
    pub(super) hard: bool,
}

impl Spread {
    pub(super) fn new(pools: &[Pool]) -> Spread {
        let mut provider_ids: HashMap<&str, u32> = HashMap::new();
        let mut region_ids: HashMap<(&str, &str), u32> = HashMap::new();
        let mut spread = Spread {
            provider_of: Vec::with_capacity(pools.len()),
            region_of: Vec::with_capacity(pools.len()),
            provider_names: Vec::new(),
            region_names: Vec::new(),
            tallies: FxMap::default(),
        };
        for pool in pools {
            let next = provider_ids.len() as u32;
            let p = *provider_ids.entry(pool.provider.as_str()).or_insert_with(|| {
                spread.provider_names.push(pool.provider.clone());
                next
            });
            let next = region_ids.len() as u32;
            let r = *region_ids.entry((pool.provider.as_str(), pool.region.as_str())).or_insert_with(|| {
                spread.region_names.push(format!("{}/{}", pool.provider, pool.region));
                next
            });
            spread.provider_of.push(p);
            spread.region_of.push(r);
        }
        spread
    }

    pub(super) fn key(&self, policy: SpreadPolicy, pool: u32) -> u32 {
        match policy {
            SpreadPolicy::Regions => self.region_of[pool as usize],
            _ => self.provider_of[pool as usize],
        }
    }
}

impl Avoid {
    pub(super) fn excludes(&self, spread: &Spread, pool: u32) -> bool {
        let key = if self.by_region { spread.region_of[pool as usize] } else { spread.provider_of[pool as usize] };
        self.keys.contains(&key)
    }
}

impl Tally {
    pub(super) fn add(&mut self, key: u32, delta: i32) {
        match self.counts.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => *n = n.saturating_add_signed(delta),
            None if delta > 0 => self.counts.push((key, delta as u32)),
            None => {}
        }
    }
}

impl Scheduler {
    /// What a replica of a spread job should avoid: nothing before its first replica runs; the
    /// one provider (region) holding all its replicas, strictly; else, as a preference, those
    /// holding the most.
    pub(super) fn avoid_for(&mut self, job: &QueuedJob) -> Option<Avoid> {
        if job.spread == SpreadPolicy::None {
            return None;
        }
        if self.spread.is_none() {
            self.spread = Some(Spread::new(&self.meta));
        }
        let key = (job.id, job.spread);
        if !self.spread.as_ref().expect("just built").tallies.contains_key(&key) {
            let mut tally = Tally::default();
            let spread = self.spread.as_ref().expect("just built");
            for v in self.slots_of(job.id) {
                let run = &self.running[v as usize];
                if run.alive {
                    tally.add(spread.key(job.spread, run.pool), 1);
                }
            }
            self.spread.as_mut().expect("just built").tallies.insert(key, tally);
        }
        let counts = &self.spread.as_ref().expect("just built").tallies[&key].counts;
        let most = counts.iter().map(|&(_, n)| n).max().unwrap_or(0);
        let used: Vec<u32> = counts.iter().filter(|&&(_, n)| n > 0).map(|&(k, _)| k).collect();
        match used.len() {
            0 => None,
            1 => Some(Avoid { by_region: job.spread == SpreadPolicy::Regions, keys: used, hard: true }),
            _ => Some(Avoid {
                by_region: job.spread == SpreadPolicy::Regions,
                keys: counts.iter().filter(|&&(_, n)| n == most).map(|&(k, _)| k).collect(),
                hard: false,
            }),
        }
    }

    /// Places the job, honouring its spread policy: strictly away from the only provider
    /// (region) used so far, or preferably away from the most used ones, falling back to any.
    pub(super) fn place_spread(
        &mut self,
        job: &QueuedJob,
        t: u32,
        s: usize,
        plan: &mut Plan,
    ) -> Result<Found, PendingReason> {
        let placed = match self.avoid_for(job) {
            None => self.try_place(job, t, s, plan, None, true),
            Some(avoid) if avoid.hard => self.try_place(job, t, s, plan, Some(&avoid), true),
            Some(avoid) => self
                .try_place(job, t, s, plan, Some(&avoid), false)
                .or_else(|_| self.try_place(job, t, s, plan, None, true)),
        };
        if let Ok(Found { pool, .. }) = &placed {
            let spread = self.spread.as_mut().expect("built by avoid_for");
            let key = spread.key(job.spread, *pool);
            let tally = spread.tallies.get_mut(&(job.id, job.spread)).expect("built by avoid_for");
            tally.add(key, 1);
            tally.placed += 1;
        }
        placed
    }

    /// Whether running allocation `v` is a replica of a spread job that got placements in this
    /// pass (they were spread counting it, so it stays).
    pub(super) fn spread_protected(&self, v: u32) -> bool {
        let Some(spread) = &self.spread else { return false };
        let job = self.running[v as usize].job;
        [SpreadPolicy::Providers, SpreadPolicy::Regions]
            .iter()
            .any(|&p| spread.tallies.get(&(job, p)).is_some_and(|t| t.placed > 0))
    }
}
