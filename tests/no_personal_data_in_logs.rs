//! No personal data in logs or error bodies. Its own test binary: it installs the process's
//! global tracing subscriber (JSON at INFO, the deployed level) writing every line into a buffer,
//! runs a journey full of personal data — chat with a name and texts, a typed web opt-in, bad
//! requests and malformed JSON carrying phone numbers and texts, a cart, a shop order with name,
//! e-mail and phone, a tracked link to a URL with a key, an erase — and asserts no log line and no
//! error body holds any of it.
use parley_tests::*;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the capturing subscriber with the deployed format (`observability::json_subscriber`).
fn capture_logs() -> Capture {
    use tracing_subscriber::util::SubscriberInitExt;
    let capture = Capture::default();
    let writer = capture.clone();
    parley::observability::json_subscriber("info".parse().expect("a Targets filter"), move || writer.clone()).init();
    capture
}

/// The test's person (and a second one who opts in on the web with a typed number).
struct Person {
    digits: String,
    first: String,
    last: String,
    email: String,
    street: String,
}

impl Person {
    fn new() -> Self {
        let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
        Person {
            digits: customer(),
            first: format!("Hildegard{tag}"),
            last: format!("Pfefferkorn{tag}"),
            email: format!("hildegard.{tag}@example.net"),
            street: format!("Lindenallee {tag}"),
        }
    }
    /// `0151 2345 6789`-style national form.
    fn national(&self) -> String {
        format!("0{}", &self.digits[2..])
    }
    fn national_spaced(&self) -> String {
        format!("0{} {} {}", &self.digits[2..5], &self.digits[5..9], &self.digits[9..])
    }
    fn international_spaced(&self) -> String {
        format!("+{} {} {}", &self.digits[..2], &self.digits[2..5], &self.digits[5..])
    }
    /// What must appear nowhere: the national significant number covers `49151…`, `+49151…` and
    /// `0151…`; spaced forms, names, e-mail and texts are listed on their own.
    fn needles(&self) -> Vec<String> {
        vec![
            self.digits[2..].to_string(),
            self.national_spaced(),
            self.international_spaced(),
            self.first.clone(),
            self.last.clone(),
            self.email.clone(),
            self.street.clone(),
        ]
    }
}

#[tokio::test]
async fn no_log_line_and_no_error_body_holds_personal_data() {
    let logs = capture_logs();
    let sys = System::start().await;
    let a = Person::new();
    let b = Person::new();
    let mut bodies: Vec<(String, String)> = Vec::new();
    let mut keep = |what: &str, status: u16, body: String| {
        assert!((400..500).contains(&status), "{what}: expected a client error, got {status}: {body}");
        bodies.push((what.to_string(), body));
    };
    let mut answers: Vec<(String, String)> = Vec::new();

    // A catalog for the cart.
    let p = sys
        .shop(
            "products",
            json!({"platform": "shopify", "title": "T-Shirt", "variants": [{"sku": "TSHIRT-M", "title": "M", "price": "19.90", "inventory": 5}]}),
        )
        .await;
    assert_eq!(p["webhook_status"], 200);

    // Chat with a profile name, a text full of personal data, consent, a cart, a checkout link.
    let profile = format!("{} {}", a.first, a.last);
    let text = format!("Hallo, hier ist {}, Tel. {}, ich wohne in der {}", a.first, a.national_spaced(), a.street);
    for (i, t) in [text.as_str(), "START", "JA", "add TSHIRT-M 1", "kasse"].into_iter().enumerate() {
        let body = wa_text(&a.digits, &wamid(), t).replace("Erika Muster", &profile);
        assert_eq!(sys.post_meta(&body).await.status(), 200);
        sys.wait_for_messages(&a.digits, i + 1).await;
    }

    // Web opt-in with a number typed the way people type it.
    let r = sys.opt_in(json!({"channel": "whatsapp", "address": b.national_spaced(), "source": "footer-form"})).await;
    assert_eq!(r.status(), 202);

    // Bad requests carrying phone numbers, names and texts.
    let optin_cases = [
        (
            "two numbers in one",
            json!({"channel": "whatsapp", "address": format!("{} {}", a.national_spaced(), b.national())}),
        ),
        ("a name for a number", json!({"channel": "whatsapp", "address": format!("{} {}", a.first, a.last)})),
        ("too long a number", json!({"channel": "whatsapp", "address": format!("+{}999", a.digits)})),
        ("a number as channel", json!({"channel": format!("+{}", a.digits), "address": a.digits})),
        ("a number as locale", json!({"channel": "whatsapp", "address": a.digits, "locale": a.national()})),
        ("a name as purpose", json!({"channel": "whatsapp", "address": a.digits, "purposes": ["marketing", a.first]})),
        ("a number as account", json!({"channel": "whatsapp", "address": a.digits, "account": a.digits})),
        ("a number as JSON number", json!({"channel": "whatsapp", "address": a.digits.parse::<u64>().unwrap()})),
        ("a number as field name", {
            let mut v = json!({"channel": "whatsapp", "address": a.digits});
            v[a.digits.as_str()] = json!(a.email);
            v
        }),
        ("messenger web opt-in", json!({"channel": "messenger", "address": a.last})),
    ];
    for (what, body) in optin_cases {
        let r = sys.opt_in(body).await;
        keep(what, r.status().as_u16(), r.text().await.unwrap());
    }
    let malformed = [
        format!(r#"{{"channel":"whatsapp","address":"+{}","source":"{}""#, a.digits, text),
        format!(r#"{{"channel":"whatsapp","address":"+{}" "source":"{}"}}"#, a.digits, a.street),
        format!(r#"{{"channel":"whatsapp","address":"+{}"}} {}"#, a.digits, a.email),
    ];
    for body in &malformed {
        let r = sys
            .http
            .post(sys.url("/consent/optin"))
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        keep("malformed opt-in JSON", r.status().as_u16(), r.text().await.unwrap());
    }
    for (method, path) in [
        (reqwest::Method::GET, format!("/consent/whatsapp/{}", a.national())),
        (reqwest::Method::GET, format!("/consent/{}/{}", a.digits, a.digits)),
        (reqwest::Method::GET, format!("/contacts/whatsapp/{}/export", a.national())),
        (reqwest::Method::DELETE, format!("/contacts/{}/{}", a.first, a.digits)),
        (reqwest::Method::POST, format!("/contacts/whatsapp/{}/release-to-bot", a.national())),
    ] {
        let r = sys.http.request(method, sys.url(&path)).header("x-api-key", ADMIN_KEY).send().await.unwrap();
        keep(&path, r.status().as_u16(), r.text().await.unwrap());
    }
    // A signed Meta delivery that is not JSON, and one whose message fields have the wrong types.
    let broken =
        format!(r#"{{"object":"whatsapp_business_account","entry":[{{"from":"{}","text":"{}""#, a.digits, text);
    let r = sys.post_meta(&broken).await;
    keep("malformed meta delivery", r.status().as_u16(), r.text().await.unwrap());
    let odd = wa_delivery(&a.digits, &wamid(), now(), json!({"type": "text", "text": {"body": text}}))
        .replace(&format!(r#""from":"{}""#, a.digits), &format!(r#""from":{}"#, a.digits))
        .replace(r#""type":"text""#, &format!(r#""type":["{}"]"#, a.email));
    assert_eq!(sys.post_meta(&odd).await.status(), 200, "a malformed message is skipped, the delivery accepted");
    // Shop deliveries: not JSON, a bad id, a bad currency — each carrying personal data.
    let shop_cases = [
        format!(r#"{{"id": 1, "phone": "{}", "note": "{}""#, a.international_spaced(), text),
        json!({"id": format!("{}x", a.digits), "phone": a.national(), "email": a.email}).to_string(),
        json!({"id": 77, "currency": a.first, "total_price": "1.00", "phone": a.national(), "line_items": []})
            .to_string(),
        json!({"id": 78, "currency": "EUR", "total_price": a.national(), "phone": a.national(), "line_items": []})
            .to_string(),
    ];
    for body in &shop_cases {
        // Rejected or tolerated (a field Parley does not need may be skipped): never echoed.
        let r = sys.post_shopify("orders/create", body, SHOPIFY_DOMAIN).await;
        answers.push(("shopify order".into(), r.text().await.unwrap()));
    }
    // A real order with name, e-mail and phone: the confirmation goes out.
    let order = sys
        .shop(
            "orders",
            json!({"platform": "shopify", "phone": a.national_spaced(), "first_name": a.first, "last_name": a.last,
                   "email": a.email, "country": "DE",
                   "items": [{"sku": "TSHIRT-M", "title": "T-Shirt", "quantity": 1, "price": "19.90"}]}),
        )
        .await;
    assert_eq!(order["webhook_status"], 200, "{order}");
    sys.wait_for_messages(&a.digits, 6).await;

    // The team inbox: the customer asks for a person, an agent answers with the customer's name,
    // notes their e-mail, and sends requests that carry personal data where it does not belong.
    let agent_email = format!("advisor.{}@example.org", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let anna = sys.agent_token(&agent_email, "agent").await;
    let other = sys.agent_token("other.advisor@example.org", "agent").await;
    let before = sys.messages_to(&a.digits).await.len();
    sys.say("whatsapp", &a.digits, "Hilfe").await;
    sys.wait_for_messages(&a.digits, before + 1).await;
    let thread = format!("/agent/conversations/whatsapp/{}", a.digits);
    assert_eq!(sys.agent_post(&anna, &format!("{thread}/claim"), json!({})).await.status(), 200);
    let r = sys.agent_post(&anna, &format!("{thread}/messages"), json!({"text": format!("Hallo {}!", a.first)})).await;
    assert_eq!(r.status(), 202);
    sys.wait_for_messages(&a.digits, before + 2).await;
    let r = sys.agent_post(&anna, &format!("{thread}/notes"), json!({"text": format!("Mail: {}", a.email)})).await;
    assert_eq!(r.status(), 201);
    let r = sys.agent_get(&anna, &thread).await;
    assert_eq!(r.status(), 200);
    let agent_cases: Vec<(&str, reqwest::Response)> = vec![
        ("claimed by someone else", sys.agent_post(&other, &format!("{thread}/claim"), json!({})).await),
        ("assign by an agent", sys.agent_post(&other, &format!("{thread}/assign"), json!({"assignee": a.email})).await),
        ("a name as SKU", sys.agent_post(&anna, &format!("{thread}/cart"), json!({"items": [{"sku": a.last}]})).await),
        ("a name as tag", {
            sys.agent_post(&anna, &format!("{thread}/tags"), json!({"add": [format!("{} {}", a.first, a.last)]})).await
        }),
        ("an e-mail as template", {
            let body = json!({"template": {"name": a.email, "language": "de"}});
            sys.agent_post(&anna, &format!("{thread}/messages"), body).await
        }),
        (
            "a number as field",
            sys.agent_post(&anna, &format!("{thread}/messages"), json!({ a.digits.clone(): a.first })).await,
        ),
        ("a name as channel", sys.agent_get(&anna, &format!("/agent/conversations/{}/{}", a.first, a.digits)).await),
        ("an unknown number", sys.agent_get(&anna, &format!("/agent/conversations/whatsapp/{}9", a.digits)).await),
        ("a number as state", sys.agent_get(&anna, &format!("/agent/conversations?state={}", a.national())).await),
    ];
    for (what, r) in agent_cases {
        keep(what, r.status().as_u16(), r.text().await.unwrap());
    }

    // A tracked link whose URL carries a key and the customer's e-mail: clicked, and a path that
    // names the customer tried as a token. The URL goes to the browser, never to a log line.
    let link_key = format!("k3y{}", uuid::Uuid::new_v4().simple());
    let target = format!("https://parley-demo.myshopify.com/account?key={link_key}&email={}", a.email);
    let link = sys.track_link("cmp-privacy", &a.digits, &target).await;
    let r = sys.http.get(&link.short_url).send().await.unwrap();
    assert_eq!(r.status(), 302);
    assert!(r.headers()["location"].to_str().unwrap().contains(&link_key));
    let r = sys.http.get(sys.url(&format!("/r/{}", a.digits))).send().await.unwrap();
    assert_eq!(r.status(), 404);
    answers.push(("unknown link".into(), r.text().await.unwrap()));

    // Erase both.
    for who in [&a, &b] {
        let r = sys
            .http
            .delete(sys.url(&format!("/contacts/whatsapp/+{}", who.digits)))
            .header("x-api-key", ADMIN_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    sys.stop().await;

    let captured = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = captured.lines().collect();
    assert!(lines.len() > 20, "the journey should have logged: {captured}");
    assert!(captured.contains("request rejected") && captured.contains("skipped part of a delivery"), "{captured}");
    // Contacts appear redacted.
    assert!(captured.contains(&format!("whatsapp:***{}", &a.digits[a.digits.len() - 4..])), "{captured}");
    let rejected = bodies.len();
    bodies.extend(answers);
    let mut leaks = Vec::new();
    for who in [&a, &b] {
        for needle in who.needles() {
            leaks.extend(lines.iter().filter(|l| l.contains(&needle)).map(|l| format!("log holds {needle}: {l}")));
            leaks.extend(
                bodies
                    .iter()
                    .filter(|(_, b)| b.contains(&needle))
                    .map(|(w, b)| format!("{w}: body holds {needle}: {b}")),
            );
        }
    }
    // The advisors' e-mails are personal data too: in answers to the team, never in a log line;
    // nor a tracked link's URL (its key) or its token.
    for needle in [agent_email.as_str(), "other.advisor@example.org", link_key.as_str(), link.token.as_str()] {
        leaks.extend(lines.iter().filter(|l| l.contains(needle)).map(|l| format!("log holds {needle}: {l}")));
    }
    assert!(leaks.is_empty(), "personal data leaked:\n{}", leaks.join("\n"));
    // Client errors still say what is wrong.
    for (what, body) in &bodies[..rejected] {
        let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("{what}: {body}"));
        assert!(v["message"].as_str().is_some_and(|m| m.len() > 10), "{what}: {body}");
    }
}
