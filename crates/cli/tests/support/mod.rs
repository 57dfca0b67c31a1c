//! What the end-to-end tests that run `cumulo server` with a fleet file share: the server as a
//! child that dies with the test, the CLI run in the test's folder, and its JSON output read.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

/// A running `cumulo server`, killed when the test ends (passes or panics).
pub struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Where a started server answers, and its admin token.
pub struct Started {
    pub server: Server,
    pub url: String,
    pub token: String,
}

/// Starts `cumulo server` in `dir` on a free loopback port with `fleet` as its fleet file and
/// `dir/data` as its data directory.
pub fn start_server(dir: &Path, fleet: &str) -> Started {
    std::fs::write(dir.join("fleet.yaml"), fleet).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cumulo"))
        .args(["server", "--listen", "127.0.0.1:0", "--config", "fleet.yaml", "--data-dir", "data"])
        .current_dir(dir)
        .env("CUMULO_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let server = Server(child);
    let url = stderr
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("cumulo server listening on ").map(str::to_string))
        .expect("the server printed no URL");
    let token = std::fs::read_to_string(dir.join("data/admin.token")).unwrap().trim().to_string();
    Started { server, url, token }
}

/// Runs the CLI in `dir` (its own HOME, so no user config is read) with `env` added.
pub fn cumulo(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cumulo"))
        .args(args)
        .current_dir(dir)
        .env("HOME", dir)
        .env_remove("XDG_CONFIG_HOME")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// The command's standard output as JSON, or a panic showing what it printed.
pub fn json(output: Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}\n{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
    })
}
