//! The channel sandbox over HTTP: the Graph stand-in (validation, faults, the message log),
//! the GraphClient against it end to end, and the customer side (signed webhook deliveries).
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use parley::channels::meta::outbound::{GraphClient, SendError, SendRequest};
use parley::channels::signature::{Encoding, Verifier};
use parley::config::{MetaSettings, Secret};
use parley::domain::templates::TemplateDef;
use parley::domain::templates::Templates;
use parley::domain::{
    AccountId, Address, Button, Channel, ContactId, ListRow, ListSection, OutboundBody, Purpose, TemplateRef,
};
use parley_local::sandbox::{Sandbox, SandboxConfig};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const APP_SECRET: &str = "local-meta-app-secret";
const PHONE_ID: &str = "100000000000001";
const PAGE_ID: &str = "200000000000001";
const IG_ID: &str = "300000000000001";
const WA: &str = "4915123456789";

struct Harness {
    base: String,
    sandbox: Sandbox,
    /// Webhook deliveries the sandbox posted, each checked against the app secret.
    hooks: Arc<Mutex<Vec<Value>>>,
    /// How many of the next deliveries the webhook refuses with a 503 (as under a store timeout),
    /// and the deliveries it refused.
    refuse: Arc<Mutex<usize>>,
    refused: Arc<Mutex<Vec<Value>>>,
    hook_url: String,
    http: reqwest::Client,
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

async fn start(status_webhooks: bool) -> Harness {
    start_with(status_webhooks, Templates::embedded().unwrap()).await
}

async fn start_with(status_webhooks: bool, templates: Templates) -> Harness {
    let hooks = Arc::new(Mutex::new(Vec::new()));
    let (refuse, refused) = (Arc::new(Mutex::new(0)), Arc::new(Mutex::new(Vec::new())));
    let verifier = Verifier::new(Encoding::PrefixedHex, Secret::from(APP_SECRET), None);
    let (sink, refusals, refused_sink) = (Arc::clone(&hooks), Arc::clone(&refuse), Arc::clone(&refused));
    let webhook = Router::new().route(
        "/webhooks/meta",
        post(move |headers: HeaderMap, body: Bytes| async move {
            let sig = headers.get("x-hub-signature-256").and_then(|h| h.to_str().ok());
            if verifier.verify(&body, sig).is_err() {
                return StatusCode::UNAUTHORIZED;
            }
            let delivery: Value = serde_json::from_slice(&body).unwrap();
            let mut left = refusals.lock().unwrap();
            if *left > 0 {
                *left -= 1;
                refused_sink.lock().unwrap().push(delivery);
                return StatusCode::SERVICE_UNAVAILABLE;
            }
            sink.lock().unwrap().push(delivery);
            StatusCode::OK
        }),
    );
    let hook_base = serve(webhook).await;
    let sandbox = Sandbox::new(SandboxConfig {
        app_secret: Secret::from(APP_SECRET),
        webhook_url: format!("{hook_base}/webhooks/meta"),
        whatsapp_phone_number_id: PHONE_ID.into(),
        messenger_page_id: PAGE_ID.into(),
        instagram_account_id: IG_ID.into(),
        templates,
        status_webhooks,
    });
    let base = serve(Router::new().nest("/sandbox", sandbox.router())).await;
    Harness {
        base,
        sandbox,
        hooks,
        refuse,
        refused,
        hook_url: format!("{hook_base}/webhooks/meta"),
        http: reqwest::Client::new(),
    }
}

impl Harness {
    fn url(&self, path: &str) -> String {
        format!("{}/sandbox{path}", self.base)
    }

    async fn graph(&self, path: &str, auth: Option<&str>, body: &str) -> (u16, Value) {
        let mut req = self.http.post(self.url(path)).header("content-type", "application/json").body(body.to_string());
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn wa_send(&self, body: Value) -> (u16, Value) {
        self.graph(&format!("/graph/v25.0/{PHONE_ID}/messages"), Some("Bearer t0k3n"), &body.to_string()).await
    }

    async fn get(&self, path: &str) -> Value {
        self.http.get(self.url(path)).send().await.unwrap().json().await.unwrap()
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let resp = self.http.post(self.url(path)).json(&body).send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    fn client(&self) -> GraphClient {
        self.client_with(false)
    }

    /// A client with `WHATSAPP_MARKETING_MESSAGES_API` on or off.
    fn client_with(&self, marketing_messages_api: bool) -> GraphClient {
        GraphClient::new(&MetaSettings {
            app_secret: Secret::from(APP_SECRET),
            app_secret_previous: None,
            verify_token: Secret::from("local-verify-token"),
            access_token: Secret::from("local-access-token"),
            graph_api_base: format!("{}/sandbox/graph", self.base),
            graph_api_version: "v25.0".into(),
            graph_timeout: Duration::from_secs(5),
            max_body_bytes: 1 << 20,
            marketing_messages_api,
        })
        .unwrap()
    }

    fn hooks(&self) -> Vec<Value> {
        self.hooks.lock().unwrap().clone()
    }

    /// Waits until `n` webhook deliveries arrived (status webhooks are posted asynchronously).
    async fn wait_hooks(&self, n: usize) -> Vec<Value> {
        for _ in 0..100 {
            let hooks = self.hooks();
            if hooks.len() >= n {
                return hooks;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("expected {n} webhook deliveries, got {:?}", self.hooks());
    }
}

async fn send(
    client: &GraphClient,
    channel: Channel,
    account: &str,
    to: &str,
    body: OutboundBody,
) -> Result<String, SendError> {
    let account = AccountId::parse(account).unwrap();
    let contact = ContactId::new(channel, Address::parse(to).unwrap());
    client
        .send(&SendRequest {
            account: &account,
            contact: &contact,
            body: &body,
            purpose: Purpose::Reply,
            reference: Some("out-1"),
            template: None,
        })
        .await
        .map(|id| id.as_str().to_string())
}

#[tokio::test]
async fn records_whatsapp_sends_and_lists_them_per_address() {
    let h = start(false).await;
    let (status, answer) = h
        .wa_send(json!({"messaging_product":"whatsapp","recipient_type":"individual","to":"+4915123456789",
                        "type":"text","text":{"body":"Hallo Erika","preview_url":false}}))
        .await;
    assert_eq!(status, 200, "{answer}");
    let id = answer["messages"][0]["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("wamid."), "{id}");
    assert_eq!(answer["messaging_product"], "whatsapp");
    assert_eq!(answer["contacts"], json!([{ "input": "+4915123456789", "wa_id": WA }]));

    let (status, _) = h
        .wa_send(json!({"messaging_product":"whatsapp","to":"4915000000001","type":"text","text":{"body":"other"}}))
        .await;
    assert_eq!(status, 200);

    let listed = h.get("/messages?to=4915123456789").await;
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1);
    let m = &listed[0];
    assert_eq!(m["id"], id.as_str());
    assert_eq!(m["channel"], "whatsapp");
    assert_eq!(m["to"], WA);
    assert_eq!(m["type"], "text");
    assert_eq!(m["text"], "Hallo Erika");
    assert_eq!(m["template"], Value::Null);
    assert_eq!(m["buttons"], json!([]));
    assert_eq!(m["button_ids"], json!([]));
    assert!(time::OffsetDateTime::parse(
        m["sent_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339
    )
    .is_ok());
    // `+` in the query is ignored; the Rust API agrees with the HTTP one.
    assert_eq!(h.get("/messages?to=%2B4915123456789").await.as_array().unwrap().len(), 1);
    assert_eq!(h.sandbox.messages_to("+4915123456789"), listed.to_vec());
    // Without `to`: everything, oldest first.
    let all = h.get("/messages").await;
    assert_eq!(all.as_array().unwrap().len(), 2);
    assert_eq!(all[0]["id"], id.as_str());
    assert_eq!(all[1]["to"], "4915000000001");
}

#[tokio::test]
async fn missing_or_empty_bearer_token_is_a_190() {
    let h = start(false).await;
    let body = json!({"messaging_product":"whatsapp","to":WA,"type":"text","text":{"body":"x"}}).to_string();
    let path = format!("/graph/v25.0/{PHONE_ID}/messages");
    for auth in [None, Some("Bearer "), Some("Basic dXNlcjpwYXNz")] {
        let (status, answer) = h.graph(&path, auth, &body).await;
        assert_eq!(status, 401, "{auth:?}");
        assert_eq!(answer["error"]["code"], 190);
        assert_eq!(answer["error"]["type"], "OAuthException");
        assert!(answer["error"]["message"].as_str().unwrap().contains("access token"));
    }
    assert!(h.get("/messages").await.as_array().unwrap().is_empty());
}

#[tokio::test]
async fn invalid_sends_are_refused_like_graph() {
    let h = start(false).await;
    let wa = |extra: Value| {
        let mut v = json!({"messaging_product":"whatsapp","recipient_type":"individual","to":WA});
        v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        v
    };
    let button = |i: usize, title: &str| json!({"type":"reply","reply":{"id":format!("b{i}"),"title":title}});
    let cases = vec![
        ("missing to", json!({"messaging_product":"whatsapp","type":"text","text":{"body":"x"}})),
        ("unknown type", wa(json!({"type":"sticker","sticker":{"id":"1"}}))),
        ("empty text", wa(json!({"type":"text","text":{"body":""}}))),
        ("text too long", wa(json!({"type":"text","text":{"body":"x".repeat(4097)}}))),
        (
            "four buttons",
            wa(json!({"type":"interactive","interactive":{"type":"button","body":{"text":"?"},
                "action":{"buttons":[button(1,"a"),button(2,"b"),button(3,"c"),button(4,"d")]}}})),
        ),
        (
            "title over 20",
            wa(json!({"type":"interactive","interactive":{"type":"button","body":{"text":"?"},
                "action":{"buttons":[button(1,"This title is too long")]}}})),
        ),
        (
            "duplicate titles",
            wa(json!({"type":"interactive","interactive":{"type":"button","body":{"text":"?"},
                "action":{"buttons":[button(1,"Yes"),button(2,"Yes")]}}})),
        ),
        (
            "list without rows",
            wa(json!({"type":"interactive","interactive":{"type":"list","body":{"text":"?"},
                "action":{"button":"Pick","sections":[{"title":"s","rows":[]}]}}})),
        ),
        ("template without language", wa(json!({"type":"template","template":{"name":"service_followup"}}))),
    ];
    for (what, body) in cases {
        let (status, answer) = h.wa_send(body).await;
        assert_eq!(status, 400, "{what}: {answer}");
        assert_eq!(answer["error"]["code"], 100, "{what}: {answer}");
        assert!(answer["error"]["message"].as_str().unwrap().starts_with("(#100)"), "{what}: {answer}");
    }
    let (status, answer) = h.graph(&format!("/graph/v25.0/{PHONE_ID}/messages"), Some("Bearer t"), "{not json").await;
    assert_eq!((status, answer["error"]["code"].as_i64()), (400, Some(100)));

    // A known template with the wrong number of parameters: Graph's 132000.
    let (status, answer) = h
        .wa_send(wa(json!({"type":"template","template":{"name":"order_confirmation","language":{"code":"de"},
            "components":[{"type":"body","parameters":[{"type":"text","text":"#1001"}]}]}})))
        .await;
    assert_eq!((status, answer["error"]["code"].as_i64()), (400, Some(132000)), "{answer}");

    let fb_cases = vec![
        ("missing recipient", json!({"messaging_type":"RESPONSE","message":{"text":"x"}})),
        ("missing messaging_type", json!({"recipient":{"id":"240001"},"message":{"text":"x"}})),
        ("empty message", json!({"recipient":{"id":"240001"},"messaging_type":"RESPONSE","message":{}})),
        (
            "text too long",
            json!({"recipient":{"id":"240001"},"messaging_type":"RESPONSE","message":{"text":"x".repeat(2001)}}),
        ),
        (
            "quick reply title over 20",
            json!({"recipient":{"id":"240001"},"messaging_type":"RESPONSE","message":{"text":"x",
                "quick_replies":[{"content_type":"text","title":"This title is too long","payload":"p"}]}}),
        ),
    ];
    for (what, body) in fb_cases {
        let (status, answer) = h.graph("/graph/v25.0/me/messages", Some("Bearer t"), &body.to_string()).await;
        assert_eq!((status, answer["error"]["code"].as_i64()), (400, Some(100)), "{what}: {answer}");
    }
    assert!(h.get("/messages").await.as_array().unwrap().is_empty(), "refused sends are not recorded");
}

/// A newsletter send as the sender builds it: its URL-button component listed first, so the
/// recorded order (body, then buttons) is the sandbox's doing.
fn newsletter_request(components: Value) -> Value {
    json!({"messaging_product":"whatsapp","recipient_type":"individual","to":"+4915123456789","type":"template",
           "template":{"name":"newsletter","language":{"code":"de","policy":"deterministic"},"components":components}})
}

fn newsletter_components(body: &[&str], buttons: &[(&str, &str)]) -> Value {
    let mut c: Vec<Value> = buttons
        .iter()
        .map(|(i, t)| json!({"type":"button","sub_type":"url","index":i,"parameters":[{"type":"text","text":t}]}))
        .collect();
    let body: Vec<Value> = body.iter().map(|t| json!({"type":"text","text":t})).collect();
    c.push(json!({"type":"body","parameters":body}));
    Value::Array(c)
}

#[tokio::test]
async fn records_the_endpoint_and_a_templates_parameters_body_then_buttons() {
    let h = start(true).await;
    let request = newsletter_request(newsletter_components(&["Erika"], &[("0", "spring")]));
    let (status, via_messages) = h.wa_send(request.clone()).await;
    assert_eq!(status, 200, "{via_messages}");
    let path = format!("/graph/v25.0/{PHONE_ID}/marketing_messages");
    let (status, via_marketing) = h.graph(&path, Some("Bearer t0k3n"), &request.to_string()).await;
    assert_eq!(status, 200, "{via_marketing}");
    // The Marketing Messages API answers like /messages.
    for answer in [&via_messages, &via_marketing] {
        assert_eq!(answer["messaging_product"], "whatsapp");
        assert_eq!(answer["contacts"], json!([{ "input": "+4915123456789", "wa_id": WA }]));
        assert!(answer["messages"][0]["id"].as_str().unwrap().starts_with("wamid."));
    }
    h.wa_send(json!({"messaging_product":"whatsapp","to":WA,"type":"text","text":{"body":"Hallo"}})).await;

    let m = h.get(&format!("/messages?to={WA}")).await;
    let m = m.as_array().unwrap();
    assert_eq!(m.len(), 3);
    for (entry, endpoint, answer) in [(&m[0], "messages", &via_messages), (&m[1], "marketing_messages", &via_marketing)]
    {
        assert_eq!(entry["id"], answer["messages"][0]["id"]);
        assert_eq!(entry["endpoint"], endpoint);
        assert_eq!((entry["type"].as_str(), entry["template"].as_str()), (Some("template"), Some("newsletter")));
        assert_eq!(entry["parameters"], json!(["Erika", "spring"]));
        // `text` is the rendered body; the URL button is listed resolved.
        let text = entry["text"].as_str().unwrap();
        assert!(text.starts_with("Hallo Erika!") && !text.contains("{{") && !text.contains("http"), "{text}");
        assert_eq!(
            entry["url_buttons"],
            json!([{"text":"Jetzt ansehen","url":"https://parley-demo.myshopify.com/collections/spring"}])
        );
        assert_eq!(entry["buttons"], json!([]));
    }
    assert_eq!(m[2]["endpoint"], "messages");
    assert!(m[2].get("parameters").is_none() && m[2].get("url_buttons").is_none(), "{}", m[2]);
    // Statuses price it as what it is.
    let hooks = h.wait_hooks(4).await;
    for hk in &hooks {
        let st = &hk["entry"][0]["changes"][0]["value"]["statuses"][0];
        if st["id"] == m[0]["id"] || st["id"] == m[1]["id"] {
            assert_eq!(st["pricing"]["category"], "marketing", "{st}");
        }
    }
}

#[tokio::test]
async fn template_sends_are_checked_against_the_approved_template_like_graph() {
    let h = start(false).await;
    let cases = [
        ("no URL parameter", newsletter_components(&["Erika"], &[]), 132000),
        ("URL parameter for a button that has none", newsletter_components(&["Erika"], &[("1", "spring")]), 132000),
        ("two body parameters", newsletter_components(&["Erika", "x"], &[("0", "spring")]), 132000),
        ("URL parameter only", newsletter_components(&[], &[("0", "spring")]), 132000),
        (
            "a header the template does not have",
            json!([{"type":"header","parameters":[{"type":"image","image":{"link":"https://cdn.example/a.jpg"}}]},
                   {"type":"body","parameters":[{"type":"text","text":"Erika"}]},
                   {"type":"button","sub_type":"url","index":"0","parameters":[{"type":"text","text":"spring"}]}]),
            132012,
        ),
        (
            "the same button twice",
            json!([{"type":"body","parameters":[{"type":"text","text":"Erika"}]},
                   {"type":"button","sub_type":"url","index":"0","parameters":[{"type":"text","text":"a"}]},
                   {"type":"button","sub_type":"url","index":0,"parameters":[{"type":"text","text":"b"}]}]),
            100,
        ),
        (
            "an empty URL parameter",
            json!([{"type":"body","parameters":[{"type":"text","text":"Erika"}]},
                   {"type":"button","sub_type":"url","index":"0","parameters":[{"type":"text","text":""}]}]),
            100,
        ),
        ("an unknown component", json!([{"type":"footer","parameters":[]}]), 100),
    ];
    for (what, components, code) in cases {
        let (status, answer) = h.wa_send(newsletter_request(components)).await;
        assert_eq!((status, answer["error"]["code"].as_i64()), (400, Some(code)), "{what}: {answer}");
        assert!(answer["error"]["message"].as_str().unwrap().starts_with(&format!("(#{code})")), "{what}: {answer}");
    }
    assert!(h.get("/messages").await.as_array().unwrap().is_empty(), "refused sends are not recorded");
}

#[tokio::test]
async fn marketing_messages_takes_marketing_templates_only() {
    let h = start(false).await;
    let path = format!("/graph/v25.0/{PHONE_ID}/marketing_messages");
    let mm = |body: Value| {
        let path = path.clone();
        let h = &h;
        async move { h.graph(&path, Some("Bearer t0k3n"), &body.to_string()).await }
    };
    let (status, answer) = mm(json!({"messaging_product":"whatsapp","to":WA,"type":"text","text":{"body":"Hi"}})).await;
    assert_eq!((status, answer["error"]["code"].as_i64()), (400, Some(100)), "{answer}");
    assert_eq!(answer["error"]["error_data"]["details"], "Message must be a template message.");
    let utility = json!({"messaging_product":"whatsapp","to":WA,"type":"template",
        "template":{"name":"service_followup","language":{"code":"de"}}});
    let (status, answer) = mm(utility.clone()).await;
    assert_eq!((status, answer["error"]["code"].as_i64()), (400, Some(131055)), "{answer}");
    assert_eq!(answer["error"]["error_data"]["details"], "Only marketing template messages are supported");
    // The same template is fine on /messages.
    assert_eq!(h.wa_send(utility).await.0, 200);
    let newsletter = |extra: Value| {
        let mut v = newsletter_request(newsletter_components(&["Erika"], &[("0", "spring")]));
        v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        v
    };
    for bad in [json!({"product_policy":"SOMETIMES"}), json!({"message_activity_sharing":"yes"})] {
        let (status, answer) = mm(newsletter(bad.clone())).await;
        assert_eq!((status, answer["error"]["code"].as_i64()), (400, Some(100)), "{bad}: {answer}");
    }
    let ok = newsletter(json!({"product_policy":"STRICT","message_activity_sharing":true}));
    assert_eq!(mm(ok).await.0, 200);
    let (status, answer) =
        mm(json!({"recipient":{"id":"240001"},"messaging_type":"UPDATE","message":{"text":"Hi"}})).await;
    assert_eq!((status, answer["error"]["code"].as_i64()), (400, Some(100)), "{answer}");
    let endpoints: Vec<Value> =
        h.get("/messages").await.as_array().unwrap().iter().map(|m| m["endpoint"].clone()).collect();
    assert_eq!(endpoints, vec![json!("messages"), json!("marketing_messages")]);
}

#[tokio::test]
async fn graph_client_sends_header_body_and_url_buttons_and_routes_marketing_templates() {
    let templates = Templates::from_toml(
        r#"
[[template]]
name = "spring_sale"
language = "de"
category = "marketing"
body = "Hallo {{1}}, der Frühling ist da."
buttons = ["STOP"]
url_buttons = [{ text = "Ansehen", url = "https://shop.example/c/{{1}}" }, { text = "Alles", url = "https://shop.example/" }]
header_image = "https://cdn.example/spring.jpg"

[[template]]
name = "receipt"
language = "de"
category = "utility"
body = "Danke für {{1}}."
"#,
    )
    .unwrap();
    let h = start_with(false, templates.clone()).await;
    let account = AccountId::parse(PHONE_ID).unwrap();
    let contact = ContactId::new(Channel::WhatsApp, Address::parse(WA).unwrap());
    let send = |client: GraphClient, body: OutboundBody, def: Option<TemplateDef>| {
        let (account, contact) = (account.clone(), contact.clone());
        async move {
            let req = SendRequest {
                account: &account,
                contact: &contact,
                body: &body,
                purpose: Purpose::Marketing,
                reference: Some("c-1"),
                template: def.as_ref(),
            };
            client.send(&req).await.map(|id| id.as_str().to_string())
        }
    };
    let def = templates.get("spring_sale", "de").cloned();
    let mut sale = TemplateRef::new("spring_sale", "de", vec!["Erika".into(), "tulips".into()]);
    sale.payloads = vec!["stop".into()];
    let body = OutboundBody::Template { template: sale.clone() };
    send(h.client_with(true), body.clone(), def.clone()).await.unwrap();
    send(h.client_with(false), body, def.clone()).await.unwrap();
    let receipt = OutboundBody::Template { template: TemplateRef::new("receipt", "de", vec!["#1".into()]) };
    send(h.client_with(true), receipt, templates.get("receipt", "de").cloned()).await.unwrap();

    let m = h.sandbox.messages_to(WA);
    let endpoints: Vec<&str> = m.iter().map(|m| m["endpoint"].as_str().unwrap()).collect();
    assert_eq!(endpoints, ["marketing_messages", "messages", "messages"]);
    assert_eq!(m[0]["parameters"], json!(["Erika", "tulips"]));
    assert_eq!(m[0]["text"], "Hallo Erika, der Frühling ist da.");
    assert_eq!(
        m[0]["url_buttons"],
        json!([{"text":"Ansehen","url":"https://shop.example/c/tulips"},{"text":"Alles","url":"https://shop.example/"}])
    );
    assert_eq!((m[0]["buttons"].clone(), m[0]["button_ids"].clone()), (json!(["STOP"]), json!(["stop"])));

    // Without its image the send is refused as Graph refuses it (the catalog is the client's
    // only source of the default image, so a missing definition shows here).
    let err = send(h.client_with(false), OutboundBody::Template { template: sale }, None).await.unwrap_err();
    assert!(matches!(err, SendError::Permanent { code: Some(132012), .. }), "{err:?}");
}

#[tokio::test]
async fn faults_count_down_then_clear() {
    let h = start(false).await;
    let ok = json!({"messaging_product":"whatsapp","to":WA,"type":"text","text":{"body":"x"}});
    let (status, armed) = h.post("/faults", json!({"status":429,"count":2})).await;
    assert_eq!(status, 200);
    assert_eq!(armed["fault"], json!({"status":429,"code":130429,"remaining":2}));
    assert_eq!(h.get("/faults").await["remaining"], 2);
    for left in [1, 0] {
        let (status, answer) = h.wa_send(ok.clone()).await;
        assert_eq!(status, 429);
        assert_eq!(answer["error"]["code"], 130429);
        assert_eq!(answer["error"]["message"], "(#130429) Rate limit hit");
        assert!(answer["error"]["fbtrace_id"].is_string());
        assert_eq!(
            h.get("/faults").await,
            if left == 0 { Value::Null } else { json!({"status":429,"code":130429,"remaining":left}) }
        );
    }
    assert_eq!(h.wa_send(ok.clone()).await.0, 200);
    assert_eq!(h.get("/messages").await.as_array().unwrap().len(), 1, "faulted calls are not recorded");

    for (status, code) in [(400, 100), (401, 190), (403, 10), (500, 131000), (503, 2), (418, 1)] {
        h.post("/faults", json!({"status":status,"count":1})).await;
        let (got, answer) = h.wa_send(ok.clone()).await;
        assert_eq!((got, answer["error"]["code"].as_i64()), (status, Some(code)));
    }
    // An explicit code wins; DELETE clears.
    h.post("/faults", json!({"status":400,"count":5,"code":131047})).await;
    assert_eq!(h.wa_send(ok.clone()).await.1["error"]["code"], 131047);
    let resp = h.http.delete(h.url("/faults")).send().await.unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(h.wa_send(ok.clone()).await.0, 200);
    // Nonsense is refused.
    assert_eq!(h.post("/faults", json!({"status":200})).await.0, 400);
    assert_eq!(h.post("/faults", json!({"count":2})).await.0, 400);
}

#[tokio::test]
async fn graph_client_sends_every_whatsapp_body_kind() {
    let h = start(false).await;
    let client = h.client();
    let send_wa = |body| send(&client, Channel::WhatsApp, PHONE_ID, WA, body);

    let id = send_wa(OutboundBody::text("Hallo!")).await.unwrap();
    assert!(id.starts_with("wamid."));
    send_wa(OutboundBody::Buttons {
        text: "In den Warenkorb?".into(),
        buttons: vec![
            Button { id: "add:SKU1".into(), title: "Ja".into() },
            Button { id: "no".into(), title: "Nein".into() },
        ],
    })
    .await
    .unwrap();
    send_wa(OutboundBody::List {
        text: "Welche Größe?".into(),
        button: "Größen".into(),
        sections: vec![ListSection {
            title: "Shirts".into(),
            rows: vec![
                ListRow { id: "size:s".into(), title: "S".into(), description: None },
                ListRow { id: "size:m".into(), title: "M".into(), description: Some("beliebt".into()) },
            ],
        }],
    })
    .await
    .unwrap();
    let template = |name: &str, params: &[&str]| OutboundBody::Template {
        template: TemplateRef::new(name, "de", params.iter().map(|p| p.to_string()).collect()),
    };
    send_wa(template("order_confirmation", &["#1001", "49,90 €"])).await.unwrap();
    send_wa(template("service_followup", &[])).await.unwrap();
    send_wa(template("not_in_catalog", &["x"])).await.unwrap();

    let m = h.sandbox.messages_to(WA);
    assert_eq!(m.len(), 6);
    assert_eq!(m[0]["id"], id.as_str());
    assert_eq!((m[0]["type"].as_str(), m[0]["text"].as_str()), (Some("text"), Some("Hallo!")));
    assert_eq!(m[1]["type"], "interactive");
    assert_eq!(m[1]["text"], "In den Warenkorb?");
    assert_eq!(m[1]["buttons"], json!(["Ja", "Nein"]));
    assert_eq!(m[1]["button_ids"], json!(["add:SKU1", "no"]));
    assert_eq!(m[2]["buttons"], json!(["S", "M"]));
    assert_eq!(m[2]["button_ids"], json!(["size:s", "size:m"]));
    assert_eq!(m[3]["type"], "template");
    assert_eq!(m[3]["template"], "order_confirmation");
    assert_eq!(
        m[3]["text"],
        "Danke für deine Bestellung #1001! 🎉 Gesamtbetrag: 49,90 €. Wir melden uns hier, sobald dein Paket unterwegs ist."
    );
    assert_eq!(m[4]["template"], "service_followup");
    assert_eq!(m[4]["buttons"], json!(["Weiter"]));
    assert_eq!(m[5]["text"], "[template not_in_catalog]");
    assert!(m.iter().all(|m| m["channel"] == "whatsapp" && m["to"] == WA));
}

#[tokio::test]
async fn graph_client_sends_messenger_and_instagram() {
    let h = start(false).await;
    let client = h.client();
    let id = send(&client, Channel::Messenger, PAGE_ID, "24000000000000001", OutboundBody::text("Hi from the page"))
        .await
        .unwrap();
    assert!(id.starts_with("m_"), "{id}");
    send(
        &client,
        Channel::Instagram,
        IG_ID,
        "17800000000000001",
        OutboundBody::Buttons {
            text: "Größe?".into(),
            buttons: vec![Button { id: "size:m".into(), title: "M".into() }],
        },
    )
    .await
    .unwrap();

    let fb = h.sandbox.messages_to("24000000000000001");
    assert_eq!(fb.len(), 1);
    assert_eq!((fb[0]["channel"].as_str(), fb[0]["type"].as_str()), (Some("messenger"), Some("text")));
    assert_eq!(fb[0]["id"], id.as_str());
    let ig = h.sandbox.messages_to("17800000000000001");
    assert_eq!(ig[0]["channel"], "instagram");
    assert_eq!(ig[0]["type"], "interactive");
    assert_eq!(ig[0]["buttons"], json!(["M"]));
    assert_eq!(ig[0]["button_ids"], json!(["size:m"]));

    // Messenger cannot carry a WhatsApp template; nothing reaches the stand-in.
    let t = OutboundBody::Template { template: TemplateRef::new("service_followup", "de", vec![]) };
    assert!(matches!(send(&client, Channel::Messenger, PAGE_ID, "240001", t).await, Err(SendError::Config(_))));
}

#[tokio::test]
async fn graph_client_classifies_injected_faults() {
    let h = start(false).await;
    let client = h.client();
    let text = || OutboundBody::text("x");
    let cases = [
        (json!({"status":429,"count":1}), "retryable", 130429),
        (json!({"status":400,"count":1}), "permanent", 100),
        (json!({"status":401,"count":1}), "pause", 190),
        (json!({"status":400,"count":1,"code":131047}), "window_closed", 131047),
    ];
    for (fault, kind, code) in cases {
        h.post("/faults", fault.clone()).await;
        let err = send(&client, Channel::WhatsApp, PHONE_ID, WA, text()).await.unwrap_err();
        assert_eq!((err.kind(), err.code()), (kind, Some(code)), "{fault}: {err:?}");
    }
    // 5xx faults are retryable on Messenger too.
    h.post("/faults", json!({"status":503,"count":1})).await;
    let err = send(&client, Channel::Messenger, PAGE_ID, "240001", text()).await.unwrap_err();
    assert!(matches!(err, SendError::Retryable { code: Some(2), .. }), "{err:?}");
    assert!(h.sandbox.messages_to(WA).is_empty());
}

#[tokio::test]
async fn chat_posts_signed_webhooks_like_meta() {
    let h = start(false).await;
    let (status, answer) =
        h.post("/chat", json!({"channel":"whatsapp","from":"+4915123456789","name":"Erika","text":"hi"})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], 200);
    let mid = answer["message_id"].as_str().unwrap().to_string();
    let hook = &h.hooks()[0];
    assert_eq!(hook["object"], "whatsapp_business_account");
    let value = &hook["entry"][0]["changes"][0]["value"];
    assert_eq!(hook["entry"][0]["changes"][0]["field"], "messages");
    assert_eq!(value["metadata"]["phone_number_id"], PHONE_ID);
    assert_eq!(value["contacts"][0], json!({"profile":{"name":"Erika"},"wa_id":WA}));
    let msg = &value["messages"][0];
    assert_eq!(
        (msg["from"].as_str(), msg["id"].as_str(), msg["type"].as_str()),
        (Some(WA), Some(mid.as_str()), Some("text"))
    );
    assert_eq!(msg["text"]["body"], "hi");
    assert!(msg["timestamp"].as_str().unwrap().parse::<i64>().is_ok());

    // A tap on a reply button of the last interactive message carries its context.
    let client = h.client();
    send(
        &client,
        Channel::WhatsApp,
        PHONE_ID,
        WA,
        OutboundBody::Buttons { text: "?".into(), buttons: vec![Button { id: "add:SKU1".into(), title: "Ja".into() }] },
    )
    .await
    .unwrap();
    let offered = h.sandbox.messages_to(WA)[0]["id"].clone();
    h.post("/chat", json!({"channel":"whatsapp","from":WA,"payload":"add:SKU1","title":"Ja"})).await;
    let msg = h.hooks()[1]["entry"][0]["changes"][0]["value"]["messages"][0].clone();
    assert_eq!(msg["type"], "interactive");
    assert_eq!(msg["interactive"], json!({"type":"button_reply","button_reply":{"id":"add:SKU1","title":"Ja"}}));
    assert_eq!(msg["context"]["id"], offered);

    // A template quick reply arrives as `type: button`, its payload the button text.
    let t = OutboundBody::Template { template: TemplateRef::new("service_followup", "de", vec![]) };
    send(&client, Channel::WhatsApp, PHONE_ID, WA, t).await.unwrap();
    h.post("/chat", json!({"channel":"whatsapp","from":WA,"payload":"Weiter"})).await;
    let msg = h.hooks()[2]["entry"][0]["changes"][0]["value"]["messages"][0].clone();
    assert_eq!(msg["type"], "button");
    assert_eq!(msg["button"], json!({"payload":"Weiter","text":"Weiter"}));

    // Messenger and Instagram: `messaging[]` events addressed to the configured ids.
    h.post("/chat", json!({"channel":"messenger","from":"240001","text":"hallo"})).await;
    h.post("/chat", json!({"channel":"instagram","from":"178001","payload":"size:m","title":"M"})).await;
    let hooks = h.hooks();
    assert_eq!(hooks[3]["object"], "page");
    assert_eq!(hooks[3]["entry"][0]["id"], PAGE_ID);
    let ev = &hooks[3]["entry"][0]["messaging"][0];
    assert_eq!((ev["sender"]["id"].as_str(), ev["recipient"]["id"].as_str()), (Some("240001"), Some(PAGE_ID)));
    assert_eq!(ev["message"]["text"], "hallo");
    assert!(ev["message"]["mid"].as_str().unwrap().starts_with("m_"));
    assert!(ev["timestamp"].is_i64());
    assert_eq!(hooks[4]["object"], "instagram");
    assert_eq!(hooks[4]["entry"][0]["id"], IG_ID);
    let ev = &hooks[4]["entry"][0]["messaging"][0];
    assert_eq!(ev["message"]["quick_reply"], json!({"payload":"size:m"}));
    assert_eq!(ev["message"]["text"], "M");

    // The page's transcript of what the customer sent.
    let lines = h.get("/chat?channel=whatsapp&from=4915123456789").await;
    assert_eq!(lines.as_array().unwrap().len(), 3);
    assert_eq!(lines[0]["text"], "hi");
    assert_eq!(lines[1]["payload"], "add:SKU1");

    assert_eq!(h.post("/chat", json!({"channel":"sms","from":WA,"text":"x"})).await.0, 400);
    assert_eq!(h.post("/chat", json!({"channel":"whatsapp","from":WA})).await.0, 400);
    assert_eq!(h.post("/chat", json!({"channel":"whatsapp","from":"a#b","text":"x"})).await.0, 400);
}

/// A sandbox posting its deliveries to `webhook_url`, signed with `secret`, served on its own port.
async fn sandbox_posting_to(secret: &str, webhook_url: String) -> (Sandbox, String) {
    let sandbox = Sandbox::new(SandboxConfig {
        app_secret: Secret::from(secret),
        webhook_url,
        whatsapp_phone_number_id: PHONE_ID.into(),
        messenger_page_id: PAGE_ID.into(),
        instagram_account_id: IG_ID.into(),
        templates: Templates::embedded().unwrap(),
        status_webhooks: false,
    });
    let base = serve(Router::new().nest("/sandbox", sandbox.router())).await;
    (sandbox, base)
}

/// The customer writes `text` through the sandbox at `base`.
async fn chat_at(base: &str, text: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base}/sandbox/chat"))
        .json(&json!({"channel":"whatsapp","from":WA,"text":text}))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn chat_reports_the_webhook_status_and_unreachable_webhooks() {
    // A sandbox whose secret differs from the handler's: the handler says 401 and the sandbox passes it on.
    let h = start(false).await;
    let (_wrong, base) = sandbox_posting_to("not-the-secret", h.hook_url.clone()).await;
    let resp = chat_at(&base, "hi").await;
    assert_eq!(resp.status(), 200);
    let answer = resp.json::<Value>().await.unwrap();
    assert_eq!((answer["status"].as_u64(), answer["retrying"].as_bool()), (Some(401), Some(false)), "{answer}");

    let port = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
    let (_nowhere, base) = sandbox_posting_to(APP_SECRET, format!("http://127.0.0.1:{port}/webhooks/meta")).await;
    assert_eq!(chat_at(&base, "hi").await.status(), 502);
}

/// Like Meta, the sandbox retries a delivery the webhook refused in a way a retry can change
/// (here 503s, as from a store timeout): the same delivery again, at once and then after a
/// second, until the webhook takes it; the transcript follows the answers. Status webhooks
/// alike. (A 401 is not retried: `chat_reports_the_webhook_status_and_unreachable_webhooks`.)
#[tokio::test]
async fn a_delivery_refused_with_a_5xx_is_retried_like_meta_and_the_transcript_follows() {
    let h = start(false).await;
    *h.refuse.lock().unwrap() = 2;
    let (status, answer) = h.post("/chat", json!({"channel":"whatsapp","from":WA,"text":"Lieferzeit"})).await;
    assert_eq!((status, answer["status"].as_u64(), answer["retrying"].as_bool()), (200, Some(503), Some(true)));
    let line = &h.get(&format!("/chat?channel=whatsapp&from={WA}")).await[0];
    assert_eq!((line["webhook_status"].as_u64(), line["retrying"].as_bool()), (Some(503), Some(true)), "{line}");

    let taken = h.wait_hooks(1).await;
    let refused = h.refused.lock().unwrap().clone();
    assert_eq!(refused.len(), 2, "refused twice, then taken");
    assert!(refused.iter().all(|r| r == &taken[0]), "each retry carries the same delivery (the same message id)");
    let line = &h.get(&format!("/chat?channel=whatsapp&from={WA}")).await[0];
    assert_eq!((line["webhook_status"].as_u64(), line["retrying"].as_bool()), (Some(200), Some(false)), "{line}");

    // A status webhook refused once arrives all the same.
    let id = send(&h.client(), Channel::WhatsApp, PHONE_ID, WA, OutboundBody::text("Unterwegs")).await.unwrap();
    *h.refuse.lock().unwrap() = 1;
    let (_, answer) = h.post("/status", json!({"id": id, "status": "read"})).await;
    assert_eq!(answer["status"], 503, "{answer}");
    let hooks = h.wait_hooks(2).await;
    assert_eq!(hooks[1]["entry"][0]["changes"][0]["value"]["statuses"][0]["status"], "read");
    // Nothing more once the webhook took them.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(h.hooks().len(), 2);
}

#[tokio::test]
async fn status_posts_whatsapp_status_webhooks() {
    let h = start(false).await;
    let client = h.client();
    let id =
        send(&client, Channel::WhatsApp, PHONE_ID, WA, OutboundBody::text("Dein Paket ist unterwegs")).await.unwrap();

    let (status, answer) = h.post("/status", json!({"id": id, "status": "read"})).await;
    assert_eq!((status, answer["status"].as_i64()), (200, Some(200)), "{answer}");
    let value = h.hooks()[0]["entry"][0]["changes"][0]["value"].clone();
    assert_eq!(value["metadata"]["phone_number_id"], PHONE_ID);
    let st = &value["statuses"][0];
    assert_eq!(
        (st["id"].as_str(), st["status"].as_str(), st["recipient_id"].as_str()),
        (Some(id.as_str()), Some("read"), Some(WA))
    );
    assert_eq!(st["biz_opaque_callback_data"], "out-1");

    h.post("/status", json!({"id": id, "status": "failed", "code": 131047})).await;
    let st = h.hooks()[1]["entry"][0]["changes"][0]["value"]["statuses"][0].clone();
    assert_eq!(st["status"], "failed");
    assert_eq!(st["errors"][0]["code"], 131047);
    assert!(st["errors"][0]["error_data"]["details"].as_str().unwrap().contains("24 hours"));

    assert_eq!(h.post("/status", json!({"id": "wamid.unknown", "status": "read"})).await.0, 404);
    assert_eq!(h.post("/status", json!({"id": id, "status": "lost"})).await.0, 400);
}

#[tokio::test]
async fn status_webhooks_follow_every_whatsapp_send_when_enabled() {
    let h = start(true).await;
    let client = h.client();
    let id = send(&client, Channel::WhatsApp, PHONE_ID, WA, OutboundBody::text("Hallo")).await.unwrap();
    let hooks = h.wait_hooks(2).await;
    let statuses: Vec<(String, String)> = hooks
        .iter()
        .map(|hk| {
            let st = &hk["entry"][0]["changes"][0]["value"]["statuses"][0];
            (st["id"].as_str().unwrap().to_string(), st["status"].as_str().unwrap().to_string())
        })
        .collect();
    assert_eq!(statuses, vec![(id.clone(), "sent".to_string()), (id, "delivered".to_string())]);
    // Messenger sends get none.
    send(&client, Channel::Messenger, PAGE_ID, "240001", OutboundBody::text("Hi")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(h.hooks().len(), 2);
}

#[tokio::test]
async fn serves_the_web_page() {
    let h = start(false).await;
    let resp = h.http.get(format!("{}/sandbox", h.base)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    // Its own origin only: no inline script or style to inject into, nothing from elsewhere.
    let csp = resp.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.starts_with("default-src 'none'; script-src 'self'; style-src 'self';"), "{csp}");
    assert!(!csp.contains("unsafe"), "{csp}");
    let html = resp.text().await.unwrap();
    assert!(html.contains("Parley sandbox"));
    assert!(!html.contains("<script>") && !html.contains("<style>") && !html.contains("style="), "no inline code");
    assert!(!html.contains("http://") && !html.contains("https://"), "no assets from elsewhere");
    for (asset, kind) in [("sandbox.js", "text/javascript"), ("sandbox.css", "text/css")] {
        assert!(html.contains(&format!("/sandbox/{asset}")), "{asset} linked");
        let resp = h.http.get(format!("{}/sandbox/{asset}", h.base)).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert!(resp.headers()["content-type"].to_str().unwrap().starts_with(kind));
        let body = resp.text().await.unwrap();
        assert!(!body.is_empty());
        if asset == "sandbox.js" {
            // The chat and the panel come from the store's view, rendered as text (never as HTML).
            assert!(body.contains("/sandbox/state?"));
            assert!(!body.contains("innerHTML") && !body.contains("insertAdjacentHTML"));
        }
    }
}
