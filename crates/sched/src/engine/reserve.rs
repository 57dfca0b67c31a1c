//! The reserve stage (EASY backfill, as Slurm's backfill does for the head of its queue): the
//! first gang of the pass's decision order left waiting for capacity gets a [`Reservation`], the
//! nodes it would be placed on at the earliest time `start` at which the expected ends of running
//! work (and of this pass's placements) free enough of one candidate pool. From then on in the
//! pass a job that is not expected to end by `start` (no `duration_s`, or too long) sees those
//! nodes as cordoned, so it backfills only around them; one that ends by `start` sees them as
//! they are. A job held off them waits with `held_for_reservation`. Failure marks and cursors
//! learnt while the nodes are cordoned are tagged so, and hold only while they are.
//!
//! Nothing of it outlives the pass: the reservation is recomputed at every pass from the state,
//! so a kept scheduler and a fresh build still decide alike. Cost: nothing until a gang waits for
//! capacity; then, at most [`RESERVE_TRIES`] times a pass, one scan of the running allocations
//! and, per candidate pool, a sort of their ends and a binary search over them (each probe one
//! gang placement, undone); each mode switch re-cordons or opens the reserved nodes.

use super::*;

/// Gangs per pass that may try to get the reservation (the first that gets one keeps it).
pub(super) const RESERVE_TRIES: u32 = 4;

/// The nodes of one pool reserved for the waiting gang `gang`, from `start` on.
pub(super) struct Reservation {
    pub(super) gang: JobId,
    pub(super) start: Timestamp,
    pub(super) pool: u32,
    pub(super) nodes: Vec<u32>,
    /// The reserved nodes cordoned now (for a job that does not end by `start`); empty while
    /// they are open.
    hidden: Vec<u32>,
    hiding: bool,
}

/// The reserve stage's per-pass state: the pass's `now`, the reservation once made, the tries
/// left, and which shapes were found held (valid for one generation).
#[derive(Default)]
pub(super) struct BackfillPass {
    pub(super) now: Timestamp,
    pub(super) reservation: Option<Reservation>,
    tries_left: u32,
    /// Placements of this pass with a known end (with `Scheduler::running_with_end`: whether
    /// any end is known at all).
    pub(super) placed_with_end: usize,
    held_generation: u64,
    held: FxMap<u32, bool>,
    /// Per shape id: whether the reservation's pool is among its candidates (`Touch`).
    touches: Vec<Touch>,
}

/// Whether a shape may use the reserved pool; learnt once per pass.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
enum Touch {
    #[default]
    Unknown,
    Reserved,
    Elsewhere,
}

/// Allocations expected to end, in one pool, sorted by end: `ends[i]` frees
/// `allocs[ends[i].first..ends[i].first + ends[i].len]`.
#[derive(Default)]
struct Timeline {
    ends: Vec<Ending>,
    allocs: Vec<NodeAlloc>,
}

#[derive(Clone, Copy)]
struct Ending {
    end: Timestamp,
    job: JobId,
    replica: u32,
    first: u32,
    len: u32,
}

impl Timeline {
    fn push(&mut self, end: Timestamp, job: JobId, replica: u32, nodes: &[NodeAlloc]) {
        let first = self.allocs.len() as u32;
        self.allocs.extend_from_slice(nodes);
        self.ends.push(Ending { end, job, replica, first, len: nodes.len() as u32 });
    }

    fn nodes(&self, i: usize) -> &[NodeAlloc] {
        let e = self.ends[i];
        &self.allocs[e.first as usize..(e.first + e.len) as usize]
    }

    /// Frees or takes back endings so that exactly `ends[..to]` are freed (`at` of them are now).
    fn move_to(&self, pool: &mut PoolState, at: &mut usize, to: usize) {
        while *at < to {
            for a in self.nodes(*at) {
                pool.give(a);
            }
            *at += 1;
        }
        while *at > to {
            *at -= 1;
            for a in self.nodes(*at) {
                let ok = pool.take_exact(a);
                debug_assert!(ok, "taking back an allocation freed on its own resources");
            }
        }
    }
}

/// Where a gang fits earliest in one pool: the pool, the time and the nodes.
struct Earliest {
    pool: u32,
    start: Timestamp,
    nodes: Vec<u32>,
}

impl BackfillPass {
    pub(super) fn start(now: Timestamp, config: &Config) -> BackfillPass {
        let tries_left = match config.backfill {
            Backfill::Reservations => RESERVE_TRIES,
            Backfill::Greedy => 0,
        };
        BackfillPass { now, tries_left, ..BackfillPass::default() }
    }
}

impl Scheduler {
    /// Whether the reserved nodes are cordoned now: failure marks and cursors set meanwhile hold
    /// only while they are (opening them adds capacity; cordoning them takes none from what was
    /// known full).
    pub(super) fn hiding_reserved(&self) -> bool {
        self.backfill.reservation.as_ref().is_some_and(|r| r.hiding)
    }

    /// Before deciding `job` (shape `s`): cordons the reserved nodes when the job is not expected
    /// to end by the reservation's start, opens them otherwise; nothing for a job that cannot use
    /// the reserved pool at all (so mixed queues do not flip the nodes at every job).
    pub(super) fn backfill_mode(&mut self, job: &QueuedJob, s: usize) {
        let now = self.backfill.now;
        let Some(r) = &mut self.backfill.reservation else { return };
        let touches = &mut self.backfill.touches;
        if touches.len() <= s {
            touches.resize(self.shapes.len().max(s + 1), Touch::Unknown);
        }
        if touches[s] == Touch::Unknown {
            let reserved = self.shapes[s].candidates.iter().any(|c| c.pool == r.pool);
            touches[s] = if reserved { Touch::Reserved } else { Touch::Elsewhere };
        }
        if touches[s] == Touch::Elsewhere {
            return;
        }
        // a shape known full with the reserved nodes open fails either way: no switch
        let shape = &self.shapes[s];
        if shape.failed_generation == self.generation && !shape.failed_hiding && job.priority <= shape.failed_priority {
            return;
        }
        let ends_in_time = job.duration_s.is_some_and(|d| now.saturating_add(d) <= r.start);
        let pool = &mut self.pools[r.pool as usize];
        if !ends_in_time && !r.hiding {
            r.hiding = true;
            for &n in &r.nodes {
                if pool.set_schedulable(n, false) {
                    r.hidden.push(n);
                }
            }
        } else if ends_in_time && r.hiding {
            r.hiding = false;
            for n in r.hidden.drain(..) {
                pool.set_schedulable(n, true);
            }
        }
    }

    /// At the end of a pass: the reserved nodes are open again and the reservation is gone.
    pub(super) fn end_backfill(&mut self) {
        if let Some(mut r) = self.backfill.reservation.take() {
            for n in r.hidden.drain(..) {
                self.pools[r.pool as usize].set_schedulable(n, true);
            }
        }
        self.backfill = BackfillPass::default();
    }

    /// After `job` (queue index `j`, shape `s`) was left waiting with `reason`: the first gang
    /// waiting for capacity tries to reserve; a job that waits only because reserved nodes are
    /// cordoned for it is told so.
    pub(super) fn after_waiting(
        &mut self,
        queue: &[QueuedJob],
        j: usize,
        s: usize,
        reason: PendingReason,
        plan: &Plan,
    ) -> PendingReason {
        if !matches!(reason, PendingReason::InsufficientCapacity { .. }) {
            return reason;
        }
        let job = &queue[j];
        match &self.backfill.reservation {
            None if job.num_nodes > 1
                && job.spread == SpreadPolicy::None
                && self.backfill.tries_left > 0
                && self.running_with_end + self.backfill.placed_with_end > 0 =>
            {
                self.backfill.tries_left -= 1;
                self.reserve(queue, job, s, plan);
                reason
            }
            Some(r) if r.hiding && job.duration_s.is_none_or(|d| self.backfill.now.saturating_add(d) > r.start) => {
                let (gang, start) = (r.gang, r.start);
                if self.fits_reserved(job, s) { PendingReason::HeldForReservation { gang, start } } else { reason }
            }
            _ => reason,
        }
    }

    /// Reserves for `job` the nodes of the candidate pool where it fits earliest (ties: the
    /// cheaper candidate), when known ends free enough anywhere.
    fn reserve(&mut self, queue: &[QueuedJob], job: &QueuedJob, s: usize, plan: &Plan) {
        let timelines = self.timelines(queue, s, plan);
        let mut best: Option<Earliest> = None;
        for i in 0..self.shapes[s].candidates.len() {
            let c = self.shapes[s].candidates[i];
            let need = self.shapes[s].needs[c.option as usize];
            let Some(timeline) = timelines.get(&c.pool) else { continue };
            let found = self.earliest(c.pool, timeline, &need, job);
            if let Some(e) = found
                && best.as_ref().is_none_or(|b| e.start < b.start)
            {
                best = Some(e);
            }
        }
        if let Some(e) = best {
            self.backfill.reservation = Some(Reservation {
                gang: job.id,
                start: e.start,
                pool: e.pool,
                nodes: e.nodes,
                hidden: Vec::new(),
                hiding: false,
            });
        }
    }

    /// Per candidate pool of shape `s`, the allocations there with a known end (running work and
    /// this pass's placements), sorted by end, then job and replica (so that neither slot order
    /// nor plan order matters). An end already past counts as now.
    fn timelines(&self, queue: &[QueuedJob], s: usize, plan: &Plan) -> FxMap<u32, Timeline> {
        let mut out: FxMap<u32, Timeline> = FxMap::default();
        for c in &self.shapes[s].candidates {
            out.entry(c.pool).or_default();
        }
        let now = self.backfill.now;
        if self.running_with_end > 0 {
            for r in &self.running {
                if let (true, Some(end), Some(t)) = (r.alive, r.expected_end, out.get_mut(&r.pool)) {
                    t.push(end.max(now), r.job, r.replica, r.nodes.as_slice());
                }
            }
        }
        if self.backfill.placed_with_end > 0 {
            for (p, &(j, _)) in plan.placements.iter().zip(&self.pass_placed) {
                let Some(d) = queue[j as usize].duration_s else { continue };
                if let Some(t) = out.get_mut(&self.pool_index[&p.pool]) {
                    t.push(now.saturating_add(d), p.job, p.replica, &p.nodes);
                }
            }
        }
        out.retain(|_, t| !t.ends.is_empty());
        for t in out.values_mut() {
            t.ends.sort_unstable_by_key(|e| (e.end, e.job, e.replica));
        }
        out
    }

    /// The earliest end in `timeline` after which `job` fits in the pool with `need`, and the
    /// nodes it would get then; `None` when it does not fit even after every known end. Freeing
    /// more never makes a gang fit less, so the end is found by binary search over the distinct
    /// ends; the pool is left as it was.
    fn earliest(&mut self, pool: u32, timeline: &Timeline, need: &Need, job: &QueuedJob) -> Option<Earliest> {
        let state = &mut self.pools[pool as usize];
        // prefix lengths at which a distinct end time is complete
        let mut bounds: Vec<usize> = Vec::new();
        for (i, e) in timeline.ends.iter().enumerate() {
            if timeline.ends.get(i + 1).is_none_or(|next| next.end != e.end) {
                bounds.push(i + 1);
            }
        }
        let mut at = 0;
        let fits_after = |state: &mut PoolState, at: &mut usize, to: usize| {
            timeline.move_to(state, at, to);
            let placed = state.place(need, job.num_nodes, job.topology)?;
            for a in &placed {
                state.give(a);
            }
            Some(placed.iter().map(|a| a.node).collect::<Vec<u32>>())
        };
        let last = *bounds.last()?;
        let mut nodes = fits_after(state, &mut at, last);
        if nodes.is_some() {
            // smallest bound index whose prefix fits: invariant `hi` fits, `lo` (if any) does not
            let (mut lo, mut hi) = (0usize, bounds.len() - 1);
            while lo < hi {
                let mid = (lo + hi) / 2;
                match fits_after(state, &mut at, bounds[mid]) {
                    Some(found) => {
                        hi = mid;
                        nodes = Some(found);
                    }
                    None => lo = mid + 1,
                }
            }
            let start = timeline.ends[bounds[hi] - 1].end;
            timeline.move_to(state, &mut at, 0);
            let mut nodes = nodes.expect("the prefix found fits");
            nodes.sort_unstable();
            return Some(Earliest { pool, start, nodes });
        }
        timeline.move_to(state, &mut at, 0);
        None
    }

    /// Whether `job` (left waiting while the reserved nodes are cordoned) would fit with them
    /// open: then it is held for the reservation. Remembered per shape for the generation.
    fn fits_reserved(&mut self, job: &QueuedJob, s: usize) -> bool {
        if self.backfill.held_generation != self.generation {
            self.backfill.held.clear();
            self.backfill.held_generation = self.generation;
        }
        if let Some(&held) = self.backfill.held.get(&(s as u32)) {
            return held;
        }
        let r = self.backfill.reservation.as_ref().expect("held only under a reservation");
        let pool = &mut self.pools[r.pool as usize];
        for &n in &r.hidden {
            pool.set_schedulable(n, true);
        }
        let mut fits = false;
        for c in &self.shapes[s].candidates {
            if c.pool != r.pool {
                continue;
            }
            if let Some(placed) = pool.place(&self.shapes[s].needs[c.option as usize], job.num_nodes, job.topology) {
                for a in &placed {
                    pool.give(a);
                }
                fits = true;
                break;
            }
        }
        for &n in &r.hidden {
            pool.set_schedulable(n, false);
        }
        self.backfill.held.insert(s as u32, fits);
        fits
    }
}
