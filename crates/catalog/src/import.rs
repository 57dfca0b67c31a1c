//! Import of SkyPilot catalog CSVs (schema v8, and the older v6 Azure file), columns by header name.
//!
//! The provider is the name of the folder holding the file (`aws/vms.csv`, `v6/azure/vms.csv`).
//! Prices are parsed from their decimal text straight into micro-dollars, never through a float.
//! A bad row (no price at all, a negative or unreadable price, an unknown GPU) is skipped and
//! reported with its file and line; a file without a required column is an error.

use std::path::{Path, PathBuf};

use cumulo_types::{GpuModel, Money};
use serde::Serialize;

use crate::{Catalog, Error, Offer};

/// Columns every offers file must have.
const REQUIRED: &[&str] =
    &["InstanceType", "AcceleratorName", "AcceleratorCount", "vCPUs", "MemoryGiB", "Price", "Region"];

/// Known errors in the upstream catalogs, corrected on import and reported:
/// (provider, instance type, GPU count in the file, true GPU count, why).
const GPU_COUNT_CORRECTIONS: &[(&str, &str, u32, u32, &str)] = &[(
    "azure",
    "Standard_ND96isr_H100_v5",
    12,
    8,
    "the ND96isr H100 v5 VM has 8 H100 GPUs (Azure ND H100 v5 documentation); the v6 catalog says 12",
)];

/// GPU VMs whose upstream row has no AcceleratorName, given their GPUs on import and reported:
/// (provider, instance type, GPU, count, why). Fractional (NC*ads_A10_v4) and unknown (V620)
/// GPUs are left as they are.
const GPU_NAME_CORRECTIONS: &[(&str, &str, &str, u32, &str)] = &[
    (
        "azure",
        "Standard_NCC40ads_H100_v5",
        "H100",
        1,
        "confidential H100 VM; the v6 catalog leaves AcceleratorName empty",
    ),
    ("azure", "Standard_ND40s_v3", "V100-32GB", 8, "8 x V100 32GB VM; the v6 catalog leaves AcceleratorName empty"),
];

/// A row left out of the import, with where it is and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SkippedRow {
    pub file: String,
    pub line: u64,
    pub instance_type: String,
    pub reason: String,
}

/// What one file gave.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FileSummary {
    pub file: String,
    pub provider: String,
    pub rows: usize,
    pub imported: usize,
    /// Imported rows with only a spot price (no on-demand price).
    pub spot_only: usize,
    pub skipped: Vec<SkippedRow>,
    /// Rows whose values were corrected on import, with the reason.
    pub corrected: Vec<String>,
}

/// What a directory import gave: one summary per offers file, plus files that are not offers.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ImportReport {
    pub directory: String,
    pub files: Vec<FileSummary>,
    /// CSV files that are not offers tables (e.g. `common/accelerators.csv`), with the reason.
    pub ignored: Vec<(String, String)>,
}

impl ImportReport {
    pub fn rows(&self) -> usize {
        self.files.iter().map(|f| f.rows).sum()
    }
    pub fn imported(&self) -> usize {
        self.files.iter().map(|f| f.imported).sum()
    }
    pub fn skipped(&self) -> impl Iterator<Item = &SkippedRow> {
        self.files.iter().flat_map(|f| f.skipped.iter())
    }
}

/// Imports every `*.csv` under `dir` (recursively, in path order) into one catalog.
pub fn import_dir(dir: &Path) -> Result<(Catalog, ImportReport), Error> {
    let mut paths = Vec::new();
    collect_csv(dir, &mut paths)?;
    paths.sort();
    let mut report = ImportReport { directory: dir.display().to_string(), ..ImportReport::default() };
    let mut offers = Vec::new();
    for path in &paths {
        let display = path.strip_prefix(dir).unwrap_or(path).display().to_string();
        let header = read_header(path)?;
        if !header.iter().any(|h| h == "InstanceType") && header.iter().any(|h| h == "AcceleratorName") {
            report.ignored.push((display, "accelerator index, not an offers table".to_string()));
            continue;
        }
        let provider = provider_of(path);
        let (file_offers, summary) = import_file(path, &provider, &display)?;
        offers.extend(file_offers);
        report.files.push(summary);
    }
    if report.files.is_empty() {
        return Err(Error::Empty(dir.display().to_string()));
    }
    Ok((Catalog::new(dir.display().to_string(), offers), report))
}

fn collect_csv(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), Error> {
    let io = |source| Error::Io { path: dir.display().to_string(), source };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.is_dir() {
            collect_csv(&path, out)?;
        } else if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")) {
            out.push(path);
        }
    }
    Ok(())
}

fn read_header(path: &Path) -> Result<Vec<String>, Error> {
    let mut reader = csv::Reader::from_path(path).map_err(|e| csv_error(&path.display().to_string(), e))?;
    let header = reader.headers().map_err(|e| csv_error(&path.display().to_string(), e))?;
    Ok(header.iter().map(|h| h.trim().to_string()).collect())
}

/// The provider a catalog file belongs to: the folder it sits in (`oci/vms.csv` → `oci`).
fn provider_of(path: &Path) -> String {
    path.parent()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_else(|| "unknown".to_string())
}

fn csv_error(path: &str, e: csv::Error) -> Error {
    if let csv::ErrorKind::Io(_) = e.kind() {
        let csv::ErrorKind::Io(io) = e.into_kind() else { unreachable!() };
        return Error::Io { path: path.to_string(), source: io };
    }
    let line = e.position().map_or(0, |p| p.line());
    Error::Csv { path: path.to_string(), line, reason: e.to_string() }
}

/// Imports one offers file for `provider`; `display` is the name used in reports.
pub fn import_file(path: &Path, provider: &str, display: &str) -> Result<(Vec<Offer>, FileSummary), Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io { path: display.to_string(), source })?;
    import_text(&text, provider, display)
}

struct Columns {
    instance_type: usize,
    accelerator_name: usize,
    accelerator_count: usize,
    vcpus: usize,
    memory_gib: usize,
    price: usize,
    region: usize,
    spot_price: Option<usize>,
    zone: Option<usize>,
    gpu_info: Option<usize>,
}

impl Columns {
    fn find(header: &csv::StringRecord, display: &str) -> Result<Columns, Error> {
        let find = |name: &str| header.iter().position(|h| h.trim() == name);
        let required = |name: &'static str| {
            find(name).ok_or_else(|| Error::MissingColumn {
                path: display.to_string(),
                column: name,
                required: REQUIRED.join(", "),
            })
        };
        Ok(Columns {
            instance_type: required("InstanceType")?,
            accelerator_name: required("AcceleratorName")?,
            accelerator_count: required("AcceleratorCount")?,
            vcpus: required("vCPUs")?,
            memory_gib: required("MemoryGiB")?,
            price: required("Price")?,
            region: required("Region")?,
            spot_price: find("SpotPrice"),
            zone: find("AvailabilityZone"),
            gpu_info: find("GpuInfo"),
        })
    }
}

/// Imports the text of one offers file (exposed for tests of broken files).
pub(crate) fn import_text(text: &str, provider: &str, display: &str) -> Result<(Vec<Offer>, FileSummary), Error> {
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(text.as_bytes());
    let header = reader.headers().map_err(|e| csv_error(display, e))?.clone();
    let cols = Columns::find(&header, display)?;
    let mut summary =
        FileSummary { file: display.to_string(), provider: provider.to_string(), ..FileSummary::default() };
    let mut offers = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(csv_error(display, e)),
        }
        summary.rows += 1;
        let line = record.position().map_or(0, |p| p.line());
        let instance_type = record.get(cols.instance_type).unwrap_or("").trim().to_string();
        let skip = |reason: String| SkippedRow {
            file: display.to_string(),
            line,
            instance_type: instance_type.clone(),
            reason,
        };
        match parse_row(&record, &cols, provider, display, line) {
            Ok((offer, correction)) => {
                if let Some(c) = correction {
                    summary.corrected.push(format!("{display}:{line} {instance_type}: {c}"));
                }
                if offer.price.is_none() {
                    summary.spot_only += 1;
                }
                summary.imported += 1;
                offers.push(offer);
            }
            Err(reason) => summary.skipped.push(skip(reason)),
        }
    }
    Ok((offers, summary))
}

/// One row to an offer, or the reason it is skipped. Also returns a note when a known upstream
/// error was corrected.
fn parse_row(
    record: &csv::StringRecord,
    cols: &Columns,
    provider: &str,
    display: &str,
    line: u64,
) -> Result<(Offer, Option<String>), String> {
    let field = |i: usize| record.get(i).unwrap_or("").trim();
    let opt = |i: Option<usize>| i.map(|i| record.get(i).unwrap_or("").trim()).unwrap_or("");
    let instance_type = field(cols.instance_type);
    if instance_type.is_empty() {
        return Err("empty InstanceType".to_string());
    }
    let region = field(cols.region);
    if region.is_empty() {
        return Err("empty Region".to_string());
    }
    let price = parse_price("Price", field(cols.price))?;
    let spot_price = parse_price("SpotPrice", opt(cols.spot_price))?;
    if price.is_none() && spot_price.is_none() {
        return Err("missing price: both Price and SpotPrice are empty".to_string());
    }

    let mut name = field(cols.accelerator_name).to_string();
    if name.is_empty() {
        name = gpu_name_from_info(opt(cols.gpu_info)).unwrap_or_default();
    }
    let count_text = field(cols.accelerator_count);
    let mut gpus = parse_whole_count(count_text).map_err(|_| {
        format!("invalid AcceleratorCount `{count_text}`: expected a whole number of GPUs such as 8 or 8.0")
    })?;
    let mut correction = None;
    if name.is_empty()
        && gpus == 0
        && let Some((_, _, gpu, count, why)) =
            GPU_NAME_CORRECTIONS.iter().find(|(p, t, _, _, _)| *p == provider && *t == instance_type)
    {
        correction = Some(format!("no GPU in the file, imported as {count} x {gpu}: {why}"));
        name = gpu.to_string();
        gpus = *count;
    }
    let gpu = if name.is_empty() {
        if gpus != 0 {
            return Err(format!("AcceleratorCount is {gpus} but AcceleratorName is empty"));
        }
        None
    } else {
        let model = GpuModel::parse(&name).map_err(|_| format!("unknown GPU `{name}`"))?;
        if gpus == 0 {
            return Err(format!("GPU `{name}` with AcceleratorCount `{count_text}`: expected at least 1"));
        }
        Some(model)
    };
    if let Some((_, _, _, fixed, why)) =
        GPU_COUNT_CORRECTIONS.iter().find(|(p, t, bad, _, _)| *p == provider && *t == instance_type && *bad == gpus)
    {
        correction = Some(format!("AcceleratorCount {gpus} corrected to {fixed}: {why}"));
        gpus = *fixed;
    }
    let vcpus_text = field(cols.vcpus);
    let vcpus_milli = parse_milli(vcpus_text)
        .and_then(|m| u32::try_from(m).ok())
        .ok_or_else(|| format!("invalid vCPUs `{vcpus_text}`: expected a non-negative number"))?;
    let mem_text = field(cols.memory_gib);
    let memory_mib = parse_milli(mem_text)
        .map(|milli_gib| milli_gib * 1024 / 1000)
        .ok_or_else(|| format!("invalid MemoryGiB `{mem_text}`: expected a non-negative number"))?;
    let zone = Some(opt(cols.zone)).filter(|z| !z.is_empty()).map(str::to_string);
    Ok((
        Offer {
            provider: provider.to_string(),
            region: region.to_string(),
            zone,
            instance_type: instance_type.to_string(),
            gpu,
            gpus,
            vcpus_milli,
            memory_mib,
            price,
            spot_price,
            source: format!("{display}:{line}"),
        },
        correction,
    ))
}

fn parse_price(column: &str, text: &str) -> Result<Option<Money>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    let money = Money::parse_dollars(text)
        .map_err(|_| format!("invalid {column} `{text}`: expected a non-negative number of US dollars"))?;
    if money.is_negative() {
        return Err(format!("negative {column} `{text}`: expected a non-negative number of US dollars"));
    }
    Ok(Some(money))
}

/// `8`, `8.0`, `` (none) → whole count; `0.5` is refused (no catalog sells half GPUs per row).
fn parse_whole_count(text: &str) -> Result<u32, ()> {
    if text.is_empty() {
        return Ok(0);
    }
    let milli = parse_milli(text).ok_or(())?;
    if milli % 1000 != 0 {
        return Err(());
    }
    u32::try_from(milli / 1000).map_err(|_| ())
}

/// A non-negative decimal to thousandths, exactly (`0.75` → 750); `None` when it is not one.
fn parse_milli(text: &str) -> Option<u64> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() && frac.is_empty() {
        return None;
    }
    if !whole.chars().all(|c| c.is_ascii_digit()) || !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let frac = frac.trim_end_matches('0');
    if frac.len() > 3 {
        return None;
    }
    let whole: u64 = if whole.is_empty() { 0 } else { whole.parse().ok()? };
    let frac: u64 = if frac.is_empty() { 0 } else { format!("{frac:0<3}").parse().ok()? };
    whole.checked_mul(1000)?.checked_add(frac)
}

/// The first GPU name in a `GpuInfo` cell: a Python-dict string (`{'Gpus': [{'Name': 'A100', ...`),
/// JSON (`{"Gpus":[{"Name":"A100-80GB",...`), or a bare name (Azure v6 writes just `A100`).
pub(crate) fn gpu_name_from_info(info: &str) -> Option<String> {
    let info = info.trim();
    if info.is_empty() {
        return None;
    }
    if !info.starts_with('{') {
        return Some(info.to_string());
    }
    let at = info.find("Name")?;
    let rest = &info[at + 4..];
    let rest = rest.trim_start_matches(['\'', '"']).trim_start();
    let rest = rest.strip_prefix(':')?.trim_start();
    let quote = rest.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let rest = &rest[1..];
    let end = rest.find(quote)?;
    Some(rest[..end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpu_info_in_both_dialects() {
        assert_eq!(
            gpu_name_from_info("{'Gpus': [{'Name': 'A100', 'Manufacturer': 'NVIDIA'}]}").as_deref(),
            Some("A100")
        );
        assert_eq!(gpu_name_from_info(r#"{"Gpus":[{"Name":"A100-80GB","Count":8}]}"#).as_deref(), Some("A100-80GB"));
        assert_eq!(gpu_name_from_info("T4").as_deref(), Some("T4"));
        assert_eq!(gpu_name_from_info(""), None);
    }

    #[test]
    fn decimals_to_thousandths() {
        assert_eq!(parse_milli("0.75"), Some(750));
        assert_eq!(parse_milli("4.0"), Some(4000));
        assert_eq!(parse_milli("1814"), Some(1_814_000));
        assert_eq!(parse_milli("-1"), None);
        assert_eq!(parse_whole_count("8.0"), Ok(8));
        assert_eq!(parse_whole_count(""), Ok(0));
        assert_eq!(parse_whole_count("0.5"), Err(()));
    }
}
