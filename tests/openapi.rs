//! openapi.yaml against the running router. Every documented operation is called on a fresh local
//! system, built from the document alone: path parameters, required query parameters, headers and
//! request bodies from its examples, credentials from its `security` (the local secrets).
//!
//! - With credentials, the route is served (never a 404 or 405: the examples' contact exists),
//!   the examples succeed (< 400), the status is one the document lists, the content type a
//!   documented one and the body valid against that status's schema; where `ETag` and 304 are
//!   documented, `If-None-Match` gives 304.
//! - Without credentials, an operation that requires them answers a documented 401.
//! - An admin-only operation (`x-parley-role: admin`) answers a documented 403 to an agent.
//!
//! `.ci/check-template.sh` lints the same document and holds its routes against template.yaml's.
use parley::channels::signature::{sign, Encoding};
use parley_tests::*;
use serde_json::{json, Value};
use serde_yaml_ng::Value as Yaml;
use std::time::Duration;

const DOC_URI: &str = "urn:parley:openapi";

/// One documented operation.
struct Op {
    method: reqwest::Method,
    /// The path as documented (`/consent/{channel}/{address}`).
    path: String,
    /// JSON pointer to the operation object.
    pointer: String,
    /// The operation object, in document order (examples are picked in that order).
    yaml: Yaml,
}

impl Op {
    fn label(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Caller {
    Anonymous,
    Admin,
    Agent,
}

struct Answer {
    status: u16,
    content_type: Option<String>,
    etag: Option<String>,
    body: String,
}

struct Doc {
    json: Value,
    yaml: Yaml,
    registry: jsonschema::Registry<'static>,
}

fn escape(part: &str) -> String {
    part.replace('~', "~0").replace('/', "~1")
}

impl Doc {
    fn load() -> Self {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi.yaml")).unwrap();
        let yaml: Yaml = serde_yaml_ng::from_str(&text).unwrap();
        let json: Value = serde_json::to_value(&yaml).unwrap();
        let registry = jsonschema::Registry::new()
            .add(DOC_URI, jsonschema::Resource::from_contents(json.clone()))
            .unwrap()
            .prepare()
            .unwrap();
        Doc { json, yaml, registry }
    }

    /// Every operation, in document order.
    fn operations(&self) -> Vec<Op> {
        let mut ops = Vec::new();
        for (path, item) in self.yaml["paths"].as_mapping().unwrap() {
            let path = path.as_str().unwrap();
            for (method, op) in item.as_mapping().unwrap() {
                let method = method.as_str().unwrap();
                if !["get", "put", "post", "delete", "patch", "head"].contains(&method) {
                    continue;
                }
                ops.push(Op {
                    method: method.to_uppercase().parse().unwrap(),
                    path: path.to_string(),
                    pointer: format!("/paths/{}/{method}", escape(path)),
                    yaml: op.clone(),
                });
            }
        }
        ops
    }

    /// Follows a local `$ref`; returns the object and its pointer.
    fn resolve(&self, v: &Value, pointer: String) -> (Value, String) {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let target = r.strip_prefix('#').expect("only local references");
                self.resolve(self.json.pointer(target).unwrap_or_else(|| panic!("dangling {r}")), target.to_string())
            }
            None => (v.clone(), pointer),
        }
    }

    fn op_json(&self, op: &Op) -> Value {
        self.json.pointer(&op.pointer).unwrap().clone()
    }

    /// The path item's parameters, then the operation's, resolved.
    fn parameters(&self, op: &Op) -> Vec<Value> {
        let item_pointer = op.pointer.rsplit_once('/').unwrap().0;
        let item = self.json.pointer(item_pointer).unwrap();
        [&item["parameters"], &self.op_json(op)["parameters"]]
            .into_iter()
            .filter_map(Value::as_array)
            .flatten()
            .map(|p| self.resolve(p, String::new()).0)
            .collect()
    }

    fn security(&self, op: &Value) -> Vec<serde_json::Map<String, Value>> {
        let sec = op.get("security").or_else(|| self.json.get("security"));
        sec.and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|r| r.as_object().cloned()).collect())
            .unwrap_or_default()
    }

    /// Whether the operation can only be called with credentials.
    fn requires_credentials(&self, op: &Op) -> bool {
        let sec = self.security(&self.op_json(op));
        !sec.is_empty() && sec.iter().all(|r| !r.is_empty())
    }

    fn admin_only(&self, op: &Op) -> bool {
        self.op_json(op).get("x-parley-role").and_then(Value::as_str) == Some("admin")
    }

    /// The example contact every `{channel}/{address}` path names.
    fn example_contact(&self) -> (String, String) {
        let p = &self.json["components"]["parameters"];
        (p["Channel"]["example"].as_str().unwrap().into(), p["Address"]["example"].as_str().unwrap().into())
    }

    /// The first request body example (first media type, `example` or the first of `examples`).
    fn request_body(&self, op: &Op) -> Option<(String, Vec<u8>)> {
        let content = op.yaml.get("requestBody")?.get("content")?.as_mapping()?;
        let (media, mt) = content.iter().next()?;
        let media = media.as_str().unwrap().to_string();
        let example = match mt.get("example") {
            Some(e) => e.clone(),
            None => {
                let first = mt.get("examples").and_then(Yaml::as_mapping).and_then(|m| m.values().next());
                first.and_then(|e| e.get("value")).cloned().unwrap_or_else(|| panic!("{}: no example body", op.label()))
            }
        };
        let example: Value = serde_json::to_value(example).unwrap();
        let bytes = match media.as_str() {
            "application/json" => serde_json::to_vec(&example).unwrap(),
            "application/x-www-form-urlencoded" => example
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap()))
                .collect::<Vec<_>>()
                .join("&")
                .into_bytes(),
            other => panic!("{}: no way to send a {other} example", op.label()),
        };
        Some((media, bytes))
    }

    /// Validates `instance` against the schema at `pointer`; the error messages, if any.
    fn schema_errors(&self, pointer: &str, instance: &Value) -> Vec<String> {
        // A URI fragment may not hold braces (`{channel}`): percent-encoded, as RFC 6901 says.
        let fragment = pointer.replace('%', "%25").replace('{', "%7B").replace('}', "%7D");
        let schema = json!({ "$ref": format!("{DOC_URI}#{fragment}") });
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .with_registry(&self.registry)
            .build(&schema)
            .unwrap_or_else(|e| panic!("schema at {pointer}: {e}"));
        validator
            .iter_errors(instance)
            .map(|e| match e.instance_path().to_string() {
                at if at.is_empty() => e.to_string(),
                at => format!("{e} (at {at})"),
            })
            .collect()
    }
}

struct Tokens {
    admin: String,
    agent: String,
    /// A campaign created from the document's own example: the `{id}` the campaign routes name.
    campaign: String,
}

/// Creates the campaign of `POST /campaigns`'s example (campaign ids are the server's).
async fn example_campaign(doc: &Doc, sys: &System) -> String {
    let body = doc.json["paths"]["/campaigns"]["post"]["requestBody"]["content"]["application/json"]["example"].clone();
    let r = sys.http.post(sys.url("/campaigns")).header("x-api-key", ADMIN_KEY).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 201, "the example campaign is created");
    r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string()
}

/// A bearer token as the sandbox mints it (Cognito's shape).
async fn token(sys: &System, agent: &str, role: &str) -> String {
    let r = sys
        .http
        .post(sys.url("/sandbox/agent-token"))
        .json(&json!({ "agent": agent, "role": role }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "POST /sandbox/agent-token");
    let v: Value = r.json().await.unwrap();
    v["token"].as_str().expect("a token").to_string()
}

/// The document's first server is `make dev`'s address: examples naming it mean the system itself.
fn rebase(doc: &Doc, sys: &System, v: &str) -> String {
    let local = doc.json["servers"][0]["url"].as_str().unwrap();
    match v.strip_prefix(local) {
        Some(rest) => format!("{}{rest}", sys.base),
        None => v.to_string(),
    }
}

async fn call(
    doc: &Doc,
    sys: &System,
    op: &Op,
    caller: Caller,
    tokens: Option<&Tokens>,
    extra: &[(&str, &str)],
) -> Answer {
    let params = doc.parameters(op);
    let example = |p: &Value| -> Option<String> {
        match p.get("example")? {
            Value::String(s) => Some(rebase(doc, sys, s)),
            other => Some(other.to_string()),
        }
    };
    let mut path = op.path.clone();
    let mut query = Vec::new();
    let mut headers: Vec<(String, String)> = Vec::new();
    for p in &params {
        let name = p["name"].as_str().unwrap();
        match p["in"].as_str().unwrap() {
            "path" => {
                let v = example(p).unwrap_or_else(|| panic!("{}: path parameter {name} has no example", op.label()));
                let v = match tokens {
                    Some(t) if name == "id" && op.path.starts_with("/campaigns/") => t.campaign.clone(),
                    _ => v,
                };
                path = path.replace(&format!("{{{name}}}"), &v);
            }
            "query" if p["required"] == true => query.push((name.to_string(), example(p).unwrap())),
            "header" if !name.eq_ignore_ascii_case("if-none-match") => {
                if let Some(v) = example(p) {
                    headers.push((name.to_string(), v));
                }
            }
            _ => {}
        }
    }
    let body = doc.request_body(op);
    let raw = body.as_ref().map(|(_, b)| b.as_slice()).unwrap_or_default();
    if caller != Caller::Anonymous {
        let sec = doc.security(&doc.op_json(op));
        // An agent is only asked where a bearer token is accepted; an admin takes the first way.
        let chosen = match caller {
            Caller::Agent => sec.iter().find(|r| r.contains_key("bearerAuth")),
            _ => sec.first(),
        };
        for scheme in chosen.map(|r| r.keys().cloned().collect::<Vec<_>>()).unwrap_or_default() {
            let def = &doc.json["components"]["securitySchemes"][&scheme];
            let header = def["name"].as_str().unwrap_or("authorization").to_string();
            let value = match scheme.as_str() {
                "apiKey" => ADMIN_KEY.to_string(),
                "bearerAuth" => {
                    let t = tokens.expect("bearer routes need tokens");
                    format!("Bearer {}", if caller == Caller::Agent { &t.agent } else { &t.admin })
                }
                "metaSignature" => sign(Encoding::PrefixedHex, APP_SECRET, raw),
                "shopifyHmac" => sign(Encoding::Base64, SHOPIFY_SECRET, raw),
                "wooSignature" => sign(Encoding::Base64, WOO_SECRET, raw),
                other => panic!("this test does not know how to satisfy the security scheme {other}"),
            };
            headers.push((header, value));
        }
    }
    let mut req = sys.http.request(op.method.clone(), sys.url(&path)).query(&query);
    for (k, v) in headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).chain(extra.iter().copied()) {
        req = req.header(k, v);
    }
    if let Some((media, bytes)) = body {
        req = req.header("content-type", media).body(bytes);
    }
    let r = req.send().await.unwrap_or_else(|e| panic!("{}: {e}", op.label()));
    let header = |n: &str| r.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
    let (status, content_type, etag) = (r.status().as_u16(), header("content-type"), header("etag"));
    Answer { status, content_type, etag, body: r.text().await.unwrap() }
}

/// Holds an answer against the document: a listed status, a listed content type, a valid body.
fn check_answer(doc: &Doc, op: &Op, a: &Answer, failures: &mut Vec<String>) {
    let label = op.label();
    let responses = doc.op_json(op)["responses"].clone();
    let code = a.status.to_string();
    let range = format!("{}XX", a.status / 100);
    let Some((key, documented)) =
        [&code, &range, "default"].into_iter().find_map(|k| responses.get(k).map(|r| (k.to_string(), r.clone())))
    else {
        failures.push(format!("{label}: answered {}, which the document does not list: {}", a.status, a.body));
        return;
    };
    let (resp, pointer) = doc.resolve(&documented, format!("{}/responses/{}", op.pointer, escape(&key)));
    let Some(content) = resp.get("content").and_then(Value::as_object) else {
        if !a.body.is_empty() {
            failures.push(format!("{label}: {} is documented without a body, got {:?}", a.status, a.body));
        }
        return;
    };
    let essence = a.content_type.as_deref().unwrap_or("").split(';').next().unwrap().trim().to_ascii_lowercase();
    let Some(media) = content.keys().find(|m| **m == essence).or_else(|| content.keys().find(|m| *m == "*/*")) else {
        failures.push(format!(
            "{label}: {} came as {essence:?}, documented {:?}",
            a.status,
            content.keys().collect::<Vec<_>>()
        ));
        return;
    };
    if content[media].get("schema").is_none() || media == "*/*" {
        return;
    }
    let instance = if media.ends_with("json") {
        match serde_json::from_str(&a.body) {
            Ok(v) => v,
            Err(e) => return failures.push(format!("{label}: {} body is not JSON ({e}): {}", a.status, a.body)),
        }
    } else {
        Value::String(a.body.clone())
    };
    let schema_pointer = format!("{pointer}/content/{}/schema", escape(media));
    for e in doc.schema_errors(&schema_pointer, &instance) {
        failures.push(format!("{label}: {} body does not match its schema: {e}\n    body: {}", a.status, a.body));
    }
}

/// A fresh system where the examples' contact has asked for a human (so it exists, waits, and
/// its customer-service window is open), has a tracked link, and the demo catalog is synced.
async fn system_with_example_contact(doc: &Doc) -> System {
    let sys = System::start().await;
    sys.seed_demo_catalog().await;
    let (channel, address) = doc.example_contact();
    sys.say(&channel, &address, "Hilfe").await;
    // The handover answer is out and recorded: nothing changes under the ETag checks below.
    sys.assert_settles_at(&address, 1, Duration::from_millis(300)).await;
    // The tracked link the `/r/{token}` example names, made for that contact as a campaign makes it.
    let link = sys.track_link("cmp-example", &address, "https://parley-demo.myshopify.com/collections/summer").await;
    let example = &doc.json["paths"]["/r/{token}"]["parameters"][0]["example"];
    assert_eq!(example, link.token.as_str(), "openapi.yaml's example token is the link PARLEY_LINK_KEY derives");
    sys
}

fn report(failures: Vec<String>, what: &str) {
    assert!(failures.is_empty(), "{} {what}:\n  {}", failures.len(), failures.join("\n  "));
}

#[tokio::test]
async fn every_operation_is_served_and_answers_as_documented() {
    let doc = Doc::load();
    let sys = system_with_example_contact(&doc).await;
    let tokens = Tokens {
        admin: token(&sys, "anna@example.com", "admin").await,
        agent: token(&sys, "ben@example.com", "agent").await,
        campaign: example_campaign(&doc, &sys).await,
    };
    let mut ops = doc.operations();
    // Reads first; then the agent's actions in document order (claim, reply, cart, …, release),
    // while the contact still waits for a human; then the other actions; erasing the contact last.
    ops.sort_by_key(|op| match op.method {
        reqwest::Method::GET => 0,
        reqwest::Method::DELETE => 3,
        _ if op.path.starts_with("/agent/") => 1,
        _ => 2,
    });
    let mut failures = Vec::new();
    for op in &ops {
        let a = call(&doc, &sys, op, Caller::Admin, Some(&tokens), &[]).await;
        if a.status == 404 || a.status == 405 {
            failures.push(format!("{}: not served (answered {}: {})", op.label(), a.status, a.body));
            continue;
        }
        // The document's examples are its happy path: with credentials they must succeed.
        if a.status >= 400 {
            failures.push(format!("{}: its examples were refused with {}: {}", op.label(), a.status, a.body));
        }
        check_answer(&doc, op, &a, &mut failures);
        let revalidates = doc.op_json(op)["responses"].get("304").is_some();
        if revalidates && a.status == 200 {
            // A message status may land in between: a changed answer carries a new ETag; try again.
            let mut etag = a.etag.clone();
            let mut last = None;
            for _ in 0..3 {
                let Some(tag) = etag.clone() else { break };
                let again = call(&doc, &sys, op, Caller::Admin, Some(&tokens), &[("if-none-match", &tag)]).await;
                let done = again.status == 304;
                etag = again.etag.clone();
                last = Some(again);
                if done {
                    break;
                }
            }
            match last {
                None => failures.push(format!("{}: documents 304 but its 200 carries no ETag", op.label())),
                Some(l) if l.status != 304 => {
                    failures.push(format!("{}: If-None-Match with its own ETag answered {}", op.label(), l.status))
                }
                Some(l) => check_answer(&doc, op, &l, &mut failures),
            }
        }
    }
    report(failures, "operation(s) differ from openapi.yaml");
    sys.stop().await;
}

#[tokio::test]
async fn operations_that_need_credentials_refuse_callers_without_them() {
    let doc = Doc::load();
    let sys = system_with_example_contact(&doc).await;
    let mut failures = Vec::new();
    let mut checked = 0;
    for op in doc.operations().iter().filter(|op| doc.requires_credentials(op)) {
        checked += 1;
        let a = call(&doc, &sys, op, Caller::Anonymous, None, &[]).await;
        if a.status != 401 {
            failures.push(format!("{}: without credentials answered {}, not 401: {}", op.label(), a.status, a.body));
            continue;
        }
        check_answer(&doc, op, &a, &mut failures);
    }
    assert!(checked >= 10, "only {checked} protected operations found: is openapi.yaml's security missing?");
    report(failures, "protected operation(s) did not refuse an anonymous caller as documented");
    sys.stop().await;
}

#[tokio::test]
async fn admin_only_operations_refuse_agents() {
    let doc = Doc::load();
    let sys = system_with_example_contact(&doc).await;
    let tokens = Tokens {
        admin: token(&sys, "anna@example.com", "admin").await,
        agent: token(&sys, "ben@example.com", "agent").await,
        campaign: example_campaign(&doc, &sys).await,
    };
    let admin_only: Vec<Op> = doc.operations().into_iter().filter(|op| doc.admin_only(op)).collect();
    assert!(!admin_only.is_empty(), "openapi.yaml marks no operation x-parley-role: admin");
    let mut failures = Vec::new();
    for op in &admin_only {
        let a = call(&doc, &sys, op, Caller::Agent, Some(&tokens), &[]).await;
        if a.status != 403 {
            failures.push(format!("{}: an agent's token answered {}, not 403: {}", op.label(), a.status, a.body));
            continue;
        }
        check_answer(&doc, op, &a, &mut failures);
    }
    report(failures, "admin-only operation(s) did not refuse an agent as documented");
    sys.stop().await;
}
