//! Creates the DynamoDB table(s) and SQS queues in the local endpoints from template.yaml itself,
//! so local runs and tests use exactly what SAM deploys (no second copy that could drift).
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_yaml_ng::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("cannot read {0}: {1}")]
    Read(String, String),
    #[error("template.yaml: {0}")]
    Template(String),
    #[error("local endpoint refused {0}: {1}")]
    Endpoint(String, String),
}

/// What was created, by the template's logical ids.
#[derive(Debug, Clone, Default)]
pub struct Provisioned {
    /// logical id → table name
    pub tables: BTreeMap<String, String>,
    /// logical id → queue URL
    pub queues: BTreeMap<String, String>,
    /// logical id → bucket name (the content bucket, created by the runtime when content is on)
    pub buckets: BTreeMap<String, String>,
}

impl Provisioned {
    pub fn table(&self, logical: &str) -> Option<&str> {
        self.tables.get(logical).map(String::as_str)
    }
    pub fn queue(&self, logical: &str) -> Option<&str> {
        self.queues.get(logical).map(String::as_str)
    }
    pub fn bucket(&self, logical: &str) -> Option<&str> {
        self.buckets.get(logical).map(String::as_str)
    }
}

fn tpl_err(msg: impl Into<String>) -> ProvisionError {
    ProvisionError::Template(msg.into())
}

/// Parsed template: resources plus parameter defaults, with the handful of intrinsics the
/// storage resources use (`!Ref` to parameters/queues, `!GetAtt Queue.Arn`).
struct Template {
    params: HashMap<String, Value>,
    resources: Vec<(String, String, Value)>, // (logical id, type, properties)
}

impl Template {
    fn load(path: &Path) -> Result<Self, ProvisionError> {
        let src = std::fs::read_to_string(path)
            .map_err(|e| ProvisionError::Read(path.display().to_string(), e.to_string()))?;
        let doc: Value = serde_yaml_ng::from_str(&src).map_err(|e| tpl_err(e.to_string()))?;
        let mut params = HashMap::new();
        if let Some(Value::Mapping(m)) = doc.get("Parameters") {
            for (k, v) in m {
                if let (Some(k), Some(d)) = (k.as_str(), v.get("Default")) {
                    params.insert(k.to_string(), d.clone());
                }
            }
        }
        let Some(Value::Mapping(res)) = doc.get("Resources") else {
            return Err(tpl_err("no Resources section"));
        };
        let resources = res
            .iter()
            .filter_map(|(k, v)| {
                let ty = v.get("Type")?.as_str()?.to_string();
                let props = v.get("Properties").cloned().unwrap_or(Value::Null);
                Some((k.as_str()?.to_string(), ty, props))
            })
            .collect();
        Ok(Self { params, resources })
    }
}

fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Resolves a property value to a string, following `!Ref` / `!GetAtt`.
fn resolve(v: &Value, tpl: &Template, arns: &HashMap<String, String>) -> Result<String, ProvisionError> {
    if let Some(s) = scalar_string(v) {
        return Ok(s);
    }
    if let Value::Tagged(t) = v {
        let arg = scalar_string(&t.value).ok_or_else(|| tpl_err(format!("unsupported {} argument", t.tag)))?;
        return match t.tag.to_string().trim_start_matches('!') {
            "Ref" => tpl
                .params
                .get(&arg)
                .and_then(scalar_string)
                .ok_or_else(|| tpl_err(format!("!Ref {arg}: no parameter default"))),
            "GetAtt" => {
                let (id, attr) = arg.split_once('.').ok_or_else(|| tpl_err(format!("!GetAtt {arg}")))?;
                match attr {
                    "Arn" => arns.get(id).cloned().ok_or_else(|| tpl_err(format!("!GetAtt {arg}: not created yet"))),
                    _ => Err(tpl_err(format!("!GetAtt {arg}: only Arn is supported locally"))),
                }
            }
            other => Err(tpl_err(format!("intrinsic !{other} is not supported in storage resources"))),
        };
    }
    Err(tpl_err(format!("cannot resolve {v:?}")))
}

fn list<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v.get(key).and_then(Value::as_sequence).into_iter().flatten()
}

fn key_schema(v: &Value) -> Result<Vec<KeySchemaElement>, ProvisionError> {
    list(v, "KeySchema")
        .map(|k| {
            let name = k.get("AttributeName").and_then(Value::as_str).ok_or_else(|| tpl_err("KeySchema name"))?;
            let ty = match k.get("KeyType").and_then(Value::as_str) {
                Some("HASH") => KeyType::Hash,
                Some("RANGE") => KeyType::Range,
                other => return Err(tpl_err(format!("KeyType {other:?}"))),
            };
            KeySchemaElement::builder().attribute_name(name).key_type(ty).build().map_err(|e| tpl_err(e.to_string()))
        })
        .collect()
}

/// Provisions every table and queue of the template under `prefix`. Existing ones are reused.
pub async fn provision(
    template: &Path,
    prefix: &str,
    ddb: &aws_sdk_dynamodb::Client,
    sqs: &aws_sdk_sqs::Client,
) -> Result<Provisioned, ProvisionError> {
    let tpl = Template::load(template)?;
    let mut out = Provisioned::default();
    for (id, ty, props) in tpl.resources.iter().filter(|(_, ty, _)| ty == "AWS::DynamoDB::Table") {
        let _ = ty;
        let name = format!("{prefix}-{id}");
        create_table(&name, props, ddb).await?;
        out.tables.insert(id.clone(), name);
    }
    // Queues that others point at (DLQs) first, so their ARNs can be resolved.
    let mut queues: Vec<&(String, String, Value)> =
        tpl.resources.iter().filter(|(_, ty, _)| ty == "AWS::SQS::Queue").collect();
    queues.sort_by_key(|(_, _, p)| p.get("RedrivePolicy").is_some());
    let mut arns = HashMap::new();
    for (id, _, props) in queues {
        let fifo = props.get("FifoQueue").and_then(Value::as_bool).unwrap_or(false);
        let name = format!("{prefix}-{id}{}", if fifo { ".fifo" } else { "" });
        let mut attrs: HashMap<QueueAttributeName, String> = HashMap::new();
        for (prop, attr) in [
            ("FifoQueue", QueueAttributeName::FifoQueue),
            ("ContentBasedDeduplication", QueueAttributeName::ContentBasedDeduplication),
            ("DeduplicationScope", QueueAttributeName::DeduplicationScope),
            ("FifoThroughputLimit", QueueAttributeName::FifoThroughputLimit),
            ("VisibilityTimeout", QueueAttributeName::VisibilityTimeout),
            ("MessageRetentionPeriod", QueueAttributeName::MessageRetentionPeriod),
            ("DelaySeconds", QueueAttributeName::DelaySeconds),
            ("ReceiveMessageWaitTimeSeconds", QueueAttributeName::ReceiveMessageWaitTimeSeconds),
            ("MaximumMessageSize", QueueAttributeName::MaximumMessageSize),
        ] {
            if let Some(v) = props.get(prop) {
                attrs.insert(attr, resolve(v, &tpl, &arns)?);
            }
        }
        if let Some(rp) = props.get("RedrivePolicy") {
            let target = rp.get("deadLetterTargetArn").ok_or_else(|| tpl_err("RedrivePolicy.deadLetterTargetArn"))?;
            let count = rp.get("maxReceiveCount").ok_or_else(|| tpl_err("RedrivePolicy.maxReceiveCount"))?;
            let count = match std::env::var("PARLEY_LOCAL_MAX_RECEIVE_COUNT") {
                Ok(v) if !v.is_empty() => v,
                _ => resolve(count, &tpl, &arns)?,
            };
            let policy = serde_json::json!({
                "deadLetterTargetArn": resolve(target, &tpl, &arns)?,
                "maxReceiveCount": count.parse::<u32>().map_err(|_| tpl_err("maxReceiveCount is not a number"))?,
            });
            attrs.insert(QueueAttributeName::RedrivePolicy, policy.to_string());
        }
        let url = sqs
            .create_queue()
            .queue_name(&name)
            .set_attributes(Some(attrs))
            .send()
            .await
            .map_err(|e| {
                ProvisionError::Endpoint(
                    format!("CreateQueue {name}"),
                    aws_sdk_sqs::error::DisplayErrorContext(&e).to_string(),
                )
            })?
            .queue_url
            .ok_or_else(|| ProvisionError::Endpoint(format!("CreateQueue {name}"), "no URL".into()))?;
        let arn = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| {
                ProvisionError::Endpoint(
                    format!("GetQueueAttributes {name}"),
                    aws_sdk_sqs::error::DisplayErrorContext(&e).to_string(),
                )
            })?
            .attributes
            .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
            .ok_or_else(|| ProvisionError::Endpoint(format!("GetQueueAttributes {name}"), "no ARN".into()))?;
        arns.insert(id.clone(), arn);
        out.queues.insert(id.clone(), url);
    }
    Ok(out)
}

async fn create_table(name: &str, props: &Value, ddb: &aws_sdk_dynamodb::Client) -> Result<(), ProvisionError> {
    let defs = list(props, "AttributeDefinitions")
        .map(|d| {
            let n = d.get("AttributeName").and_then(Value::as_str).ok_or_else(|| tpl_err("AttributeName"))?;
            let t = match d.get("AttributeType").and_then(Value::as_str) {
                Some("S") => ScalarAttributeType::S,
                Some("N") => ScalarAttributeType::N,
                Some("B") => ScalarAttributeType::B,
                other => return Err(tpl_err(format!("AttributeType {other:?}"))),
            };
            AttributeDefinition::builder()
                .attribute_name(n)
                .attribute_type(t)
                .build()
                .map_err(|e| tpl_err(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let gsis = list(props, "GlobalSecondaryIndexes")
        .map(|g| {
            let projection = g.get("Projection").ok_or_else(|| tpl_err("GSI Projection"))?;
            let pt = match projection.get("ProjectionType").and_then(Value::as_str) {
                Some("ALL") => ProjectionType::All,
                Some("KEYS_ONLY") => ProjectionType::KeysOnly,
                Some("INCLUDE") => ProjectionType::Include,
                other => return Err(tpl_err(format!("ProjectionType {other:?}"))),
            };
            let non_key: Vec<String> =
                list(projection, "NonKeyAttributes").filter_map(|v| v.as_str().map(str::to_string)).collect();
            GlobalSecondaryIndex::builder()
                .index_name(g.get("IndexName").and_then(Value::as_str).ok_or_else(|| tpl_err("IndexName"))?)
                .set_key_schema(Some(key_schema(g)?))
                .projection(
                    Projection::builder()
                        .projection_type(pt)
                        .set_non_key_attributes((!non_key.is_empty()).then_some(non_key))
                        .build(),
                )
                .build()
                .map_err(|e| tpl_err(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let created = ddb
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(defs))
        .set_key_schema(Some(key_schema(props)?))
        .set_global_secondary_indexes((!gsis.is_empty()).then_some(gsis))
        .send()
        .await;
    match created {
        Ok(_) => {}
        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_in_use_exception()) => return Ok(()),
        Err(e) => {
            return Err(ProvisionError::Endpoint(
                format!("CreateTable {name}"),
                aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string(),
            ))
        }
    }
    if let Some(ttl) = props.get("TimeToLiveSpecification") {
        let attr = ttl.get("AttributeName").and_then(Value::as_str).ok_or_else(|| tpl_err("TTL AttributeName"))?;
        let enabled = ttl.get("Enabled").and_then(Value::as_bool).unwrap_or(false);
        ddb.update_time_to_live()
            .table_name(name)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name(attr)
                    .enabled(enabled)
                    .build()
                    .map_err(|e| tpl_err(e.to_string()))?,
            )
            .send()
            .await
            .map_err(|e| {
                ProvisionError::Endpoint(
                    format!("UpdateTimeToLive {name}"),
                    aws_sdk_dynamodb::error::DisplayErrorContext(&e).to_string(),
                )
            })?;
    }
    Ok(())
}
