//! An independent check of a plan against a snapshot: the leader re-checks every plan before
//! applying it, and the tests run it on every plan they make. It recounts capacity from scratch,
//! sharing no code with the engine's indexes.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use cumulo_types::{CapacityKind, SpreadPolicy, TopologyNeed};

use crate::model::{GpuAlloc, NodeAlloc, Plan, QueuedJob, Snapshot};

fn violation(rule: &'static str, detail: String) -> crate::Error {
    crate::Error::PlanViolation { rule, detail }
}

/// Checks that `plan` (made for `queue` on `snapshot`) never over-commits a node, places every
/// gang whole on distinct schedulable nodes with the shape it asked for, honours topology needs,
/// hardware/constraint eligibility and tenant quotas, preempts only lower-priority preemptible
/// work, accounts for every queued job exactly once, and leaves every spread job that got a
/// placement with its replicas (running and placed) on at least two providers (regions), unless
/// it has only one.
pub fn verify_plan(snapshot: &Snapshot, queue: &[QueuedJob], plan: &Plan) -> Result<(), crate::Error> {
    let pools: HashMap<_, _> = snapshot.pools.iter().map(|p| (p.id, p)).collect();
    let jobs: HashMap<_, _> = queue.iter().map(|j| ((j.id, j.replica), j)).collect();
    let mut seen = BTreeSet::new();
    for key in plan.placements.iter().map(|p| (p.job, p.replica)).chain(plan.pending.iter().map(|p| (p.job, p.replica)))
    {
        if !jobs.contains_key(&key) {
            return Err(violation("known jobs", format!("job {} replica {} is not in the queue", key.0, key.1)));
        }
        if !seen.insert(key) {
            return Err(violation("one decision per job", format!("job {} replica {} decided twice", key.0, key.1)));
        }
    }
    if seen.len() != jobs.len() {
        return Err(violation("one decision per job", format!("{} of {} jobs decided", seen.len(), jobs.len())));
    }
    let mut preempted = BTreeSet::new();
    for pre in &plan.preemptions {
        let victim = snapshot
            .running
            .iter()
            .find(|r| r.job == pre.victim && r.replica == pre.victim_replica && r.pool == pre.pool)
            .ok_or_else(|| {
                violation("preemption", format!("victim {} is not running in pool {}", pre.victim, pre.pool))
            })?;
        let winner = queue
            .iter()
            .find(|j| j.id == pre.for_job)
            .ok_or_else(|| violation("preemption", format!("job {} is not in the queue", pre.for_job)))?;
        if !victim.preemptible || victim.priority >= winner.priority {
            return Err(violation(
                "preemption",
                format!("job {} (priority {}) may not preempt job {}", winner.id, winner.priority, victim.job),
            ));
        }
        preempted.insert((victim.job, victim.replica));
    }
    // (pool, node) -> (cpu, mem, per-GPU thousandths)
    let mut used: BTreeMap<(u32, u32), (u64, u64, Vec<u32>)> = BTreeMap::new();
    let mut add = |pool_id: crate::PoolId, a: &NodeAlloc, new: bool| -> Result<(), crate::Error> {
        let pool = pools.get(&pool_id).ok_or_else(|| violation("known pools", format!("pool {pool_id} is unknown")))?;
        let node = pool
            .nodes
            .get(a.node as usize)
            .ok_or_else(|| violation("known nodes", format!("pool {pool_id} has no node {}", a.node)))?;
        if new && !node.schedulable {
            return Err(violation("schedulable nodes", format!("pool {pool_id} node {} is not schedulable", a.node)));
        }
        let nt = &pool.node_type;
        let entry = used.entry((pool_id.0, a.node)).or_insert_with(|| (0, 0, vec![0; nt.gpus as usize]));
        entry.0 += u64::from(a.cpus_milli);
        entry.1 += a.memory_mib;
        match a.gpus {
            GpuAlloc::None => {}
            GpuAlloc::Whole { mask } => {
                for g in 0..64 {
                    if mask & (1u64 << g) != 0 {
                        let slot = entry.2.get_mut(g).ok_or_else(|| {
                            violation("capacity", format!("pool {pool_id} node {} has no GPU {g}", a.node))
                        })?;
                        *slot += 1000;
                    }
                }
            }
            GpuAlloc::Fraction { gpu, milli } => {
                let slot = entry
                    .2
                    .get_mut(gpu as usize)
                    .ok_or_else(|| violation("capacity", format!("pool {pool_id} node {} has no GPU {gpu}", a.node)))?;
                *slot += u32::from(milli);
            }
        }
        let over = entry.0 > u64::from(nt.vcpus) * 1000
            || entry.1 > u64::from(nt.memory_gb) * 1024
            || entry.2.iter().any(|&g| g > 1000);
        if over {
            return Err(violation("capacity", format!("pool {pool_id} node {} is over-committed", a.node)));
        }
        Ok(())
    };
    for r in snapshot.running.iter().filter(|r| !preempted.contains(&(r.job, r.replica))) {
        for a in &r.nodes {
            add(r.pool, a, false)?;
        }
    }
    for p in &plan.placements {
        for a in &p.nodes {
            add(p.pool, a, true)?;
        }
    }
    // Quotas: a tenant that got new placements ends at or under each of its limits.
    let mut usage: BTreeMap<&str, (u64, u64, bool)> = BTreeMap::new();
    for r in snapshot.running.iter().filter(|r| !preempted.contains(&(r.job, r.replica))) {
        let u = usage.entry(r.tenant.as_str()).or_default();
        u.0 += r.nodes.iter().map(|a| a.gpus.milli()).sum::<u64>();
        u.1 += r.nodes.iter().map(|a| u64::from(a.cpus_milli)).sum::<u64>();
    }
    for p in &plan.placements {
        let u = usage.entry(jobs[&(p.job, p.replica)].tenant.as_str()).or_default();
        u.0 += p.nodes.iter().map(|a| a.gpus.milli()).sum::<u64>();
        u.1 += p.nodes.iter().map(|a| u64::from(a.cpus_milli)).sum::<u64>();
        u.2 = true;
    }
    for policy in &snapshot.tenants {
        if let Some(&(gpu, cpu, placed)) = usage.get(policy.name.as_str()) {
            let over =
                policy.quota.gpus_milli.is_some_and(|l| gpu > l) || policy.quota.cpus_milli.is_some_and(|l| cpu > l);
            if placed && over {
                return Err(violation("quota", format!("tenant {} ends over its quota", policy.name)));
            }
        }
    }
    for p in &plan.placements {
        let job = jobs[&(p.job, p.replica)];
        let pool = pools[&p.pool];
        let option = job
            .resources
            .get(p.option as usize)
            .ok_or_else(|| violation("resource option", format!("job {} has no option {}", p.job, p.option)))?;
        if p.nodes.len() != job.num_nodes as usize {
            return Err(violation(
                "gangs whole",
                format!("job {} got {} of {} nodes", p.job, p.nodes.len(), job.num_nodes),
            ));
        }
        let distinct: BTreeSet<u32> = p.nodes.iter().map(|a| a.node).collect();
        if distinct.len() != p.nodes.len() {
            return Err(violation("gangs whole", format!("job {} uses a node twice", p.job)));
        }
        let want_gpu = option.accelerators.as_ref().map_or(0, |d| u64::from(d.per_node.0));
        for a in &p.nodes {
            if a.gpus.milli() != want_gpu || a.cpus_milli != option.cpus_milli || a.memory_mib != option.memory_mib {
                return Err(violation("shape", format!("job {} node {} does not get what it asked", p.job, a.node)));
            }
        }
        let nt = &pool.node_type;
        let model_ok = match (&option.accelerators, nt.gpu) {
            (Some(d), Some(m)) => d.selector.accepts(m),
            (None, _) => nt.gpus == 0,
            _ => false,
        };
        let infra_ok = option.infra.as_ref().is_none_or(|i| pool.matches(i))
            && !job.constraints.deny.iter().any(|d| pool.matches(d))
            && option.use_spot == (pool.capacity == CapacityKind::Spot);
        let price_ok = job.constraints.max_price_per_hour.is_none_or(|m| p.price_per_hour <= m);
        if !model_ok || !infra_ok || !price_ok {
            return Err(violation("eligibility", format!("job {} may not run in pool {}", p.job, pool.name)));
        }
        let same = |f: &dyn Fn(&NodeAlloc) -> u32| p.nodes.windows(2).all(|w| f(&w[0]) == f(&w[1]));
        let held = match job.topology {
            TopologyNeed::NvlinkDomain => same(&|a| pool.nodes[a.node as usize].nvlink_domain),
            TopologyNeed::Block => same(&|a| pool.nodes[a.node as usize].block),
            TopologyNeed::Zone | TopologyNeed::Any => true,
        };
        if !held {
            return Err(violation("topology", format!("job {} is not within one {}", p.job, job.topology)));
        }
    }
    // Spread: a job with a spread policy that got placements ends on two providers (regions),
    // counting its running replicas that were not preempted, or has a single replica in all.
    let mut spread: BTreeMap<(u64, bool), Vec<crate::PoolId>> = BTreeMap::new();
    for p in &plan.placements {
        let job = jobs[&(p.job, p.replica)];
        if job.spread != SpreadPolicy::None {
            spread.entry((p.job.0, job.spread == SpreadPolicy::Regions)).or_default().push(p.pool);
        }
    }
    for ((job, by_region), pools_used) in &mut spread {
        let running = snapshot
            .running
            .iter()
            .filter(|r| r.job.0 == *job && !preempted.contains(&(r.job, r.replica)))
            .map(|r| r.pool);
        pools_used.extend(running);
        let places: BTreeSet<(&str, &str)> = pools_used
            .iter()
            .map(|id| {
                let pool = pools[id];
                (pool.provider.as_str(), if *by_region { pool.region.as_str() } else { "" })
            })
            .collect();
        if pools_used.len() >= 2 && places.len() < 2 {
            let (provider, region) = places.first().expect("a placement");
            let place = if region.is_empty() { provider.to_string() } else { format!("{provider}/{region}") };
            let what = if *by_region { "regions" } else { "providers" };
            return Err(violation(
                "spread",
                format!("job {job} has {} replicas, all on {place}, but asks for spread over {what}", pools_used.len()),
            ));
        }
    }
    Ok(())
}
