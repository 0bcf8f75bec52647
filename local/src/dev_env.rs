//! `target/dev.env` (`PARLEY_DEV_ENV`): what `parley --local` needs to reach the system `make dev`
//! runs — the local endpoints, the table, every queue and DLQ, and the API's URL. Written at the
//! start, removed at a clean stop. No secrets: the CLI reads those from the settings file.
use crate::Running;
use parley::ops::queues::QueueName;
use std::path::PathBuf;

/// The file's content.
pub fn render(running: &Running) -> String {
    let mut lines =
        vec!["# Written by `make dev` at its start for `parley --local` (or `source`); removed when it stops."
            .to_string()];
    for var in ["AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL_S3", "AWS_REGION"] {
        if let Ok(v) = std::env::var(var) {
            lines.push(format!("{var}={v}"));
        }
    }
    // The local endpoints take any key; the caller's own credentials are never copied here.
    lines.push("AWS_ACCESS_KEY_ID=local".into());
    lines.push("AWS_SECRET_ACCESS_KEY=local".into());
    if let Some(table) = running.resources.table("Table") {
        lines.push(format!("PARLEY_TABLE={table}"));
    }
    for q in QueueName::ALL {
        let (queue, dlq) = q.logical_ids();
        if let Some(url) = running.resources.queue(queue) {
            lines.push(format!("{}={url}", q.url_var()));
        }
        if let Some(url) = running.resources.queue(dlq) {
            lines.push(format!("{}={url}", q.dlq_var()));
        }
    }
    if let Some(bucket) = running.resources.bucket("ContentBucket") {
        lines.push(format!("CONTENT_BUCKET={bucket}"));
    }
    lines.push(format!("PARLEY_API_URL={}", running.base_url));
    lines.join("\n") + "\n"
}

/// Writes the file; a failure is reported and does not stop the system.
pub fn write(running: &Running) -> Option<PathBuf> {
    let path = PathBuf::from(std::env::var("PARLEY_DEV_ENV").unwrap_or_else(|_| "target/dev.env".into()));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let _ = std::fs::create_dir_all(dir);
    }
    match std::fs::write(&path, render(running)) {
        Ok(()) => Some(path),
        Err(e) => {
            eprintln!(
                "parley-local: cannot write {} ({}): `parley --local` will not find this system",
                path.display(),
                e.kind()
            );
            None
        }
    }
}
