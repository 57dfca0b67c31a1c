//! SkyPilot `secrets` end to end: the server in-process and a job on the local driver (a real
//! process) that sees its secret as an environment variable, while nothing the server writes
//! (the SQLite file, the local driver's attempt files, logs) nor anything the API answers holds
//! the value.

use std::collections::BTreeMap;
use std::time::Duration;

use cumulo_api::client::Client;
use cumulo_server::{FleetFile, Options, start};
use cumulo_types::{JobId, JobState};

const FLEET: &str = "
tenants: [{name: default}]
clusters:
  - {name: here, provider: local, region: this-machine, capacity: on-demand, price_per_node_hour: '0', driver: {kind: local}}
";

/// The secret's value: long and unusual, so finding it anywhere is no accident.
const VALUE: &str = "hf_s3cr3t_zq8_value_4711";

async fn server(dir: &std::path::Path) -> (cumulo_server::Server, Client) {
    let mut options = Options::new(dir);
    options.listen = "127.0.0.1:0".parse().unwrap();
    options.fleet = FleetFile::parse(FLEET, "test fleet").unwrap();
    options.reconcile_interval = Duration::from_millis(100);
    let server = start(options).await.unwrap();
    let client = Client::new(&server.url, server.new_admin_token.clone()).unwrap();
    (server, client)
}

async fn finished(client: &Client, id: JobId) -> JobState {
    for _ in 0..300 {
        let state = client.job(id).await.unwrap().job.state;
        if state.is_terminal() {
            return state;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("job {id} did not finish in 30 s");
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &std::path::Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else if let Ok(bytes) = std::fs::read(&path)
            && bytes.windows(needle.len()).any(|w| w == needle)
        {
            found.push(path.display().to_string());
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_reaches_the_job_as_env_and_is_never_stored_or_shown_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let marks = tempfile::tempdir().unwrap();
    std::fs::set_permissions(marks.path(), std::os::unix::fs::PermissionsExt::from_mode(0o1777)).unwrap();
    let (server, client) = server(dir.path()).await;
    let m = marks.path().display();
    // The job prints its secret's length, never the value.
    let file = format!(
        "name: uses-token\nresources: {{infra: local}}\nsecrets:\n  HF_TOKEN: null\nrun: printf %s \"$HF_TOKEN\" | wc -c > {m}/len; echo length $(cat {m}/len)\n"
    );
    let with_secret = client.clone().with_secrets(BTreeMap::from([("HF_TOKEN".to_string(), VALUE.to_string())]));
    let id = with_secret.submit(&file, Some("secret-1")).await.unwrap().id;
    assert_eq!(finished(&client, id).await, JobState::Succeeded);
    let len = std::fs::read_to_string(marks.path().join("len")).unwrap();
    assert_eq!(len.trim(), VALUE.len().to_string(), "the job saw the secret in its environment");

    let detail = client.job(id).await.unwrap();
    assert_eq!(detail.job.spec.secrets.get("HF_TOKEN"), Some(&Some("****".to_string())), "the name is shown, masked");
    let answers = [
        serde_json::to_string(&detail).unwrap(),
        serde_json::to_string(&client.list_jobs(&Default::default()).await.unwrap()).unwrap(),
    ];
    for answer in answers {
        assert!(!answer.contains(VALUE) && !answer.contains("sealed:"), "the API shows no value: {answer}");
    }
    server.shutdown();
    server.wait().await.unwrap();
    // The SQLite file (and its WAL), the local driver's request files and the job's logs.
    assert_eq!(files_containing(dir.path(), VALUE.as_bytes()), Vec::<String>::new(), "no file holds the value");
    let key = dir.path().join(cumulo_store::secrets::KEY_FILE);
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "the server's secret key is private");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_without_a_value_or_a_value_for_no_secret_is_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let (server, client) = server(dir.path()).await;
    let file = "name: t\nresources: {infra: local}\nsecrets: {HF_TOKEN: null}\nrun: echo\n";
    let err = client.submit(file, None).await.unwrap_err().to_string();
    assert!(err.contains("secrets.HF_TOKEN: no value"), "the missing value is named: {err}");
    let stray = client.clone().with_secrets(BTreeMap::from([("WANDB_KEY".to_string(), "x".to_string())]));
    let err = stray.submit("name: t\nresources: {infra: local}\nrun: echo\n", None).await.unwrap_err().to_string();
    assert!(
        err.contains("secret `WANDB_KEY` was given (--secret) but the job file declares no such secret"),
        "a value for no declared secret is named: {err}"
    );
    assert!(client.list_jobs(&Default::default()).await.unwrap().jobs.is_empty(), "nothing was stored");
    server.shutdown();
    server.wait().await.unwrap();
}
