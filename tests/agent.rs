//! The team inbox over HTTP, as an advisor uses it: a customer asks for a person, an agent
//! claims and answers, builds the cart and sends the checkout link, the shop order is
//! attributed to the cart and the agent, the conversation goes back to the bot.
use parley_tests::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const ANNA: &str = "anna@example.com";
const BOB: &str = "bob@example.com";

async fn json_of(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn thread_path(to: &str) -> String {
    format!("/agent/conversations/whatsapp/{to}")
}

/// The conversation's summary in the list, if listed.
async fn listed(sys: &System, token: &str, query: &str, to: &str) -> Option<Value> {
    let (status, v) = json_of(sys.agent_get(token, &format!("/agent/conversations{query}")).await).await;
    assert_eq!(status, 200, "{v}");
    v["conversations"].as_array().unwrap().iter().find(|c| c["address"] == to).cloned()
}

/// Polls the thread until `pred` holds (the sender and status webhooks run concurrently).
async fn thread_until(sys: &System, token: &str, to: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, v) = json_of(sys.agent_get(token, &thread_path(to)).await).await;
        assert_eq!(status, 200, "{v}");
        if pred(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: {v:#}");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

fn texts(thread: &Value) -> Vec<(String, String, String)> {
    thread["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["direction"].as_str().unwrap().to_string(),
                m["author"].as_str().unwrap().to_string(),
                m["text"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn hilfe_to_claim_reply_cart_order_and_back_to_the_bot() {
    let sys = System::start_with(|o| o.status_webhooks = true).await;
    sys.seed_demo_catalog().await;
    let to = sys.opted_in_customer().await;
    let anna = sys.agent_token(ANNA, "agent").await;
    let bob = sys.agent_token(BOB, "agent").await;

    // The customer asks for a person: the bot says so once and the conversation waits.
    sys.say("whatsapp", &to, "Hilfe").await;
    let before = sys.wait_for_messages(&to, 3).await;
    assert!(before[2]["text"].as_str().unwrap().contains("Team"), "{before:#?}");
    let waiting = listed(&sys, &anna, "?state=waiting", &to).await.expect("listed as waiting");
    assert_eq!(waiting["state"], "waiting");
    assert!(waiting["waiting_since"].as_i64().unwrap() > 0);
    assert_eq!(waiting["last_message"]["text"], "Hilfe");
    assert_eq!(waiting["window_open"], true);
    assert!(waiting["window_remaining_secs"].as_i64().unwrap() > 23 * 3600);
    assert_ne!(waiting["address_masked"], to.as_str(), "masked");
    assert!(waiting["unread"].as_u64().unwrap() >= 1, "{waiting}");
    // Without a state filter it is listed too, waiting conversations first.
    let (_, all) = json_of(sys.agent_get(&anna, "/agent/conversations").await).await;
    assert_eq!(all["conversations"][0]["state"], "waiting", "{all}");

    // Anna claims it; Bob cannot take it from her.
    let (status, v) = json_of(sys.agent_post(&anna, &format!("{}/claim", thread_path(&to)), json!({})).await).await;
    assert_eq!((status, v["state"].clone(), v["assignee"].clone()), (200, json!("assigned"), json!(ANNA)));
    let (status, v) = json_of(sys.agent_post(&bob, &format!("{}/claim", thread_path(&to)), json!({})).await).await;
    assert_eq!((status, v["error"].clone()), (409, json!("assigned_to_other")), "{v}");
    assert!(listed(&sys, &anna, "?state=waiting", &to).await.is_none());
    assert!(listed(&sys, &anna, "?assignee=me", &to).await.is_some());
    assert!(listed(&sys, &bob, "?assignee=me", &to).await.is_none());

    // Her reply travels through the queue and the sender like every message.
    let (status, v) = json_of(
        sys.agent_post(&anna, &format!("{}/messages", thread_path(&to)), json!({"text": "Hallo, ich bin Anna!"})).await,
    )
    .await;
    assert_eq!(status, 202, "{v}");
    let reply_id = v["id"].as_str().unwrap().to_string();
    let got = sys.wait_for_messages(&to, 4).await;
    assert_eq!(got[3]["text"], "Hallo, ich bin Anna!");
    assert_eq!(got.len(), 4, "exactly once: {got:#?}");

    // While Anna has it, the bot stays silent; the customer's message is in the thread.
    sys.say("whatsapp", &to, "Habt ihr das Shirt in M?").await;
    let thread = thread_until(&sys, &anna, &to, "customer's question and Anna's reply delivered", |t| {
        let msgs = t["messages"].as_array().unwrap();
        msgs.iter().any(|m| m["text"] == "Habt ihr das Shirt in M?")
            && msgs.iter().any(|m| m["id"] == reply_id.as_str() && m["status"] == "delivered")
    })
    .await;
    let reply = thread["messages"].as_array().unwrap().iter().find(|m| m["id"] == reply_id.as_str()).unwrap();
    assert_eq!(reply["author"], format!("agent:{ANNA}"));
    assert_eq!(thread["contact"]["state"], "assigned");
    assert_eq!(thread["contact"]["consent"]["marketing"]["state"], "confirmed");
    assert_eq!(thread["contact"]["consent"]["marketing"]["latest_event"]["to"], "confirmed");
    assert_eq!(thread["reply"]["text_allowed"], true);
    let ts = texts(&thread);
    assert_eq!(ts.first().unwrap().2, "START", "oldest first: {ts:#?}");
    assert!(ts.iter().any(|(d, a, t)| d == "out" && a == "bot" && t.contains("Team")), "{ts:#?}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sys.messages_to(&to).await.len(), 4, "the bot stayed silent");

    // The cart: two shirts, and the checkout link goes out from Anna.
    let (status, v) = json_of(
        sys.agent_post(
            &anna,
            &format!("{}/cart", thread_path(&to)),
            json!({"items": [{"sku": "TSHIRT-M", "quantity": 2}], "send_checkout_link": true}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 202, "{v}");
    let url = v["checkout_url"].as_str().unwrap().to_string();
    assert!(url.starts_with("https://parley-demo.myshopify.com/cart/"), "{url}");
    assert_eq!(v["cart"]["lines"][0]["quantity"], 2);
    assert_eq!(v["cart"]["total"]["minor"], 3980);
    let got = sys.wait_for_messages(&to, 5).await;
    assert!(got[4]["text"].as_str().unwrap().contains(&url), "{got:#?}");
    let cart_id = url.split("parley_cart%5D=").nth(1).unwrap().split('&').next().unwrap().to_string();

    // A catalog SKU that does not exist is a clear 422 and changes nothing.
    let (status, v) = json_of(
        sys.agent_post(&anna, &format!("{}/cart", thread_path(&to)), json!({"items": [{"sku": "NOPE-1"}]})).await,
    )
    .await;
    assert_eq!((status, v["error"].clone()), (422, json!("unprocessable")), "{v}");

    // The signed shop order carries the cart: attributed to the cart and to Anna.
    let order = sys
        .shop(
            "orders",
            json!({"platform": "shopify", "phone": format!("+{to}"), "attributes": {"parley_cart": cart_id},
                   "items": [{"sku": "TSHIRT-M", "title": "T-Shirt – M", "quantity": 2, "price": "19.90"}]}),
        )
        .await;
    assert_eq!(order["webhook_status"], 200, "{order}");
    let thread = thread_until(&sys, &anna, &to, "the order attributed to Anna", |t| {
        t["orders"].as_array().is_some_and(|o| !o.is_empty() && o[0]["agent"] == ANNA)
    })
    .await;
    assert_eq!(thread["orders"][0]["order_id"], order["order_id"]);
    assert!(thread["orders"][0]["notifications"].as_array().unwrap().iter().any(|n| n["kind"] == "confirmation"));

    // Notes and tags in the contact panel.
    let (status, _) =
        json_of(sys.agent_post(&anna, &format!("{}/notes", thread_path(&to)), json!({"text": "Trägt M."})).await).await;
    assert_eq!(status, 201);
    let (status, v) =
        json_of(sys.agent_post(&anna, &format!("{}/tags", thread_path(&to)), json!({"add": ["VIP", "shirts"]})).await)
            .await;
    assert_eq!((status, v["tags"].clone()), (200, json!(["shirts", "vip"])));

    // Back to the bot: the customer is told, and the bot answers again.
    let (status, v) = json_of(sys.agent_post(&anna, &format!("{}/release", thread_path(&to)), json!({})).await).await;
    assert_eq!((status, v["state"].clone()), (200, json!("bot")));
    let n = sys.messages_to(&to).await.len();
    let got = sys.wait_for_messages(&to, n.max(7)).await;
    assert!(got.iter().any(|m| m["text"].as_str().unwrap_or_default().contains("wieder an mich")), "{got:#?}");
    let n = got.len();
    sys.say("whatsapp", &to, "Lieferzeit").await;
    let got = sys.wait_for_messages(&to, n + 1).await;
    assert_eq!(got.len(), n + 1);

    let thread = thread_until(&sys, &anna, &to, "notes in the panel", |t| t["notes"][0]["text"] == "Trägt M.").await;
    assert_eq!(thread["contact"]["tags"], json!(["shirts", "vip"]));
    assert_eq!(thread["contact"]["state"], "bot");

    // Every action is audited with who did it; only an admin reads the trail.
    let audit_path = format!("/agent/audit?channel=whatsapp&address={to}");
    let (status, _) = json_of(sys.agent_get(&anna, &audit_path).await).await;
    assert_eq!(status, 403);
    let lea = sys.agent_token("lea@example.com", "admin").await;
    let (status, v) = json_of(sys.agent_get(&lea, &audit_path).await).await;
    assert_eq!(status, 200, "{v}");
    let actions: Vec<(String, String)> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["agent"].as_str().unwrap().to_string(), e["action"].as_str().unwrap().to_string()))
        .collect();
    for action in ["claim", "reply", "cart", "note", "tags", "release"] {
        assert!(actions.contains(&(ANNA.to_string(), action.to_string())), "{action}: {actions:?}");
    }
    sys.stop().await;
}

#[tokio::test]
async fn a_closed_window_refuses_text_with_the_template_hint_and_the_template_goes_out() {
    let window = Duration::from_secs(5);
    let sys = System::start_with(|o| o.service_window = Some(window)).await;
    let to = sys.opted_in_customer().await;
    let anna = sys.agent_token(ANNA, "agent").await;
    tokio::time::sleep(window + Duration::from_secs(1)).await;

    let path = format!("{}/messages", thread_path(&to));
    let (status, v) = json_of(sys.agent_post(&anna, &path, json!({"text": "Noch Fragen?"})).await).await;
    assert_eq!((status, v["error"].clone()), (409, json!("window_closed")), "{v}");
    let hinted: Vec<&str> = v["templates"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert!(hinted.contains(&"service_followup"), "{hinted:?}");
    let (_, thread) = json_of(sys.agent_get(&anna, &thread_path(&to)).await).await;
    assert_eq!(thread["reply"]["text_allowed"], false);
    assert!(thread["reply"]["reason"].as_str().unwrap().contains("24"));

    // A wrong parameter count is refused before anything is queued.
    let (status, _) = json_of(
        sys.agent_post(
            &anna,
            &path,
            json!({"template": {"name": "service_followup", "language": "de", "parameters": ["zu viel"]}}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 422);
    let n = sys.messages_to(&to).await.len();
    let (status, v) = json_of(
        sys.agent_post(&anna, &path, json!({"template": {"name": "service_followup", "language": "de"}})).await,
    )
    .await;
    assert_eq!(status, 202, "{v}");
    let got = sys.wait_for_messages(&to, n + 1).await;
    assert_eq!(got[n]["type"], "template");
    assert_eq!(got[n]["template"], "service_followup");
    sys.stop().await;
}

#[tokio::test]
async fn the_agents_identity_is_the_tokens_and_history_survives_export_but_not_erase() {
    let sys = System::start().await;
    let to = customer();
    sys.say("whatsapp", &to, "Hilfe").await;
    sys.wait_for_messages(&to, 1).await;
    let anna = sys.agent_token(ANNA, "agent").await;
    // A body naming someone else changes nothing: the assignee is who the token says.
    let (status, v) = json_of(
        sys.agent_post(&anna, &format!("{}/claim", thread_path(&to)), json!({"agent": BOB, "assignee": BOB})).await,
    )
    .await;
    assert_eq!((status, v["assignee"].clone()), (200, json!(ANNA)), "{v}");
    // Assigning to someone else is for admins.
    let (status, _) =
        json_of(sys.agent_post(&anna, &format!("{}/assign", thread_path(&to)), json!({"assignee": BOB})).await).await;
    assert_eq!(status, 403);
    let lea = sys.agent_token("lea@example.com", "admin").await;
    let (status, v) =
        json_of(sys.agent_post(&lea, &format!("{}/assign", thread_path(&to)), json!({"assignee": BOB})).await).await;
    assert_eq!((status, v["assignee"].clone()), (200, json!(BOB)));

    // Read marks: the unread count drops to zero once the team has read the thread.
    let before = listed(&sys, &anna, "", &to).await.unwrap();
    assert_eq!(before["unread"], 1, "{before}");
    let r = sys.agent_post(&anna, &format!("{}/read", thread_path(&to)), json!({})).await;
    assert_eq!(r.status(), 204);
    assert_eq!(listed(&sys, &anna, "", &to).await.unwrap()["unread"], 0);

    // The thread's ETag: unchanged → 304; a new customer message → 200 with it.
    let r = sys.agent_get(&anna, &thread_path(&to)).await;
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    let again = sys.http.get(sys.url(&thread_path(&to))).bearer_auth(&anna).header("if-none-match", &etag).send().await;
    assert_eq!(again.unwrap().status(), 304);
    sys.say("whatsapp", &to, "Noch da?").await;
    let changed =
        sys.http.get(sys.url(&thread_path(&to))).bearer_auth(&anna).header("if-none-match", &etag).send().await;
    assert_eq!(changed.unwrap().status(), 200);

    // Export carries the history; erase leaves nothing of it.
    let export: Value = sys
        .http
        .get(sys.url(&format!("/contacts/whatsapp/{to}/export")))
        .header("x-api-key", ADMIN_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let history: Vec<&str> =
        export["history"].as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert!(history.contains(&"Hilfe") && history.contains(&"Noch da?"), "{history:?}");
    let r = sys.http.delete(sys.url(&format!("/contacts/whatsapp/{to}"))).header("x-api-key", ADMIN_KEY).send().await;
    assert_eq!(r.unwrap().status(), 204);
    let (status, _) = json_of(sys.agent_get(&anna, &thread_path(&to)).await).await;
    assert_eq!(status, 404);
    let page = sys.store().history(&parley::domain::ContactId::from_path("whatsapp", &to).unwrap(), None, 50).await;
    assert!(page.unwrap().messages.is_empty());
    sys.stop().await;
}

#[tokio::test]
async fn tags_through_the_admin_api_follow_the_contract() {
    let sys = System::start().await;
    let to = customer();
    sys.say("whatsapp", &to, "Hallo").await;
    sys.wait_for_messages(&to, 1).await;
    let post = |body: Value, key: Option<&'static str>| {
        let mut r = sys.http.post(sys.url(&format!("/contacts/whatsapp/{to}/tags"))).json(&body);
        if let Some(k) = key {
            r = r.header("x-api-key", k);
        }
        r.send()
    };
    let (status, v) = json_of(post(json!({"add": ["vip", "Newsletter-2026"]}), Some(ADMIN_KEY)).await.unwrap()).await;
    assert_eq!((status, v), (200, json!({"tags": ["newsletter-2026", "vip"]})));
    let (status, v) = json_of(post(json!({"remove": ["vip"]}), Some(ADMIN_KEY)).await.unwrap()).await;
    assert_eq!((status, v), (200, json!({"tags": ["newsletter-2026"]})));
    let (status, _) = json_of(post(json!({"add": ["not ok"]}), Some(ADMIN_KEY)).await.unwrap()).await;
    assert_eq!(status, 422);
    let (status, _) = json_of(post(json!({"add": ["vip"]}), None).await.unwrap()).await;
    assert_eq!(status, 401);
    let r = sys.http.post(sys.url("/contacts/whatsapp/4915199999999/tags")).header("x-api-key", ADMIN_KEY);
    let (status, _) = json_of(r.json(&json!({"add": ["vip"]})).send().await.unwrap()).await;
    assert_eq!(status, 404, "unknown contact");
    sys.stop().await;
}

#[tokio::test]
async fn a_new_customer_message_reaches_a_polling_console_within_two_seconds() {
    let sys = System::start().await;
    let to = customer();
    sys.say("whatsapp", &to, "Hilfe").await;
    sys.wait_for_messages(&to, 1).await;
    let anna = sys.agent_token(ANNA, "agent").await;
    let list = sys.agent_get(&anna, "/agent/conversations").await;
    let mut etag = list.headers()["etag"].to_str().unwrap().to_string();
    // The console's loop: a conditional GET every second, 304 while nothing changed.
    let poll = |etag: String| {
        let req = sys.http.get(sys.url("/agent/conversations")).bearer_auth(&anna).header("if-none-match", etag);
        async move { req.send().await.unwrap() }
    };
    assert_eq!(poll(etag.clone()).await.status(), 304);

    let written = Instant::now();
    sys.say("whatsapp", &to, "Ist jemand da?").await;
    let seen = loop {
        let r = poll(etag.clone()).await;
        if r.status() == 200 {
            etag = r.headers()["etag"].to_str().unwrap().to_string();
            let v: Value = r.json().await.unwrap();
            let c = v["conversations"].as_array().unwrap().iter().find(|c| c["address"] == to.as_str()).cloned();
            if c.is_some_and(|c| c["last_message"]["text"] == "Ist jemand da?") {
                break written.elapsed();
            }
        }
        assert!(written.elapsed() < Duration::from_secs(5), "never showed up");
        tokio::time::sleep(Duration::from_millis(1000)).await;
    };
    println!("a new customer message reached the polling console after {seen:?} (poll interval 1 s)");
    assert!(seen < Duration::from_secs(2), "{seen:?}");
    assert_eq!(poll(etag).await.status(), 304, "nothing new since");
    sys.stop().await;
}
