//! Time budgets for every outside call, derived from the function's own timeout.
//!
//! A Lambda function that waits on a hung dependency until Lambda kills it answers nothing and
//! keeps its claims; a bounded call fails fast, releases what it holds and answers a retryable
//! error. The function learns its timeout from `PARLEY_FUNCTION_TIMEOUT_SECONDS`, which
//! template.yaml sets next to each function's `Timeout` (the same number).
use crate::config::{env_parse, ConfigError};
use std::time::Duration;

/// `PARLEY_FUNCTION_TIMEOUT_SECONDS` when unset: the API functions' timeout in template.yaml.
pub const DEFAULT_FUNCTION_TIMEOUT_SECS: u64 = 10;
/// One AWS call never takes longer than this, however long the function may run: the HTTP
/// functions must answer a hung dependency with a 5xx within 3 s (error path included).
const MAX_AWS_OPERATION: Duration = Duration::from_secs(2);
const MIN_AWS_OPERATION: Duration = Duration::from_millis(500);
/// Shop REST calls (reconciler) page through order lists: longer, but still bounded.
const MAX_SHOP_HTTP: Duration = Duration::from_secs(20);
/// Per bridge delivery: Standard Webhooks recommends giving receivers 15 to 30 s.
const MAX_WEBHOOK_HTTP: Duration = Duration::from_secs(15);
/// Attempts per AWS call (first try included): a quick retry on a fresh connection, no more.
const AWS_MAX_ATTEMPTS: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// The function's timeout.
    pub function_timeout: Duration,
}

impl Default for Budget {
    fn default() -> Self {
        Self::for_timeout(Duration::from_secs(DEFAULT_FUNCTION_TIMEOUT_SECS))
    }
}

impl Budget {
    pub fn for_timeout(function_timeout: Duration) -> Self {
        Self { function_timeout }
    }

    /// From `PARLEY_FUNCTION_TIMEOUT_SECONDS` (default 10).
    pub fn from_env() -> Result<Self, ConfigError> {
        crate::config::check_settings()?;
        let secs: u64 = env_parse("PARLEY_FUNCTION_TIMEOUT_SECONDS", DEFAULT_FUNCTION_TIMEOUT_SECS)?;
        if secs == 0 {
            return Err(ConfigError::Invalid { name: "PARLEY_FUNCTION_TIMEOUT_SECONDS", reason: "must be > 0".into() });
        }
        Ok(Self::for_timeout(Duration::from_secs(secs)))
    }

    /// A fifth of the function's time, between 0.5 s and 2 s: leaves room for the error path
    /// (releasing claims) and the answer.
    pub fn aws_operation(&self) -> Duration {
        (self.function_timeout / 5).clamp(MIN_AWS_OPERATION, MAX_AWS_OPERATION)
    }

    /// Three quarters of the operation: a hung connection is given up with time left for one
    /// retry on a fresh one.
    pub fn aws_attempt(&self) -> Duration {
        self.aws_operation() * 3 / 4
    }

    /// Connecting is the quick part; a slow connect means a broken path.
    pub fn connect(&self) -> Duration {
        (self.aws_attempt() / 2).min(Duration::from_secs(1))
    }

    /// Per Graph API call: the configured `GRAPH_TIMEOUT_MS`, but at most a quarter of the
    /// function's time (the sender works through a batch).
    pub fn graph_call(&self, configured: Duration) -> Duration {
        configured.min(self.function_timeout / 4).max(MIN_AWS_OPERATION)
    }

    /// Per shop REST call: a quarter of the function's time, at most 20 s.
    pub fn shop_call(&self) -> Duration {
        (self.function_timeout / 4).clamp(MIN_AWS_OPERATION, MAX_SHOP_HTTP)
    }

    /// Per bridge delivery (one POST to the brand's receiver): a quarter of the function's
    /// time, at most 15 s.
    pub fn webhook_call(&self) -> Duration {
        (self.function_timeout / 4).clamp(MIN_AWS_OPERATION, MAX_WEBHOOK_HTTP)
    }

    pub fn aws_timeouts(&self) -> aws_config::timeout::TimeoutConfig {
        aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(self.connect())
            .operation_attempt_timeout(self.aws_attempt())
            .operation_timeout(self.aws_operation())
            .build()
    }

    pub fn aws_retries(&self) -> aws_config::retry::RetryConfig {
        aws_config::retry::RetryConfig::standard()
            .with_max_attempts(AWS_MAX_ATTEMPTS)
            .with_initial_backoff(Duration::from_millis(25))
            .with_max_backoff(self.aws_operation() / 4)
    }

    /// An HTTP client for the shop REST APIs with connect and total timeouts.
    pub fn shop_http(&self) -> Result<reqwest::Client, reqwest::Error> {
        reqwest::Client::builder()
            .connect_timeout(self.connect())
            .timeout(self.shop_call())
            .user_agent(concat!("parley/", env!("CARGO_PKG_VERSION")))
            .build()
    }

    /// An HTTP client for the token issuer's keys (JWKS): bounded like one AWS call, so a route
    /// that verifies a token still answers a hung issuer within 3 s (with a 503).
    pub fn jwks_http(&self) -> Result<reqwest::Client, reqwest::Error> {
        reqwest::Client::builder()
            .connect_timeout(self.connect())
            .timeout(self.aws_operation())
            .user_agent(concat!("parley/", env!("CARGO_PKG_VERSION")))
            .build()
    }
}

impl Budget {
    /// The bridge's HTTP client: connect and total timeouts, and no redirects (the spec counts a
    /// 3xx as a failure: the URL is to be fixed, not followed).
    pub fn webhook_http(&self) -> Result<reqwest::Client, reqwest::Error> {
        reqwest::Client::builder()
            .connect_timeout(self.connect())
            .timeout(self.webhook_call())
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("parley/", env!("CARGO_PKG_VERSION")))
            .build()
    }
}

/// Where the SDK clients connect: the standard environment (`AWS_ENDPOINT_URL_DYNAMODB` /
/// `AWS_ENDPOINT_URL_SQS` for local endpoints), unless overridden here (tests put a fault proxy
/// in between).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoints {
    pub dynamodb: Option<String>,
    pub sqs: Option<String>,
}

/// DynamoDB and SQS clients whose every call is bounded by `budget`.
pub async fn aws_clients_with(
    budget: &Budget,
    endpoints: &Endpoints,
) -> (aws_sdk_dynamodb::Client, aws_sdk_sqs::Client) {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(budget.aws_timeouts())
        .retry_config(budget.aws_retries())
        .load()
        .await;
    let mut ddb = aws_sdk_dynamodb::config::Builder::from(&config);
    if let Some(url) = &endpoints.dynamodb {
        ddb = ddb.endpoint_url(url);
    }
    let mut sqs = aws_sdk_sqs::config::Builder::from(&config);
    if let Some(url) = &endpoints.sqs {
        sqs = sqs.endpoint_url(url);
    }
    (aws_sdk_dynamodb::Client::from_conf(ddb.build()), aws_sdk_sqs::Client::from_conf(sqs.build()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_functions_fail_a_hung_call_well_inside_three_seconds() {
        let b = Budget::default();
        assert_eq!(b.aws_operation(), Duration::from_secs(2));
        assert_eq!(b.aws_attempt(), Duration::from_millis(1500));
        assert_eq!(b.connect(), Duration::from_millis(750));
        assert_eq!(b.graph_call(Duration::from_secs(10)), Duration::from_millis(2500));
    }

    #[test]
    fn long_functions_keep_aws_calls_short_and_short_functions_shrink_them() {
        let sender = Budget::for_timeout(Duration::from_secs(60));
        assert_eq!(sender.aws_operation(), Duration::from_secs(2));
        assert_eq!(sender.graph_call(Duration::from_secs(10)), Duration::from_secs(10));
        let reconciler = Budget::for_timeout(Duration::from_secs(300));
        assert_eq!(reconciler.shop_call(), Duration::from_secs(20));
        assert_eq!(sender.webhook_call(), Duration::from_secs(15));
        let tiny = Budget::for_timeout(Duration::from_secs(3));
        assert_eq!(tiny.aws_operation(), Duration::from_millis(600));
        assert!(tiny.aws_attempt() < tiny.aws_operation());
        assert!(tiny.connect() <= tiny.aws_attempt());
    }
}
