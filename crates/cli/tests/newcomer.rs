//! A newcomer's first hour with the real binary on loopback (issue 15): a second `cumulo up` in
//! the same folder is refused and names the first; `up` prints a dashboard sign-in link;
//! `submit a b c` submits each file on its own, prints every result and exits non-zero when one
//! failed, and running it again makes no second jobs; `logs -f` right after a submit waits for the
//! first attempt; invoices refuse an unknown provider and default to this month.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

struct Up(Child);

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn cumulo(home: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cumulo"));
    command.args(args).current_dir(home).env("HOME", home).env_remove("XDG_CONFIG_HOME");
    command.env_remove("CUMULO_SERVER").env_remove("CUMULO_TOKEN").env_remove("CUMULO_CONFIG");
    command.env("COLUMNS", "200");
    command.output().expect("cannot run cumulo")
}

fn text(output: &Output) -> (String, String) {
    (String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned())
}

fn json(output: Output) -> serde_json::Value {
    let (stdout, stderr) = text(&output);
    assert!(output.status.success(), "failed: {stderr}\n{stdout}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

/// Starts `cumulo up` in `dir` and returns it with the lines it printed up to `saved to:`.
fn up(dir: &Path) -> (Up, Vec<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cumulo"))
        .args(["up", "--listen", "127.0.0.1:0"])
        .current_dir(dir)
        .env("HOME", dir)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("CUMULO_CONFIG")
        .env("CUMULO_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        let done = line.trim().starts_with("saved to:");
        printed.push(line);
        if done {
            break;
        }
    }
    // Keep reading what it prints later: a closed pipe would end it (SIGPIPE).
    std::thread::spawn(move || lines.for_each(drop));
    (Up(child), printed)
}

#[test]
fn a_second_up_in_one_folder_is_refused_and_names_the_first() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let (first, printed) = up(dir);
    let url = printed.iter().find_map(|l| l.strip_prefix("Cumulo is up: ")).expect("up printed its URL").trim();
    let token = printed.iter().find_map(|l| l.trim().strip_prefix("admin token: ")).expect("up printed a token");
    let link = printed.iter().find_map(|l| l.trim().strip_prefix("dashboard:")).expect("up printed a dashboard link");
    assert!(link.trim().starts_with(&format!("{url}/#token={token}")), "the link signs the browser in: {link}");

    let second = cumulo(dir, &["up", "--listen", "127.0.0.1:0"]);
    let (_, stderr) = text(&second);
    assert!(!second.status.success(), "a second up in the same folder must not start");
    assert!(stderr.contains("already running"), "{stderr}");
    assert!(stderr.contains(&format!("at {url}")), "the refusal names the running server: {stderr}");
    assert!(stderr.contains(&format!("pid {}", first.0.id())), "and its pid: {stderr}");

    // Once the first is gone (as after kill -9), its lock file is stale and a new up starts.
    drop(first);
    let (_again, printed) = up(dir);
    assert!(printed.iter().any(|l| l.starts_with("Cumulo is up: ")), "{printed:?}");
}

#[test]
fn submit_takes_each_file_on_its_own_and_a_rerun_makes_no_second_jobs() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let (_up, _) = up(dir);
    std::fs::write(dir.join("a.yaml"), "name: a\nresources: {cpus: 1, infra: local}\nrun: echo a\n").unwrap();
    std::fs::write(dir.join("b.yaml"), "name: b\nnum_nodes: 0\nrun: echo b\n").unwrap();
    std::fs::write(
        dir.join("c.yaml"),
        "name: c1\nresources: {cpus: 1, infra: local}\nrun: echo c1\n---\nname: c2\nresources: {cpus: 1, infra: local}\nrun: echo c2\n",
    )
    .unwrap();

    let first = cumulo(dir, &["submit", "a.yaml", "b.yaml", "c.yaml"]);
    let (stdout, stderr) = text(&first);
    assert!(!first.status.success(), "one file failed: the exit code says so\n{stdout}");
    assert!(stdout.contains("a.yaml") && stdout.contains("c.yaml"), "the files after the bad one went in:\n{stdout}");
    assert_eq!(stdout.matches("created").count(), 3, "a, c1 and c2 were created:\n{stdout}");
    assert!(stdout.contains("not submitted"), "b's line says it did not go in:\n{stdout}");
    assert!(stderr.contains("b.yaml: ") && stderr.contains("num_nodes"), "b's error is printed whole: {stderr}");
    let jobs = json(cumulo(dir, &["jobs", "-o", "json"]))["jobs"].as_array().unwrap().len();
    assert_eq!(jobs, 3);

    // The same command again, after fixing nothing: the same ids, no new jobs.
    let again = json(cumulo(dir, &["submit", "a.yaml", "c.yaml", "-o", "json"]));
    let created: Vec<bool> = again.as_array().unwrap().iter().map(|s| s["created"].as_bool().unwrap()).collect();
    assert_eq!(created, [false, false, false], "a re-run answers with the first jobs: {again}");
    assert_eq!(json(cumulo(dir, &["jobs", "-o", "json"]))["jobs"].as_array().unwrap().len(), 3);
    let rerun = cumulo(dir, &["submit", "a.yaml"]);
    assert!(rerun.status.success());
    assert!(text(&rerun).0.contains("already submitted"), "{}", text(&rerun).0);

    // --new submits the same content again.
    let new = json(cumulo(dir, &["submit", "--new", "a.yaml", "-o", "json"]));
    assert_eq!(new[0]["created"], true, "{new}");
    assert_eq!(json(cumulo(dir, &["jobs", "-o", "json"]))["jobs"].as_array().unwrap().len(), 4);
}

#[test]
fn logs_follow_waits_for_the_first_attempt() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let (_up, _) = up(dir);
    std::fs::write(dir.join("late.yaml"), "name: late\nresources: {cpus: 1, infra: local}\nrun: echo started-late\n")
        .unwrap();
    // Submitted and followed at once: the job has no attempt yet when `logs -f` asks.
    let submitted = json(cumulo(dir, &["submit", "late.yaml", "-o", "json"]));
    let id = submitted[0]["id"].as_u64().unwrap().to_string();
    let followed = cumulo(dir, &["logs", "-f", &id]);
    let (stdout, stderr) = text(&followed);
    assert!(followed.status.success(), "logs -f failed instead of waiting: {stderr}");
    assert!(stdout.contains("started-late"), "{stdout}");

    // A job that never starts and is cancelled: the wait ends with the reason.
    std::fs::write(dir.join("never.yaml"), "name: never\nresources: {accelerators: GB200:4}\nnum_nodes: 100\nrun: x\n")
        .unwrap();
    let never = json(cumulo(dir, &["submit", "never.yaml", "-o", "json"]))[0]["id"].as_u64().unwrap().to_string();
    let follower = Command::new(env!("CARGO_BIN_EXE_cumulo"))
        .args(["logs", "-f", &never])
        .current_dir(dir)
        .env("HOME", dir)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("CUMULO_CONFIG")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert!(cumulo(dir, &["cancel", &never]).status.success());
    let waited = follower.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&waited.stderr);
    assert!(!waited.status.success(), "a job cancelled before it started has no log");
    assert!(stderr.contains(&format!("job {never} is cancelled and never started attempt 1")), "{stderr}");
}

#[test]
fn invoices_refuse_an_unknown_provider_and_default_to_this_month() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let (_up, _) = up(dir);
    let typo = cumulo(dir, &["invoice", "--provider", "awz"]);
    let (_, stderr) = text(&typo);
    assert!(!typo.status.success());
    assert!(
        stderr.contains("unknown provider `awz` for --provider: expected one of aws, azure, coreweave"),
        "{stderr}"
    );
    let invoice = json(cumulo(dir, &["invoice", "--provider", "aws", "-o", "json"]));
    let this_month = chrono::Utc::now().format("%Y-%m-01").to_string();
    assert!(
        invoice["period_start"].as_str().unwrap_or_default().starts_with(&this_month),
        "--month defaults to this month: {invoice}"
    );
}

#[test]
fn the_built_in_catalog_sells_spot_and_hints_at_near_gpu_names() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let list = cumulo(dir, &["catalog", "list", "--gpu", "H100", "-o", "json"]);
    let offers: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let spot = offers["offers"].as_array().unwrap().iter().filter(|o| !o["spot_price"].is_null()).count();
    assert!(spot > 0, "some H100 offer has a spot price, so spot jobs are feasible: {offers}");

    let a100 = cumulo(dir, &["catalog", "list", "--gpu", "A100"]);
    let (_, stderr) = text(&a100);
    assert!(a100.status.success(), "{stderr}");
    assert!(
        stderr.contains("no A100 offers in this catalog; it has A100-80GB"),
        "the hint names the near model: {stderr}"
    );

    std::fs::write(dir.join("spot.yaml"), "name: s\nresources: {accelerators: H100:8, use_spot: true}\nrun: train\n")
        .unwrap();
    let offers = cumulo(dir, &["offers", "spot.yaml"]);
    let (stdout, stderr) = text(&offers);
    assert!(offers.status.success(), "a spot H100 job has an offer on the built-in catalog: {stdout}{stderr}");
    assert!(stdout.contains("spot"), "{stdout}");
}
