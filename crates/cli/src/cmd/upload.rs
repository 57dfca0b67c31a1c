//! What `cumulo submit` uploads with a job file: its local `workdir` and the local sources of its
//! `file_mounts`, packed into one tar archive laid out as the job's working directory on a node
//! (the workdir's contents at the top, each mount at its destination: `data` and `~/data` at
//! `data`, an absolute `/data` under `.cumulo-mounts/data`). The server keeps it
//! (`POST /v1/uploads`); drivers that unpack uploads put it into each node's working directory
//! before `setup`.
//!
//! Relative sources are read from the current directory, as SkyPilot reads them; `~` is this
//! user's home. Symbolic links are packed as links. A directory is packed but for what its
//! `.gitignore` and `.skyignore` files exclude (as SkyPilot filters its rsync) and `.git`. The archive may not be larger than the server takes
//! ([`UPLOAD_LIMIT_BYTES`] by default): the sizes are summed before anything is packed.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use cumulo_types::JobSpec;
use cumulo_types::job::{MountPlace, is_local_source};

/// The largest upload a server takes by default (`cumulo_api::Config::upload_limit_bytes`).
pub const UPLOAD_LIMIT_BYTES: u64 = 32 * 1024 * 1024;

/// One thing to pack: a file or directory on this machine and its path in the archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packed {
    pub source: PathBuf,
    /// Empty for the archive's top (the workdir, or a mount at `~`).
    pub at: String,
    /// The job file's field, for errors (`workdir`, `file_mounts./data`).
    pub field: String,
}

/// What the jobs of one file upload; empty when none has a local workdir or local mounts. All
/// documents of a file share one upload, so those that have one must agree on it.
pub fn plan(jobs: &[JobSpec], cwd: &Path, home: Option<&Path>) -> anyhow::Result<Vec<Packed>> {
    let mut chosen: Option<Vec<Packed>> = None;
    for job in jobs {
        let mut items = Vec::new();
        if let Some(workdir) = job.workdir.as_deref().filter(|w| is_local_source(w)) {
            items.push(Packed { source: resolve(workdir, cwd, home), at: String::new(), field: "workdir".into() });
        }
        for (dest, source) in job.local_file_mounts() {
            let field = format!("file_mounts.{dest}");
            let place = MountPlace::of(dest)
                .with_context(|| format!("{field}: expected a destination path without `..` components"))?;
            items.push(Packed { source: resolve(source, cwd, home), at: place.upload_path(), field });
        }
        if items.is_empty() {
            continue;
        }
        match &chosen {
            Some(earlier) if *earlier != items => bail!(
                "the documents of this file have different local workdir or file_mounts: one upload goes with a file, \
                 so submit them as separate files"
            ),
            _ => chosen = Some(items),
        }
    }
    Ok(chosen.unwrap_or_default())
}

fn resolve(path: &str, cwd: &Path, home: Option<&Path>) -> PathBuf {
    let path = path.trim();
    match (path.strip_prefix("~/"), home) {
        (Some(rest), Some(home)) => home.join(rest),
        _ if path == "~" && home.is_some() => home.map(Path::to_path_buf).unwrap_or_default(),
        _ => cwd.join(path),
    }
}

/// One file, link or directory under a packed directory.
struct Entry {
    path: PathBuf,
    /// Its path below the packed directory.
    relative: PathBuf,
    /// Bytes a file or link brings (0 for a directory).
    size: u64,
}

/// What a directory source uploads: everything under it (hidden files too, links as links) but
/// what its `.gitignore` and `.skyignore` files exclude, read also outside a git checkout as
/// SkyPilot's rsync filters read them, and `.git` itself.
fn walk(dir: &Path) -> anyhow::Result<Vec<Entry>> {
    let walker = ignore::WalkBuilder::new(dir)
        .standard_filters(false)
        .git_ignore(true)
        .require_git(false)
        .add_custom_ignore_filename(".skyignore")
        .follow_links(false)
        .sort_by_file_name(|a, b| a.cmp(b))
        .filter_entry(|entry| entry.file_name() != ".git")
        .build();
    let mut entries = Vec::new();
    for entry in walker {
        let entry = entry?;
        if entry.depth() == 0 {
            continue;
        }
        let meta = std::fs::symlink_metadata(entry.path())?;
        let size = if meta.is_dir() { 0 } else { meta.len() };
        let relative = entry.path().strip_prefix(dir)?.to_path_buf();
        entries.push(Entry { path: entry.path().to_path_buf(), relative, size });
    }
    Ok(entries)
}

/// Bytes `path` uploads: a file's (or link's) length, or the sum over [`walk`] of a directory.
fn size_of(path: &Path) -> anyhow::Result<u64> {
    let meta = std::fs::symlink_metadata(path)?;
    if !meta.is_dir() {
        return Ok(meta.len());
    }
    Ok(walk(path)?.iter().map(|entry| entry.size).sum())
}

/// Appends what a directory source uploads at `at` (`.` for the archive's top).
fn append_dir(builder: &mut tar::Builder<Vec<u8>>, dir: &Path, at: &str) -> anyhow::Result<()> {
    for entry in walk(dir)? {
        builder.append_path_with_name(&entry.path, Path::new(at).join(&entry.relative))?;
    }
    Ok(())
}

/// Packs `items` into a tar archive; an error names the field whose source is missing, or says
/// the sizes and the limit when they are over it.
pub fn pack(items: &[Packed], limit: u64) -> anyhow::Result<Vec<u8>> {
    let mut total = 0u64;
    for item in items {
        let size = size_of(&item.source)
            .with_context(|| format!("{}: cannot read `{}`", item.field, item.source.display()))?;
        total += size;
        if total > limit {
            bail!(
                "{}: `{}` brings the upload past the server's limit of {} MiB (the local workdir and file_mounts \
                 together); put large data on storage the cluster mounts, or fetch it in `setup`",
                item.field,
                item.source.display(),
                limit / (1024 * 1024)
            );
        }
    }
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    for item in items {
        let at = if item.at.is_empty() { "." } else { item.at.as_str() };
        let meta = std::fs::metadata(&item.source)
            .with_context(|| format!("{}: cannot read `{}`", item.field, item.source.display()))?;
        let added = if meta.is_dir() {
            append_dir(&mut builder, &item.source, at)
        } else if item.at.is_empty() {
            bail!("{}: `{}` is a file: expected a directory", item.field, item.source.display());
        } else {
            builder.append_path_with_name(&item.source, at).map_err(anyhow::Error::from)
        };
        added.with_context(|| format!("{}: cannot pack `{}`", item.field, item.source.display()))?;
    }
    builder.into_inner().context("cannot finish the upload archive")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(workdir: Option<&str>, mounts: &[(&str, &str)]) -> JobSpec {
        let mut job = JobSpec::new("j", "t");
        job.workdir = workdir.map(str::to_string);
        job.file_mounts = mounts.iter().map(|(d, s)| (d.to_string(), s.to_string())).collect();
        job
    }

    #[test]
    fn each_source_goes_where_its_destination_is_in_the_working_directory() {
        let cwd = Path::new("/w");
        let mounts = [("/data", "./d"), ("~/cfg.yaml", "~/c.yaml"), ("ckpt", "s3://b/c"), ("models/", "/m")];
        let items = plan(&[job(Some("src"), &mounts)], cwd, Some(Path::new("/home/u"))).unwrap();
        let got: Vec<(&str, &str, &str)> =
            items.iter().map(|i| (i.field.as_str(), i.source.to_str().unwrap(), i.at.as_str())).collect();
        assert_eq!(
            got,
            [
                ("workdir", "/w/src", ""),
                ("file_mounts./data", "/w/./d", ".cumulo-mounts/data"),
                ("file_mounts.models/", "/m", "models"),
                ("file_mounts.~/cfg.yaml", "/home/u/c.yaml", "cfg.yaml"),
            ],
            "buckets are not packed"
        );
        assert!(plan(&[job(Some("https://github.com/x/y@main"), &[])], cwd, None).unwrap().is_empty());
        let err = plan(&[job(Some("a"), &[]), job(Some("b"), &[])], cwd, None).unwrap_err().to_string();
        assert!(err.contains("submit them as separate files"), "{err}");
    }

    #[test]
    fn packing_is_refused_past_the_limit_and_names_a_missing_source() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("big"), vec![7u8; 4096]).unwrap();
        let item = |name: &str| Packed { source: dir.path().join(name), at: "x".into(), field: "file_mounts.x".into() };
        let err = pack(&[item("big")], 1000).unwrap_err().to_string();
        assert!(err.contains("file_mounts.x") && err.contains("past the server's limit"), "{err}");
        let err = format!("{:#}", pack(&[item("gone")], 1000).unwrap_err());
        assert!(err.contains("file_mounts.x: cannot read"), "{err}");
        let archive = pack(&[item("big")], 1 << 20).unwrap();
        assert_eq!(archive.len() % 512, 0, "a tar archive of whole blocks");
        let names: Vec<String> = tar::Archive::new(archive.as_slice())
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(names, ["x"]);
    }

    #[test]
    fn a_directory_is_packed_without_what_its_ignore_files_exclude() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for (path, text) in [
            (".gitignore", "target/\n*.log\n"),
            (".skyignore", "data/big.bin\n"),
            ("train.py", "print(1)"),
            ("run.log", "noise"),
            ("target/debug/huge", "x"),
            ("data/big.bin", "x"),
            ("data/small.csv", "a,b"),
            (".git/HEAD", "ref"),
            (".env.example", "A=1"),
        ] {
            std::fs::create_dir_all(root.join(path).parent().unwrap()).unwrap();
            std::fs::write(root.join(path), text).unwrap();
        }
        let item = Packed { source: root.to_path_buf(), at: String::new(), field: "workdir".into() };
        let archive = pack(&[item], 1 << 20).unwrap();
        let mut names: Vec<String> = tar::Archive::new(archive.as_slice())
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string().trim_end_matches('/').to_string())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [".env.example", ".gitignore", ".skyignore", "data", "data/small.csv", "train.py"],
            "ignored files, ignored directories and .git stay behind; hidden files go"
        );
    }
}
