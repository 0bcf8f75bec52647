//! Records which AWS operations each function performs, in IAM terms, so `make test` can diff
//! them against the function's policy in template.yaml (`.ci/check-iam.py`).
//!
//! In AWS every function has its own role; here every function gets its own SDK clients, each
//! carrying a [`Recorder`] that tags the function's calls with its name and the template
//! resource they touch. The recorder reads the serialized request (both DynamoDB and SQS speak
//! AWS JSON: the operation is in `x-amz-target`, table/index/queue in the body), so it sees what
//! is really sent, including the actions inside a transaction.
//!
//! With `PARLEY_IAM_RECORD_DIR` set (the Makefile sets it for `make test`), each new record is
//! also appended as one JSON line to `<dir>/<pid>.jsonl`.
use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

/// The environment variable naming the directory the records are appended to.
pub const RECORD_DIR_ENV: &str = "PARLEY_IAM_RECORD_DIR";

/// One AWS call, as IAM authorises it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Operation {
    /// The function (template `BuildProperties.Binary`), e.g. `channel-webhook`.
    pub function: String,
    /// The IAM action, e.g. `dynamodb:PutItem` (also for a Put inside `TransactWriteItems`).
    pub action: String,
    /// The template resource: a logical id (`Table`, `OutboundQueue`) or `Table/index/gsi1`;
    /// `unknown:<name>` when the name is no provisioned resource.
    pub resource: String,
    /// The SDK operation that carried the action, e.g. `TransactWriteItems`.
    pub operation: String,
}

/// Local resource names → template logical ids.
#[derive(Debug, Default)]
pub struct Resources {
    tables: BTreeMap<String, String>,
    queues: BTreeMap<String, String>,
    buckets: BTreeMap<String, String>,
}

impl Resources {
    pub fn new(provisioned: &crate::provision::Provisioned) -> Self {
        let flip = |m: &BTreeMap<String, String>| m.iter().map(|(k, v)| (v.clone(), k.clone())).collect();
        Self {
            tables: flip(&provisioned.tables),
            queues: flip(&provisioned.queues),
            buckets: flip(&provisioned.buckets),
        }
    }

    /// `ContentBucket/content/current.json`, as check-iam reads `${ContentBucket.Arn}/content/current.json`.
    fn object(&self, bucket: &str, key: Option<&str>) -> String {
        let logical = self.buckets.get(bucket).cloned().unwrap_or_else(|| format!("unknown:{bucket}"));
        match key {
            Some(key) => format!("{logical}/{key}"),
            None => logical,
        }
    }

    fn table(&self, name: &str) -> String {
        self.tables.get(name).cloned().unwrap_or_else(|| format!("unknown:{name}"))
    }

    fn queue(&self, url: &str) -> String {
        self.queues.get(url).cloned().unwrap_or_else(|| format!("unknown:{url}"))
    }
}

/// The operations of one local system, shared by all its recorders.
#[derive(Debug, Default)]
pub struct Journal {
    seen: Mutex<BTreeSet<Operation>>,
}

impl Journal {
    pub fn operations(&self) -> Vec<Operation> {
        self.seen.lock().map(|s| s.iter().cloned().collect()).unwrap_or_default()
    }

    fn add(&self, op: Operation) {
        let new = self.seen.lock().map(|mut s| s.insert(op.clone())).unwrap_or(false);
        if new {
            append_to_file(&op);
        }
    }
}

/// Appends `op` to this process's record file once per process (many systems run per test
/// binary; the check only needs the union).
fn append_to_file(op: &Operation) {
    static WRITTEN: OnceLock<Mutex<HashSet<Operation>>> = OnceLock::new();
    let Some(dir) = std::env::var_os(RECORD_DIR_ENV).filter(|d| !d.is_empty()) else {
        return;
    };
    let mut written = match WRITTEN.get_or_init(Default::default).lock() {
        Ok(w) => w,
        Err(poisoned) => poisoned.into_inner(),
    };
    if !written.insert(op.clone()) {
        return;
    }
    let path = std::path::Path::new(&dir).join(format!("{}.jsonl", std::process::id()));
    let line = serde_json::to_string(op).unwrap_or_default();
    let appended = std::fs::create_dir_all(&dir).and_then(|()| {
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&path)?;
        writeln!(f, "{line}")
    });
    // A lost record would make the IAM check report a permission as unused: say so loudly.
    if let Err(e) = appended {
        eprintln!("iam recorder: cannot append to {}: {e}", path.display());
    }
}

/// The SDK interceptor that tags one function's calls.
#[derive(Debug, Clone)]
pub struct Recorder {
    function: String,
    resources: Arc<Resources>,
    journal: Arc<Journal>,
}

impl Recorder {
    pub fn new(function: &str, resources: Arc<Resources>, journal: Arc<Journal>) -> Self {
        Self { function: function.to_string(), resources, journal }
    }
}

impl Recorder {
    /// The same recording for the S3 calls, which go through Parley's own signed HTTP client
    /// rather than an SDK client (`parley::content::s3`).
    pub fn s3_observer(&self) -> parley::content::s3::Observer {
        let me = self.clone();
        Arc::new(move |call: &parley::content::s3::S3Call| {
            me.journal.add(Operation {
                function: me.function.clone(),
                action: call.action.to_string(),
                resource: me.resources.object(&call.bucket, call.key.as_deref()),
                operation: call.action.trim_start_matches("s3:").to_string(),
            });
        })
    }
}

impl Intercept for Recorder {
    fn name(&self) -> &'static str {
        "ParleyIamRecorder"
    }

    // After serialization, once per operation (not per retry attempt).
    fn read_after_serialization(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request();
        let target = request.headers().get("x-amz-target").unwrap_or_default();
        let body: Value = request.body().bytes().and_then(|b| serde_json::from_slice(b).ok()).unwrap_or(Value::Null);
        for (action, resource) in actions(target, &body, &self.resources) {
            self.journal.add(Operation {
                function: self.function.clone(),
                action,
                resource,
                operation: target.rsplit('.').next().unwrap_or(target).to_string(),
            });
        }
        Ok(())
    }
}

/// The IAM (action, resource) pairs one request needs.
fn actions(target: &str, body: &Value, res: &Resources) -> Vec<(String, String)> {
    let (service, op) = match target.split_once('.') {
        Some(("DynamoDB_20120810", op)) => ("dynamodb", op),
        Some(("AmazonSQS", op)) => ("sqs", op),
        _ => return vec![(format!("unknown:{target}"), "unknown".into())],
    };
    let str_of = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    if service == "sqs" {
        // The batch calls are authorised by their single-message actions.
        let action = match op {
            "SendMessageBatch" => "SendMessage",
            "DeleteMessageBatch" => "DeleteMessage",
            "ChangeMessageVisibilityBatch" => "ChangeMessageVisibility",
            other => other,
        };
        let resource = str_of(body, "QueueUrl").map(|u| res.queue(&u)).unwrap_or_else(|| "*".into());
        return vec![(format!("sqs:{action}"), resource)];
    }
    let table_of = |v: &Value| {
        let table = str_of(v, "TableName").map(|t| res.table(&t)).unwrap_or_else(|| "*".into());
        match str_of(v, "IndexName") {
            Some(index) => format!("{table}/index/{index}"),
            None => table,
        }
    };
    match op {
        // There is no IAM action for the transactions: each contained action is authorised.
        "TransactWriteItems" | "TransactGetItems" => body
            .get("TransactItems")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|item| item.as_object()?.iter().next())
            .map(|(kind, inner)| {
                let action = match kind.as_str() {
                    "Put" => "PutItem",
                    "Update" => "UpdateItem",
                    "Delete" => "DeleteItem",
                    "ConditionCheck" => "ConditionCheckItem",
                    "Get" => "GetItem",
                    other => other,
                };
                (format!("dynamodb:{action}"), table_of(inner))
            })
            .collect(),
        "BatchWriteItem" | "BatchGetItem" => body
            .get("RequestItems")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .map(|(table, _)| (format!("dynamodb:{op}"), res.table(table)))
            .collect(),
        _ => vec![(format!("dynamodb:{op}"), table_of(body))],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn res() -> Resources {
        Resources {
            tables: [("t1-table".to_string(), "Table".to_string())].into(),
            queues: [("http://q/1/t1-outbound.fifo".to_string(), "OutboundQueue".to_string())].into(),
            buckets: BTreeMap::new(),
        }
    }

    fn pairs(target: &str, body: Value) -> Vec<(String, String)> {
        actions(target, &body, &res())
    }

    #[test]
    fn transactions_are_authorised_per_contained_action() {
        let body = json!({"TransactItems": [
            {"Put": {"TableName": "t1-table"}},
            {"ConditionCheck": {"TableName": "t1-table"}},
            {"Update": {"TableName": "t1-table"}},
            {"Delete": {"TableName": "t1-table"}},
        ]});
        let got = pairs("DynamoDB_20120810.TransactWriteItems", body);
        let want: Vec<(String, String)> =
            ["dynamodb:PutItem", "dynamodb:ConditionCheckItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"]
                .iter()
                .map(|a| (a.to_string(), "Table".to_string()))
                .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn index_queries_name_the_index_and_batches_their_tables() {
        assert_eq!(
            pairs("DynamoDB_20120810.Query", json!({"TableName": "t1-table", "IndexName": "gsi1"})),
            vec![("dynamodb:Query".into(), "Table/index/gsi1".into())]
        );
        assert_eq!(
            pairs("DynamoDB_20120810.BatchWriteItem", json!({"RequestItems": {"t1-table": []}})),
            vec![("dynamodb:BatchWriteItem".into(), "Table".into())]
        );
        assert_eq!(
            pairs("DynamoDB_20120810.GetItem", json!({"TableName": "other"})),
            vec![("dynamodb:GetItem".into(), "unknown:other".into())]
        );
    }

    #[test]
    fn sqs_batches_need_their_single_message_actions() {
        let q = json!({"QueueUrl": "http://q/1/t1-outbound.fifo"});
        for (op, action) in [
            ("SendMessageBatch", "sqs:SendMessage"),
            ("DeleteMessageBatch", "sqs:DeleteMessage"),
            ("ChangeMessageVisibilityBatch", "sqs:ChangeMessageVisibility"),
            ("GetQueueAttributes", "sqs:GetQueueAttributes"),
        ] {
            assert_eq!(pairs(&format!("AmazonSQS.{op}"), q.clone()), vec![(action.into(), "OutboundQueue".into())]);
        }
    }
}
