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
    let name = instance_type.trim();
    let Some(offer) = catalog().and_then(|c| c.offers().iter().find(|o| o.instance_type.eq_ignore_ascii_case(name)))
    else {
        return aws_gpu_shape(name);
    };
    Some(Shape {
        vcpus_milli: offer.vcpus_milli,
        memory_mib: offer.memory_mib,
        gpu: offer.gpu.filter(|_| offer.gpus > 0).map(|model| (model, offer.gpus)),
    })
}

/// One row of [`AWS_GPU_TYPES`].
struct AwsGpuType {
    name: &'static str,
    vcpus: u32,
    memory_gib: u64,
    gpu: GpuModel,
    gpus: u32,
}

const fn aws(name: &'static str, vcpus: u32, memory_gib: u64, gpu: GpuModel, gpus: u32) -> AwsGpuType {
    AwsGpuType { name, vcpus, memory_gib, gpu, gpus }
}

/// AWS's GPU instance types that task files name and the built-in catalog (which prices only the
/// large training types) lacks: vCPUs, memory and GPUs as AWS states them and SkyPilot's AWS
/// catalog lists them, so that `instance_type: g5.xlarge` alone asks for what SkyPilot reads.
const AWS_GPU_TYPES: &[AwsGpuType] = &[
    aws("p2.xlarge", 4, 61, GpuModel::K80, 1),
    aws("p2.8xlarge", 32, 488, GpuModel::K80, 8),
    aws("p2.16xlarge", 64, 732, GpuModel::K80, 16),
    aws("p3.2xlarge", 8, 61, GpuModel::V100, 1),
    aws("p3.8xlarge", 32, 244, GpuModel::V100, 4),
    aws("p3.16xlarge", 64, 488, GpuModel::V100, 8),
    aws("p3dn.24xlarge", 96, 768, GpuModel::V100_32, 8),
    aws("p4d.24xlarge", 96, 1152, GpuModel::A100, 8),
    aws("p5e.48xlarge", 192, 2048, GpuModel::H200, 8),
    aws("g4dn.xlarge", 4, 16, GpuModel::T4, 1),
    aws("g4dn.2xlarge", 8, 32, GpuModel::T4, 1),
    aws("g4dn.4xlarge", 16, 64, GpuModel::T4, 1),
    aws("g4dn.8xlarge", 32, 128, GpuModel::T4, 1),
    aws("g4dn.16xlarge", 64, 256, GpuModel::T4, 1),
    aws("g4dn.12xlarge", 48, 192, GpuModel::T4, 4),
    aws("g4dn.metal", 96, 384, GpuModel::T4, 8),
    aws("g5.xlarge", 4, 16, GpuModel::A10G, 1),
    aws("g5.2xlarge", 8, 32, GpuModel::A10G, 1),
    aws("g5.4xlarge", 16, 64, GpuModel::A10G, 1),
    aws("g5.8xlarge", 32, 128, GpuModel::A10G, 1),
    aws("g5.16xlarge", 64, 256, GpuModel::A10G, 1),
    aws("g5.12xlarge", 48, 192, GpuModel::A10G, 4),
    aws("g5.24xlarge", 96, 384, GpuModel::A10G, 4),
    aws("g5.48xlarge", 192, 768, GpuModel::A10G, 8),
    aws("g6.xlarge", 4, 16, GpuModel::L4, 1),
    aws("g6.2xlarge", 8, 32, GpuModel::L4, 1),
    aws("g6.4xlarge", 16, 64, GpuModel::L4, 1),
    aws("g6.8xlarge", 32, 128, GpuModel::L4, 1),
    aws("g6.16xlarge", 64, 256, GpuModel::L4, 1),
    aws("g6.12xlarge", 48, 192, GpuModel::L4, 4),
    aws("g6.24xlarge", 96, 384, GpuModel::L4, 4),
    aws("g6.48xlarge", 192, 768, GpuModel::L4, 8),
    aws("g6e.xlarge", 4, 32, GpuModel::L40S, 1),
    aws("g6e.2xlarge", 8, 64, GpuModel::L40S, 1),
    aws("g6e.4xlarge", 16, 128, GpuModel::L40S, 1),
    aws("g6e.8xlarge", 32, 256, GpuModel::L40S, 1),
    aws("g6e.16xlarge", 64, 512, GpuModel::L40S, 1),
    aws("g6e.12xlarge", 48, 384, GpuModel::L40S, 4),
    aws("g6e.24xlarge", 96, 768, GpuModel::L40S, 4),
    aws("g6e.48xlarge", 192, 1536, GpuModel::L40S, 8),
];

/// The shape of one of [`AWS_GPU_TYPES`].
fn aws_gpu_shape(name: &str) -> Option<Shape> {
    let row = AWS_GPU_TYPES.iter().find(|row| row.name.eq_ignore_ascii_case(name))?;
    Some(Shape { vcpus_milli: row.vcpus * 1000, memory_mib: row.memory_gib * 1024, gpu: Some((row.gpu, row.gpus)) })
}

/// The GPUs an instance type's name states, for the clouds whose names carry them and whose
/// types Cumulo's built-in catalog lacks (SkyPilot reads them from its catalogs, which list the
/// same model and count): Lambda `gpu_8x_h100_sxm5`, Nebius `gpu-h100-sxm_8gpu-128vcpu-1600gb`,
/// OCI `BM.GPU.H100.8` (and its older `BM.GPU4.8`). The name is SkyPilot's accelerator name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NamedGpus {
    pub(crate) accelerator: String,
    pub(crate) count: u32,
    /// The vCPUs the name states too (Nebius `..._128vcpu-...`), as SkyPilot's catalog lists them.
    pub(crate) vcpus: Option<u32>,
    /// The memory in GB the name states too (Nebius `...-1600gb`).
    pub(crate) memory_gb: Option<u64>,
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
    Some(NamedGpus { accelerator, count: count.parse().ok().filter(|&c| c > 0)?, vcpus: None, memory_gb: None })
}

/// Nebius: `gpu-{model}-{form}_{COUNT}gpu-{VCPUS}vcpu-{MEMORY}gb`.
fn nebius_gpus(name: &str) -> Option<NamedGpus> {
    let rest = name.strip_prefix("gpu-")?;
    let (platform, shape) = rest.split_once('_')?;
    let model = platform.split('-').next().filter(|m| !m.is_empty())?.to_ascii_uppercase();
    let (count, rest) = shape.split_once("gpu-")?;
    let count = count.parse().ok().filter(|&c| c > 0)?;
    let (vcpus, memory) = rest.split_once("vcpu-").unzip();
    let vcpus = vcpus.and_then(|v| v.parse().ok()).filter(|&v| v > 0);
    let memory_gb = memory.and_then(|m| m.strip_suffix("gb")).and_then(|m| m.parse().ok()).filter(|&m| m > 0);
    Some(NamedGpus { accelerator: model, count, vcpus, memory_gb })
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
    Some(NamedGpus { accelerator, count, vcpus: None, memory_gb: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_gpu_types_outside_the_builtin_catalog_have_their_shape() {
        let g5 = shape("g5.xlarge").expect("g5.xlarge is a common SkyPilot instance type");
        assert_eq!(g5, Shape { vcpus_milli: 4000, memory_mib: 16 * 1024, gpu: Some((GpuModel::A10G, 1)) });
        assert_eq!(shape(" P4D.24xlarge ").and_then(|s| s.gpu), Some((GpuModel::A100, 8)), "case and blanks aside");
        assert_eq!(shape("g6.8xlarge").and_then(|s| s.gpu), Some((GpuModel::L4, 1)));
        assert_eq!(shape("g9.mega"), None, "an unknown type has no shape");
        for row in AWS_GPU_TYPES {
            assert!(
                catalog().is_none_or(|c| !c.offers().iter().any(|o| o.instance_type == row.name)),
                "{} is in the built-in catalog: the catalog's row wins, drop it from the table",
                row.name
            );
        }
    }

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
            let named = gpus_in_name(instance_type).unwrap_or_else(|| panic!("{instance_type}"));
            assert_eq!((named.accelerator.as_str(), named.count), (accelerator, count), "{instance_type}");
            // Only Nebius names state vCPUs and memory too.
            let nebius = instance_type.starts_with("gpu-");
            assert_eq!(named.vcpus.is_some() && named.memory_gb.is_some(), nebius, "{instance_type}");
        }
        let named = gpus_in_name("gpu-l40s-d_4gpu-192vcpu-1152gb").unwrap();
        assert_eq!((named.vcpus, named.memory_gb), (Some(192), Some(1152)));
    }

    #[test]
    fn other_names_state_no_gpus() {
        for name in ["cpu_4x_general", "cpu-d3_8vcpu-32gb", "VM.Standard.E4.Flex$_8_32", "p4d.24xlarge", "gpu_x_", ""] {
            assert_eq!(gpus_in_name(name), None, "{name}");
        }
    }
}
