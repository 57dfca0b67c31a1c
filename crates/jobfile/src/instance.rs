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

/// The GPUs an instance type's name states, for the clouds whose names carry them and whose
/// types Cumulo's built-in catalog lacks (SkyPilot reads them from its catalogs, which list the
/// same model and count): Lambda `gpu_8x_h100_sxm5`, Nebius `gpu-h100-sxm_8gpu-128vcpu-1600gb`,
/// OCI `BM.GPU.H100.8` (and its older `BM.GPU4.8`). The name is SkyPilot's accelerator name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NamedGpus {
    pub(crate) accelerator: String,
    pub(crate) count: u32,
}

/// The GPUs `instance_type`'s name states (see [`NamedGpus`]); `None` for any other name.
pub(crate) fn gpus_in_name(instance_type: &str) -> Option<NamedGpus> {
    let name = instance_type.trim();
    lambda_gpus(name).or_else(|| nebius_gpus(name)).or_else(|| oci_gpus(name))
}

/// Lambda: `gpu_{COUNT}x_{model}[_80gb][_{form}]`.
fn lambda_gpus(name: &str) -> Option<NamedGpus> {
    let rest = name.strip_prefix("gpu_")?;
    let (count, rest) = rest.split_once("x_")?;
    let mut parts = rest.split('_');
    let model = parts.next().filter(|m| !m.is_empty())?.to_ascii_uppercase();
    let accelerator = if parts.next() == Some("80gb") { format!("{model}-80GB") } else { model };
    Some(NamedGpus { accelerator, count: count.parse().ok().filter(|&c| c > 0)? })
}

/// Nebius: `gpu-{model}-{form}_{COUNT}gpu-{VCPUS}vcpu-{MEMORY}gb`.
fn nebius_gpus(name: &str) -> Option<NamedGpus> {
    let rest = name.strip_prefix("gpu-")?;
    let (platform, shape) = rest.split_once('_')?;
    let model = platform.split('-').next().filter(|m| !m.is_empty())?.to_ascii_uppercase();
    let count = shape.split_once("gpu-")?.0.parse().ok().filter(|&c| c > 0)?;
    Some(NamedGpus { accelerator: model, count })
}

/// OCI: `{BM|VM}.GPU.{MODEL}.{COUNT}` (`A100-v2` is the 80 GB A100, `RTXPRO` the RTX PRO 6000),
/// or the older `{BM|VM}.GPU{2|3|4}.{COUNT}` (P100, V100, A100).
fn oci_gpus(name: &str) -> Option<NamedGpus> {
    let rest = name.strip_prefix("BM.").or_else(|| name.strip_prefix("VM."))?;
    let (family, count) = rest.rsplit_once('.')?;
    let count = count.parse().ok().filter(|&c| c > 0)?;
    let accelerator = match family.strip_prefix("GPU.") {
        Some("A100-v2") => "A100-80GB".to_string(),
        Some("RTXPRO") => "RTXPRO6000".to_string(),
        Some(model) if !model.is_empty() && !model.contains('.') => model.to_string(),
        Some(_) => return None,
        None => match family {
            "GPU2" => "P100".to_string(),
            "GPU3" => "V100".to_string(),
            "GPU4" => "A100".to_string(),
            _ => return None,
        },
    };
    Some(NamedGpus { accelerator, count })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every GPU row of SkyPilot 0.14.1's Lambda, Nebius and OCI catalogs (`~/.sky/catalogs/v8`):
    /// instance type, accelerator name, count.
    #[test]
    fn names_state_the_gpus_skypilot_catalogs_list() {
        let rows: &[(&str, &str, u32)] = &[
            ("gpu_1x_a10", "A10", 1),
            ("gpu_1x_a100", "A100", 1),
            ("gpu_1x_a100_sxm4", "A100", 1),
            ("gpu_1x_a6000", "A6000", 1),
            ("gpu_1x_b200_sxm6", "B200", 1),
            ("gpu_1x_gh200", "GH200", 1),
            ("gpu_1x_h100_pcie", "H100", 1),
            ("gpu_1x_h100_sxm5", "H100", 1),
            ("gpu_1x_rtx6000", "RTX6000", 1),
            ("gpu_2x_a100", "A100", 2),
            ("gpu_2x_a6000", "A6000", 2),
            ("gpu_2x_b200_sxm6", "B200", 2),
            ("gpu_2x_h100_sxm5", "H100", 2),
            ("gpu_4x_a100", "A100", 4),
            ("gpu_4x_a6000", "A6000", 4),
            ("gpu_4x_h100_sxm5", "H100", 4),
            ("gpu_8x_a100", "A100", 8),
            ("gpu_8x_a100_80gb_sxm4", "A100-80GB", 8),
            ("gpu_8x_b200_sxm6", "B200", 8),
            ("gpu_8x_h100_sxm5", "H100", 8),
            ("gpu_8x_v100", "V100", 8),
            ("gpu_8x_v100_n", "V100", 8),
            ("gpu-b200-sxm_8gpu-160vcpu-1792gb", "B200", 8),
            ("gpu-h100-sxm_1gpu-16vcpu-200gb", "H100", 1),
            ("gpu-h100-sxm_8gpu-128vcpu-1600gb", "H100", 8),
            ("gpu-h200-sxm_1gpu-16vcpu-200gb", "H200", 1),
            ("gpu-h200-sxm_8gpu-128vcpu-1600gb", "H200", 8),
            ("gpu-l40s-a_1gpu-16vcpu-64gb", "L40S", 1),
            ("gpu-l40s-a_1gpu-24vcpu-96gb", "L40S", 1),
            ("gpu-l40s-a_1gpu-32vcpu-128gb", "L40S", 1),
            ("gpu-l40s-a_1gpu-40vcpu-160gb", "L40S", 1),
            ("gpu-l40s-a_1gpu-8vcpu-32gb", "L40S", 1),
            ("gpu-l40s-d_1gpu-16vcpu-96gb", "L40S", 1),
            ("gpu-l40s-d_1gpu-32vcpu-192gb", "L40S", 1),
            ("gpu-l40s-d_1gpu-48vcpu-288gb", "L40S", 1),
            ("gpu-l40s-d_2gpu-64vcpu-384gb", "L40S", 2),
            ("gpu-l40s-d_2gpu-96vcpu-576gb", "L40S", 2),
            ("gpu-l40s-d_4gpu-128vcpu-768gb", "L40S", 4),
            ("gpu-l40s-d_4gpu-192vcpu-1152gb", "L40S", 4),
            ("BM.GPU.A10.4", "A10", 4),
            ("BM.GPU.A100-v2.8", "A100-80GB", 8),
            ("BM.GPU.B200.8", "B200", 8),
            ("BM.GPU.B300.8", "B300", 8),
            ("BM.GPU.GB200.4", "GB200", 4),
            ("BM.GPU.GB300.4", "GB300", 4),
            ("BM.GPU.H100.8", "H100", 8),
            ("BM.GPU.H200.8", "H200", 8),
            ("BM.GPU.L40S.4", "L40S", 4),
            ("BM.GPU.MI300X.8", "MI300X", 8),
            ("BM.GPU.MI355X.8", "MI355X", 8),
            ("BM.GPU.RTXPRO.8", "RTXPRO6000", 8),
            ("BM.GPU2.2", "P100", 2),
            ("BM.GPU3.8", "V100", 8),
            ("BM.GPU4.8", "A100", 8),
            ("VM.GPU.A10.1", "A10", 1),
            ("VM.GPU.A10.2", "A10", 2),
            ("VM.GPU2.1", "P100", 1),
            ("VM.GPU3.1", "V100", 1),
            ("VM.GPU3.2", "V100", 2),
            ("VM.GPU3.4", "V100", 4),
        ];
        for &(instance_type, accelerator, count) in rows {
            let want = NamedGpus { accelerator: accelerator.to_string(), count };
            assert_eq!(gpus_in_name(instance_type), Some(want), "{instance_type}");
        }
    }

    #[test]
    fn other_names_state_no_gpus() {
        for name in ["cpu_4x_general", "cpu-d3_8vcpu-32gb", "VM.Standard.E4.Flex$_8_32", "p4d.24xlarge", "gpu_x_", ""] {
            assert_eq!(gpus_in_name(name), None, "{name}");
        }
    }
}
