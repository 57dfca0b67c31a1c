//! What an `instance_type` stands for (SkyPilot fills a task's vCPUs, memory and accelerators
//! from its catalog when it names an instance type): looked up in Cumulo's built-in catalog.

use std::sync::OnceLock;

use cumulo_catalog::Catalog;
use cumulo_types::GpuModel;

/// One instance type's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shape {
    pub(crate) vcpus_milli: u32,
    pub(crate) memory_mib: u64,
    /// The GPU model and how many, for a GPU instance.
    pub(crate) gpu: Option<(GpuModel, u32)>,
}

fn catalog() -> Option<&'static Catalog> {
    static BUILTIN: OnceLock<Option<Catalog>> = OnceLock::new();
    BUILTIN.get_or_init(|| Catalog::builtin().ok()).as_ref()
}

/// The shape of `instance_type` in the built-in catalog; `None` when the catalog lacks it.
pub(crate) fn shape(instance_type: &str) -> Option<Shape> {
    let offer = catalog()?.offers().iter().find(|o| o.instance_type.eq_ignore_ascii_case(instance_type.trim()))?;
    Some(Shape {
        vcpus_milli: offer.vcpus_milli,
        memory_mib: offer.memory_mib,
        gpu: offer.gpu.filter(|_| offer.gpus > 0).map(|model| (model, offer.gpus)),
    })
}
