//! Campaigns against the sandbox: a consented segment gets the newsletter exactly once, paced;
//! quiet hours hold recipients back; the frequency cap spans campaigns; pause and cancel stop
//! the fan-out; an order after the message counts in the report.
use parley_tests::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

async fn admin(sys: &System, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut r = sys.http.request(method, sys.url(path)).header("x-api-key", ADMIN_KEY);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Quiet hours that include the present moment (the tests run at any hour).
fn always() -> Value {
    json!({"start": "00:00", "end": "23:59", "sundays": true})
}

fn newsletter(name: &str, segment: Value, quiet: Value, rate: u32) -> Value {
    json!({"name": name,
           "template": {"name": "newsletter", "language": "de", "parameters": ["{{contact.first_name|du}}", "sommer"]},
           "segment": segment, "rate_per_second": rate, "quiet_hours": quiet})
}

async fn tag(sys: &System, to: &str, tags: &[&str]) {
    let (status, _) =
        admin(sys, reqwest::Method::POST, &format!("/contacts/whatsapp/{to}/tags"), Some(json!({"add": tags}))).await;
    assert_eq!(status, 200);
}

async fn create_and_start(sys: &System, spec: Value) -> String {
    let (status, v) = admin(sys, reqwest::Method::POST, "/campaigns", Some(spec)).await;
    assert_eq!((status, v["state"].clone()), (201, json!("draft")), "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let (status, v) = admin(sys, reqwest::Method::POST, &format!("/campaigns/{id}/start"), None).await;
    assert_eq!((status, v["state"].clone()), (200, json!("running")), "{v}");
    id
}

async fn report_until(sys: &System, id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, v) = admin(sys, reqwest::Method::GET, &format!("/campaigns/{id}"), None).await;
        assert_eq!(status, 200, "{v}");
        if pred(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: {v:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn newsletters(msgs: &[Value]) -> Vec<&Value> {
    msgs.iter().filter(|m| m["template"] == "newsletter").collect()
}

#[tokio::test]
async fn only_the_consented_segment_gets_it_once_paced_and_the_report_counts_it() {
    let sys = System::start_with(|o| o.status_webhooks = true).await;
    // Six customers who confirmed marketing, three tagged vip; two who never confirmed.
    let mut vips = Vec::new();
    let mut others = Vec::new();
    for i in 0..6 {
        let to = sys.opted_in_customer().await;
        if i % 2 == 0 {
            tag(&sys, &to, &["vip"]).await;
            vips.push(to);
        } else {
            others.push(to);
        }
    }
    let strangers: Vec<String> = (0..2).map(|_| customer()).collect();
    for s in &strangers {
        sys.say("whatsapp", s, "Hallo").await;
        sys.wait_for_messages(s, 1).await;
        tag(&sys, s, &["vip"]).await;
    }

    // The preview counts before anything is sent.
    let (status, v) =
        admin(&sys, reqwest::Method::POST, "/segments/preview", Some(json!({"tags_any": ["vip"], "country": "DE"})))
            .await;
    assert_eq!(status, 200, "{v}");
    assert!(v["matched"].as_u64().unwrap() >= 3, "{v}");

    // A campaign of two a second: the vips get it, the others and the strangers do not.
    let started = Instant::now();
    let id =
        create_and_start(&sys, newsletter("VIP", json!({"tags_any": ["vip"], "country": "DE"}), always(), 2)).await;
    let report = report_until(&sys, &id, "every vip sent and delivered", |r| {
        r["state"] == "done" && r["sent"] == 3 && r["delivered"] == 3
    })
    .await;
    assert_eq!(report["recipients"], 3, "{report:#}");
    assert_eq!(report["failed"], 0);
    let mut times = Vec::new();
    for to in &vips {
        let got = sys.messages_to(to).await;
        let news = newsletters(&got);
        assert_eq!(news.len(), 1, "exactly once: {got:#?}");
        // The first name from the profile (the sandbox chats as "Sandbox …"), then the button's.
        assert_eq!(news[0]["parameters"], json!(["Sandbox", "sommer"]));
        times.push(news[0]["sent_at"].as_str().unwrap().to_string());
    }
    for to in others.iter().chain(&strangers) {
        assert!(newsletters(&sys.messages_to(to).await).is_empty(), "{to} is not in the consented segment");
    }
    // The pace: three messages at two a second take at least half a second from the first.
    times.sort();
    let at = |t: &str| t.parse::<jiff::Timestamp>().unwrap();
    let span = at(&times[2]).duration_since(at(&times[0]));
    assert!(span >= jiff::SignedDuration::from_millis(400), "three at two a second: {times:?}");
    println!("campaign of 3 at 2/s: sent at {times:?}, done after {:?}", started.elapsed());
    let (status, v) = admin(&sys, reqwest::Method::GET, &format!("/campaigns/{id}/recipients"), None).await;
    assert_eq!(status, 200);
    assert_eq!(v["recipients"].as_array().unwrap().len(), 3, "{v}");
    assert!(v["recipients"].as_array().unwrap().iter().all(|r| r["status"] == "delivered"), "{v}");

    // Starting it again sends nothing twice.
    let (status, _) = admin(&sys, reqwest::Method::POST, &format!("/campaigns/{id}/start"), None).await;
    assert_eq!(status, 409, "a finished campaign cannot start again");

    // An order by a recipient within the attribution window counts, with its revenue.
    let order = sys
        .shop(
            "orders",
            json!({"platform": "shopify", "phone": format!("+{}", vips[0]),
                   "items": [{"sku": "TSHIRT-M", "title": "T-Shirt – M", "quantity": 2, "price": "19.90"}]}),
        )
        .await;
    assert_eq!(order["webhook_status"], 200, "{order}");
    let report = report_until(&sys, &id, "the order attributed", |r| r["orders"] == 1).await;
    assert_eq!(report["revenue"], json!({"EUR": 3980}), "{report:#}");
    assert_eq!(report["revenue_per_recipient"], json!({"EUR": 1326}));
    sys.stop().await;
}

#[tokio::test]
async fn quiet_hours_hold_recipients_back_and_the_frequency_cap_spans_campaigns() {
    let sys = System::start().await;
    let to = sys.opted_in_customer().await;
    tag(&sys, &to, &["newsletter"]).await;
    // Hours that exclude the present moment in Berlin: the recipient waits.
    let now = jiff::Timestamp::now().to_zoned_datetime(jiff::tz::TimeZone::get("Europe/Berlin").unwrap());
    let (h, m) = (now.hour() as i64, now.minute() as i64);
    let start = (h * 60 + m + 120) % (24 * 60);
    let end = (start + 60).min(24 * 60 - 1);
    let quiet = json!({"start": format!("{:02}:{:02}", start / 60, start % 60),
                       "end": format!("{:02}:{:02}", end / 60, end % 60), "sundays": true});
    let night = create_and_start(&sys, newsletter("Night", json!({"tags_any": ["newsletter"]}), quiet, 80)).await;
    let report = report_until(&sys, &night, "the recipient waits", |r| r["skipped"]["quiet_hours_pending"] == 1).await;
    assert_eq!(report["sent"], 0);
    assert_eq!(report["state"], "running", "it finishes once the waiting are sent");
    let (_, v) =
        admin(&sys, reqwest::Method::GET, &format!("/campaigns/{night}/recipients?status=waiting"), None).await;
    assert!(v["recipients"][0]["due_at"].as_i64().unwrap() > parley::time_util::now_unix(), "{v}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(newsletters(&sys.messages_to(&to).await).is_empty());
    let (status, v) = admin(&sys, reqwest::Method::POST, &format!("/campaigns/{night}/cancel"), None).await;
    assert_eq!((status, v["state"].clone()), (200, json!("cancelled")));

    // Two campaigns reach them; a third within the week is held back by the cap (2 per 7 days).
    for n in 0..2 {
        let id =
            create_and_start(&sys, newsletter(&format!("Day {n}"), json!({"tags_any": ["newsletter"]}), always(), 80))
                .await;
        report_until(&sys, &id, "sent", |r| r["state"] == "done" && r["sent"] == 1).await;
    }
    let third = create_and_start(&sys, newsletter("Day 3", json!({"tags_any": ["newsletter"]}), always(), 80)).await;
    let report = report_until(&sys, &third, "capped", |r| r["state"] == "done").await;
    assert_eq!(report["skipped"]["frequency_cap"], 1, "{report:#}");
    assert_eq!(report["sent"], 0);
    assert_eq!(newsletters(&sys.messages_to(&to).await).len(), 2);
    sys.stop().await;
}

#[tokio::test]
async fn stop_pause_and_bad_requests() {
    let sys = System::start().await;
    let to = sys.opted_in_customer().await;
    tag(&sys, &to, &["stopper"]).await;
    // STOP before the campaign reaches them: they never get it.
    sys.say("whatsapp", &to, "STOP").await;
    let id = create_and_start(&sys, newsletter("After STOP", json!({"tags_any": ["stopper"]}), always(), 80)).await;
    let report = report_until(&sys, &id, "done", |r| r["state"] == "done").await;
    assert_eq!(report["sent"], 0, "{report:#}");
    assert!(newsletters(&sys.messages_to(&to).await).is_empty());

    // Pause, resume and cancel move the state; an invalid move is a clear 409.
    let (_, v) = admin(&sys, reqwest::Method::POST, "/campaigns", Some(newsletter("P", json!({}), always(), 80))).await;
    let p = v["id"].as_str().unwrap().to_string();
    let (status, v) = admin(&sys, reqwest::Method::POST, &format!("/campaigns/{p}/pause"), None).await;
    assert_eq!((status, v["error"].clone()), (409, json!("invalid_state")), "a draft cannot pause: {v}");
    let (status, v) = admin(&sys, reqwest::Method::POST, &format!("/campaigns/{p}/cancel"), None).await;
    assert_eq!((status, v["state"].clone()), (200, json!("cancelled")));
    let (status, _) = admin(&sys, reqwest::Method::POST, &format!("/campaigns/{p}/resume"), None).await;
    assert_eq!(status, 409);

    // Only MARKETING templates, with the right parameters, to a valid segment; never without a key.
    let utility = json!({"name": "U", "template": {"name": "service_followup", "language": "de"}});
    let (status, _) = admin(&sys, reqwest::Method::POST, "/campaigns", Some(utility)).await;
    assert_eq!(status, 422);
    let short = json!({"name": "S", "template": {"name": "newsletter", "language": "de", "parameters": ["x"]}});
    let (status, _) = admin(&sys, reqwest::Method::POST, "/campaigns", Some(short)).await;
    assert_eq!(status, 422);
    let bad_field = newsletter("F", json!({}), always(), 80);
    let mut bad_field = bad_field;
    bad_field["template"]["parameters"][0] = json!("{{contact.phone}}");
    let (status, _) = admin(&sys, reqwest::Method::POST, "/campaigns", Some(bad_field)).await;
    assert_eq!(status, 422);
    let (status, _) = admin(
        &sys,
        reqwest::Method::POST,
        "/campaigns",
        Some(newsletter("C", json!({"country": "Deutschland"}), always(), 80)),
    )
    .await;
    assert_eq!(status, 422);
    let r = sys.http.post(sys.url("/campaigns")).json(&newsletter("N", json!({}), always(), 80)).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let (status, _) = admin(&sys, reqwest::Method::GET, "/campaigns/nope", None).await;
    assert_eq!(status, 404);
    sys.stop().await;
}
