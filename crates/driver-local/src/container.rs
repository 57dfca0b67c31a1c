//! A container runtime for the local driver: jobs with `image_id: docker:IMAGE` run inside the
//! image through `docker run` or `podman run` on this machine.
//!
//! The runtime is chosen by the fleet file (`container_runtime: docker | podman | auto`; none by
//! default, when such jobs stay off the local cluster). `auto` takes docker when its daemon
//! answers (`docker info`), else podman when it answers (`podman info`). A named runtime that does
//! not answer is an error when the driver opens.
//!
//! What a rank's container gets ([`ContainerRuntime::run_words`]): the rank's working directory
//! bind-mounted at the same path and used as the working directory (the upload was unpacked
//! there before), the job's environment by name (`-e NAME`, values never on the command line;
//! `PATH` is the image's own), the job user's uid and gid (`--user`) and its supplementary group
//! (`--group-add`, the shared `cumulo-job` of accounts per tenant) when the server switches
//! users, the host's network (ranks of a gang reach each other as local processes do), the
//! rank's GPUs, and `file_mounts` with absolute destinations bind-mounted from their copy in the
//! working directory. The container is named after the deployment, attempt and rank, removed when
//! it exits (`--rm`), and removed by force ([`ContainerRuntime::remove_words`]) when the driver has
//! to kill a rank that ignored SIGTERM. `--init` needs the runtime's init helper (docker bundles
//! one; podman uses catatonit, which Debian installs with it).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::isolation::Account;

/// Which runtime the fleet file asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RuntimeChoice {
    /// No runtime: container jobs are kept off the local cluster.
    #[default]
    None,
    /// Docker when its daemon answers, else podman when it answers, else none.
    Auto,
    Docker,
    Podman,
}

impl RuntimeChoice {
    /// Reads the fleet file's `container_runtime`.
    pub fn parse(text: &str) -> Option<RuntimeChoice> {
        match text.trim() {
            "none" => Some(RuntimeChoice::None),
            "auto" => Some(RuntimeChoice::Auto),
            "docker" => Some(RuntimeChoice::Docker),
            "podman" => Some(RuntimeChoice::Podman),
            _ => None,
        }
    }
}

/// The kind of runtime: their command lines differ in how GPUs are passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuntimeKind {
    Docker,
    Podman,
}

/// A runtime found on this machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerRuntime {
    pub kind: RuntimeKind,
    /// The program (looked up on `PATH` when relative).
    pub program: PathBuf,
    /// Words put right after the program, before `run` (e.g. podman's `--storage-driver=vfs`).
    pub global_args: Vec<String>,
}

/// One rank's container.
#[derive(Clone, Debug)]
pub struct RankContainer<'a> {
    /// The container's name ([`container_name`]).
    pub name: &'a str,
    pub image: &'a str,
    /// The rank's working directory on the host, mounted at the same path.
    pub work: &'a Path,
    /// The job's script inside `work`.
    pub script: &'a Path,
    /// Whom the job runs as; `None`: the image's own user.
    pub account: Option<&'a Account>,
    /// Names of the environment variables to pass (their values come from the runtime client's
    /// environment, which is the job's).
    pub env_names: Vec<&'a str>,
    /// The rank's GPU indices.
    pub gpus: &'a [u32],
    /// Absolute `file_mounts` destinations: (copy on the host, path in the container).
    pub binds: Vec<(PathBuf, String)>,
}

/// Runs the script with bash when the image has it, else with sh.
const IN_CONTAINER: &str = r#"if command -v bash > /dev/null 2>&1; then exec bash "$0"; else exec sh "$0"; fi"#;

/// The container of one rank: `cumulo-<deployment>-<job>.<attempt>-r<rank>`, unique per server.
pub fn container_name(deployment: Option<&str>, attempt: cumulo_driver::AttemptId, rank: u32) -> String {
    let deployment: String =
        deployment.unwrap_or("default").chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    format!("cumulo-{deployment}-{}.{}-r{rank}", attempt.job, attempt.attempt)
}

impl ContainerRuntime {
    /// The runtime `choice` names, checked to answer; `Ok(None)` for `none`, or for `auto` when
    /// neither answers.
    pub fn detect(choice: RuntimeChoice) -> Result<Option<ContainerRuntime>, String> {
        let docker = || ContainerRuntime::answering(RuntimeKind::Docker, "docker");
        let podman = || ContainerRuntime::answering(RuntimeKind::Podman, "podman");
        match choice {
            RuntimeChoice::None => Ok(None),
            RuntimeChoice::Auto => Ok(docker().or_else(|_| podman()).ok()),
            RuntimeChoice::Docker => docker().map(Some),
            RuntimeChoice::Podman => podman().map(Some),
        }
    }

    /// `program info` answered: docker's daemon is reachable, or podman can work.
    fn answering(kind: RuntimeKind, program: &str) -> Result<ContainerRuntime, String> {
        let out = Command::new(program)
            .arg("info")
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| format!("container_runtime `{program}`: cannot run `{program} info`: {e}"))?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let first = stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_string();
            return Err(format!("container_runtime `{program}`: `{program} info` failed: {first}"));
        }
        Ok(ContainerRuntime { kind, program: PathBuf::from(program), global_args: Vec::new() })
    }

    /// The words that run one rank's container, from the runtime's program to the script.
    pub fn run_words(&self, rank: &RankContainer<'_>) -> Vec<String> {
        let work = rank.work.display().to_string();
        let mut words = vec![self.program.display().to_string()];
        words.extend(self.global_args.iter().cloned());
        words.extend(["run", "--rm", "--name", rank.name, "--network=host", "--init"].map(String::from));
        if let Some(account) = rank.account {
            words.push(format!("--user={}:{}", account.uid, account.gid));
            words.extend(account.groups.iter().map(|gid| format!("--group-add={gid}")));
        }
        words.push("-v".into());
        words.push(format!("{work}:{work}"));
        for (host, inside) in &rank.binds {
            words.push("-v".into());
            words.push(format!("{}:{inside}", host.display()));
        }
        words.push("-w".into());
        words.push(work.clone());
        for name in rank.env_names.iter().filter(|n| !matches!(**n, "PATH" | "USER" | "LOGNAME")) {
            words.push("-e".into());
            words.push(name.to_string());
        }
        if !rank.gpus.is_empty() {
            match self.kind {
                RuntimeKind::Docker => {
                    let list: Vec<String> = rank.gpus.iter().map(u32::to_string).collect();
                    words.push("--gpus".into());
                    words.push(format!("\"device={}\"", list.join(",")));
                }
                RuntimeKind::Podman => {
                    for gpu in rank.gpus {
                        words.push("--device".into());
                        words.push(format!("nvidia.com/gpu={gpu}"));
                    }
                }
            }
        }
        words.push(rank.image.to_string());
        words.extend(["sh".to_string(), "-c".to_string(), IN_CONTAINER.to_string()]);
        words.push(rank.script.display().to_string());
        words
    }

    /// The words that remove a rank's container by force (it may be gone already).
    pub fn remove_words(&self, name: &str) -> Vec<String> {
        let mut words = vec![self.program.display().to_string()];
        words.extend(self.global_args.iter().cloned());
        words.extend(["rm".to_string(), "-f".to_string(), name.to_string()]);
        words
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cumulo_driver::{AttemptId, JobId};

    fn rank<'a>(gpus: &'a [u32], account: Option<&'a Account>) -> RankContainer<'a> {
        RankContainer {
            name: "cumulo-d1-7.2-r0",
            image: "vllm/vllm-openai:v0.10.0",
            work: Path::new("/tmp/cumulo-jobs/x/7.2/rank-0"),
            script: Path::new("/tmp/cumulo-jobs/x/7.2/rank-0/.cumulo-script.sh"),
            account,
            env_names: vec!["HOME", "PATH", "HF_TOKEN", "CUMULO_JOB_ID", "USER"],
            gpus,
            binds: vec![(PathBuf::from("/tmp/cumulo-jobs/x/7.2/rank-0/.cumulo-mounts/data"), "/data".into())],
        }
    }

    #[test]
    fn a_docker_rank_gets_its_work_dir_user_env_names_gpus_and_binds() {
        let docker = ContainerRuntime { kind: RuntimeKind::Docker, program: "docker".into(), global_args: vec![] };
        let account = Account { name: "cumulo-job-a".into(), uid: 998, gid: 997, groups: vec![995] };
        let words = docker.run_words(&rank(&[0, 3], Some(&account))).join(" ");
        let work = "/tmp/cumulo-jobs/x/7.2/rank-0";
        let expect = format!(
            "docker run --rm --name cumulo-d1-7.2-r0 --network=host --init --user=998:997 --group-add=995 -v {work}:{work} \
             -v {work}/.cumulo-mounts/data:/data -w {work} -e HOME -e HF_TOKEN -e CUMULO_JOB_ID \
             --gpus \"device=0,3\" vllm/vllm-openai:v0.10.0 sh -c {IN_CONTAINER} {work}/.cumulo-script.sh"
        );
        assert_eq!(words, expect, "PATH and USER stay the image's; values never on the command line");
    }

    #[test]
    fn podman_passes_gpus_as_cdi_devices_and_keeps_its_global_args() {
        let podman = ContainerRuntime {
            kind: RuntimeKind::Podman,
            program: "podman".into(),
            global_args: vec!["--storage-driver=vfs".into()],
        };
        let words = podman.run_words(&rank(&[1], None));
        assert_eq!(words[..3], ["podman", "--storage-driver=vfs", "run"]);
        assert!(!words.iter().any(|w| w.starts_with("--user")), "no account: the image's own user");
        let gpu = words.iter().position(|w| w == "--device").expect("a GPU device");
        assert_eq!(words[gpu + 1], "nvidia.com/gpu=1");
        assert_eq!(podman.remove_words("c1"), ["podman", "--storage-driver=vfs", "rm", "-f", "c1"]);
    }

    #[test]
    fn container_names_are_unique_per_deployment_attempt_and_rank() {
        let attempt = AttemptId { job: JobId(7), attempt: 2 };
        assert_eq!(container_name(Some("d_1/x"), attempt, 3), "cumulo-d-1-x-7.2-r3");
        assert_eq!(container_name(None, attempt, 0), "cumulo-default-7.2-r0");
    }

    #[test]
    fn runtime_choices_read_as_the_fleet_file_spells_them() {
        assert_eq!(RuntimeChoice::parse("auto"), Some(RuntimeChoice::Auto));
        assert_eq!(RuntimeChoice::parse("podman"), Some(RuntimeChoice::Podman));
        assert_eq!(RuntimeChoice::parse("none"), Some(RuntimeChoice::None));
        assert_eq!(RuntimeChoice::parse("lxc"), None);
        assert_eq!(ContainerRuntime::detect(RuntimeChoice::None), Ok(None));
    }
}
