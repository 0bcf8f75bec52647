//! `parley content validate|push|show`: brand content checked with the functions' own validator
//! ([`ContentSet::validate`]) and stored where they read it (`s3://<CONTENT_BUCKET>/content/current.json`).
use super::OpsError;
use crate::content::s3::{Got, S3Error, S3};
use crate::content::{CONTENT_TYPE, KEY};
use crate::domain::content::{Bundle, ContentSet};
use serde::Serialize;
use std::path::Path;

/// A valid set, as validated or pushed.
#[derive(Debug, Clone, Serialize)]
pub struct ContentReport {
    /// The set's version (the start of its SHA-256): what the functions log once they use it.
    pub version: String,
    pub sha256: String,
    /// The files, by path relative to the content directory.
    pub files: Vec<String>,
    /// Where it was stored (`push`, `show`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// S3's version id of the stored object (the bucket is versioned: an earlier set can be
    /// restored from it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub s3_version_id: Option<String>,
    /// Whether this is the set compiled into the functions (`show`).
    pub embedded: bool,
}

fn report(bundle: &Bundle) -> ContentReport {
    ContentReport {
        version: bundle.version(),
        sha256: bundle.sha256(),
        files: bundle.files().map(|(p, _)| p.to_string()).collect(),
        location: None,
        s3_version_id: None,
        embedded: *bundle == Bundle::embedded(),
    }
}

/// Reads and validates a content directory (like `config/`); nothing is uploaded.
pub fn validate(dir: &Path) -> Result<(Bundle, ContentReport), OpsError> {
    let bundle = Bundle::from_dir(dir).map_err(|e| OpsError::Invalid(format!("content refused: {e}")))?;
    ContentSet::validate(&bundle).map_err(|e| OpsError::Invalid(format!("content refused: {e}")))?;
    let report = report(&bundle);
    Ok((bundle, report))
}

fn s3_error(operation: &'static str, e: S3Error) -> OpsError {
    match e {
        S3Error::Signing(_) | S3Error::Invalid(_) => OpsError::NotConfigured(format!("{operation}: {e}")),
        _ => OpsError::Aws { operation, detail: e.to_string() },
    }
}

/// Validates, then uploads the set in one PutObject (atomic: readers see the old set or the new
/// one, never a mix). Invalid content is refused before anything is sent.
pub async fn push(s3: &S3, bucket: &str, dir: &Path) -> Result<ContentReport, OpsError> {
    let (bundle, mut report) = validate(dir)?;
    let put = s3
        .put_object(bucket, KEY, CONTENT_TYPE, bundle.to_stored().into())
        .await
        .map_err(|e| s3_error("s3:PutObject", e))?;
    report.location = Some(format!("s3://{bucket}/{KEY}"));
    report.s3_version_id = put.version_id;
    Ok(report)
}

/// The stored set: its version and files, checked as the functions check it.
pub async fn show(s3: &S3, bucket: &str) -> Result<ContentReport, OpsError> {
    let body = match s3.get_object(bucket, KEY, None).await.map_err(|e| s3_error("s3:GetObject", e))? {
        Got::Object { body, .. } => body,
        Got::Missing => return Err(OpsError::NotFound("content set")),
        Got::NotModified => return Err(OpsError::Aws { operation: "s3:GetObject", detail: "unexpected 304".into() }),
    };
    let bundle =
        Bundle::from_stored(&body).map_err(|e| OpsError::Invalid(format!("the stored set is refused: {e}")))?;
    ContentSet::validate(&bundle).map_err(|e| OpsError::Invalid(format!("the stored set is refused: {e}")))?;
    let mut report = report(&bundle);
    report.location = Some(format!("s3://{bucket}/{KEY}"));
    Ok(report)
}
