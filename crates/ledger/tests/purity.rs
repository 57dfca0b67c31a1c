//! Architecture invariant: the ledger is pure. Its sources use no clock, no randomness, no files,
//! no network and no async runtime; every module starts with a `//!` line.

use std::path::Path;

const FORBIDDEN: &[&str] = &[
    "Utc::now",
    "Local::now",
    "SystemTime",
    "Instant::now",
    "std::fs",
    "std::net",
    "std::env",
    "tokio",
    "rand::",
    "println!",
    "eprintln!",
];

#[test]
fn ledger_sources_do_no_io_and_read_no_clock() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut checked = 0;
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("//!"), "{} does not start with a //! line", path.display());
        for word in FORBIDDEN {
            assert!(!text.contains(word), "{} uses `{word}`", path.display());
        }
        checked += 1;
    }
    assert!(checked >= 7, "only {checked} source files found");
    let manifest = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    for dep in ["tokio", "sqlx", "rusqlite", "reqwest", "rand"] {
        assert!(!manifest.contains(dep), "the ledger depends on {dep}");
    }
}
