//! What every command that talks to a server shares: `--server`/`--token` (or `CUMULO_SERVER`/
//! `CUMULO_TOKEN`, or the user config that `cumulo up` writes), a tokio runtime and a spinner.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use cumulo_api::client::Client;
use serde::{Deserialize, Serialize};

/// Where to reach the server.
#[derive(clap::Args, Clone, Debug)]
pub struct Remote {
    /// Server URL, e.g. http://127.0.0.1:8080 (default: the one `cumulo up` saved)
    #[arg(long, env = "CUMULO_SERVER")]
    pub server: Option<String>,
    /// API token (default: the one `cumulo up` saved)
    #[arg(long, env = "CUMULO_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// The user's saved connection: `$XDG_CONFIG_HOME/cumulo/config.yaml` (mode 600).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct UserConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl UserConfig {
    pub fn path() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("CUMULO_CONFIG") {
            return Some(PathBuf::from(dir));
        }
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
        Some(base.join("cumulo").join("config.yaml"))
    }

    pub fn load() -> anyhow::Result<UserConfig> {
        let Some(path) = UserConfig::path() else { return Ok(UserConfig::default()) };
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_yaml::from_str(&text).with_context(|| format!("invalid config file {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(UserConfig::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Saves to [`UserConfig::path`], readable by the owner only; returns the path.
    pub fn save(&self) -> anyhow::Result<PathBuf> {
        let path = UserConfig::path().context("no HOME or XDG_CONFIG_HOME to keep the config in")?;
        let text = format!("# written by `cumulo up`\n{}", serde_yaml::to_string(self)?);
        cumulo_server::write_secret_file(&path, text.trim_end())?;
        Ok(path)
    }
}

impl Remote {
    /// A client for the chosen server, flags first, then environment, then the user config.
    pub fn client(&self) -> anyhow::Result<Client> {
        let saved = UserConfig::load()?;
        let server = self.server.clone().or(saved.server).context(
            "no server given: pass --server URL, set CUMULO_SERVER, or run `cumulo up` to start one and save it",
        )?;
        let token = self.token.clone().or(saved.token);
        Ok(Client::new(&server, token)?)
    }
}

/// A tokio runtime for one command.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")
}

/// A spinner on stderr (hidden when stderr is not a terminal).
pub fn spinner(message: impl Into<String>) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("valid template"));
    bar.set_message(message.into());
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// How long ago `at` was, shortly (`42s`, `5m`, `3h`, `2d`).
pub fn age(at: chrono::DateTime<chrono::Utc>) -> String {
    let s = (chrono::Utc::now() - at).num_seconds().max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}
