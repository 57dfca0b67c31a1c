//! Catalog import on the real SkyPilot files, on the built-in catalog and on broken files.

use std::path::PathBuf;

use cumulo_catalog::{Catalog, Error, import_dir};
use cumulo_types::{GpuModel, GpuSelector, Money};

fn data_dir() -> Option<PathBuf> {
    let base = std::env::var("CUMULO_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data")));
    let dir = base.join("skypilot-catalog-v8");
    if dir.is_dir() {
        Some(dir)
    } else {
        println!("skipping: {} not found", dir.display());
        None
    }
}

fn write(dir: &std::path::Path, rel: &str, text: &str) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn real_catalogs_import_with_bad_rows_reported() {
    let Some(dir) = data_dir() else { return };
    let (catalog, report) = import_dir(&dir).unwrap();
    let files: Vec<&str> = report.files.iter().map(|f| f.file.as_str()).collect();
    assert_eq!(
        files,
        [
            "aws/vms_excerpt_p4de_p5_p5e_p5en_p6.csv",
            "lambda/vms.csv",
            "mithril/vms.csv",
            "nebius/vms.csv",
            "oci/vms.csv",
            "primeintellect/vms.csv",
            "v6/azure/vms.csv"
        ]
    );
    assert_eq!(report.ignored.len(), 1, "common/accelerators.csv is an index, not offers");
    assert_eq!(report.imported() + report.skipped().count(), report.rows());
    assert_eq!(catalog.len(), report.imported());
    // Every skip names a file, a line and a reason we expect from these files.
    for s in report.skipped() {
        assert!(s.line >= 2, "{s:?}");
        assert!(
            s.reason.starts_with("missing price") || s.reason.starts_with("unknown GPU"),
            "unexpected skip reason: {s:?}"
        );
    }
    // PrimeIntellect's A4000 and RTX6000Ada rows import as those models.
    for model in [GpuModel::A4000, GpuModel::Rtx6000Ada] {
        assert!(
            catalog.offers().iter().any(|o| o.provider.as_str() == "primeintellect" && o.gpu == Some(model)),
            "{model}"
        );
    }
    // Azure rows without any price are skipped, AWS p5e (spot only) is kept as spot-only.
    assert!(report.skipped().any(|s| s.file == "v6/azure/vms.csv" && s.reason.starts_with("missing price")));
    let p5e: Vec<_> = catalog.offers().iter().filter(|o| o.instance_type == "p5e.48xlarge").collect();
    assert!(!p5e.is_empty() && p5e.iter().all(|o| o.price.is_none() && o.spot_price.is_some()));
    // Known facts: p5.48xlarge in us-east-1 is $55.04/h with 8 H100; OCI GB300.4 is $72.
    let p5 = catalog.offers().iter().find(|o| o.instance_type == "p5.48xlarge" && o.region == "us-east-1").unwrap();
    assert_eq!((p5.gpu, p5.gpus, p5.price), (Some(GpuModel::H100), 8, Some(Money::from_micros(55_040_000))));
    let gb300 = catalog.offers().iter().find(|o| o.instance_type == "BM.GPU.GB300.4").unwrap();
    assert_eq!((gb300.provider.as_str(), gb300.gpus, gb300.price), ("oci", 4, Some(Money::from_dollars(72))));
    // The Azure ND96isr H100 v5 count (12 in the file) is corrected to 8 and reported.
    let nd = catalog.offers().iter().find(|o| o.instance_type == "Standard_ND96isr_H100_v5").unwrap();
    assert_eq!(nd.gpus, 8);
    assert!(report.files.iter().any(|f| f.corrected.iter().any(|c| c.contains("corrected to 8"))));
    // The confidential H100 VM, which the file lists without a GPU, is an H100 offer.
    let ncc = catalog.offers().iter().find(|o| o.instance_type == "Standard_NCC40ads_H100_v5").unwrap();
    assert_eq!((ncc.gpu, ncc.gpus), (Some(GpuModel::H100), 1));
    assert!(report.files.iter().any(|f| f.corrected.iter().any(|c| c.contains("imported as 1 x H100"))));
    // Zones are kept where the file has them.
    assert!(p5.zone.is_some());
    // The GPU index finds the same offers as a full scan.
    let h100 = GpuSelector::Models(vec![GpuModel::H100]);
    let by_index = catalog.accepting(&h100).count();
    let by_scan = catalog.offers().iter().filter(|o| o.gpu == Some(GpuModel::H100)).count();
    assert_eq!(by_index, by_scan);
    assert!(by_index > 50, "{by_index}");
}

#[test]
fn builtin_catalog_covers_the_main_providers_with_sources() {
    let catalog = Catalog::builtin().unwrap();
    assert_eq!(catalog.providers(), ["aws", "azure", "coreweave", "gcp", "lambda", "oci"]);
    for offer in catalog.offers() {
        assert!(!offer.source.is_empty(), "{offer:?}");
        assert!(offer.price.is_some_and(|p| p > Money::ZERO), "{offer:?}");
        assert_eq!(offer.gpu.is_some(), offer.gpus > 0, "{offer:?}");
    }
    for gpu in [GpuModel::H100, GpuModel::H200, GpuModel::B200, GpuModel::GB200, GpuModel::GB300] {
        assert!(catalog.with_gpu(Some(gpu)).next().is_some(), "{gpu}");
    }
    assert!(catalog.with_gpu(None).count() >= 5, "CPU types for sandboxes");
}

#[test]
fn bad_rows_are_skipped_with_file_line_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "acme/vms.csv",
        "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,SpotPrice,Region\n\
         good,H100,8,192,2048,55.04,20,us-east-1\n\
         noprice,H100,8,192,2048,,,us-east-1\n\
         negative,H100,8,192,2048,-1.5,,us-east-1\n\
         unknown,H900,8,192,2048,10,,us-east-1\n\
         badcount,H100,0.5,192,2048,10,,us-east-1\n\
         cpu,,,4,16,0.2,,us-east-1\n",
    );
    let (catalog, report) = import_dir(dir.path()).unwrap();
    let skipped: Vec<String> =
        report.skipped().map(|s| format!("{}:{} {}: {}", s.file, s.line, s.instance_type, s.reason)).collect();
    assert_eq!(
        skipped,
        [
            "acme/vms.csv:3 noprice: missing price: both Price and SpotPrice are empty",
            "acme/vms.csv:4 negative: negative Price `-1.5`: expected a non-negative number of US dollars",
            "acme/vms.csv:5 unknown: unknown GPU `H900`",
            "acme/vms.csv:6 badcount: invalid AcceleratorCount `0.5`: expected a whole number of GPUs such as 8 or 8.0",
        ]
    );
    let names: Vec<&str> = catalog.offers().iter().map(|o| o.instance_type.as_str()).collect();
    assert_eq!(names, ["good", "cpu"]);
    assert_eq!(catalog.offers()[0].provider, "acme");
    assert_eq!(catalog.offers()[0].spot_price, Some(Money::from_dollars(20)));
}

#[test]
fn missing_required_column_is_an_error_naming_column_and_file() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "acme/vms.csv",
        "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Region\nx,,,1,1,r\n",
    );
    let err = import_dir(dir.path()).unwrap_err();
    assert!(matches!(err, Error::MissingColumn { column: "Price", .. }));
    assert_eq!(
        err.to_string(),
        "catalog file `acme/vms.csv` has no column `Price` (required: InstanceType, AcceleratorName, \
         AcceleratorCount, vCPUs, MemoryGiB, Price, Region)"
    );
}

#[test]
fn empty_directory_and_ragged_rows_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let err = import_dir(dir.path()).unwrap_err().to_string();
    assert!(err.ends_with("holds no catalog CSV files (expected `<cloud>/vms.csv`)"), "{err}");
    write(
        dir.path(),
        "acme/vms.csv",
        "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,Region\nx,,,1,1,0.1,r,extra\n",
    );
    let err = import_dir(dir.path()).unwrap_err().to_string();
    assert!(err.starts_with("catalog file `acme/vms.csv` line 2: "), "{err}");
}
