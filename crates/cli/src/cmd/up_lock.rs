//! One server per data directory: `cumulo up` and `cumulo server` on SQLite hold an exclusive
//! `flock` on `<data dir>/server.lock` for as long as they run, and write their pid and URL into
//! it. A second server in the same folder is refused with a message naming the first; a lock file
//! left by a process that died is stale (the kernel dropped its lock) and is simply taken over.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// The lock file's name in the data directory.
pub const LOCK_FILE: &str = "server.lock";

/// What the lock file says about the server holding it.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    #[serde(default)]
    pub url: Option<String>,
}

/// The held lock; dropping it (or the process ending) releases it.
pub struct ServerLock {
    file: File,
    path: PathBuf,
}

impl ServerLock {
    /// Takes the lock of `data_dir`, or says which server holds it.
    pub fn acquire(data_dir: &Path) -> anyhow::Result<ServerLock> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
        let path = data_dir.join(LOCK_FILE);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        if !try_lock(&file)? {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let holder: Holder = serde_json::from_str(&text).unwrap_or_default();
            anyhow::bail!("{}", refusal(data_dir, &holder));
        }
        let mut lock = ServerLock { file, path };
        lock.write(&Holder { pid: std::process::id(), url: None })?;
        Ok(lock)
    }

    /// Records the server's URL once it listens.
    pub fn set_url(&mut self, url: &str) -> anyhow::Result<()> {
        self.write(&Holder { pid: std::process::id(), url: Some(url.to_string()) })
    }

    fn write(&mut self, holder: &Holder) -> anyhow::Result<()> {
        let text = serde_json::to_string(holder)?;
        self.file.set_len(0)?;
        self.file.rewind()?;
        self.file.write_all(text.as_bytes())?;
        self.file.sync_data().with_context(|| format!("cannot write {}", self.path.display()))
    }
}

/// The message for a second server in the same folder.
pub fn refusal(data_dir: &Path, holder: &Holder) -> String {
    let at = holder.url.as_deref().map(|u| format!(" at {u}")).unwrap_or_default();
    let pid = if holder.pid > 0 { format!(" (pid {})", holder.pid) } else { String::new() };
    format!(
        "a cumulo server is already running on {}{pid}{at}: use it (`cumulo jobs` talks to it), stop it \
         (Ctrl-C in its terminal{}), or give this one another --data-dir",
        data_dir.display(),
        if holder.pid > 0 { format!(", or kill {}", holder.pid) } else { String::new() }
    )
}

#[cfg(unix)]
fn try_lock(file: &File) -> anyhow::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor this File owns; no memory is passed.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        return Ok(false);
    }
    Err(err).context("cannot lock the data directory")
}

#[cfg(not(unix))]
fn try_lock(_file: &File) -> anyhow::Result<bool> {
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_folder_is_refused_and_a_dropped_one_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = ServerLock::acquire(dir.path()).unwrap();
        first.set_url("http://127.0.0.1:8080").unwrap();
        let err = ServerLock::acquire(dir.path()).err().expect("the folder is taken").to_string();
        assert!(err.contains("already running"), "{err}");
        assert!(err.contains(&format!("pid {}", std::process::id())), "names the pid: {err}");
        assert!(err.contains("at http://127.0.0.1:8080"), "names the url: {err}");
        drop(first);
        // the file is still there, as after a kill -9, but nobody holds its lock: stale
        assert!(dir.path().join(LOCK_FILE).exists());
        ServerLock::acquire(dir.path()).expect("a stale lock file is taken over");
    }
}
