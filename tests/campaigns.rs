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

    // The list shows it with its progress; polled with its ETag, an unchanged list is a 304.
    let r = sys.http.get(sys.url("/campaigns")).header("x-api-key", ADMIN_KEY).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    let list: Value = r.json().await.unwrap();
    let item = list["campaigns"].as_array().unwrap().iter().find(|c| c["id"] == id.as_str()).unwrap().clone();
    assert_eq!(
        (&item["state"], &item["recipients"], &item["sent"], &item["failed"], &item["skipped"]),
        (&json!("done"), &json!(3), &json!(3), &json!(0), &json!(0)),
        "{item:#}"
    );
    let again =
        sys.http.get(sys.url("/campaigns")).header("x-api-key", ADMIN_KEY).header("if-none-match", &etag).send();
    assert_eq!(again.await.unwrap().status(), 304);

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
    // Pause and resume: the waiting pass runs again at once, reads the waiting recipient (not
    // due yet) and leaves them waiting.
    let checked = || parley::observability::totals().get("CampaignWaitingChecked").copied().unwrap_or(0);
    let before = checked();
    for action in ["pause", "resume"] {
        let (status, _) = admin(&sys, reqwest::Method::POST, &format!("/campaigns/{night}/{action}"), None).await;
        assert_eq!(status, 200, "{action}");
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while checked() == before {
        assert!(std::time::Instant::now() < deadline, "the waiting pass did not run after resume");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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

// ---------------------------------------------------------------------------------------------
// Report completeness, tracked links in campaign messages, STOP, pause/resume, a larger audience.

use parley::domain::consent::{ConsentEvent, ConsentPolicy, ConsentPurpose, Via};
use parley::domain::ContactId;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Seeded {
    Confirmed,
    Pending,
    Revoked,
}

fn wa(digits: &str) -> ContactId {
    ContactId::from_path("whatsapp", digits).unwrap()
}

/// A contact as the shop's double opt-in (or a pending web opt-in, or a later STOP) leaves it:
/// written through the consent service into the stack's own table, no chat needed.
async fn seed(sys: &System, digits: &str, locale: &str, consent: Seeded) {
    use parley::consent::{change_consent, AuditContext};
    use parley::store::consent::ProfileSeed;
    let contact = wa(digits);
    let profile = ProfileSeed {
        account: Some(WA_PHONE_NUMBER_ID.to_string()),
        locale: Some(locale.to_string()),
        phone: parley::domain::E164Phone::from_digits(digits),
    };
    let now = parley::time_util::now_unix();
    let policy = ConsentPolicy::default();
    let ctx = AuditContext { source: "shop", ..Default::default() };
    let marketing = vec![ConsentPurpose::Marketing];
    let first = match consent {
        Seeded::Pending => ConsentEvent::RequestOptIn { purposes: marketing, via: Via::Web },
        _ => ConsentEvent::ShopConfirmed { purposes: marketing },
    };
    change_consent(sys.store(), &contact, &first, now, &ctx, &policy, &profile).await.unwrap();
    if consent == Seeded::Revoked {
        change_consent(sys.store(), &contact, &ConsentEvent::Stop, now, &ctx, &policy, &profile).await.unwrap();
    }
}

/// `n` German numbers in one audience shard, in the order the shard's chain reads them: with
/// every recipient in one chain, the send order is known (the test's own table has no others).
fn one_shard(n: usize) -> Vec<String> {
    use parley::store::campaigns::audience_shard;
    let shard = audience_shard(&wa(&customer()));
    let mut out = Vec::new();
    while out.len() < n {
        let c = customer();
        if audience_shard(&wa(&c)) == shard && !out.contains(&c) {
            out.push(c);
        }
    }
    out.sort_by_key(|c| wa(c).key());
    out
}

async fn count_newsletters(sys: &System, to: &[String]) -> Vec<usize> {
    let mut out = Vec::new();
    for t in to {
        out.push(newsletters(&sys.messages_to(t).await).len());
    }
    out
}

async fn recipients(sys: &System, id: &str) -> Vec<Value> {
    let (status, v) = admin(sys, reqwest::Method::GET, &format!("/campaigns/{id}/recipients"), None).await;
    assert_eq!(status, 200, "{v}");
    v["recipients"].as_array().unwrap().clone()
}

/// `n` fresh contacts with confirmed marketing, seeded five at a time.
async fn confirmed(sys: &System, n: usize) -> Vec<String> {
    let to: Vec<String> = (0..n).map(|_| customer()).collect();
    for chunk in to.chunks(5) {
        futures::future::join_all(chunk.iter().map(|t| seed(sys, t, "de", Seeded::Confirmed))).await;
    }
    to
}

/// Makes the sandbox's Graph answer the next send calls with an error (`/sandbox/faults`).
async fn graph_fault(sys: &System, fault: Value) {
    let r = sys.http.post(sys.url("/sandbox/faults")).json(&fault).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn failures_131026_are_listed_per_recipient_with_their_reason() {
    let sys = System::start().await;
    confirmed(&sys, 2).await;
    // Graph answers the next two sends "message undeliverable" (131026).
    graph_fault(&sys, json!({"status": 400, "code": 131026, "count": 2})).await;
    let id = create_and_start(&sys, newsletter("Undeliverable", json!({}), always(), 80)).await;
    let report = report_until(&sys, &id, "both failed", |r| r["failed"] == 2).await;
    assert_eq!(report["sent"], 0, "{report:#}");
    let by_code = report["failed_by_code"].as_array().unwrap();
    assert_eq!(by_code.len(), 1, "{report:#}");
    assert_eq!((by_code[0]["code"].clone(), by_code[0]["count"].clone()), (json!(131026), json!(2)));
    let reason = by_code[0]["reason"].as_str().unwrap();
    assert!(!reason.is_empty() && !reason.contains("131026"), "a plain reason: {reason}");
    let list = recipients(&sys, &id).await;
    assert_eq!(list.len(), 2, "{list:#?}");
    for r in &list {
        assert_eq!((r["status"].as_str(), r["error_code"].as_i64()), (Some("failed"), Some(131026)), "{r}");
        assert_eq!(r["error_reason"].as_str(), Some(reason), "the same plain reason per recipient: {r}");
    }
    sys.stop().await;
}

#[tokio::test]
async fn a_click_on_the_tracked_link_then_an_order_a_reply_and_a_stop_all_count() {
    let sys = System::start_with(|o| o.status_webhooks = true).await;
    let to = sys.opted_in_customer().await;
    let page = "https://parley-demo.myshopify.com/collections/sommer";
    let mut spec = newsletter("Sommer Link", json!({}), always(), 80);
    spec["template"]["parameters"] = json!([page, "sommer"]);
    let id = create_and_start(&sys, spec).await;
    report_until(&sys, &id, "sent and delivered", |r| r["state"] == "done" && r["delivered"] == 1).await;

    // The body's URL went out as a short link of this server; the button's handle as it was
    // (its template URL is the shop's, not a tracked one).
    let got = sys.messages_to(&to).await;
    let news = newsletters(&got);
    assert_eq!(news.len(), 1, "{got:#?}");
    let short = news[0]["parameters"][0].as_str().unwrap().to_string();
    assert!(short.starts_with(&sys.url("/r/")), "the URL is tracked: {short}");
    assert!(!short.contains(&to) && !short.contains("sommer"), "the short link carries nothing: {short}");
    assert_eq!(news[0]["parameters"][1], "sommer");

    let browser = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/126.0 Mobile Safari/537.36";
    for n in 1..=2 {
        let r = sys.http.get(&short).header("user-agent", browser).send().await.unwrap();
        assert_eq!(r.status(), 302);
        let location = r.headers()["location"].to_str().unwrap();
        assert!(
            location.starts_with(&format!("{page}?utm_source=whatsapp&utm_medium=chat&utm_campaign=")),
            "{location}"
        );
        let report = report_until(&sys, &id, "the click counted", |r| r["clicks_total"] == n).await;
        assert_eq!(report["clicks_unique"], 1, "unique per recipient: {report:#}");
        assert_eq!(report["click_rate"], 1.0);
    }
    assert_eq!(recipients(&sys, &id).await[0]["clicks"], 2, "the recipient's clicks");

    // Then an order by that contact: the report shows it with its revenue.
    let order = sys
        .shop(
            "orders",
            json!({"platform": "shopify", "phone": format!("+{to}"),
                   "items": [{"sku": "TSHIRT-M", "title": "T-Shirt – M", "quantity": 2, "price": "19.90"}]}),
        )
        .await;
    assert_eq!(order["webhook_status"], 200, "{order}");
    let report = report_until(&sys, &id, "the order attributed", |r| r["orders"] == 1).await;
    assert_eq!(report["revenue"], json!({"EUR": 3980}), "{report:#}");
    assert_eq!(report["revenue_per_recipient"], json!({"EUR": 3980}));
    assert_eq!(report["conversion_rate"], 1.0);
    let r = &recipients(&sys, &id).await[0];
    assert_eq!((r["clicks"].clone(), r["orders"].clone()), (json!(2), json!(1)), "{r}");

    // A reply counts once, however often they write; then STOP counts as an opt-out.
    assert_eq!(report["replies"], 0);
    sys.say("whatsapp", &to, "Danke, sieht gut aus").await;
    sys.say("whatsapp", &to, "Gibt es das auch in Blau?").await;
    let report = report_until(&sys, &id, "the reply counted", |r| r["replies"] == 1).await;
    assert_eq!(report["opt_outs"], 0);
    sys.say("whatsapp", &to, "STOP").await;
    let report = report_until(&sys, &id, "the opt-out counted", |r| r["opt_outs"] == 1).await;
    assert_eq!(report["replies"], 1, "STOP is an opt-out, not a reply: {report:#}");
    sys.stop().await;
}

#[tokio::test]
async fn stop_mid_campaign_is_never_sent() {
    let sys = System::start().await;
    // Five recipients read by one chain in a known order, one a second: the last one says STOP
    // once the first has theirs, three seconds before their turn.
    let to = one_shard(5);
    for t in &to {
        seed(&sys, t, "de", Seeded::Confirmed).await;
    }
    let id = create_and_start(&sys, newsletter("Mid STOP", json!({}), always(), 1)).await;
    sys.wait_for_messages(&to[0], 1).await;
    assert!(newsletters(&sys.messages_to(&to[4]).await).is_empty(), "not their turn yet");
    sys.say("whatsapp", &to[4], "STOP").await;
    let report = report_until(&sys, &id, "done", |r| r["state"] == "done" && r["sent"] == 4).await;
    assert_eq!(count_newsletters(&sys, &to).await, vec![1, 1, 1, 1, 0]);
    // The STOP took them out of the marketing audience before the chain reached them: they are
    // no recipient at all (had their message been queued already, the sender's consent check
    // would have dropped it and counted them as skipped no_consent).
    assert_eq!(report["recipients"], 4, "{report:#}");
    let listed = recipients(&sys, &id).await;
    assert!(listed.iter().all(|r| r["contact"] != wa(&to[4]).key()), "{listed:#?}");
    sys.stop().await;
}

#[tokio::test]
async fn pause_takes_effect_within_seconds_and_resume_sends_the_rest_once() {
    let sys = System::start().await;
    let to = one_shard(6);
    for t in &to {
        seed(&sys, t, "de", Seeded::Confirmed).await;
    }
    let id = create_and_start(&sys, newsletter("Pause", json!({}), always(), 1)).await;
    sys.wait_for_messages(&to[1], 1).await;
    let (status, v) = admin(&sys, reqwest::Method::POST, &format!("/campaigns/{id}/pause"), None).await;
    assert_eq!((status, v["state"].clone()), (200, json!("paused")));
    // What was in flight at the pause may still land; after two seconds nothing more does.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let at_pause: usize = count_newsletters(&sys, &to).await.iter().sum();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let later: usize = count_newsletters(&sys, &to).await.iter().sum();
    assert_eq!(later, at_pause, "paused: nothing more is sent");
    assert!(at_pause < to.len(), "the pause stopped the fan-out ({at_pause} sent)");
    let (_, report) = admin(&sys, reqwest::Method::GET, &format!("/campaigns/{id}"), None).await;
    assert_eq!(report["state"], "paused");

    let (status, v) = admin(&sys, reqwest::Method::POST, &format!("/campaigns/{id}/resume"), None).await;
    assert_eq!((status, v["state"].clone()), (200, json!("running")));
    let report = report_until(&sys, &id, "done after resume", |r| r["state"] == "done" && r["sent"] == 6).await;
    assert_eq!(report["recipients"], 6, "{report:#}");
    assert_eq!(count_newsletters(&sys, &to).await, vec![1; 6], "each exactly once");
    sys.stop().await;
}

#[tokio::test]
async fn a_hundred_contacts_of_mixed_consent_locale_and_country_only_the_matching_get_it_once() {
    let sys = System::start().await;
    let mut expected = Vec::new();
    let mut others = Vec::new();
    let mut people = Vec::new();
    for i in 0..100usize {
        let n = uuid::Uuid::new_v4().as_u128();
        let (digits, country) = match i % 5 {
            0 => (format!("43664{:07}", n % 10_000_000), "AT"),
            1 => (format!("316{:08}", n % 100_000_000), "NL"),
            _ => (customer(), "DE"),
        };
        let locale = if i % 3 == 0 { "en" } else { "de" };
        let consent = match i % 4 {
            1 => Seeded::Pending,
            2 => Seeded::Revoked,
            _ => Seeded::Confirmed,
        };
        if consent == Seeded::Confirmed && locale == "de" && country == "DE" {
            expected.push(digits.clone());
        } else {
            others.push(digits.clone());
        }
        people.push((digits, locale, consent));
    }
    let started = Instant::now();
    for chunk in people.chunks(5) {
        futures::future::join_all(chunk.iter().map(|(d, l, c)| seed(&sys, d, l, *c))).await;
    }
    println!("seeded 100 contacts in {:?}; {} match", started.elapsed(), expected.len());
    assert!(expected.len() >= 10, "a real share of them match ({})", expected.len());

    let segment = json!({"country": "DE", "locale": "de"});
    let (status, v) = admin(&sys, reqwest::Method::POST, "/segments/preview", Some(segment.clone())).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["matched"], expected.len(), "{v}");
    let id = create_and_start(&sys, newsletter("Hundred", segment, always(), 80)).await;
    let report = report_until(&sys, &id, "all sent", |r| r["state"] == "done" && r["sent"] == expected.len()).await;
    assert_eq!(report["recipients"], expected.len(), "{report:#}");
    assert_eq!(count_newsletters(&sys, &expected).await, vec![1; expected.len()], "each exactly once");
    assert_eq!(count_newsletters(&sys, &others).await, vec![0; others.len()], "nobody else");
    sys.stop().await;
}

#[tokio::test]
async fn a_131050_failure_mid_campaign_revokes_marketing_counts_the_opt_out_and_the_next_campaign_skips_them() {
    let sys = System::start().await;
    let to = confirmed(&sys, 2).await;
    // Graph answers the send to the first recipient "stopped marketing messages" (131050).
    graph_fault(&sys, json!({"status": 400, "code": 131050, "count": 1, "to": to[0]})).await;
    let id = create_and_start(&sys, newsletter("Stopped", json!({}), always(), 80)).await;
    let report = report_until(&sys, &id, "one sent, one failed and opted out", |r| {
        r["state"] == "done" && r["sent"] == 1 && r["failed"] == 1 && r["opt_outs"] == 1
    })
    .await;
    assert_eq!(report["recipients"], 2, "{report:#}");
    let by_code = report["failed_by_code"].as_array().unwrap();
    assert_eq!(by_code.len(), 1, "{report:#}");
    assert_eq!((by_code[0]["code"].clone(), by_code[0]["count"].clone()), (json!(131050), json!(1)));
    let reason = by_code[0]["reason"].as_str().unwrap();
    assert!(reason.contains("stopped marketing messages") && !reason.contains("131050"), "a plain reason: {reason}");
    let failed = recipients(&sys, &id).await.into_iter().find(|r| r["contact"] == wa(&to[0]).key()).unwrap();
    assert_eq!((failed["status"].as_str(), failed["error_code"].as_i64()), (Some("failed"), Some(131050)), "{failed}");
    assert_eq!(failed["error_reason"].as_str(), Some(reason));
    assert_eq!(sys.faults_left().await, 0, "the fault hit its recipient");

    // The failure revoked their marketing consent (and nothing else), on the record.
    let consent = sys.consent_of("whatsapp", &to[0]).await;
    assert_eq!(consent["purposes"]["marketing"], "revoked", "{consent:#}");
    assert_eq!(consent["events"][0]["source"], "send_failure", "{consent:#}");
    assert_eq!(sys.consent_of("whatsapp", &to[1]).await["purposes"]["marketing"], "confirmed");

    // The next campaign leaves them out (no consent); the other recipient gets it again.
    let next = create_and_start(&sys, newsletter("After 131050", json!({}), always(), 80)).await;
    let report = report_until(&sys, &next, "done", |r| r["state"] == "done" && r["sent"] == 1).await;
    assert_eq!((report["recipients"].clone(), report["failed"].clone()), (json!(1), json!(0)), "{report:#}");
    let listed = recipients(&sys, &next).await;
    assert!(listed.iter().all(|r| r["contact"] != wa(&to[0]).key()), "{listed:#?}");
    assert_eq!(count_newsletters(&sys, &to).await, vec![0, 2], "the failed send is not in the log; the other got both");
    sys.stop().await;
}

/// The approved templates plus one whose URL button is a tracked link of `LINKS`.
const LINKS: &str = "https://go.parley-demo.test";
fn with_tracked_button() -> parley::domain::templates::Templates {
    let extra = format!(
        r#"
[[template]]
name = "newsletter_link"
language = "de"
category = "marketing"
body = "Hallo {{{{1}}}}! Neu im Shop: schau rein."
url_buttons = [{{ text = "Jetzt ansehen", url = "{LINKS}/r/{{{{1}}}}" }}]
"#
    );
    let embedded = include_str!("../config/templates.toml");
    parley::domain::templates::Templates::from_toml(&format!("{embedded}\n{extra}")).unwrap()
}

#[tokio::test]
async fn a_tracked_url_button_carries_each_recipients_token_and_its_clicks_count_once_per_recipient() {
    let sys = System::start_with(|o| {
        o.templates = Some(with_tracked_button());
        o.public_base_url = Some(LINKS.to_string());
    })
    .await;
    let to = confirmed(&sys, 2).await;
    let page = "https://parley-demo.myshopify.com/collections/sommer?sort=neu";
    // The button's parameter must be a URL: a handle would make its short link answer 404.
    let bad = json!({"name": "Bad", "template": {"name": "newsletter_link", "language": "de",
                     "parameters": ["{{contact.first_name|du}}", "sommer"]}, "quiet_hours": always()});
    let (status, v) = admin(&sys, reqwest::Method::POST, "/campaigns", Some(bad)).await;
    assert_eq!(status, 422, "{v}");
    let spec = json!({"name": "Sommer Button", "template": {"name": "newsletter_link", "language": "de",
                      "parameters": ["{{contact.first_name|du}}", page]}, "quiet_hours": always()});
    let id = create_and_start(&sys, spec).await;
    report_until(&sys, &id, "both sent", |r| r["state"] == "done" && r["sent"] == 2).await;

    let mut tokens = Vec::new();
    for t in &to {
        let got = sys.messages_to(t).await;
        let sent: Vec<&Value> = got.iter().filter(|m| m["template"] == "newsletter_link").collect();
        assert_eq!(sent.len(), 1, "{got:#?}");
        // The button's parameter is the recipient's token; the button opens its short link.
        let token = sent[0]["parameters"][1].as_str().unwrap().to_string();
        assert!(
            token.len() == 22 && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "a bare token: {token}"
        );
        assert_eq!(sent[0]["url_buttons"][0]["url"], format!("{LINKS}/r/{token}"), "{:#}", sent[0]);
        assert!(!token.contains(t.as_str()), "no personal data in the token");
        tokens.push(token);
    }
    assert_ne!(tokens[0], tokens[1], "each recipient has their own link");

    // Each recipient opens theirs twice: 302 to the page with the utm parameters after its own
    // query; the campaign counts every click, and each recipient once.
    for (n, token) in tokens.iter().enumerate() {
        for _ in 0..2 {
            let r = sys.http.get(sys.url(&format!("/r/{token}"))).send().await.unwrap();
            assert_eq!(r.status(), 302);
            let location = r.headers()["location"].to_str().unwrap();
            assert_eq!(location, format!("{page}&utm_source=whatsapp&utm_medium=chat&utm_campaign=sommer-button"));
        }
        let report = report_until(&sys, &id, "the clicks counted", |r| r["clicks_total"] == 2 * (n + 1)).await;
        assert_eq!(report["clicks_unique"], n + 1, "once per recipient: {report:#}");
    }
    let report = report_until(&sys, &id, "clicks", |r| r["clicks_total"] == 4).await;
    assert_eq!(report["click_rate"], 1.0, "{report:#}");
    assert!(recipients(&sys, &id).await.iter().all(|r| r["clicks"] == 2));
    sys.stop().await;
}

/// The pace as the sandbox saw it: Graph received the `k`-th message (0-based, in receive
/// order) no sooner than the token bucket allows — its first second's worth at once, then
/// `rate` a second — less `slack` for the sender's own latency (a message the sender picks up
/// late can only bunch up with the ones after it, never go out before its slot).
fn assert_paced(times: &[jiff::Timestamp], rate: u32, slack: jiff::SignedDuration) {
    let mut times = times.to_vec();
    times.sort();
    let first = times[0];
    for (k, t) in times.iter().enumerate() {
        let earliest =
            jiff::SignedDuration::from_secs_f64((k as f64 + 1.0 - f64::from(rate)).max(0.0) / f64::from(rate));
        let at = t.duration_since(first);
        assert!(at >= earliest - slack, "message {k} was received {at:?} after the first; at {rate}/s not before {earliest:?} (less {slack:?}): {times:?}");
    }
}

#[tokio::test]
async fn the_pace_holds_in_the_receive_times_across_the_shard_chains() {
    let sys = System::start().await;
    // Fifteen recipients spread over the audience shards: eight chains draw from one bucket.
    let to = confirmed(&sys, 15).await;
    const RATE: u32 = 3;
    let started = Instant::now();
    let id = create_and_start(&sys, newsletter("Pace", json!({}), always(), RATE)).await;
    report_until(&sys, &id, "all sent", |r| r["state"] == "done" && r["sent"] == to.len()).await;
    let mut times = Vec::new();
    for t in &to {
        let got = sys.messages_to(t).await;
        let news = newsletters(&got);
        assert_eq!(news.len(), 1, "exactly once: {got:#?}");
        times.push(news[0]["sent_at"].as_str().unwrap().parse::<jiff::Timestamp>().unwrap());
    }
    times.sort();
    let span = times[times.len() - 1].duration_since(times[0]);
    println!("{} at {RATE}/s: received over {span:?}, done after {:?}", to.len(), started.elapsed());
    // Unpaced they would all arrive within a fraction of a second; paced, the last comes
    // (15 - 3) / 3 = 4 s after the first. One second of slack for the sender's latency.
    assert_paced(&times, RATE, jiff::SignedDuration::from_secs(1));
    sys.stop().await;
}

#[tokio::test]
async fn a_dynamodb_outage_mid_campaign_costs_seconds_and_everyone_gets_it_once() {
    use parley_tests::fault_proxy::{Fault, FaultProxy};
    init_env();
    let upstream = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").expect("set by local/with-endpoints.sh");
    let ddb = FaultProxy::start(&upstream).await;
    let url = ddb.url();
    let sys = System::start_with(|o| {
        o.dynamodb_endpoint = Some(url);
        // A send the outage cut off holds its claim this long before the sender retries it.
        o.claim_lease = Some(Duration::from_secs(5));
    })
    .await;
    // One chain, five a second: the fan-out takes about six seconds, long enough to cut into.
    let to = one_shard(30);
    for t in &to {
        seed(&sys, t, "de", Seeded::Confirmed).await;
    }
    let id = create_and_start(&sys, newsletter("Outage", json!({}), always(), 5)).await;
    sys.wait_for_messages(&to[0], 1).await;
    // DynamoDB resets every connection for three seconds: the page job in flight fails past
    // the SDK's own retries, and so do the sender's calls.
    ddb.set(Fault::Reset);
    tokio::time::sleep(Duration::from_secs(3)).await;
    ddb.set(Fault::Pass);
    let healed = Instant::now();
    // The failed job comes back after a second or two, not the queue's visibility timeout
    // (180 s): the rest of the fan-out (about five seconds at this pace) is queued well within
    // the 30 s the report is given.
    let report =
        report_until(&sys, &id, "all queued after the outage", |r| r["state"] == "done" && r["queued"] == to.len())
            .await;
    println!("campaign of {} fanned out {:?} after DynamoDB came back", to.len(), healed.elapsed());
    assert_eq!(report["recipients"], to.len(), "each recorded and counted once: {report:#}");
    // The sender, cut off mid-send by the same outage, sends what is left after its claims'
    // lease: each recipient gets the newsletter, exactly once.
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut got = count_newsletters(&sys, &to).await;
    while got.contains(&0) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        got = count_newsletters(&sys, &to).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(count_newsletters(&sys, &to).await, vec![1; to.len()], "each exactly once");
    sys.stop().await;
}

#[tokio::test]
async fn a_retried_page_job_finds_its_own_late_cursor_move_and_goes_on() {
    let sys = System::start().await;
    let store = sys.store();
    let rec = parley::store::campaigns::CampaignRecord {
        id: format!("cur{}", &uuid::Uuid::new_v4().simple().to_string()[..9]),
        spec: "{}".into(),
        state: parley::domain::campaign::State::Running,
        version: 0,
        created_at: now(),
        started_at: None,
        finished_at: None,
        cursors: Default::default(),
    };
    store.create_campaign(&rec).await.unwrap();
    // The job's first attempt moved the cursor, but gave up waiting for the answer (a timeout)
    // and failed before it queued the next page; its retry read the cursor before that write
    // landed and moves it again: it is its own move, the chain goes on.
    // The page's counts go in with its move, once: the retry's own move adds nothing.
    let page = vec![("recipients".to_string(), 5), ("queued".to_string(), 4), ("skipped_frequency_cap".to_string(), 1)];
    assert!(store.set_cursor(&rec.id, 3, None, "whatsapp#49151000001", "msg-1", &page).await.unwrap());
    assert!(store.set_cursor(&rec.id, 3, None, "whatsapp#49151000001", "msg-1", &page).await.unwrap(), "its own move");
    // A duplicate job (another message) that read the same cursor stops there.
    assert!(!store.set_cursor(&rec.id, 3, None, "whatsapp#49151000001", "msg-2", &page).await.unwrap());
    assert!(store.set_cursor(&rec.id, 3, Some("whatsapp#49151000001"), "done", "msg-2", &[]).await.unwrap());
    // Never back: the first job's late retry of an older move is refused.
    assert!(!store.set_cursor(&rec.id, 3, None, "whatsapp#49151000001", "msg-1", &page).await.unwrap());
    let cursors = store.get_campaign(&rec.id).await.unwrap().unwrap().cursors;
    assert_eq!(cursors.get("3").map(String::as_str), Some("done"));
    // Counted once, with the STATS counters: the report and the list see them.
    store.add_campaign_counts(&rec.id, &[("queued".to_string(), 2)]).await.unwrap();
    let counts = store.campaign_counts(&rec.id).await.unwrap();
    assert_eq!(
        (counts.get("recipients"), counts.get("queued"), counts.get("skipped_frequency_cap")),
        (Some(&5), Some(&6), Some(&1)),
        "{counts:?}"
    );
    assert!(!counts.contains_key("version"), "META's own numbers are no counters: {counts:?}");
    let listed = store.campaigns_counts(&[rec.id.as_str()]).await.unwrap();
    assert_eq!(listed.get(&rec.id), Some(&counts));
    sys.stop().await;
}

#[tokio::test]
async fn a_page_job_that_can_never_succeed_waits_in_the_dlq_with_its_reason() {
    let sys = System::start().await;
    // A running campaign whose stored definition cannot be read (a bad manual edit).
    let rec = parley::store::campaigns::CampaignRecord {
        id: format!("bad{}", &uuid::Uuid::new_v4().simple().to_string()[..9]),
        spec: r#"{"name": "Edited by hand"}"#.into(),
        state: parley::domain::campaign::State::Running,
        version: 0,
        created_at: now(),
        started_at: Some(now()),
        finished_at: None,
        cursors: Default::default(),
    };
    sys.store().create_campaign(&rec).await.unwrap();
    let sqs = sys.running.app.producer.client().clone();
    let queue = sys.running.resources.queue("CampaignQueue").unwrap().to_string();
    let dlq = sys.running.resources.queue("CampaignDLQ").unwrap().to_string();
    let job = json!({"campaign": rec.id, "shard": 3}).to_string();
    for body in [job.as_str(), "not a job"] {
        sqs.send_message().queue_url(&queue).message_body(body).send().await.unwrap();
    }
    // Both reach the DLQ at once (not after 20 receives), each with why, no personal data:
    // ops' DLQ listing shows the reason.
    let urls = parley::ops::queues::QueueUrls::from_lookup(|var| match var {
        "PARLEY_CAMPAIGN_QUEUE_URL" => Some(queue.clone()),
        "PARLEY_CAMPAIGN_DLQ_URL" => Some(dlq.clone()),
        _ => None,
    });
    let ops = parley::ops::queues::Queues::new(sqs.clone(), urls);
    let deadline = Instant::now() + Duration::from_secs(30);
    let parked = loop {
        let listed = ops.dlq_list(parley::ops::queues::QueueName::Campaign, 10).await.unwrap();
        if listed.len() >= 2 || Instant::now() > deadline {
            break listed;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let described: Vec<(String, Option<String>, Option<String>)> =
        parked.iter().map(|m| (m.kind.clone(), m.id.clone(), m.last_error.clone())).collect();
    assert_eq!(described.len(), 2, "{described:?}");
    assert!(
        described.contains(&(
            "campaign-job".into(),
            Some(rec.id.clone()),
            Some("stored item is corrupt: campaign spec".into())
        )),
        "{described:?}"
    );
    assert!(described.iter().any(|(kind, _, _)| kind == "unreadable"), "{described:?}");
    // The unreadable one carries the dispatcher's reason too (serde's rule, never the body).
    let got = sqs
        .receive_message()
        .queue_url(&dlq)
        .max_number_of_messages(10)
        .message_attribute_names(parley::campaigns::DLQ_REASON_ATTRIBUTE)
        .send()
        .await
        .unwrap();
    let reasons: Vec<(&str, &str)> = got
        .messages()
        .iter()
        .map(|m| {
            let reason = m
                .message_attributes()
                .and_then(|a| a.get(parley::campaigns::DLQ_REASON_ATTRIBUTE))
                .and_then(|v| v.string_value())
                .unwrap_or_default();
            (m.body().unwrap_or_default(), reason)
        })
        .collect();
    let unreadable = reasons.iter().find(|(body, _)| *body == "not a job").map(|(_, r)| *r).unwrap_or_default();
    assert!(unreadable.starts_with("unreadable job: malformed JSON"), "{reasons:?}");
    assert!(!unreadable.contains("not a job"), "{reasons:?}");
    assert!(reasons.contains(&(job.as_str(), "stored item is corrupt: campaign spec")), "{reasons:?}");
    sys.stop().await;
}

#[tokio::test]
async fn a_repeated_write_of_a_page_attempt_counts_once_and_knows_its_own_recipient_record() {
    // The SDK sends a write again when its first attempt timed out, even if that attempt landed
    // (the local endpoints under load do this; so can DynamoDB): the page's counts must not be
    // added twice, and its recipient must not be taken for an earlier attempt's (which counted
    // it already) and go uncounted. `make bench-campaign` showed both: 5042 queued for 5000.
    let sys = System::start().await;
    let store = sys.store();
    let id = format!("rep{}", &uuid::Uuid::new_v4().simple().to_string()[..9]);
    let queued = |n: i64| vec![("queued".to_string(), n), ("recipients".to_string(), n)];
    assert!(store.add_campaign_counts_once(&id, "counted_3", "attempt-1", &queued(5)).await.unwrap());
    assert!(!store.add_campaign_counts_once(&id, "counted_3", "attempt-1", &queued(5)).await.unwrap(), "a repeat");
    // Another chain, and the next attempt of the same chain, count.
    assert!(store.add_campaign_counts_once(&id, "counted_4", "attempt-1", &queued(2)).await.unwrap());
    assert!(store.add_campaign_counts_once(&id, "counted_3", "attempt-2", &queued(1)).await.unwrap());
    let counts = store.campaign_counts(&id).await.unwrap();
    assert_eq!((counts.get("queued"), counts.get("recipients")), (Some(&8), Some(&8)), "{counts:?}");
    assert!(!counts.contains_key("counted_3"), "the markers are no counters: {counts:?}");

    let contact = wa("4915100000042");
    let rec = parley::store::campaigns::RecipientRecord {
        contact: contact.key(),
        status: "queued".into(),
        reason: None,
        error_code: None,
        message_id: Some("c-x-1".into()),
        due_at: None,
        at: now(),
        clicks: 0,
        orders: 0,
        w: Some("attempt-1".into()),
        waited: false,
    };
    assert_eq!(store.put_recipient(&id, &contact, &rec).await.unwrap(), None, "new");
    let again = store.put_recipient(&id, &contact, &rec).await.unwrap();
    assert_eq!(again.and_then(|r| r.w).as_deref(), Some("attempt-1"), "the repeat finds its own write");
    sys.stop().await;
}

#[tokio::test]
async fn waiting_recipients_are_read_by_due_time_from_their_index_and_leave_it_when_decided() {
    // The quiet-hours pass reads this index instead of the campaign: it must hold exactly the
    // waiting recipients, in due order, and lose them with the write that sends or skips them.
    let sys = System::start().await;
    let store = sys.store();
    let id = format!("due{}", &uuid::Uuid::new_v4().simple().to_string()[..9]);
    let t = now();
    let rec = |contact: &ContactId, status: &str, due_at: Option<i64>| parley::store::campaigns::RecipientRecord {
        contact: contact.key(),
        status: status.into(),
        reason: None,
        error_code: None,
        message_id: None,
        due_at,
        at: t,
        clicks: 0,
        orders: 0,
        w: None,
        waited: false,
    };
    // Key order (a, b, c, d) is not due order (c, b, a).
    let (a, b, c, d) = (wa("4915100000101"), wa("4915100000102"), wa("4915100000103"), wa("4915100000104"));
    for (contact, status, due) in [
        (&a, "waiting", Some(t + 3600)),
        (&b, "waiting", Some(t - 10)),
        (&c, "waiting", Some(t - 60)),
        (&d, "queued", None),
    ] {
        assert_eq!(store.put_recipient(&id, contact, &rec(contact, status, due)).await.unwrap(), None);
    }
    let found = store.due_recipients(&id, t, 10).await.unwrap();
    assert_eq!(found.due, vec![c.key(), b.key()], "due now, earliest first; the queued one is not there");
    assert_eq!((found.next_due, found.more, found.read), (Some(t + 3600), false, 3));
    let page = store.due_recipients(&id, t, 1).await.unwrap();
    assert_eq!((page.due, page.more, page.next_due), (vec![c.key()], true, None), "a page, and more due");

    // Sent: the write that records them queued takes them out of the index.
    assert_eq!(store.put_recipient(&id, &c, &rec(&c, "queued", None)).await.unwrap(), None);
    let found = store.due_recipients(&id, t, 10).await.unwrap();
    assert_eq!((found.due, found.next_due, found.read), (vec![b.key()], Some(t + 3600), 2));
    // Decided to wait again (still night): a new due time, the old entry gone.
    store.put_recipient_unconditional(&id, &b, &rec(&b, "waiting", Some(t + 60))).await.unwrap();
    let found = store.due_recipients(&id, t, 10).await.unwrap();
    assert_eq!((found.due.len(), found.next_due, found.read), (0, Some(t + 60), 2), "{found:?}");
    // Another campaign's index partition is its own.
    let other = store.due_recipients("nosuchcampaign", t, 10).await.unwrap();
    assert_eq!(other, parley::store::campaigns::DueRecipients::default());
    sys.stop().await;
}

#[tokio::test]
async fn a_page_retried_after_the_quiet_hours_pass_sent_its_waiting_recipient_counts_them_once() {
    // A shard page records a recipient as waiting and fails before its cursor moves (so before
    // it counts). The quiet-hours pass then sends them (waiting −1, queued +1), and only then does
    // the page's retry find the record: it must count the recipient as the page decided them,
    // waiting, not as the pass left them, queued — else queued counts twice and waiting goes
    // below zero. The two steps are driven in that order through the dispatcher itself.
    let sys = System::start().await;
    let digits = customer();
    seed(&sys, &digits, "de", Seeded::Confirmed).await;
    let contact = wa(&digits);
    let campaigns = sys.running.app.campaigns().unwrap();
    let store = sys.store();
    let spec: parley::campaigns::Spec = serde_json::from_value(newsletter("Race", json!({}), always(), 80)).unwrap();
    let rec = campaigns.create(spec, now()).await.unwrap();
    // Running without the start action's jobs: nothing but the two steps below dispatches.
    assert!(store
        .set_campaign_state(&rec.id, rec.version, parley::domain::campaign::State::Running, now())
        .await
        .unwrap());
    let waiting = parley::store::campaigns::RecipientRecord {
        contact: contact.key(),
        status: "waiting".into(),
        reason: None,
        error_code: None,
        message_id: None,
        due_at: Some(now() - 1),
        at: now(),
        clicks: 0,
        orders: 0,
        w: Some("the failed page attempt".into()),
        waited: false,
    };
    assert_eq!(store.put_recipient(&rec.id, &contact, &waiting).await.unwrap(), None);

    let job = |shard| parley::campaigns::Job { campaign: rec.id.clone(), shard };
    let now_ms = parley::time_util::now_millis();
    campaigns.dispatch(&job(None), "the pass", now_ms).await.expect("the quiet-hours pass");
    let shard = parley::store::campaigns::audience_shard(&contact);
    campaigns.dispatch(&job(Some(shard)), "the page's retry", now_ms).await.expect("the page's retry");

    let counts = store.campaign_counts(&rec.id).await.unwrap();
    let get = |k: &str| counts.get(k).copied().unwrap_or(0);
    assert_eq!((get("recipients"), get("queued"), get("waiting")), (1, 1, 0), "{counts:?}");
    // The retry enqueued them again under the same message id: the sender sends it once.
    sys.wait_for_messages(&digits, 1).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(newsletters(&sys.messages_to(&digits).await).len(), 1);
    sys.stop().await;
}

#[tokio::test]
async fn the_quiet_hours_pass_ends_a_campaign_only_once_the_counters_agree_that_nobody_waits() {
    // Every shard is read and the due-time index shows nobody, but a shard's last page counted a
    // waiting recipient the index does not show yet (it is eventually consistent): the pass
    // must not end the campaign, nor stop looking — else that recipient would wait for ever.
    use parley::domain::campaign::State;
    let sys = System::start().await;
    let campaigns = sys.running.app.campaigns().unwrap();
    let store = sys.store();
    let spec: parley::campaigns::Spec = serde_json::from_value(newsletter("Lag", json!({}), always(), 80)).unwrap();
    let rec = campaigns.create(spec, now()).await.unwrap();
    // Running without the start action's jobs: only the dispatches below run.
    assert!(store.set_campaign_state(&rec.id, rec.version, State::Running, now()).await.unwrap());
    for shard in 0..parley::store::campaigns::AUDIENCE_SHARDS {
        assert!(store.set_cursor(&rec.id, shard, None, "done", "the last page", &[]).await.unwrap());
    }
    store.add_campaign_counts(&rec.id, &[("waiting".to_string(), 1)]).await.unwrap();
    let pass = parley::campaigns::Job { campaign: rec.id.clone(), shard: None };
    let state = || async { store.get_campaign(&rec.id).await.unwrap().unwrap().state };

    campaigns.dispatch(&pass, "the pass", parley::time_util::now_millis()).await.unwrap();
    assert_eq!(state().await, State::Running, "not ended while the counters see someone waiting");
    // It comes back to look again (delayed: the system's own poller does not take it yet).
    let url = sys.running.resources.queue("CampaignQueue").unwrap().to_string();
    let attrs = sys
        .running
        .app
        .producer
        .client()
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .unwrap();
    let delayed = attrs
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesDelayed))
        .cloned();
    assert_eq!(delayed.as_deref(), Some("1"), "the pass queued itself again");

    // The recipient was handled (the counters agree now): the next look ends the campaign.
    store.add_campaign_counts(&rec.id, &[("waiting".to_string(), -1)]).await.unwrap();
    campaigns.dispatch(&pass, "the pass again", parley::time_util::now_millis()).await.unwrap();
    assert_eq!(state().await, State::Done);
    sys.stop().await;
}
