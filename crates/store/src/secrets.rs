//! SkyPilot `secrets` at rest: values are sealed with the server's key (ChaCha20-Poly1305, a
//! random nonce per value) before a job spec is stored, opened only when an attempt is launched,
//! and masked wherever a spec is shown. The key lives in the server's data directory
//! (`secret.key`, mode 0600); a lost key makes the stored secrets unreadable, and an attempt of
//! such a job fails with a message saying so rather than running without them.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use cumulo_types::JobSpec;

/// The prefix of a sealed value: `sealed:v1:` then base64 of nonce and ciphertext.
pub const SEALED_PREFIX: &str = "sealed:v1:";

/// What a masked value reads as in the API, `cumulo job` and events.
pub const MASK: &str = "****";

/// The file in the data directory that holds the key.
pub const KEY_FILE: &str = "secret.key";

/// Why a secret could not be sealed or opened. The text never holds a value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("secrets.{name}: cannot open the sealed value ({reason}); was the server's {KEY_FILE} replaced?")]
    Open { name: String, reason: &'static str },
    #[error(
        "secrets.{name}: no value: set {name} in the submitter's environment, give `--secret {name}=VALUE`, or write the value in the job file"
    )]
    Missing { name: String },
}

/// The server's key for sealing secrets. Its `Debug` shows nothing of the key.
#[derive(Clone)]
pub struct SecretKey {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    /// A fresh key kept only in memory: secrets sealed with it cannot be opened after a restart.
    pub fn ephemeral() -> SecretKey {
        SecretKey { cipher: ChaCha20Poly1305::new(&ChaCha20Poly1305::generate_key(&mut OsRng)) }
    }

    /// Reads `dir/secret.key`, or creates it (32 random bytes, mode 0600) when it is missing.
    /// Fails when the file exists but is not a 32-byte key, or is readable by others.
    pub fn load_or_create(dir: &Path) -> Result<SecretKey, SecretError> {
        let path = dir.join(KEY_FILE);
        let error = |reason: String| SecretError::Key { path: path.display().to_string(), reason };
        match std::fs::read(&path) {
            Ok(bytes) => {
                check_private(&path).map_err(error)?;
                let key: [u8; 32] =
                    bytes.as_slice().try_into().map_err(|_| error(format!("{} bytes: expected 32", bytes.len())))?;
                Ok(SecretKey { cipher: ChaCha20Poly1305::new(Key::from_slice(&key)) })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = ChaCha20Poly1305::generate_key(&mut OsRng);
                write_private(&path, key.as_slice()).map_err(|e| error(e.to_string()))?;
                Ok(SecretKey { cipher: ChaCha20Poly1305::new(&key) })
            }
            Err(e) => Err(error(e.to_string())),
        }
    }

    /// Seals one value: `sealed:v1:BASE64(nonce || ciphertext)`.
    pub fn seal(&self, value: &str) -> String {
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self.cipher.encrypt(&nonce, value.as_bytes()).expect("ChaCha20-Poly1305 sealing never fails");
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        format!("{SEALED_PREFIX}{}", B64.encode(bytes))
    }

    /// Opens a value sealed by [`SecretKey::seal`] with this key.
    pub fn open(&self, name: &str, sealed: &str) -> Result<String, SecretError> {
        let fail = |reason| SecretError::Open { name: name.to_string(), reason };
        let text = sealed.strip_prefix(SEALED_PREFIX).ok_or_else(|| fail("not a sealed value"))?;
        let bytes = B64.decode(text).map_err(|_| fail("not base64"))?;
        if bytes.len() < 12 {
            return Err(fail("too short"));
        }
        let (nonce, ciphertext) = bytes.split_at(12);
        let clear = self.cipher.decrypt(Nonce::from_slice(nonce), ciphertext).map_err(|_| fail("wrong key"))?;
        String::from_utf8(clear).map_err(|_| fail("not UTF-8"))
    }

    /// Seals every secret of `spec` in place. Every secret must have a value by now.
    pub fn seal_spec(&self, spec: &mut JobSpec) -> Result<(), SecretError> {
        for (name, value) in spec.secrets.iter_mut() {
            let clear = value.as_deref().ok_or_else(|| SecretError::Missing { name: name.clone() })?;
            *value = Some(self.seal(clear));
        }
        Ok(())
    }

    /// The clear values of a stored spec's secrets, for the launch of an attempt only.
    pub fn open_spec(&self, spec: &JobSpec) -> Result<BTreeMap<String, String>, SecretError> {
        spec.secrets
            .iter()
            .map(|(name, value)| {
                let sealed = value.as_deref().ok_or_else(|| SecretError::Missing { name: name.clone() })?;
                Ok((name.clone(), self.open(name, sealed)?))
            })
            .collect()
    }
}

/// `spec` with every secret value replaced by [`MASK`]: what the API and the CLI show.
pub fn mask(spec: &mut JobSpec) {
    for value in spec.secrets.values_mut() {
        *value = Some(MASK.to_string());
    }
}

/// Whether two specs are the same job, secret values aside (sealed values differ on every seal).
pub fn same_but_secrets(a: &JobSpec, b: &JobSpec) -> bool {
    let (mut a, mut b) = (a.clone(), b.clone());
    mask(&mut a);
    mask(&mut b);
    a == b
}

#[cfg(unix)]
fn check_private(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).map_err(|e| e.to_string())?.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(format!("mode {:o}: expected 600 (readable by the server's user only)", mode & 0o777));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path) -> Result<(), String> {
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_with_its_key_only_and_never_shows_the_clear_text() {
        let dir = tempfile::tempdir().unwrap();
        let key = SecretKey::load_or_create(dir.path()).unwrap();
        let sealed = key.seal("hf_abc123");
        assert!(sealed.starts_with(SEALED_PREFIX) && !sealed.contains("hf_abc123"), "sealed text: {sealed}");
        assert_eq!(key.open("HF_TOKEN", &sealed).unwrap(), "hf_abc123");
        let again = SecretKey::load_or_create(dir.path()).unwrap();
        assert_eq!(again.open("HF_TOKEN", &sealed).unwrap(), "hf_abc123", "the key file is read back after a restart");
        let other = SecretKey::ephemeral();
        let err = other.open("HF_TOKEN", &sealed).unwrap_err().to_string();
        assert_eq!(
            err,
            "secrets.HF_TOKEN: cannot open the sealed value (wrong key); was the server's secret.key replaced?"
        );
    }

    #[cfg(unix)]
    #[test]
    fn the_key_file_is_private_and_a_readable_one_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        SecretKey::load_or_create(dir.path()).unwrap();
        let path = dir.path().join(KEY_FILE);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = SecretKey::load_or_create(dir.path()).unwrap_err().to_string();
        assert!(err.ends_with("mode 644: expected 600 (readable by the server's user only)"), "{err}");
    }

    #[test]
    fn a_secret_without_a_value_is_refused_naming_the_field() {
        let mut spec = JobSpec::new("j", "default");
        spec.secrets.insert("HF_TOKEN".into(), None);
        let err = SecretKey::ephemeral().seal_spec(&mut spec).unwrap_err().to_string();
        assert_eq!(
            err,
            "secrets.HF_TOKEN: no value: set HF_TOKEN in the submitter's environment, give `--secret HF_TOKEN=VALUE`, or write the value in the job file"
        );
    }
}
