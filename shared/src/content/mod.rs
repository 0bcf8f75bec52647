//! Brand content without a rebuild: the functions load the current content set
//! ([`crate::domain::content`]) from S3 at cold start and re-check it every
//! `CONTENT_RECHECK_SECONDS` on an invocation, with one conditional GetObject (`If-None-Match`:
//! an unchanged set costs a 304 and no body). Whatever goes wrong — no bucket configured, no set
//! pushed yet, S3 unreachable or slow, a set that fails validation — the function keeps serving
//! what it has: the set compiled in from `config/` at first, the last good one later.
pub mod s3;

use crate::config::ConfigError;
use crate::domain::content::{Bundle, ContentError, ContentSet};
use s3::{Got, S3Error, S3};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::time::Instant;

/// The one key a content set lives at; the bucket is versioned, so every push stays retrievable.
pub const KEY: &str = "content/current.json";
pub const DEFAULT_RECHECK: Duration = Duration::from_secs(60);
pub const CONTENT_TYPE: &str = "application/json";

/// `CONTENT_BUCKET` (unset: the embedded set only) and `CONTENT_RECHECK_SECONDS` (default 60).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentSettings {
    pub bucket: Option<String>,
    pub recheck: Duration,
}

impl ContentSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        let recheck = match crate::config::env_opt("CONTENT_RECHECK_SECONDS") {
            None => DEFAULT_RECHECK,
            Some(v) => {
                v.parse::<u64>().ok().filter(|s| *s >= 1).map(Duration::from_secs).ok_or(ConfigError::Invalid {
                    name: "CONTENT_RECHECK_SECONDS",
                    reason: "must be a whole number ≥ 1".into(),
                })?
            }
        };
        Ok(Self { bucket: crate::config::env_opt("CONTENT_BUCKET"), recheck })
    }
}

/// Where the current set comes from (the port the reloader depends on).
pub trait ContentSource: Send + Sync + std::fmt::Debug {
    /// The stored set unless it still has `etag`.
    fn fetch<'a>(&'a self, etag: Option<&'a str>) -> Pin<Box<dyn Future<Output = Result<Got, S3Error>> + Send + 'a>>;
}

/// The set at `s3://<bucket>/content/current.json`.
#[derive(Debug, Clone)]
pub struct S3Source {
    pub s3: S3,
    pub bucket: String,
}

impl ContentSource for S3Source {
    fn fetch<'a>(&'a self, etag: Option<&'a str>) -> Pin<Box<dyn Future<Output = Result<Got, S3Error>> + Send + 'a>> {
        Box::pin(self.s3.get_object(&self.bucket, KEY, etag))
    }
}

/// What takes a content set: a function's App, the sender.
pub trait WithContent {
    /// A copy that serves `set` instead of its current content.
    fn with_content(&self, set: &ContentSet) -> Self;
}

/// A function's state with the content in force; swapped whole when a new set arrives, so an
/// invocation sees one consistent set from start to end.
pub struct Live<T> {
    current: RwLock<Arc<T>>,
    reload: Option<Reload>,
}

struct Reload {
    source: Arc<dyn ContentSource>,
    every: Duration,
    /// Per fetch: at cold start within the init budget, later within an invocation's.
    timeout: Duration,
    state: tokio::sync::Mutex<State>,
}

struct State {
    etag: Option<String>,
    version: String,
    next: Instant,
}

/// What one check did (tests and logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// A new valid set is now in force.
    Loaded {
        version: String,
    },
    Unchanged,
    /// Nothing stored at the key: the current set stays.
    Missing,
    /// The stored set is invalid; the current one stays.
    Refused(ContentError),
    /// S3 failed or was too slow; the current set stays.
    Unavailable(String),
}

impl<T: WithContent> Live<T> {
    /// No bucket: the content `value` was built with, for good.
    pub fn fixed(value: T) -> Self {
        Self { current: RwLock::new(Arc::new(value)), reload: None }
    }

    /// Cold start: loads the stored set (within `timeout`), else keeps the embedded one.
    pub async fn load(value: T, source: Arc<dyn ContentSource>, every: Duration, timeout: Duration) -> Self {
        let state =
            State { etag: None, version: format!("embedded {}", Bundle::embedded().version()), next: Instant::now() };
        let live = Self {
            current: RwLock::new(Arc::new(value)),
            reload: Some(Reload { source, every, timeout, state: tokio::sync::Mutex::new(state) }),
        };
        if let Some(r) = &live.reload {
            let mut state = r.state.lock().await;
            live.check(r, &mut state).await;
        }
        live
    }

    /// `CONTENT_BUCKET` set: [`Live::load`] from it, with the function's budget for the fetch;
    /// unset: [`Live::fixed`].
    pub async fn from_env(value: T) -> Result<Self, ConfigError> {
        let settings = ContentSettings::from_env()?;
        let Some(bucket) = settings.bucket else {
            tracing::info!(version = %Bundle::embedded().version(), "content: CONTENT_BUCKET unset, the embedded set is in use");
            return Ok(Self::fixed(value));
        };
        let budget = crate::budget::Budget::from_env()?;
        let http = budget
            .jwks_http()
            .map_err(|e| ConfigError::Invalid { name: "PARLEY_FUNCTION_TIMEOUT_SECONDS", reason: e.to_string() })?;
        let s3 = S3::from_env(http).await;
        let source = Arc::new(S3Source { s3, bucket });
        Ok(Self::load(value, source, settings.recheck, budget.aws_operation()).await)
    }

    /// The state to serve this invocation with; re-checks the stored set first when due (one
    /// invocation checks, the others go on with what is in force).
    pub async fn current(&self) -> Arc<T> {
        if let Some(r) = &self.reload {
            if let Ok(mut state) = r.state.try_lock() {
                if Instant::now() >= state.next {
                    self.check(r, &mut state).await;
                }
            }
        }
        self.now()
    }

    /// The state in force, without a check.
    pub fn now(&self) -> Arc<T> {
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Checks now, whatever the interval says (the local runtime's tests).
    pub async fn check_now(&self) -> Option<Checked> {
        let r = self.reload.as_ref()?;
        let mut state = r.state.lock().await;
        Some(self.check(r, &mut state).await)
    }

    async fn check(&self, r: &Reload, state: &mut State) -> Checked {
        state.next = Instant::now() + r.every;
        let fetched = match tokio::time::timeout(r.timeout, r.source.fetch(state.etag.as_deref())).await {
            Ok(fetched) => fetched,
            Err(_) => Err(S3Error::Unreachable(format!("no answer within {} ms", r.timeout.as_millis()))),
        };
        let outcome = match fetched {
            Ok(Got::NotModified) => Checked::Unchanged,
            Ok(Got::Missing) => Checked::Missing,
            Err(e) => Checked::Unavailable(e.to_string()),
            Ok(Got::Object { etag, body }) => {
                // The same bad object is not fetched again: its ETag is remembered either way.
                state.etag = etag;
                match Bundle::from_stored(&body).and_then(|b| ContentSet::validate(&b)) {
                    Ok(set) => {
                        let next = Arc::new(self.now().with_content(&set));
                        *self.current.write().unwrap_or_else(|p| p.into_inner()) = next;
                        state.version = set.version.clone();
                        Checked::Loaded { version: set.version }
                    }
                    Err(e) => Checked::Refused(e),
                }
            }
        };
        let version = state.version.as_str();
        match &outcome {
            Checked::Loaded { .. } => tracing::info!(version, "content: the stored set is in use"),
            Checked::Unchanged => tracing::debug!(version, "content: unchanged"),
            Checked::Missing => {
                tracing::warn!(version, key = KEY, "content: no set stored yet, keeping the one in use")
            }
            Checked::Refused(e) => tracing::error!(
                version,
                file = %e.file,
                problem = %e.problem,
                "content: the stored set is invalid and refused, keeping the one in use"
            ),
            Checked::Unavailable(e) => {
                tracing::warn!(version, error = %e, "content: cannot read the stored set, keeping the one in use")
            }
        }
        outcome
    }
}

impl S3 {
    /// Credentials and region from the standard AWS config chain (as the SDK clients load them);
    /// the endpoint from `AWS_ENDPOINT_URL_S3` / `AWS_ENDPOINT_URL`, as the SDKs read it.
    pub async fn from_env(http: reqwest::Client) -> S3 {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
        let endpoint = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
            .iter()
            .find_map(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()));
        let region = config.region().map(|r| r.to_string()).unwrap_or_else(|| "us-east-1".into());
        S3::from_parts(http, endpoint, region, config.credentials_provider())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A scripted source: each fetch takes the next answer.
    #[derive(Debug, Default)]
    struct Script {
        answers: Mutex<Vec<Result<Got, S3Error>>>,
        etags: Mutex<Vec<Option<String>>>,
    }

    impl ContentSource for Script {
        fn fetch<'a>(
            &'a self,
            etag: Option<&'a str>,
        ) -> Pin<Box<dyn Future<Output = Result<Got, S3Error>> + Send + 'a>> {
            self.etags.lock().unwrap().push(etag.map(str::to_string));
            let next = self.answers.lock().unwrap().remove(0);
            Box::pin(async move { next })
        }
    }

    #[derive(Debug, Clone, PartialEq)]
    struct Holder(String);

    impl WithContent for Holder {
        fn with_content(&self, set: &ContentSet) -> Self {
            Holder(set.version.clone())
        }
    }

    fn stored(edit: &str) -> Got {
        let mut files: Vec<(String, String)> =
            Bundle::embedded().files().map(|(p, t)| (p.to_string(), t.to_string())).collect();
        files.push(("flows/extra.de.toml".into(), edit.to_string()));
        files.retain(|(p, _)| !(edit.is_empty() && p == "flows/extra.de.toml"));
        let body = Bundle::from_files(files).to_stored();
        Got::Object { etag: Some(format!("\"{}\"", body.len())), body: body.into() }
    }

    #[tokio::test]
    async fn loads_at_start_rechecks_when_due_and_refuses_an_invalid_set() {
        let script = Arc::new(Script::default());
        let good = stored("");
        let Got::Object { body, .. } = &good else { unreachable!() };
        let good_version = Bundle::from_stored(body).unwrap().version();
        *script.answers.lock().unwrap() =
            vec![Ok(good), Ok(Got::NotModified), Ok(stored("not = [valid")), Err(S3Error::Unreachable("down".into()))];
        let every = Duration::from_millis(300);
        let live = Live::load(Holder("embedded".into()), script.clone(), every, Duration::from_secs(2)).await;
        assert_eq!(live.now().0, good_version);

        // Not due: no fetch.
        live.current().await;
        assert_eq!(script.etags.lock().unwrap().len(), 1);
        tokio::time::sleep(every + Duration::from_millis(50)).await;
        live.current().await;
        let etags = script.etags.lock().unwrap().clone();
        assert_eq!(etags.len(), 2);
        assert!(etags[1].is_some(), "the re-check is conditional");

        assert!(matches!(live.check_now().await, Some(Checked::Refused(e)) if e.file == "flows/extra.de.toml"));
        assert_eq!(live.now().0, good_version, "an invalid set never replaces the one in force");
        assert!(matches!(live.check_now().await, Some(Checked::Unavailable(_))));
        assert_eq!(live.now().0, good_version);
    }

    #[tokio::test]
    async fn a_missing_or_slow_store_leaves_the_embedded_set() {
        let script = Arc::new(Script::default());
        *script.answers.lock().unwrap() = vec![Ok(Got::Missing)];
        let live = Live::load(Holder("embedded".into()), script, Duration::from_secs(60), Duration::from_secs(2)).await;
        assert_eq!(live.now().0, "embedded");

        #[derive(Debug)]
        struct Hangs;
        impl ContentSource for Hangs {
            fn fetch<'a>(
                &'a self,
                _: Option<&'a str>,
            ) -> Pin<Box<dyn Future<Output = Result<Got, S3Error>> + Send + 'a>> {
                Box::pin(std::future::pending())
            }
        }
        let timeout = Duration::from_millis(100);
        let live = Live::load(Holder("embedded".into()), Arc::new(Hangs), Duration::from_secs(60), timeout).await;
        assert_eq!(live.now().0, "embedded");
        assert!(matches!(live.check_now().await, Some(Checked::Unavailable(e)) if e.contains("within 100 ms")));
    }
}
