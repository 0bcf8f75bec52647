//! IAM as AWS enforces it: every function's AWS calls are recorded in IAM terms (the local
//! runtime gives each function its own clients) and `make test` holds them against the
//! function's policy in template.yaml with `.ci/check-iam.py`. These tests pin the parts the
//! whole-suite check relies on: what `/health` and the init warm-up call, and that the check
//! itself fails on a denied call, an unused grant and an unexercised function.
use parley_tests::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn ops_of(sys: &System, function: &str) -> BTreeSet<(String, String)> {
    sys.running
        .aws_operations()
        .into_iter()
        .filter(|o| o.function == function)
        .map(|o| (o.action, o.resource))
        .collect()
}

fn pair(action: &str, resource: &str) -> (String, String) {
    (action.to_string(), resource.to_string())
}

#[tokio::test]
async fn health_and_the_warm_up_call_only_what_the_roles_grant() {
    let sys = System::start().await;
    let r = sys.http.get(sys.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], "ok", "{body}");

    // GetItem (the warm-up and the table probe) and the backlog: nothing the role lacks, such
    // as DescribeTable, which made /health answer 503 in AWS.
    assert_eq!(
        ops_of(&sys, "channel-webhook"),
        BTreeSet::from([pair("dynamodb:GetItem", "Table"), pair("sqs:GetQueueAttributes", "OutboundQueue")])
    );
    // Every function that warms up at init does it with GetItem, which each role has.
    for function in ["consent-api", "shop-webhook", "agent-api", "campaign-api", "outbound-sender", "inbound-worker"] {
        assert!(ops_of(&sys, function).contains(&pair("dynamodb:GetItem", "Table")), "{function}");
    }
    let all = sys.running.aws_operations();
    assert!(all.iter().all(|o| o.action != "dynamodb:DescribeTable"), "{all:#?}");
    sys.stop().await;
}

const TEMPLATE: &str = r#"AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Resources:
  AFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: fn-a
    Properties:
      Handler: bootstrap
      Runtime: provided.al2023
      CodeUri: .
      Policies:
        - Statement:
            - Sid: TableAccess
              Effect: Allow
              Action:
                - dynamodb:GetItem
                - dynamodb:PutItem
              Resource: !GetAtt Table.Arn
            - Sid: IndexQuery
              Effect: Allow
              Action: dynamodb:Query
              Resource: !Sub "${Table.Arn}/index/*"
      Events:
        Work:
          Type: SQS
          Properties:
            Queue: !GetAtt Queue.Arn
  BFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: fn-b
    Properties:
      Handler: bootstrap
      Runtime: provided.al2023
      CodeUri: .
      Policies:
        - Statement:
            - Sid: Enqueue
              Effect: Allow
              Action: sqs:SendMessage
              Resource: !GetAtt Queue.Arn
  Table:
    Type: AWS::DynamoDB::Table
  Queue:
    Type: AWS::SQS::Queue
"#;

fn record(function: &str, action: &str, resource: &str, operation: &str) -> String {
    serde_json::json!({"function": function, "action": action, "resource": resource, "operation": operation})
        .to_string()
}

/// Runs the check on `TEMPLATE` and these records; returns (exit code, output).
fn check(name: &str, records: &[String]) -> (i32, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("iam-check-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("records")).unwrap();
    std::fs::write(dir.join("template.yaml"), TEMPLATE).unwrap();
    std::fs::write(dir.join("records/1.jsonl"), records.join("\n") + "\n").unwrap();
    let venv = std::env::var_os("PARLEY_VENV").map(PathBuf::from).unwrap_or_else(|| root.join(".venv"));
    let out = Command::new(venv.join("bin/python"))
        .arg(root.join(".ci/check-iam.py"))
        .arg(dir.join("template.yaml"))
        .arg(dir.join("records"))
        .output()
        .expect("the venv's python runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn the_iam_check_passes_exactly_the_granted_calls() {
    let (code, out) = check(
        "pass",
        &[
            record("fn-a", "dynamodb:GetItem", "Table", "GetItem"),
            record("fn-a", "dynamodb:PutItem", "Table", "TransactWriteItems"),
            record("fn-a", "dynamodb:Query", "Table/index/gsi1", "Query"),
            // Granted by the SQS event source, not by a statement: allowed, never required.
            record("fn-a", "sqs:DeleteMessage", "Queue", "DeleteMessageBatch"),
            record("fn-b", "sqs:SendMessage", "Queue", "SendMessageBatch"),
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ok            fn-a dynamodb:PutItem on Table  (TransactWriteItems)"), "{out}");
    assert!(out.contains("0 problem(s)"), "{out}");
}

#[test]
fn the_iam_check_fails_on_a_denied_call_an_unused_grant_and_an_unexercised_function() {
    let (code, out) = check(
        "fail",
        &[
            record("fn-a", "dynamodb:GetItem", "Table", "GetItem"),
            record("fn-a", "dynamodb:Query", "Table/index/gsi1", "Query"),
            // Not granted: AccessDenied in AWS.
            record("fn-a", "dynamodb:DeleteItem", "Table", "DeleteItem"),
            // Granted on the index only.
            record("fn-a", "dynamodb:Query", "Table", "Query"),
        ],
    );
    assert_eq!(code, 1, "{out}");
    for line in [
        "DENIED        fn-a dynamodb:DeleteItem on Table  (DeleteItem) — no statement allows it",
        "DENIED        fn-a dynamodb:Query on Table  (Query) — no statement allows it",
        "UNUSED        fn-a dynamodb:PutItem on Table  (statement TableAccess) — no test path performed it",
        "NOT EXERCISED fn-b — no recorded operation at all",
    ] {
        assert!(out.lines().any(|l| l == line), "missing {line:?} in:\n{out}");
    }
    assert!(out.contains("4 problem(s)"), "{out}");
}
