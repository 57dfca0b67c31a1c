//! One offer (an instance type at a price in a region) and the indexed set of them.

use std::collections::BTreeMap;

use cumulo_types::{GpuModel, GpuSelector, Money};
use serde::Serialize;

/// An instance type a provider sells in a region (and zone, where the catalog has zones).
///
/// `price` is the on-demand list price per instance-hour, `spot_price` the spot price; a row may
/// have either or both (AWS p5e is sold as spot only in SkyPilot's catalog).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Offer {
    pub provider: String,
    pub region: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    pub instance_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu: Option<GpuModel>,
    /// GPUs per instance; 0 for a CPU-only instance.
    pub gpus: u32,
    /// vCPUs in thousandths (catalogs have fractional vCPUs for shared-core types).
    pub vcpus_milli: u32,
    pub memory_mib: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price: Option<Money>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spot_price: Option<Money>,
    /// Where the figures come from: `file:line` for imported rows, a citation for built-in ones.
    pub source: String,
}

impl Offer {
    /// Whether this offer's GPUs satisfy `selector` with at least `per_node_milli` thousandths of a
    /// GPU per instance. A CPU-only offer satisfies no GPU demand.
    pub fn satisfies_gpus(&self, selector: &GpuSelector, per_node_milli: u32) -> bool {
        match self.gpu {
            Some(model) => selector.accepts(model) && u64::from(self.gpus) * 1000 >= u64::from(per_node_milli),
            None => false,
        }
    }
}

/// A set of offers with an index by GPU model (CPU-only offers under their own key).
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    offers: Vec<Offer>,
    by_gpu: BTreeMap<Option<GpuModel>, Vec<usize>>,
    /// Where the offers came from, for display (`built-in` or a directory).
    pub origin: String,
}

impl Catalog {
    pub fn new(origin: impl Into<String>, offers: Vec<Offer>) -> Catalog {
        let mut by_gpu: BTreeMap<Option<GpuModel>, Vec<usize>> = BTreeMap::new();
        for (i, offer) in offers.iter().enumerate() {
            by_gpu.entry(offer.gpu).or_default().push(i);
        }
        Catalog { offers, by_gpu, origin: origin.into() }
    }

    pub fn offers(&self) -> &[Offer] {
        &self.offers
    }

    pub fn len(&self) -> usize {
        self.offers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.offers.is_empty()
    }

    /// Offers whose GPU model is `gpu` (`None`: CPU-only offers), through the index.
    pub fn with_gpu(&self, gpu: Option<GpuModel>) -> impl Iterator<Item = &Offer> {
        self.by_gpu.get(&gpu).into_iter().flatten().map(|&i| &self.offers[i])
    }

    /// Offers whose GPU model `selector` accepts, through the index.
    pub fn accepting(&self, selector: &GpuSelector) -> impl Iterator<Item = &Offer> {
        let selector = selector.clone();
        self.by_gpu
            .iter()
            .filter(move |(gpu, _)| gpu.is_some_and(|g| selector.accepts(g)))
            .flat_map(|(_, idx)| idx.iter().map(|&i| &self.offers[i]))
    }

    /// The GPU models that appear in this catalog.
    pub fn gpu_models(&self) -> Vec<GpuModel> {
        self.by_gpu.keys().filter_map(|g| *g).collect()
    }

    /// The providers that appear in this catalog, sorted.
    pub fn providers(&self) -> Vec<String> {
        let mut p: Vec<String> = self.offers.iter().map(|o| o.provider.clone()).collect();
        p.sort();
        p.dedup();
        p
    }
}
