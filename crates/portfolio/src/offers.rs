//! Ranking of feasible placements for one job by effective cost, with the reason for each price,
//! the clauses honoured, and why a job has no placement at all when it has none.
//!
//! Candidates are catalog offers (on-demand, or spot when the job allows spot) and contract
//! capacity delivered at `now` (plus expansion options still open). Each candidate is checked in
//! a fixed order of stages; an infeasible job is explained by the stage its best candidates
//! reached.

use chrono::{DateTime, Utc};
use cumulo_catalog::{Catalog, Offer};
use cumulo_sched::needs::{self, Needs, Site};
use cumulo_types::{CapacityKind, GpuModel, JobSpec, Money, ResourceOption, TopologyNeed};
use serde::Serialize;

use crate::clauses::{ActiveClauses, Block};
use crate::pricing::{self, EffectivePrice, PricingConfig};
use crate::{Portfolio, Usage};

/// Everything one ranking needs. Time comes in as `now`; `waited_s` is how long the job has
/// waited so far (first-refusal clauses hold other providers back until it reaches their wait).
pub struct Query<'a> {
    pub job: &'a JobSpec,
    pub catalog: &'a Catalog,
    pub portfolio: Option<&'a Portfolio>,
    pub usage: &'a Usage,
    pub now: DateTime<Utc>,
    pub waited_s: u64,
    pub config: PricingConfig,
    /// The fleet's clusters as sites (`cumulo offers --fleet FILE`); empty without a fleet. An
    /// offer in a location where clusters stand and none gives what the job file needs of its
    /// site (`cumulo_sched::needs`: a container image, an upload, bucket mounts) is kept off, as
    /// the server's reconcile loop keeps the job off that location.
    pub sites: &'a [Site],
}

/// One feasible placement: `nodes` nodes of an instance type, priced per hour for all of them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OfferRow {
    pub provider: String,
    pub region: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    pub instance_type: String,
    pub capacity: CapacityKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contract: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu: Option<GpuModel>,
    pub gpus_per_node: u32,
    pub nodes: u32,
    /// The job's resource option (index into `resources`) this row serves.
    pub option: usize,
    pub list_per_hour: Money,
    pub effective_per_hour: Money,
    pub why: String,
    pub source: String,
}

/// A candidate a clause keeps from the ranking, and which clause.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HeldBack {
    pub provider: String,
    pub region: String,
    pub instance_type: String,
    pub capacity: CapacityKind,
    pub effective_per_hour: Money,
    pub reason: String,
}

/// The answer: feasible rows, cheapest effective cost first, and what was held back.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Ranking {
    pub feasible: Vec<OfferRow>,
    /// Rows a first-refusal clause holds back until the job has waited long enough.
    pub held_back: Vec<HeldBack>,
    /// Candidates an exclusive clause rules out.
    pub excluded_by_exclusive: usize,
    /// Why nothing is feasible, when nothing is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub infeasible: Option<String>,
    /// Rows kept off because no cluster of the fleet in their location gives what the job needs
    /// of its site (only with [`Query::sites`]); the reason is the server's.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kept_off: Vec<HeldBack>,
    /// Each of [`Query::sites`], whether it can run the job file (empty without sites).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sites: Vec<SiteAnswer>,
    /// The reason the server's reconcile loop adds to the job's pending reason for the clusters
    /// that cannot give what it needs ([`Needs::reasons`]); `None` when every site can.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site_reason: Option<String>,
}

/// Whether one cluster of the fleet can run the job, by what it needs of its site.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SiteAnswer {
    pub cluster: String,
    pub provider: String,
    pub region: String,
    /// True when the cluster gives everything the job needs of its site.
    pub can_run: bool,
    /// The first need it does not meet, as the server words it ([`Needs::reason`]); `None` when
    /// `can_run`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The order in which a candidate is checked; a later stage means it got further.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    GpusPerNode,
    CpuMemory,
    InstanceType,
    Infra,
    Deny,
    SiteNeeds,
    Spot,
    Topology,
    ContractSize,
    Exclusive,
    FirstRefusal,
    MaxPrice,
}

struct Candidate<'a> {
    provider: &'a str,
    region: String,
    zone: Option<&'a str>,
    instance_type: &'a str,
    gpu: Option<GpuModel>,
    gpus: u32,
    vcpus_milli: u32,
    memory_mib: u64,
    nvlink_domain_nodes: u32,
    /// Nodes available (contract capacity); `None` for cloud offers (bought as needed).
    available_nodes: Option<u32>,
    price: EffectivePrice,
    source: String,
}

/// Ranks the feasible placements of `query.job`.
pub fn rank(query: &Query<'_>) -> Ranking {
    let job = query.job;
    let mut ranking = Ranking::default();
    // The furthest stage reached by any candidate that failed, with its message.
    let mut furthest: Option<(Stage, String)> = None;
    let mut saw_model = false;
    // The largest GPU count per node and NVLink domain among candidates, for explanations.
    let (mut max_gpus, mut max_domain) = (0u32, 0u32);
    let clauses = ActiveClauses::at(query.portfolio, query.now);
    // What the file asks of its site, as `cumulo submit` would send it (its upload included).
    let job_needs = Needs::of_file(job);

    for (option_index, option) in job.resources.iter().enumerate() {
        let candidates = candidates(query, option);
        saw_model |= !candidates.is_empty();
        for c in candidates {
            max_gpus = max_gpus.max(c.gpus);
            max_domain = max_domain.max(c.nvlink_domain_nodes);
            match check(query, option, &c, &clauses, &job_needs) {
                Ok(()) => ranking.feasible.push(OfferRow {
                    provider: c.provider.to_string(),
                    region: c.region.clone(),
                    zone: c.zone.map(str::to_string),
                    instance_type: c.instance_type.to_string(),
                    capacity: c.price.capacity,
                    contract: c.price.contract.clone(),
                    gpu: c.gpu,
                    gpus_per_node: c.gpus,
                    nodes: job.num_nodes,
                    option: option_index,
                    list_per_hour: c.price.list.saturating_mul(i64::from(job.num_nodes)),
                    effective_per_hour: c.price.effective.saturating_mul(i64::from(job.num_nodes)),
                    why: c.price.why.clone(),
                    source: c.source.clone(),
                }),
                Err((Stage::Exclusive, _)) => ranking.excluded_by_exclusive += 1,
                Err((stage @ (Stage::SiteNeeds | Stage::FirstRefusal), reason)) => {
                    let row = HeldBack {
                        provider: c.provider.to_string(),
                        region: c.region.clone(),
                        instance_type: c.instance_type.to_string(),
                        capacity: c.price.capacity,
                        effective_per_hour: c.price.effective.saturating_mul(i64::from(job.num_nodes)),
                        reason: reason.clone(),
                    };
                    // Kept off for the site's abilities, or held back by a first-refusal clause.
                    match stage {
                        Stage::SiteNeeds => ranking.kept_off.push(row),
                        _ => ranking.held_back.push(row),
                    }
                    if furthest.as_ref().is_none_or(|(s, _)| *s < stage) {
                        furthest = Some((stage, reason));
                    }
                }
                Err((stage, reason)) => {
                    if furthest.as_ref().is_none_or(|(s, _)| *s < stage) {
                        furthest = Some((stage, reason));
                    }
                }
            }
        }
    }
    let ordered = job.ordered;
    ranking.feasible.sort_by(|a, b| {
        let key = |r: &OfferRow| if ordered { r.option } else { 0 };
        (key(a), a.effective_per_hour, a.list_per_hour, &a.provider, &a.region, &a.zone, &a.instance_type, a.capacity)
            .cmp(&(
                key(b),
                b.effective_per_hour,
                b.list_per_hour,
                &b.provider,
                &b.region,
                &b.zone,
                &b.instance_type,
                b.capacity,
            ))
    });
    let by_cost = |a: &HeldBack, b: &HeldBack| {
        (a.effective_per_hour, &a.provider, &a.region).cmp(&(b.effective_per_hour, &b.provider, &b.region))
    };
    ranking.held_back.sort_by(by_cost);
    ranking.kept_off.sort_by(by_cost);
    ranking.sites = site_answers(&job_needs, query.sites);
    ranking.site_reason = job_needs.reasons(query.sites);
    if ranking.feasible.is_empty() {
        ranking.infeasible = Some(if !saw_model {
            no_model_reason(query)
        } else if let Some((Stage::FirstRefusal, reason)) = &furthest {
            reason.clone()
        } else if let Some((stage, reason)) = furthest {
            let reason = match stage {
                Stage::GpusPerNode => {
                    format!("no offer has {} per node (the matching offers have at most {max_gpus})", demand_text(job))
                }
                Stage::Topology => format!(
                    "topology nvlink-domain needs {} nodes in one NVLink domain; the matching offers have at most {max_domain} node(s) per domain",
                    job.num_nodes
                ),
                _ => reason,
            };
            if ranking.excluded_by_exclusive > 0 {
                format!("{reason}; {} more excluded by an exclusive clause", ranking.excluded_by_exclusive)
            } else {
                reason
            }
        } else if ranking.excluded_by_exclusive > 0 {
            clauses.exclusive_reason(&demand_text(job))
        } else {
            "no offer matches".to_string()
        });
    }
    ranking
}

/// Each site, whether it gives everything `job_needs` asks, with the reason the server gives when
/// it refuses a placement there.
fn site_answers(job_needs: &Needs, sites: &[Site]) -> Vec<SiteAnswer> {
    sites
        .iter()
        .map(|site| {
            let unmet = job_needs.unmet(&site.abilities);
            SiteAnswer {
                cluster: site.name.clone(),
                provider: site.provider.clone(),
                region: site.region.clone(),
                can_run: unmet.is_none(),
                // Each row names its own cluster; `site_reason` gives the server's text for them all.
                reason: unmet.map(|need| job_needs.reason(need, &[site.name.as_str()])),
            }
        })
        .collect()
}

/// What the job asks for, each distinct shape once (options that differ only in where they run,
/// as `any_of` infra entries do, read alike).
pub fn demand_text(job: &JobSpec) -> String {
    let mut parts: Vec<String> = Vec::new();
    for option in job.resources.iter() {
        let part = match &option.accelerators {
            Some(a) => a.to_string(),
            None => format!("CPU {} vCPUs", option.cpus_milli.div_ceil(1000)),
        };
        if !parts.contains(&part) {
            parts.push(part);
        }
    }
    parts.join(" or ")
}

fn no_model_reason(query: &Query<'_>) -> String {
    let mut offered: Vec<&str> = query.catalog.gpu_models().iter().map(|g| g.name()).collect();
    if let Some(p) = query.portfolio {
        offered.extend(p.node_types.iter().filter_map(|n| n.gpu.map(|g| g.name())));
    }
    offered.sort();
    offered.dedup();
    let wanted: Vec<String> = query
        .job
        .resources
        .iter()
        .map(|o| o.accelerators.as_ref().map_or("a CPU-only instance".to_string(), |a| a.selector.to_string()))
        .collect();
    format!(
        "no offer has {} (GPU models offered by catalog `{}` and the portfolio: {})",
        wanted.join(" or "),
        query.catalog.origin,
        offered.join(", ")
    )
}

fn candidates<'a>(query: &Query<'a>, option: &'a ResourceOption) -> Vec<Candidate<'a>> {
    let mut out = Vec::new();
    let offers: Box<dyn Iterator<Item = &'a Offer> + 'a> = match &option.accelerators {
        Some(a) => Box::new(query.catalog.accepting(&a.selector)),
        None => Box::new(query.catalog.with_gpu(None)),
    };
    for offer in offers {
        let base = |price: EffectivePrice| Candidate {
            provider: &offer.provider,
            region: offer.region.clone(),
            zone: offer.zone.as_deref(),
            instance_type: &offer.instance_type,
            gpu: offer.gpu,
            gpus: offer.gpus,
            vcpus_milli: offer.vcpus_milli,
            memory_mib: offer.memory_mib,
            nvlink_domain_nodes: cumulo_types::NodeType::default_nvlink_domain_nodes(offer.gpu),
            available_nodes: None,
            price,
            source: offer.source.clone(),
        };
        if let Some(list) = offer.price {
            out.push(base(pricing::on_demand(list)));
        }
        if let Some(spot) = offer.spot_price {
            out.push(base(pricing::spot(spot, &query.config)));
        }
    }
    let Some(portfolio) = query.portfolio else { return out };
    let accepts = |gpu: Option<GpuModel>| match (&option.accelerators, gpu) {
        (Some(a), Some(g)) => a.selector.accepts(g),
        (None, None) => true,
        _ => false,
    };
    for d in portfolio.delivered_capacity(query.now) {
        let (Some(nt), Some(contract)) = (portfolio.node_type(&d.node_type), portfolio.contract(&d.contract)) else {
            continue;
        };
        if !accepts(nt.gpu) {
            continue;
        }
        let Some(price) = pricing::committed(contract, &nt.name, query.usage, query.now, &query.config) else {
            continue;
        };
        out.push(contract_candidate(contract.provider.as_str(), &d.region, nt, d.nodes, price, "delivered"));
    }
    for contract in &portfolio.contracts {
        let Some(e) = &contract.expansion else { continue };
        let Some(nt) = portfolio.node_type(&e.node_type) else { continue };
        if !accepts(nt.gpu) {
            continue;
        }
        if let Some(price) = pricing::expansion(contract, query.now) {
            out.push(contract_candidate(contract.provider.as_str(), &e.region, nt, e.nodes, price, "expansion option"));
        }
    }
    out
}

fn contract_candidate<'a>(
    provider: &'a str,
    region: &str,
    nt: &'a cumulo_types::NodeType,
    nodes: u32,
    price: EffectivePrice,
    what: &str,
) -> Candidate<'a> {
    let source = format!("portfolio: {} {what}", price.contract.as_deref().unwrap_or("?"));
    Candidate {
        provider,
        region: region.to_string(),
        zone: None,
        instance_type: &nt.name,
        gpu: nt.gpu,
        gpus: nt.gpus,
        vcpus_milli: nt.vcpus.saturating_mul(1000),
        memory_mib: u64::from(nt.memory_gb) * 1024,
        nvlink_domain_nodes: nt.nvlink_domain_nodes,
        available_nodes: Some(nodes),
        price,
        source,
    }
}

fn check(
    query: &Query<'_>,
    option: &ResourceOption,
    c: &Candidate<'_>,
    clauses: &ActiveClauses<'_>,
    job_needs: &Needs,
) -> Result<(), (Stage, String)> {
    let job = query.job;
    if let Some(a) = &option.accelerators {
        let need = a.per_node.0;
        if u64::from(c.gpus) * 1000 < u64::from(need) {
            return Err((Stage::GpusPerNode, String::new()));
        }
    }
    if c.vcpus_milli < option.cpus_milli || c.memory_mib < option.memory_mib {
        return Err((
            Stage::CpuMemory,
            format!(
                "no matching offer has {} vCPUs and {} GiB memory per node",
                option.cpus_milli.div_ceil(1000),
                option.memory_mib.div_ceil(1024)
            ),
        ));
    }
    if let Some(it) = &option.instance_type
        && it != c.instance_type
    {
        return Err((Stage::InstanceType, format!("no matching offer is instance type `{it}`")));
    }
    if let Some(infra) = &option.infra
        && !infra.matches(c.provider, &c.region, c.zone)
    {
        return Err((Stage::Infra, format!("infra `{infra}` excludes every region that offers {}", demand_text(job))));
    }
    if let Some(deny) = job.constraints.deny.iter().find(|d| d.matches(c.provider, &c.region, c.zone)) {
        return Err((Stage::Deny, format!("constraints.deny (`{deny}` and others) excludes every remaining offer")));
    }
    // The server denies the job every location where the fleet's clusters stand and none gives
    // what it needs of its site (`Needs::denials`); an offer there is kept off the same way.
    if let Some(need) = needs::unmet_at(job_needs, query.sites, c.provider, &c.region) {
        return Err((Stage::SiteNeeds, job_needs.reason(need, &needs::lacking_names(query.sites, need))));
    }
    if option.use_spot != (c.price.capacity == CapacityKind::Spot) && c.price.capacity != CapacityKind::Contract {
        let reason = if option.use_spot {
            "use_spot is true but no matching offer has a spot price"
        } else {
            "only spot prices remain for the matching offers and use_spot is false"
        };
        return Err((Stage::Spot, reason.to_string()));
    }
    if job.num_nodes > 1 {
        let fits = match job.topology {
            TopologyNeed::NvlinkDomain => job.num_nodes <= c.nvlink_domain_nodes,
            _ => true,
        };
        if !fits {
            return Err((Stage::Topology, String::new()));
        }
    }
    if let Some(available) = c.available_nodes
        && available < job.num_nodes
    {
        return Err((
            Stage::ContractSize,
            format!("contract capacity holds {available} nodes of the matching type, the job needs {}", job.num_nodes),
        ));
    }
    match clauses.block(c.provider, c.gpu, query.waited_s) {
        Some(Block::Exclusive(reason)) => return Err((Stage::Exclusive, reason)),
        Some(Block::FirstRefusal(reason)) => return Err((Stage::FirstRefusal, reason)),
        None => {}
    }
    if let Some(max) = job.constraints.max_price_per_hour {
        let total = c.price.effective.saturating_mul(i64::from(job.num_nodes));
        if total > max {
            return Err((Stage::MaxPrice, format!("every feasible offer costs more than max_price_per_hour {max}")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod demand_tests {
    use cumulo_types::{AcceleratorDemand, GpuModel, GpuSelector, JobSpec, MilliGpu, ResourceOption};

    #[test]
    fn options_that_differ_only_in_where_they_run_are_said_once() {
        let option = |infra: &str| ResourceOption {
            accelerators: Some(AcceleratorDemand {
                selector: GpuSelector::Models(vec![GpuModel::A100_80, GpuModel::H100]),
                per_node: MilliGpu::whole(8),
                names: Vec::new(),
            }),
            infra: Some(cumulo_types::InfraSelector::parse(infra).unwrap()),
            ..ResourceOption::default()
        };
        let mut job = JobSpec::new("t", "research");
        job.resources = vec![option("aws"), option("gcp/us-central1"), option("lambda")];
        let mut cpu = job.resources[0].clone();
        cpu.accelerators = None;
        cpu.cpus_milli = 4000;
        job.resources.push(cpu);
        assert_eq!(
            super::demand_text(&job),
            "A100-80GB|H100:8 or CPU 4 vCPUs",
            "three any_of entries are one shape, said once"
        );
    }
}
