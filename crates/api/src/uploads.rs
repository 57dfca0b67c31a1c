//! Uploads: the local `workdir` and `file_mounts` sources of a job, sent by `cumulo submit` as one
//! tar archive before the job itself (SkyPilot uploads them too; the submitter's files are not on
//! the server's machine in general).
//!
//! `POST /v1/uploads` takes the archive (at most [`crate::Config::upload_limit_bytes`]; a larger
//! one is a 413 that says the limit), keeps it under the server's uploads directory as
//! `<sha256 hex>.tar` (mode 600 in the private data directory; the same bytes twice are kept
//! once), and answers its id `sha256:<hex>`. A submit that names it in the `Cumulo-Upload`
//! header gets it in [`cumulo_types::JobSpec::upload`]; drivers that unpack uploads (the local
//! driver) put it into each node's working directory before `setup`, and the control loop keeps
//! such jobs off the others. A job file with local `file_mounts` sources and no upload is
//! refused: the server cannot read the submitter's files. Uploads are not deleted yet.

use std::path::Path;

use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use cumulo_types::JobSpec;
use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::AppState;
use crate::auth::Principal;
use crate::error::ApiError;

/// The header a submit names its upload in: `Cumulo-Upload: sha256:<hex>`.
pub const UPLOAD_HEADER: &str = "cumulo-upload";

/// The answer to `POST /v1/uploads`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Uploaded {
    /// `sha256:<hex>`: what a submit names in the `Cumulo-Upload` header.
    pub upload: String,
    pub bytes: u64,
}

/// `POST /v1/uploads`.
pub(crate) async fn create(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    principal.require_writer()?;
    let dir = state.uploads_dir.clone().ok_or_else(|| {
        ApiError::bad_request(
            "upload",
            "this server keeps no uploads: submit jobs without local workdir or file_mounts",
        )
    })?;
    let limit = state.config.upload_limit_bytes;
    let too_large = |size: String| {
        ApiError::PayloadTooLarge(format!(
            "upload of {size} is over the limit of {limit} bytes: the local workdir and file_mounts sources together \
             must be smaller; put large data on storage the cluster mounts, or fetch it in `setup`"
        ))
    };
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if let Some(length) = declared
        && length > limit as u64
    {
        return Err(too_large(format!("{length} bytes")));
    }
    let _held = state.load.admit_body(declared.map_or(limit, |l| l as usize), &state.metrics)?;
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| too_large("more bytes".to_string()))?;
    if bytes.len() < 1024 || bytes.len() % 512 != 0 {
        return Err(ApiError::bad_request(
            "upload",
            format!("a body of {} bytes is not a tar archive: expected whole 512-byte blocks", bytes.len()),
        ));
    }
    let hex: String = sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
    let len = bytes.len() as u64;
    tokio::task::spawn_blocking(move || keep(&dir, &hex, &bytes).map(|()| hex))
        .await
        .map_err(|e| ApiError::Internal(format!("storing an upload: {e}")))?
        .map(|hex| {
            (StatusCode::CREATED, Json(Uploaded { upload: format!("sha256:{hex}"), bytes: len })).into_response()
        })
        .map_err(|e| ApiError::Internal(format!("storing an upload: {e}")))
}

/// Writes `<dir>/<hex>.tar` once (through a temporary file and a rename), mode 600.
fn keep(dir: &Path, hex: &str, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let path = dir.join(format!("{hex}.tar"));
    if path.is_file() {
        return Ok(());
    }
    let tmp = dir.join(format!("{hex}.tar.{}.tmp", std::process::id()));
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
    std::io::Write::write_all(&mut file, bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, &path)
}

/// The upload a submit names (`Cumulo-Upload`), checked to be one this server holds.
pub(crate) fn given_upload(state: &AppState, headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(UPLOAD_HEADER) else { return Ok(None) };
    let text = value.to_str().unwrap_or("").trim();
    let bad = |reason: String| ApiError::bad_request("Cumulo-Upload", reason);
    let hex = cumulo_types::job::upload_hex(text)
        .ok_or_else(|| bad(format!("`{text}`: expected sha256:<64 hex digits> as POST /v1/uploads answered")))?;
    let held = state.uploads_dir.as_ref().is_some_and(|dir| dir.join(format!("{hex}.tar")).is_file());
    if !held {
        return Err(bad(format!("`{text}`: no such upload on this server: POST it to /v1/uploads first")));
    }
    Ok(Some(text.to_string()))
}

/// Gives `spec` the submit's upload; a job with local `file_mounts` sources and none is refused
/// (`path` prefixes the field, `jobs[i].` in a batch).
pub(crate) fn attach_upload(spec: &mut JobSpec, upload: Option<&str>, path: &str) -> Result<(), ApiError> {
    let local_workdir = spec.workdir.as_deref().is_some_and(cumulo_types::job::is_local_source);
    match upload {
        // A job of the batch with nothing local does not need it (and is not kept to clusters
        // that unpack uploads).
        Some(_) if !local_workdir && spec.local_file_mounts().next().is_none() => {}
        Some(upload) => spec.upload = Some(upload.to_string()),
        None => {
            if let Some((dest, source)) = spec.local_file_mounts().next() {
                return Err(ApiError::bad_request(
                    format!("{path}file_mounts.{dest}"),
                    format!(
                        "local source `{source}` is on the submitter's machine and no upload came with the job: \
                         submit with `cumulo submit`, which uploads it (POST /v1/uploads, then the Cumulo-Upload header)"
                    ),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_mounts_without_an_upload_are_refused_naming_the_destination() {
        let mut spec = JobSpec::new("j", "t");
        spec.file_mounts.insert("/data".into(), "s3://bucket/data".into());
        attach_upload(&mut spec, None, "").expect("a bucket alone needs no upload");
        spec.file_mounts.insert("~/code".into(), "./src".into());
        let err = attach_upload(&mut spec, None, "jobs[1].").unwrap_err();
        let ApiError::BadRequest { field, reason } = err else { panic!("a 400") };
        assert_eq!(field.as_deref(), Some("jobs[1].file_mounts.~/code"));
        assert!(reason.contains("`./src`") && reason.contains("cumulo submit"), "{reason}");
        let id = format!("sha256:{}", "a".repeat(64));
        attach_upload(&mut spec, Some(&id), "").unwrap();
        assert_eq!(spec.upload.as_deref(), Some(id.as_str()));
        let mut bare = JobSpec::new("k", "t");
        attach_upload(&mut bare, Some(&id), "").unwrap();
        assert_eq!(bare.upload, None, "nothing local: no upload, no restriction");
    }
}
