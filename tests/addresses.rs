//! A WhatsApp address in an API path is E.164 digits, always read as international
//! (CONTRACT.md "Channel addresses"): customers of any country are found by consent status,
//! export, release-to-bot and erase; `DEFAULT_PHONE_REGION` (DE here) never reinterprets them.
use parley_tests::*;
use serde_json::Value;

/// Mobile numbers of six countries, as WhatsApp's `wa_id` gives them.
const CUSTOMERS: &[(&str, &str)] = &[
    ("DE", "4915123456789"),
    ("NZ", "64215745482"),
    ("US", "14155550123"),
    ("GB", "447700900123"),
    ("BR", "5511987654321"),
    ("IN", "919876543210"),
];

async fn admin(sys: &System, method: reqwest::Method, path: &str) -> (u16, String) {
    let r = sys.http.request(method, sys.url(path)).header("x-api-key", ADMIN_KEY).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test]
async fn customers_of_every_country_are_found_by_every_path_route() {
    let sys = System::start().await;
    for (_, n) in CUSTOMERS {
        sys.say("whatsapp", n, "START").await;
        sys.wait_for_messages(n, 1).await;
        sys.say("whatsapp", n, "JA").await;
        sys.wait_for_messages(n, 2).await;
        // A human takes the chat, so release-to-bot has something to release.
        sys.say("whatsapp", n, "Hilfe").await;
        sys.wait_for_messages(n, 3).await;
    }
    for (country, n) in CUSTOMERS {
        // Digits, `+digits` and a URL-encoded `+` all name the same person.
        for form in [n.to_string(), format!("+{n}"), format!("%2B{n}")] {
            let c = sys.consent_of("whatsapp", &form).await;
            assert_eq!(c["state"], "confirmed", "{country} {form}: {c}");
            assert_eq!(c["events"][0]["address"], *n, "{country}: {c}");
        }
        let (status, body) = admin(&sys, reqwest::Method::GET, &format!("/contacts/whatsapp/{n}/export")).await;
        assert_eq!(status, 200, "{country}: {body}");
        let export: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(export["profile"]["address"], *n, "{country}: {export}");
        assert_eq!(export["consent_events"].as_array().unwrap().len(), 4, "{country}: {export}");

        let (status, body) =
            admin(&sys, reqwest::Method::POST, &format!("/contacts/whatsapp/{n}/release-to-bot")).await;
        assert_eq!(status, 200, "{country}: {body}");
        let released: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(released["was_handover"], true, "{country}: {released}");
        sys.wait_for_messages(n, 4).await;

        let (status, _) = admin(&sys, reqwest::Method::DELETE, &format!("/contacts/whatsapp/+{n}")).await;
        assert_eq!(status, 204, "{country}");
        let c = sys.consent_of("whatsapp", n).await;
        assert_eq!((c["state"].as_str(), c["events"].as_array().unwrap().len()), (Some("none"), 0), "{country}: {c}");
        let (_, body) = admin(&sys, reqwest::Method::GET, &format!("/contacts/whatsapp/{n}/export")).await;
        assert!(!body.contains(n), "{country} still exported after erase: {body}");
    }
    sys.stop().await;
}

#[tokio::test]
async fn national_numbers_in_a_path_are_refused_with_the_rule_and_without_the_number() {
    let sys = System::start().await;
    // Typed national numbers belong in the opt-in form (read in DEFAULT_PHONE_REGION), not in paths.
    for path in [
        "/consent/whatsapp/015123456789",
        "/contacts/whatsapp/015123456789/export",
        "/contacts/whatsapp/015123456789",
        "/contacts/whatsapp/015123456789/release-to-bot",
    ] {
        let method = match path {
            p if p.ends_with("release-to-bot") => reqwest::Method::POST,
            p if p.ends_with("export") || p.starts_with("/consent") => reqwest::Method::GET,
            _ => reqwest::Method::DELETE,
        };
        let (status, body) = admin(&sys, method, path).await;
        assert_eq!(status, 422, "{path}: {body}");
        assert!(body.contains("international"), "{path}: {body}");
        assert!(!body.contains("15123456789"), "{path} echoes the number: {body}");
    }
    sys.stop().await;
}
