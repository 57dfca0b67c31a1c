//! Accelerator names as SkyPilot reads them (`sky/utils/accelerator_registry.py`,
//! `canonicalize_accelerator_name`): TPU names in lower case; a name equal to a catalog name but
//! for case becomes that name; a name found inside exactly one catalog name becomes that name;
//! any other name is kept as written (a cluster may still offer it).

use cumulo_types::{GpuModel, GpuSelector};

/// SkyPilot's catalog accelerator names and the clouds that offer each, in lower case
/// (`common/accelerators.csv` of the v8 catalog, columns `AcceleratorName` and `Clouds`; TPUs
/// excepted, SkyPilot keeps them apart).
pub(crate) const SKYPILOT_ACCELERATORS: &[(&str, &[&str])] = &[
    ("A10", &["azure", "lambda", "oci"]),
    ("A100", &["aws", "azure", "cudo", "gcp", "lambda", "oci", "primeintellect", "seeweb", "vast"]),
    ("A100-80GB", &["aws", "azure", "gcp", "lambda", "oci", "paperspace", "primeintellect", "runpod", "scp"]),
    ("A100-80GB-SXM", &["runpod"]),
    ("A10G", &["aws"]),
    ("A30", &["seeweb"]),
    ("A40", &["cudo", "runpod", "vast"]),
    ("A4000", &["paperspace", "primeintellect"]),
    ("A6000", &["lambda", "primeintellect"]),
    ("A800", &["cudo"]),
    ("B200", &["aws", "lambda", "primeintellect", "runpod", "nebius"]),
    ("GH200", &["lambda"]),
    ("GTX1660S", &["vast"]),
    ("Gaudi HL-205", &["aws"]),
    (
        "H100",
        &[
            "aws",
            "azure",
            "do",
            "gcp",
            "hyperbolic",
            "lambda",
            "oci",
            "paperspace",
            "primeintellect",
            "runpod",
            "seeweb",
            "vast",
            "nebius",
        ],
    ),
    ("H100-MEGA", &["gcp"]),
    ("H100-NVL", &["runpod"]),
    ("H100-NVLINK", &["fluidstack"]),
    ("H100-SXM", &["cudo", "runpod"]),
    ("H200", &["aws", "gcp", "oci", "primeintellect", "seeweb", "vast", "nebius"]),
    ("H200-SXM", &["runpod"]),
    ("K80", &["azure"]),
    ("L4", &["aws", "gcp", "runpod", "seeweb"]),
    ("L40", &["primeintellect", "runpod"]),
    ("L40S", &["aws", "cudo", "oci", "primeintellect", "runpod", "seeweb", "vast", "nebius"]),
    ("M4000", &["paperspace"]),
    ("M60", &["azure"]),
    ("MI300X", &["runpod"]),
    ("P100", &["gcp", "oci"]),
    ("P4", &["gcp"]),
    ("P4000", &["paperspace"]),
    ("RTX3060", &["vast"]),
    ("RTX3070", &["vast"]),
    ("RTX3080", &["vast"]),
    ("RTX3090", &["runpod", "vast"]),
    ("RTX4000-Ada", &["runpod"]),
    ("RTX4090", &["runpod", "vast"]),
    ("RTX5060", &["vast"]),
    ("RTX5090", &["vast"]),
    ("RTX6000", &["lambda", "seeweb"]),
    ("RTX6000-Ada", &["runpod", "vast"]),
    ("RTX6000Ada", &["primeintellect"]),
    ("RTXA4000", &["runpod"]),
    ("RTXA4500", &["runpod"]),
    ("RTXA5000", &["cudo", "runpod"]),
    ("RTXA6000", &["cudo", "runpod", "seeweb", "vast"]),
    ("RTXPRO6000S", &["vast"]),
    ("RTXPRO6000WS", &["vast"]),
    ("Radeon MI25", &["azure"]),
    ("Radeon Pro V520", &["aws"]),
    ("T4", &["aws", "azure", "gcp"]),
    ("T4g", &["aws"]),
    ("V100", &["aws", "azure", "cudo", "gcp", "ibm", "lambda", "oci", "paperspace", "primeintellect", "vast"]),
    ("V100-32GB", &["aws", "azure", "paperspace", "scp"]),
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

/// SkyPilot's canonical name for `written`, then how Cumulo places it. `cloud` is the provider
/// the same resources name (`aws`, `kubernetes`), if any: as in SkyPilot, a partial name only
/// becomes a catalog name that this cloud offers.
pub(crate) fn read(written: &str, cloud: Option<&str>) -> Reading {
    let written = written.trim();
    let lower = written.to_ascii_lowercase();
    if lower.starts_with("tpu-") {
        return Reading::Unknown(lower);
    }
    let mut candidates: Vec<&'static str> = Vec::new();
    let cloud = cloud.map(|c| if c == "k8s" { "kubernetes".to_string() } else { c.to_ascii_lowercase() });
    for (name, clouds) in SKYPILOT_ACCELERATORS {
        let candidate = name.to_ascii_lowercase();
        if candidate == lower {
            return classify(name);
        }
        let offered = cloud.as_deref().is_none_or(|c| clouds.contains(&c));
        if candidate.contains(&lower) && offered {
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
