//! What this machine offers: CPUs and memory from the kernel, NVIDIA GPUs from `nvidia-smi`.

use std::path::Path;
use std::time::Duration;

use cumulo_driver::GpuModel;

/// The arguments passed to `nvidia-smi`; [`parse_nvidia_smi`] reads what they print.
pub const NVIDIA_SMI_ARGS: &[&str] = &["--query-gpu=index,name,memory.total,uuid", "--format=csv,noheader,nounits"];

/// One GPU as `nvidia-smi` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmiGpu {
    pub index: u32,
    pub name: String,
    pub memory_mib: u64,
    pub uuid: String,
    /// The model Cumulo knows it as, when the name and memory say.
    pub model: Option<GpuModel>,
}

/// Parses `nvidia-smi --query-gpu=index,name,memory.total,uuid --format=csv,noheader,nounits`.
/// A header line, if present, is skipped; a malformed line is an error naming it.
pub fn parse_nvidia_smi(output: &str) -> Result<Vec<SmiGpu>, String> {
    let mut gpus = Vec::new();
    for (i, line) in output.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with("index") {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != 4 {
            return Err(format!(
                "nvidia-smi line {}: `{line}`: expected 4 comma-separated fields (index, name, memory.total, uuid)",
                i + 1
            ));
        }
        let index = fields[0]
            .parse()
            .map_err(|_| format!("nvidia-smi line {}: index `{}`: expected a GPU index", i + 1, fields[0]))?;
        let memory_mib = fields[2].trim_end_matches("MiB").trim().parse().map_err(|_| {
            format!("nvidia-smi line {}: memory.total `{}`: expected MiB as a number", i + 1, fields[2])
        })?;
        let name = fields[1].to_string();
        let model = gpu_model_from_name(&name, memory_mib);
        gpus.push(SmiGpu { index, name, memory_mib, uuid: fields[3].to_string(), model });
    }
    Ok(gpus)
}

/// Maps a marketing name such as `NVIDIA H100 80GB HBM3` or `NVIDIA A100-SXM4-80GB` to a model,
/// using the memory to tell the 40 GB and 80 GB A100 apart.
pub fn gpu_model_from_name(name: &str, memory_mib: u64) -> Option<GpuModel> {
    let cleaned = name.replace("NVIDIA", " ").replace("Tesla", " ").replace("GeForce", " ");
    let words: Vec<&str> = cleaned.split([' ', '-', '_']).filter(|w| !w.is_empty()).collect();
    // Longest known run of words first ("RTX PRO 6000" before "RTX"), then single words.
    for len in (1..=words.len().min(3)).rev() {
        for window in words.windows(len) {
            if let Ok(model) = GpuModel::parse(&window.join(" ")) {
                return Some(match model {
                    GpuModel::A100 if memory_mib > 60_000 => GpuModel::A100_80,
                    GpuModel::V100 if memory_mib > 24_000 => GpuModel::V100_32,
                    other => other,
                });
            }
        }
    }
    None
}

/// Runs `nvidia-smi` (found on `PATH` or at `path`) with a time limit. `Ok(empty)` when it is not
/// installed; `Err` when it is installed but fails or prints something unreadable.
pub async fn query_nvidia_smi(path: &Path) -> Result<Vec<SmiGpu>, String> {
    let mut cmd = tokio::process::Command::new(path);
    cmd.args(NVIDIA_SMI_ARGS).kill_on_drop(true);
    let output = match tokio::time::timeout(Duration::from_secs(15), cmd.output()).await {
        Err(_) => return Err("nvidia-smi did not answer within 15 s".into()),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Ok(Err(e)) => return Err(format!("cannot run nvidia-smi: {e}")),
        Ok(Ok(out)) => out,
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        // A host with the tools but no driver or devices is a host without GPUs.
        if stderr.contains("couldn't communicate") || stderr.contains("No devices were found") {
            return Ok(Vec::new());
        }
        return Err(format!("nvidia-smi failed ({}): {}", output.status, stderr.trim()));
    }
    parse_nvidia_smi(&String::from_utf8_lossy(&output.stdout))
}

/// Total memory in MiB from `/proc/meminfo`'s `MemTotal` line.
pub fn parse_meminfo_total_mib(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

pub fn memory_mib() -> u64 {
    std::fs::read_to_string("/proc/meminfo").ok().as_deref().and_then(parse_meminfo_total_mib).unwrap_or(0)
}

pub fn vcpus() -> u32 {
    std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1)
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured from an 8 × H100 SXM node (uuids shortened).
    const H100_NODE: &str = "\
0, NVIDIA H100 80GB HBM3, 81559, GPU-6f1c3a3e-0000
1, NVIDIA H100 80GB HBM3, 81559, GPU-6f1c3a3e-0001
2, NVIDIA H100 80GB HBM3, 81559, GPU-6f1c3a3e-0002
3, NVIDIA H100 80GB HBM3, 81559, GPU-6f1c3a3e-0003
4, NVIDIA H100 80GB HBM3, 81559, GPU-6f1c3a3e-0004
5, NVIDIA H100 80GB HBM3, 81559, GPU-6f1c3a3e-0005
6, NVIDIA H100 80GB HBM3, 81559, GPU-6f1c3a3e-0006
7, NVIDIA H100 80GB HBM3, 81559, GPU-6f1c3a3e-0007
";

    #[test]
    fn parses_a_captured_h100_node() {
        let gpus = parse_nvidia_smi(H100_NODE).unwrap();
        assert_eq!(gpus.len(), 8);
        assert_eq!(gpus[7].index, 7);
        assert_eq!(gpus[0].name, "NVIDIA H100 80GB HBM3");
        assert_eq!(gpus[0].memory_mib, 81559);
        assert_eq!(gpus[3].uuid, "GPU-6f1c3a3e-0003");
        assert!(gpus.iter().all(|g| g.model == Some(GpuModel::H100)));
    }

    #[test]
    fn skips_a_header_and_reads_units() {
        let text = "index, name, memory.total [MiB], uuid\n0, NVIDIA A100-SXM4-80GB, 81920 MiB, GPU-a\n";
        let gpus = parse_nvidia_smi(text).unwrap();
        assert_eq!(gpus.len(), 1);
        assert_eq!(gpus[0].memory_mib, 81920);
        assert_eq!(gpus[0].model, Some(GpuModel::A100_80));
    }

    #[test]
    fn names_map_to_models() {
        let check = |name: &str, mib: u64, expect: Option<GpuModel>| {
            assert_eq!(gpu_model_from_name(name, mib), expect, "{name}");
        };
        check("NVIDIA A100-SXM4-40GB", 40960, Some(GpuModel::A100));
        check("NVIDIA H200", 143771, Some(GpuModel::H200));
        check("Tesla T4", 15360, Some(GpuModel::T4));
        check("NVIDIA L40S", 46068, Some(GpuModel::L40S));
        check("NVIDIA A10G", 23028, Some(GpuModel::A10G));
        check("NVIDIA B200", 183359, Some(GpuModel::B200));
        check("NVIDIA GB200", 189471, Some(GpuModel::GB200));
        check("Tesla V100-SXM2-32GB", 32768, Some(GpuModel::V100_32));
        check("NVIDIA RTX PRO 6000 Blackwell Server Edition", 97887, Some(GpuModel::RtxPro6000));
        check("Some Future Accelerator", 1, None);
    }

    #[test]
    fn malformed_lines_are_errors_naming_the_field() {
        assert_eq!(
            parse_nvidia_smi("0, NVIDIA H100, 81559\n").unwrap_err(),
            "nvidia-smi line 1: `0, NVIDIA H100, 81559`: expected 4 comma-separated fields (index, name, memory.total, uuid)"
        );
        assert_eq!(
            parse_nvidia_smi("x, NVIDIA H100, 81559, GPU-1\n").unwrap_err(),
            "nvidia-smi line 1: index `x`: expected a GPU index"
        );
        assert_eq!(
            parse_nvidia_smi("0, NVIDIA H100, lots, GPU-1\n").unwrap_err(),
            "nvidia-smi line 1: memory.total `lots`: expected MiB as a number"
        );
    }

    #[test]
    fn meminfo_total() {
        let text = "MemTotal:       24576000 kB\nMemFree:        1000 kB\n";
        assert_eq!(parse_meminfo_total_mib(text), Some(24000));
        assert_eq!(parse_meminfo_total_mib("MemFree: 1 kB\n"), None);
    }
}
