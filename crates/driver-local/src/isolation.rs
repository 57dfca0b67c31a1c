//! What keeps a local job away from the server: the user it runs as, a clean environment, a
//! working directory outside the data directory, and the sweep that stops every descendant of a
//! rank when its attempt ends (issue 12, finding 2).
//!
//! - **User.** A server running as root runs jobs as an unprivileged account ([`JobUser::Named`],
//!   `cumulo-job` by default, created with `useradd --system` when missing). The rank's wrapper
//!   stays the server's user (it writes the attempt's state files) and starts the job through
//!   `setpriv --reuid --regid --clear-groups`. Running jobs as root needs [`JobUser::Server`], which
//!   the fleet file spells `allow_root: true`; naming `root` as the job user is refused. A server
//!   that is not root cannot switch users: its jobs run as its own user.
//! - **Environment.** Cleared: a fixed `PATH`, `HOME` (the working directory), `USER`, then the
//!   job's envs and the `CUMULO_*` variables of the launch request; nothing of the server's.
//! - **Working directory.** `<work root>/<attempt>/rank-<r>`, owned by the job user, mode 700; the
//!   directories above are mode 711 (no listing). The work root is outside the data directory.
//! - **Descendants.** The wrapper is made a child subreaper (`PR_SET_CHILD_SUBREAPER`, kept across
//!   `exec`), so processes that `setsid` or double-fork away from the job are re-parented to it
//!   instead of init; when the job's shell ends, the wrapper kills whatever is left under it before
//!   it records the exit. When the driver has to SIGKILL a rank (a cancel ignored past the grace),
//!   [`kill_descendants`] sweeps the wrapper's tree first.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Whom local jobs run as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobUser {
    /// An unprivileged account, created when missing (needs a server running as root; otherwise
    /// jobs run as the server's user).
    Named(String),
    /// The server's own user, root included: only when the operator allows it explicitly.
    Server,
}

impl Default for JobUser {
    fn default() -> JobUser {
        JobUser::Named(DEFAULT_JOB_USER.to_string())
    }
}

/// The account local jobs run as by default.
pub const DEFAULT_JOB_USER: &str = "cumulo-job";

/// The `PATH` jobs get.
const JOB_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A resolved account to switch to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// Resolves `user` for a server whose effective uid is `euid`: `None` means "run as the server".
/// Creates a missing named account when the server is root. Refuses root by name.
pub fn resolve(user: &JobUser, euid: u32) -> Result<Option<Account>, String> {
    let JobUser::Named(name) = user else { return Ok(None) };
    if name == "root" {
        return Err("job_user `root`: refusing to run jobs as root; set `allow_root: true` to allow it".into());
    }
    if euid != 0 {
        tracing::warn!(
            user = %name,
            euid,
            "the server is not root, so local jobs run as its own user; run it as root to isolate them"
        );
        return Ok(None);
    }
    let account = match lookup(name) {
        Some(account) => account,
        None => {
            create_system_user(name)?;
            lookup(name).ok_or_else(|| format!("job_user `{name}`: created, but `id` cannot find it"))?
        }
    };
    if account.uid == 0 {
        return Err(format!(
            "job_user `{name}` has uid 0: refusing to run jobs as root; set `allow_root: true` to allow it"
        ));
    }
    if !Path::new(SETPRIV).exists() {
        return Err(format!("job_user `{name}`: {SETPRIV} (util-linux) is needed to start jobs as another user"));
    }
    Ok(Some(account))
}

/// `setpriv` from util-linux, which switches uid, gid and groups before running the job.
pub const SETPRIV: &str = "/usr/bin/setpriv";

fn id_of(flag: &str, name: &str) -> Option<u32> {
    let out = Command::new("id").args([flag, name]).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().parse().ok()).flatten()
}

fn lookup(name: &str) -> Option<Account> {
    Some(Account { name: name.to_string(), uid: id_of("-u", name)?, gid: id_of("-g", name)? })
}

fn create_system_user(name: &str) -> Result<(), String> {
    let valid = !name.is_empty()
        && name.len() <= 32
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && !name.starts_with('-');
    if !valid {
        return Err(format!("job_user `{name}`: expected a user name of lower-case letters, digits, `-` and `_`"));
    }
    let out = Command::new("useradd")
        .args(["--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name])
        .output()
        .map_err(|e| format!("job_user `{name}` does not exist and useradd cannot run: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "job_user `{name}` does not exist and useradd failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    tracing::info!(user = %name, "created the system user local jobs run as");
    Ok(())
}

/// The environment a rank starts with: nothing of the server's.
pub fn job_environment(
    account: Option<&Account>,
    home: &Path,
    request_env: BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    env.insert("PATH".to_string(), JOB_PATH.to_string());
    env.insert("HOME".to_string(), home.display().to_string());
    if let Some(account) = account {
        env.insert("USER".to_string(), account.name.clone());
        env.insert("LOGNAME".to_string(), account.name.clone());
    }
    env.extend(request_env);
    env
}

/// Makes `dir` and its missing parents (mode 711: others may pass, not list), then `leaf` inside
/// it, owned by the account when there is one, mode 700.
pub fn make_work_dir(dir: &Path, leaf: &str, account: Option<&Account>) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new().recursive(true).mode(0o711).create(dir)?;
    let path = dir.join(leaf);
    match std::fs::DirBuilder::new().mode(0o700).create(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))?;
    if let Some(account) = account {
        std::os::unix::fs::chown(&path, Some(account.uid), Some(account.gid))?;
    }
    Ok(path)
}

/// Writes the job's script into its working directory, readable by the job's user.
pub fn write_job_script(work: &Path, script: &str, account: Option<&Account>) -> std::io::Result<PathBuf> {
    let path = work.join(".cumulo-script.sh");
    std::fs::write(&path, script)?;
    if let Some(account) = account {
        std::os::unix::fs::chown(&path, Some(account.uid), Some(account.gid))?;
    }
    Ok(path)
}

/// The words before `bash SCRIPT` that start the job as `account` (none for the server's user).
pub fn switch_user_prefix(account: Option<&Account>) -> Vec<String> {
    match account {
        Some(account) => vec![
            SETPRIV.to_string(),
            format!("--reuid={}", account.uid),
            format!("--regid={}", account.gid),
            "--clear-groups".to_string(),
            "--".to_string(),
        ],
        None => Vec::new(),
    }
}

/// Makes the calling process a child subreaper. For `pre_exec`: async-signal-safe (one syscall).
pub fn become_subreaper() -> std::io::Result<()> {
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER, 1) only sets a flag on the calling process.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Every process's parent, from `/proc/<pid>/stat` (zombies left out: they hold nothing).
fn parents() -> HashMap<i32, i32> {
    let mut out = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else { return out };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else { continue };
        let mut fields = rest.split_whitespace();
        let (Some(state), Some(ppid)) = (fields.next(), fields.next().and_then(|p| p.parse().ok())) else { continue };
        if state != "Z" && state != "X" {
            out.insert(pid, ppid);
        }
    }
    out
}

/// SIGKILLs every descendant of `root` (not `root` itself), in rounds until none is left: the
/// orphans of a killed process are re-parented to `root` when it is a subreaper. Returns how many
/// were signalled.
pub fn kill_descendants(root: i32) -> usize {
    let mut killed = 0;
    for _ in 0..50 {
        let parents = parents();
        let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
        for (pid, ppid) in &parents {
            children.entry(*ppid).or_default().push(*pid);
        }
        let mut stack = children.get(&root).cloned().unwrap_or_default();
        let mut round = 0;
        while let Some(pid) = stack.pop() {
            // SAFETY: kill(2) on a pid; a process already gone answers ESRCH.
            if unsafe { libc::kill(pid, libc::SIGKILL) } == 0 {
                round += 1;
            }
            stack.extend(children.get(&pid).into_iter().flatten());
        }
        if round == 0 {
            break;
        }
        killed += round;
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    killed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_by_name_is_refused_and_a_non_root_server_runs_jobs_as_itself() {
        let err = resolve(&JobUser::Named("root".into()), 0).unwrap_err();
        assert!(err.contains("refusing to run jobs as root") && err.contains("allow_root: true"), "{err}");
        assert_eq!(resolve(&JobUser::Named("cumulo-job".into()), 1000).unwrap(), None);
        assert_eq!(resolve(&JobUser::Server, 0).unwrap(), None, "allowed explicitly");
    }

    #[test]
    fn the_environment_has_nothing_of_the_servers() {
        // SAFETY: a test-local variable; no other thread of this test binary reads it.
        unsafe { std::env::set_var("CUMULO_DB", "postgres://u:secret@db/x") };
        let mut request = BTreeMap::new();
        request.insert("CUMULO_JOB_ID".to_string(), "7".to_string());
        let env = job_environment(None, Path::new("/w"), request);
        assert_eq!(env.keys().map(String::as_str).collect::<Vec<_>>(), ["CUMULO_JOB_ID", "HOME", "PATH"]);
    }
}
