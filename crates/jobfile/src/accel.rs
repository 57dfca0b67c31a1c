//! Accelerator names as SkyPilot reads them (`sky/utils/accelerator_registry.py`,
//! `canonicalize_accelerator_name`): TPU names in lower case; a name equal to a catalog name but
//! for case becomes that name; a name found inside exactly one catalog name becomes that name;
//! any other name is kept as written (a cluster may still offer it).

use cumulo_types::{GpuModel, GpuSelector};

/// SkyPilot's catalog accelerator names (`common/accelerators.csv` of the v8 catalog, the
/// `AcceleratorName` column; TPUs excepted, SkyPilot keeps them apart).
pub(crate) const SKYPILOT_ACCELERATORS: &[&str] = &[
    "A10",
    "A100",
    "A100-80GB",
    "A100-80GB-SXM",
    "A10G",
    "A30",
    "A40",
    "A4000",
    "A6000",
    "A800",
    "B200",
    "GH200",
    "GTX1660S",
    "Gaudi HL-205",
    "H100",
    "H100-MEGA",
    "H100-NVL",
    "H100-NVLINK",
    "H100-SXM",
    "H200",
    "H200-SXM",
    "K80",
    "L4",
    "L40",
    "L40S",
    "M4000",
    "M60",
    "MI300X",
    "P100",
    "P4",
    "P4000",
    "RTX3060",
    "RTX3070",
    "RTX3080",
    "RTX3090",
    "RTX4000-Ada",
    "RTX4090",
    "RTX5060",
    "RTX5090",
    "RTX6000",
    "RTX6000-Ada",
    "RTX6000Ada",
    "RTXA4000",
    "RTXA4500",
    "RTXA5000",
    "RTXA6000",
    "RTXPRO6000S",
    "RTXPRO6000WS",
    "Radeon MI25",
    "Radeon Pro V520",
    "T4",
    "T4g",
    "V100",
    "V100-32GB",
];

/// How a written accelerator name was read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Reading {
    /// One of Cumulo's GPU models, by its canonical name.
    Model(GpuModel),
    /// SkyPilot's name for it, which stands for one of Cumulo's models under another name
    /// (`H100-SXM`, `A100-40GB`): matched against that model's pools, shown as written.
    Alias(String),
    /// A name no GPU model knows (`B100`, `Inferentia`, `tpu-v5e-8`): kept, matched only by
    /// pools that offer that name.
    Unknown(String),
    /// A name found inside several SkyPilot catalog names: kept as written.
    Ambiguous { name: String, candidates: Vec<&'static str> },
}

impl Reading {
    pub(crate) fn selector(&self) -> GpuSelector {
        match self {
            Reading::Model(model) => GpuSelector::Models(vec![*model]),
            Reading::Alias(name) | Reading::Unknown(name) | Reading::Ambiguous { name, .. } => {
                GpuSelector::Named(name.clone())
            }
        }
    }
}

/// SkyPilot's canonical name for `written`, then how Cumulo places it.
pub(crate) fn read(written: &str) -> Reading {
    let written = written.trim();
    let lower = written.to_ascii_lowercase();
    if lower.starts_with("tpu-") {
        return Reading::Unknown(lower);
    }
    let mut candidates: Vec<&'static str> = Vec::new();
    for name in SKYPILOT_ACCELERATORS {
        let candidate = name.to_ascii_lowercase();
        if candidate == lower {
            return classify(name);
        }
        if candidate.contains(&lower) {
            candidates.push(name);
        }
    }
    match candidates.as_slice() {
        [] => classify(written),
        [one] => classify(one),
        _ => Reading::Ambiguous { name: written.to_string(), candidates },
    }
}

/// A SkyPilot name: a model when it is a model's canonical name (case aside), an alias when a
/// model answers to it, else unknown.
fn classify(name: &str) -> Reading {
    if let Some(model) = GpuModel::ALL.iter().find(|m| m.name().eq_ignore_ascii_case(name)) {
        return Reading::Model(*model);
    }
    match GpuModel::parse(name) {
        Ok(_) => Reading::Alias(name.to_string()),
        Err(_) => Reading::Unknown(name.to_string()),
    }
}
