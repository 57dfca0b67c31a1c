//! What keeps a local job away from the server: the user it runs as, a clean environment, a
//! working directory outside the data directory, and the sweep that stops every descendant of a
//! rank when its attempt ends (issue 12, finding 2).
//!
//! - **User.** A server running as root runs each tenant's jobs as the tenant's own unprivileged
//!   account ([`JobUser::PerTenant`], the default): `cumulo-job-<tenant>` ([`tenant_user_name`]),
//!   a system account with its own primary group, created with `useradd --system` on the tenant's
//!   first launch and kept in `/etc/passwd`, which is the persistent, machine-wide record of the
//!   mapping (stable across restarts, never one uid for two tenants, even across servers). Every
//!   tenant account is also in the shared group [`JOB_GROUP`] (`cumulo-job`), passed as the
//!   job's one supplementary group, so a directory the operator gives that group (a checkpoint
//!   directory shared with Slurm's job user) is reachable from every tenant's jobs. Jobs of
//!   different tenants have different uids: one cannot read another's `/proc/<pid>/environ`,
//!   signal it, or open its mode-700 working directory; jobs of one tenant share a uid, so a
//!   later attempt reads what an earlier one checkpointed. [`JobUser::Named`] (`job_user:` in the
//!   fleet file) runs every tenant's jobs as one named account instead (tenants then share its
//!   uid). The rank's wrapper stays the server's user (it writes the attempt's state files) and
//!   starts the job through `setpriv --reuid --regid --groups`. Running jobs as root needs
//!   [`JobUser::Server`], which the fleet file spells `allow_root: true`; naming `root` as the job
//!   user is refused. A server that is not root cannot switch users: its jobs run as its own user.
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
use std::sync::Mutex;
use std::time::Duration;

use sha2::{Digest, Sha256};

/// Whom local jobs run as.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum JobUser {
    /// Each tenant's jobs as the tenant's own unprivileged account ([`tenant_user_name`]), in the
    /// shared group [`JOB_GROUP`]; created when missing (needs a server running as root;
    /// otherwise jobs run as the server's user).
    #[default]
    PerTenant,
    /// One unprivileged account for every tenant's jobs, created when missing (the operator named
    /// it; tenants share its uid).
    Named(String),
    /// The server's own user, root included: only when the operator allows it explicitly.
    Server,
}

/// The group every tenant's account is in, and the prefix of their names. Before accounts per
/// tenant, it was the one account all local jobs ran as: on an upgraded machine it exists as
/// that account's group.
pub const JOB_GROUP: &str = "cumulo-job";

/// The `PATH` jobs get.
const JOB_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Longest user name `useradd` takes.
const MAX_USER_NAME: usize = 32;

/// A resolved account to switch to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups the job gets (none: cleared).
    pub groups: Vec<u32>,
}

/// Whom jobs run as, resolved when the driver opens.
#[derive(Debug)]
pub enum Accounts {
    /// The server's own user (allowed explicitly, or a server that is not root).
    Server,
    /// One account for every tenant.
    One(Account),
    /// One account per tenant, looked up (created when missing) on the tenant's first launch and
    /// kept here; every one has `group` as its supplementary group.
    PerTenant { group: u32, known: Mutex<HashMap<String, Account>> },
}

impl Accounts {
    /// The account `tenant`'s jobs run as; `None`: the server's user.
    pub fn for_tenant(&self, tenant: &str) -> Result<Option<Account>, String> {
        let (group, known) = match self {
            Accounts::Server => return Ok(None),
            Accounts::One(account) => return Ok(Some(account.clone())),
            Accounts::PerTenant { group, known } => (*group, known),
        };
        // Held while an account is created: one `useradd` per tenant in this process.
        let mut known = known.lock().expect("tenant accounts poisoned");
        if let Some(account) = known.get(tenant) {
            return Ok(Some(account.clone()));
        }
        let name = tenant_user_name(tenant);
        let account = match lookup(&name) {
            Some(account) => account,
            None => {
                create_system_user(&name, &["--groups", JOB_GROUP])
                    .map_err(|e| format!("the account of tenant `{tenant}`: {e}"))?;
                lookup(&name)
                    .ok_or_else(|| format!("tenant `{tenant}`: account `{name}` created, but `id` cannot find it"))?
            }
        };
        if account.uid == 0 {
            return Err(format!("tenant `{tenant}`: account `{name}` has uid 0: refusing to run jobs as root"));
        }
        let account = Account { groups: vec![group], ..account };
        known.insert(tenant.to_string(), account.clone());
        Ok(Some(account))
    }
}

/// The account of `tenant`'s jobs: `cumulo-job-<tenant>` when the tenant's name is a user name
/// (a lower-case letter, then lower-case letters, digits, `-` and `_`) and the whole fits in 31
/// characters; otherwise `cumulo-job-<at most 8 characters of the name>-<SHA-256 hex>`, exactly
/// 32 characters, so the two forms never meet and different tenants never share an account.
pub fn tenant_user_name(tenant: &str) -> String {
    let plain = format!("{JOB_GROUP}-{tenant}");
    let user_name_chars = tenant.starts_with(|c: char| c.is_ascii_lowercase())
        && tenant.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if user_name_chars && plain.len() < MAX_USER_NAME {
        return plain;
    }
    let prefix: String =
        tenant.chars().take(8).map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    let hex: String = Sha256::digest(tenant.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    let room = MAX_USER_NAME - JOB_GROUP.len() - prefix.len() - 2;
    format!("{JOB_GROUP}-{prefix}-{}", &hex[..room])
}

/// Resolves `user` for a server whose effective uid is `euid`. Creates a missing named account
/// (and the shared group for accounts per tenant) when the server is root. Refuses root by name.
pub fn resolve(user: &JobUser, euid: u32) -> Result<Accounts, String> {
    let name = match user {
        JobUser::Server => return Ok(Accounts::Server),
        JobUser::Named(name) if name == "root" => {
            return Err("job_user `root`: refusing to run jobs as root; set `allow_root: true` to allow it".into());
        }
        JobUser::Named(name) => Some(name.as_str()),
        JobUser::PerTenant => None,
    };
    if euid != 0 {
        tracing::warn!(
            user = name.unwrap_or("one per tenant"),
            euid,
            "the server is not root, so local jobs run as its own user; run it as root to isolate them"
        );
        return Ok(Accounts::Server);
    }
    if !Path::new(SETPRIV).exists() {
        return Err(format!("job_user: {SETPRIV} (util-linux) is needed to start jobs as another user"));
    }
    let Some(name) = name else {
        let group = match group_id(JOB_GROUP) {
            Some(gid) => gid,
            None => {
                create_system_group(JOB_GROUP)?;
                group_id(JOB_GROUP)
                    .ok_or_else(|| format!("group `{JOB_GROUP}`: created, but `getent` cannot find it"))?
            }
        };
        return Ok(Accounts::PerTenant { group, known: Mutex::default() });
    };
    let account = match lookup(name) {
        Some(account) => account,
        None => {
            create_system_user(name, &[]).map_err(|e| format!("job_user `{name}`: {e}"))?;
            lookup(name).ok_or_else(|| format!("job_user `{name}`: created, but `id` cannot find it"))?
        }
    };
    if account.uid == 0 {
        return Err(format!(
            "job_user `{name}` has uid 0: refusing to run jobs as root; set `allow_root: true` to allow it"
        ));
    }
    Ok(Accounts::One(account))
}

/// `setpriv` from util-linux, which switches uid, gid and groups before running the job.
pub const SETPRIV: &str = "/usr/bin/setpriv";

fn id_of(flag: &str, name: &str) -> Option<u32> {
    let out = Command::new("id").args([flag, name]).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().parse().ok()).flatten()
}

fn lookup(name: &str) -> Option<Account> {
    Some(Account { name: name.to_string(), uid: id_of("-u", name)?, gid: id_of("-g", name)?, groups: Vec::new() })
}

/// The gid of group `name` (`getent group`: `name:x:gid:members`).
fn group_id(name: &str) -> Option<u32> {
    let out = Command::new("getent").args(["group", name]).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    out.status.success().then(|| text.trim().split(':').nth(2)?.parse().ok()).flatten()
}

/// Runs `useradd`/`groupadd` until `exists` says the account is there: another process (a second
/// server, a test) may hold the passwd lock or create the same account at the same moment.
fn add_account(program: &str, args: &[&str], exists: impl Fn() -> bool) -> Result<(), String> {
    let mut last = String::new();
    for round in 0..40u64 {
        let out = Command::new(program).args(args).output().map_err(|e| format!("{program} cannot run: {e}"))?;
        if out.status.success() || exists() {
            return Ok(());
        }
        last = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if !last.contains("lock") {
            break;
        }
        std::thread::sleep(Duration::from_millis(25 * (round + 1).min(8)));
    }
    Err(format!("{program} failed: {last}"))
}

fn valid_user_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_USER_NAME
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && !name.starts_with('-')
}

/// Creates system account `name` with no home and no shell, its primary group `name` (reused
/// when it exists), and `extra_args` for `useradd` (e.g. its supplementary groups).
fn create_system_user(name: &str, extra_args: &[&str]) -> Result<(), String> {
    if !valid_user_name(name) {
        return Err(format!("`{name}`: expected a user name of lower-case letters, digits, `-` and `_`"));
    }
    let mut args = vec!["--system", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin"];
    // A group of the account's name left behind (or the shared group, for the one account that
    // carries its name) becomes its primary group; `--user-group` would refuse it.
    if group_id(name).is_some() {
        args.extend(["--gid", name]);
    } else {
        args.push("--user-group");
    }
    args.extend(extra_args);
    args.push(name);
    add_account("useradd", &args, || lookup(name).is_some())
        .map_err(|e| format!("does not exist and cannot be created: {e}"))?;
    tracing::info!(user = %name, "created a system user local jobs run as");
    Ok(())
}

fn create_system_group(name: &str) -> Result<(), String> {
    add_account("groupadd", &["--system", name], || group_id(name).is_some())
        .map_err(|e| format!("group `{name}` does not exist and cannot be created: {e}"))?;
    tracing::info!(group = %name, "created the group every tenant's job account is in");
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

/// The words before `bash SCRIPT` that start the job as `account`, with its supplementary groups
/// only (none for the server's user).
pub fn switch_user_prefix(account: Option<&Account>) -> Vec<String> {
    match account {
        Some(account) => {
            let groups = match account.groups.as_slice() {
                [] => "--clear-groups".to_string(),
                gids => format!("--groups={}", gids.iter().map(u32::to_string).collect::<Vec<_>>().join(",")),
            };
            vec![
                SETPRIV.to_string(),
                format!("--reuid={}", account.uid),
                format!("--regid={}", account.gid),
                groups,
                "--".to_string(),
            ]
        }
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
        let as_server = |user: JobUser, euid: u32| matches!(resolve(&user, euid), Ok(Accounts::Server));
        assert!(as_server(JobUser::Named("cumulo-job".into()), 1000));
        assert!(as_server(JobUser::PerTenant, 1000));
        assert!(as_server(JobUser::Server, 0), "allowed explicitly");
    }

    #[test]
    fn tenant_accounts_are_named_after_the_tenant_or_its_hash_and_never_meet() {
        let check = |tenant: &str, expect: &str| assert_eq!(tenant_user_name(tenant), expect, "{tenant}");
        check("research", "cumulo-job-research");
        check("team_a-2", "cumulo-job-team_a-2");
        check("abcdefghijklmnopqrst", "cumulo-job-abcdefghijklmnopqrst");
        // 21 characters would make 32: the hashed form alone is 32 long.
        let long = tenant_user_name("abcdefghijklmnopqrstu");
        assert!(long.starts_with("cumulo-job-abcdefgh-") && long.len() == 32, "{long}");
        let odd = tenant_user_name("Team A");
        assert!(odd.starts_with("cumulo-job-team_a-") && odd.len() == 32, "{odd}");
        assert_ne!(tenant_user_name("Team A"), tenant_user_name("Team_A"), "the hash tells them apart");
        assert_ne!(tenant_user_name("abcdefghijklmnopqrstu"), tenant_user_name("abcdefghijklmnopqrstv"));
        for tenant in ["", "x", "Team A", "1st", "a".repeat(64).as_str(), "ü"] {
            let name = tenant_user_name(tenant);
            assert!(valid_user_name(&name), "{tenant}: {name}");
        }
    }

    #[test]
    fn a_tenant_account_keeps_only_the_shared_group() {
        let account = Account { name: "cumulo-job-a".into(), uid: 990, gid: 989, groups: vec![995] };
        assert_eq!(switch_user_prefix(Some(&account)), [SETPRIV, "--reuid=990", "--regid=989", "--groups=995", "--"]);
        let one = Account { groups: Vec::new(), ..account };
        assert_eq!(switch_user_prefix(Some(&one))[3], "--clear-groups");
        assert!(switch_user_prefix(None).is_empty());
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
