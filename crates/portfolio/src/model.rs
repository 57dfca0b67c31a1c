//! The portfolio file: node types and contracts (commitment, term, ramp, rates, minimum spend,
//! expansion option, clauses), parsed from YAML and checked. Every error names the contract and
//! the field.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::{DateTime, Days, NaiveDate, Utc};
use cumulo_types::{GpuModel, Money, NodeType, Provider};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::clock::{parse_duration_s, start_of};

/// A set of contracts and the node types they deliver.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Portfolio {
    pub name: String,
    /// True for made-up figures (the demo): every view of it says "illustrative".
    pub illustrative: bool,
    pub node_types: Vec<NodeType>,
    pub contracts: Vec<Contract>,
}

/// One contract with one provider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Contract {
    pub id: String,
    pub provider: Provider,
    /// Total committed spend over the term (take-or-pay).
    pub committed: Money,
    /// First day of the term.
    pub start: NaiveDate,
    /// Last day of the term (inclusive).
    pub end: NaiveDate,
    pub ramp: Vec<RampStep>,
    pub rates: Vec<Rate>,
    pub minimum_spend: Option<MinimumSpend>,
    pub expansion: Option<Expansion>,
    pub clauses: Clauses,
}

/// Capacity delivered on a date: `nodes` more nodes of a node type in a region, from then on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RampStep {
    pub date: NaiveDate,
    pub region: String,
    pub node_type: String,
    pub nodes: u32,
}

/// The contract's rate for one node type, per node-hour (a per-GPU-hour rate is multiplied out).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rate {
    pub node_type: String,
    pub per_node_hour: Money,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    Month,
    Quarter,
    Year,
}

impl Period {
    pub fn months(self) -> u32 {
        match self {
            Period::Month => 1,
            Period::Quarter => 3,
            Period::Year => 12,
        }
    }
}

/// At least `amount` must be paid in every period of the term, counted from its start.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MinimumSpend {
    pub period: Period,
    pub amount: Money,
}

/// The option to take up to `nodes` more nodes of a node type until a date, at a rate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Expansion {
    pub until: NaiveDate,
    pub region: String,
    pub node_type: String,
    pub nodes: u32,
    pub per_node_hour: Money,
}

/// Clauses that bind where work may go while the contract's term runs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Clauses {
    /// Work on these GPU models may only go to this provider (empty: any GPU work).
    pub exclusive: Option<Vec<GpuModel>>,
    pub first_refusal: Option<FirstRefusal>,
}

/// Work on these GPU models (empty: any GPU work) must be offered to this provider first, and
/// may go elsewhere only once it has waited `wait_s`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FirstRefusal {
    pub wait_s: u64,
    pub gpus: Vec<GpuModel>,
}

/// A clause's GPU scope: an empty list covers every GPU model, CPU-only work is never covered.
pub fn in_scope(scope: &[GpuModel], gpu: Option<GpuModel>) -> bool {
    gpu.is_some_and(|g| scope.is_empty() || scope.contains(&g))
}

/// Capacity a contract has delivered by some time, per region and node type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Delivered {
    pub contract: String,
    pub provider: Provider,
    pub region: String,
    pub node_type: String,
    pub nodes: u32,
}

/// Contract capacity of one region and node type: what the ramp has delivered by some time
/// against the nodes the clusters holding it discovered.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Delivery {
    pub contract: String,
    pub region: String,
    pub node_type: String,
    /// Nodes the ramp has delivered by then: at most this many may be scheduled.
    pub delivered: u32,
    /// Nodes the clusters discovered (up).
    pub discovered: u32,
}

impl Delivery {
    /// Nodes that may be scheduled: discovered and delivered.
    pub fn schedulable(&self) -> u32 {
        self.delivered.min(self.discovered)
    }

    /// Nodes the ramp delivered that no cluster shows.
    pub fn shortfall(&self) -> u32 {
        self.delivered.saturating_sub(self.discovered)
    }
}

impl Contract {
    /// The instant the term starts (00:00 UTC of `start`).
    pub fn term_start(&self) -> DateTime<Utc> {
        start_of(self.start)
    }

    /// The instant the term ends (00:00 UTC of the day after `end`).
    pub fn term_end(&self) -> DateTime<Utc> {
        start_of(self.end.checked_add_days(Days::new(1)).unwrap_or(self.end))
    }

    pub fn is_active(&self, at: DateTime<Utc>) -> bool {
        self.term_start() <= at && at < self.term_end()
    }

    pub fn rate(&self, node_type: &str) -> Option<Money> {
        self.rates.iter().find(|r| r.node_type == node_type).map(|r| r.per_node_hour)
    }
}

impl Portfolio {
    pub fn node_type(&self, name: &str) -> Option<&NodeType> {
        self.node_types.iter().find(|n| n.name == name)
    }

    pub fn contract(&self, id: &str) -> Option<&Contract> {
        self.contracts.iter().find(|c| c.id == id)
    }

    /// Capacity delivered at `at` by contracts whose term runs then: one entry per (contract,
    /// region, node type), in contract order then region and node type.
    pub fn delivered_capacity(&self, at: DateTime<Utc>) -> Vec<Delivered> {
        let mut out = Vec::new();
        for contract in self.contracts.iter().filter(|c| c.is_active(at)) {
            let mut sums: BTreeMap<(&str, &str), u32> = BTreeMap::new();
            for step in contract.ramp.iter().filter(|s| start_of(s.date) <= at) {
                *sums.entry((step.region.as_str(), step.node_type.as_str())).or_default() += step.nodes;
            }
            out.extend(sums.into_iter().map(|((region, node_type), nodes)| Delivered {
                contract: contract.id.clone(),
                provider: contract.provider.clone(),
                region: region.to_string(),
                node_type: node_type.to_string(),
                nodes,
            }));
        }
        out
    }

    /// Nodes of `node_type` the contract `contract` has delivered in `region` by `at` (0 outside
    /// its term): how many of a cluster's nodes held under it may be scheduled.
    pub fn delivered_nodes(&self, contract: &str, region: &str, node_type: &str, at: DateTime<Utc>) -> u32 {
        self.contracts
            .iter()
            .filter(|c| c.id == contract && c.is_active(at))
            .flat_map(|c| &c.ramp)
            .filter(|s| s.region == region && s.node_type == node_type && start_of(s.date) <= at)
            .fold(0u32, |sum, s| sum.saturating_add(s.nodes))
    }

    /// The contract's delivery of `node_type` in `region` by `at` against `discovered` nodes.
    pub fn delivery(
        &self,
        contract: &str,
        region: &str,
        node_type: &str,
        discovered: u32,
        at: DateTime<Utc>,
    ) -> Delivery {
        Delivery {
            contract: contract.to_string(),
            region: region.to_string(),
            node_type: node_type.to_string(),
            delivered: self.delivered_nodes(contract, region, node_type, at),
            discovered,
        }
    }

    /// Reads and checks a portfolio file.
    pub fn from_file(path: &Path) -> Result<Portfolio, Error> {
        let text =
            std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.display().to_string(), source })?;
        Portfolio::from_yaml(&text, &path.display().to_string())
    }

    /// Parses and checks portfolio YAML; `source_name` names it in errors.
    pub fn from_yaml(text: &str, source_name: &str) -> Result<Portfolio, Error> {
        let raw: RawPortfolio = serde_yaml::from_str(text)
            .map_err(|e| Error::Yaml { source_name: source_name.to_string(), reason: e.to_string() })?;
        raw.check()
    }
}

// ---- the file format ----------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPortfolio {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    illustrative: bool,
    #[serde(default)]
    node_types: Vec<RawNodeType>,
    contracts: Vec<RawContract>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNodeType {
    name: String,
    #[serde(default)]
    gpu: Option<String>,
    #[serde(default)]
    gpus: u32,
    vcpus: u32,
    memory_gb: u32,
    #[serde(default)]
    nvlink_domain_nodes: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawContract {
    id: String,
    provider: String,
    committed_usd: Usd,
    term: RawTerm,
    #[serde(default)]
    ramp: Vec<RawRamp>,
    #[serde(default)]
    rates: Vec<RawRate>,
    #[serde(default)]
    minimum_spend: Option<RawMinimum>,
    #[serde(default)]
    expansion: Option<RawExpansion>,
    #[serde(default)]
    clauses: RawClauses,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTerm {
    start: NaiveDate,
    end: NaiveDate,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRamp {
    date: NaiveDate,
    region: String,
    node_type: String,
    nodes: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRate {
    node_type: String,
    #[serde(default)]
    per_gpu_hour: Option<Usd>,
    #[serde(default)]
    per_node_hour: Option<Usd>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMinimum {
    period: Period,
    usd: Usd,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpansion {
    until: NaiveDate,
    region: String,
    node_type: String,
    nodes: i64,
    #[serde(default)]
    per_gpu_hour: Option<Usd>,
    #[serde(default)]
    per_node_hour: Option<Usd>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawClauses {
    #[serde(default)]
    exclusive: Option<RawScope>,
    #[serde(default)]
    first_refusal: Option<RawFirstRefusal>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawScope {
    #[serde(default)]
    gpus: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFirstRefusal {
    wait: String,
    #[serde(default)]
    gpus: Vec<String>,
}

/// A dollar amount written as a YAML number or string (`38000000000`, `9.5`, `"$1,200.50"`),
/// kept as its text until it is parsed exactly into micro-dollars.
struct Usd(String);

impl<'de> Deserialize<'de> for Usd {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Float(f64),
            Text(String),
        }
        Ok(Usd(match Raw::deserialize(d)? {
            Raw::Int(i) => i.to_string(),
            Raw::Float(f) => f.to_string(),
            Raw::Text(t) => t,
        }))
    }
}

impl RawPortfolio {
    fn check(self) -> Result<Portfolio, Error> {
        let mut node_types = Vec::new();
        let mut seen = BTreeSet::new();
        for (i, raw) in self.node_types.into_iter().enumerate() {
            let bad = |field: &str, reason: String| Error::InvalidPortfolio {
                field: format!("node_types[{i}].{field}"),
                reason,
            };
            if !seen.insert(raw.name.clone()) {
                return Err(bad("name", format!("`{}` is declared twice", raw.name)));
            }
            let gpu = match raw.gpu.as_deref() {
                None | Some("") => None,
                Some(name) => Some(GpuModel::parse(name).map_err(|e| bad("gpu", e.to_string()))?),
            };
            if gpu.is_some() && raw.gpus == 0 {
                return Err(bad("gpus", "0: a node type with a GPU model needs at least 1 GPU".to_string()));
            }
            node_types.push(NodeType {
                name: raw.name,
                gpu,
                gpus: raw.gpus,
                vcpus: raw.vcpus,
                memory_gb: raw.memory_gb,
                nvlink_domain_nodes: raw.nvlink_domain_nodes.unwrap_or(NodeType::default_nvlink_domain_nodes(gpu)),
            });
        }
        let mut contracts: Vec<Contract> = Vec::new();
        for raw in self.contracts {
            let contract = raw.check(&node_types)?;
            if let Some(other) =
                contracts.iter().find(|c| c.id == contract.id && c.start <= contract.end && contract.start <= c.end)
            {
                return Err(Error::Invalid {
                    contract: contract.id.clone(),
                    field: "term".to_string(),
                    reason: format!(
                        "{}..{} overlaps the term {}..{} of another contract with the same id",
                        contract.start, contract.end, other.start, other.end
                    ),
                });
            }
            contracts.push(contract);
        }
        Ok(Portfolio {
            name: self.name.unwrap_or_else(|| "portfolio".to_string()),
            illustrative: self.illustrative,
            node_types,
            contracts,
        })
    }
}

impl RawContract {
    fn check(self, node_types: &[NodeType]) -> Result<Contract, Error> {
        let id = self.id.trim().to_string();
        let bad = |field: String, reason: String| Error::Invalid { contract: id.clone(), field, reason };
        if id.is_empty() {
            return Err(bad("id".into(), "empty: every contract needs an id".into()));
        }
        let provider = Provider::new(&self.provider).map_err(|e| bad("provider".into(), e.to_string()))?;
        let money = |field: String, usd: &Usd| -> Result<Money, Error> {
            let m = Money::parse_dollars(&usd.0)
                .map_err(|_| bad(field.clone(), format!("`{}` is not an amount of US dollars", usd.0)))?;
            if m.is_negative() {
                return Err(bad(field, format!("{m} is negative: expected an amount of at least $0")));
            }
            Ok(m)
        };
        let committed = money("committed_usd".into(), &self.committed_usd)?;
        let (start, end) = (self.term.start, self.term.end);
        if end < start {
            return Err(bad("term.end".into(), format!("{end} is before the start {start}")));
        }
        let node_type = |field: String, name: &str| -> Result<&NodeType, Error> {
            node_types.iter().find(|n| n.name == name).ok_or_else(|| {
                let known: Vec<&str> = node_types.iter().map(|n| n.name.as_str()).collect();
                bad(field, format!("unknown node type `{name}` (declared: {})", known.join(", ")))
            })
        };
        let per_node = |field: &str, nt: &NodeType, gpu: &Option<Usd>, node: &Option<Usd>| -> Result<Money, Error> {
            match (gpu, node) {
                (Some(g), None) => {
                    if nt.gpus == 0 {
                        return Err(bad(
                            format!("{field}.per_gpu_hour"),
                            format!("node type `{}` has no GPUs: give per_node_hour", nt.name),
                        ));
                    }
                    Ok(money(format!("{field}.per_gpu_hour"), g)?.saturating_mul(i64::from(nt.gpus)))
                }
                (None, Some(n)) => money(format!("{field}.per_node_hour"), n),
                _ => Err(bad(field.to_string(), "give exactly one of per_gpu_hour or per_node_hour".into())),
            }
        };

        let mut ramp = Vec::new();
        for (i, step) in self.ramp.into_iter().enumerate() {
            let field = |f: &str| format!("ramp[{i}].{f}");
            node_type(field("node_type"), &step.node_type)?;
            if step.date < start || step.date > end {
                return Err(bad(field("date"), format!("{} is outside the term {start}..{end}", step.date)));
            }
            let nodes = u32::try_from(step.nodes)
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| bad(field("nodes"), format!("{}: expected a positive number of nodes", step.nodes)))?;
            ramp.push(RampStep { date: step.date, region: step.region, node_type: step.node_type, nodes });
        }
        ramp.sort_by_key(|s| s.date);

        let mut rates: Vec<Rate> = Vec::new();
        for (i, rate) in self.rates.iter().enumerate() {
            let field = format!("rates[{i}]");
            let nt = node_type(format!("{field}.node_type"), &rate.node_type)?;
            if rates.iter().any(|r| r.node_type == rate.node_type) {
                return Err(bad(format!("{field}.node_type"), format!("`{}` has two rates", rate.node_type)));
            }
            let per_node_hour = per_node(&field, nt, &rate.per_gpu_hour, &rate.per_node_hour)?;
            rates.push(Rate { node_type: rate.node_type.clone(), per_node_hour });
        }
        for (i, step) in ramp.iter().enumerate() {
            if !rates.iter().any(|r| r.node_type == step.node_type) {
                return Err(bad(format!("ramp[{i}].node_type"), format!("`{}` has no entry in rates", step.node_type)));
            }
        }

        let minimum_spend = match &self.minimum_spend {
            Some(m) => Some(MinimumSpend { period: m.period, amount: money("minimum_spend.usd".into(), &m.usd)? }),
            None => None,
        };
        let expansion = match &self.expansion {
            Some(e) => {
                let nt = node_type("expansion.node_type".into(), &e.node_type)?;
                if e.until < start || e.until > end {
                    return Err(bad(
                        "expansion.until".into(),
                        format!("{} is outside the term {start}..{end}", e.until),
                    ));
                }
                let nodes = u32::try_from(e.nodes).ok().filter(|n| *n > 0).ok_or_else(|| {
                    bad("expansion.nodes".into(), format!("{}: expected a positive number of nodes", e.nodes))
                })?;
                let per_node_hour = per_node("expansion", nt, &e.per_gpu_hour, &e.per_node_hour)?;
                Some(Expansion {
                    until: e.until,
                    region: e.region.clone(),
                    node_type: e.node_type.clone(),
                    nodes,
                    per_node_hour,
                })
            }
            None => None,
        };
        let gpus = |field: String, names: &[String]| -> Result<Vec<GpuModel>, Error> {
            names.iter().map(|n| GpuModel::parse(n).map_err(|e| bad(field.clone(), e.to_string()))).collect()
        };
        let clauses = Clauses {
            exclusive: match &self.clauses.exclusive {
                Some(scope) => Some(gpus("clauses.exclusive.gpus".into(), &scope.gpus)?),
                None => None,
            },
            first_refusal: match &self.clauses.first_refusal {
                Some(fr) => Some(FirstRefusal {
                    wait_s: parse_duration_s(&fr.wait)
                        .map_err(|e| bad("clauses.first_refusal.wait".into(), e.to_string()))?,
                    gpus: gpus("clauses.first_refusal.gpus".into(), &fr.gpus)?,
                }),
                None => None,
            },
        };
        Ok(Contract { id, provider, committed, start, end, ramp, rates, minimum_spend, expansion, clauses })
    }
}
