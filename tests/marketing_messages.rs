//! Issue 10 item 4 over HTTP: MARKETING templates go to the Marketing Messages API when the
//! account uses it (`WHATSAPP_MARKETING_MESSAGES_API`), else to `/messages`; everything else
//! always to `/messages`. Templates take positional parameters (body, then the URL button's),
//! refused before sending when the count is wrong. Sent through the agent API's template reply,
//! which builds the message with the template catalog like every other sender of templates.
use parley_tests::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const ANNA: &str = "anna@example.com";
const COLLECTION: &str = "https://parley-demo.myshopify.com/collections/";

async fn send_template(sys: &System, token: &str, to: &str, template: Value) -> (u16, Value) {
    let path = format!("/agent/conversations/whatsapp/{to}/messages");
    let r = sys.agent_post(token, &path, json!({ "template": template })).await;
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn newsletter(language: &str, parameters: &[&str]) -> Value {
    json!({ "name": "newsletter", "language": language, "parameters": parameters })
}

/// The history entry of the agent's last template, once the sender recorded it.
async fn thread_text(sys: &System, token: &str, to: &str, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = sys.agent_get(token, &format!("/agent/conversations/whatsapp/{to}")).await;
        let v: Value = r.json().await.unwrap();
        let found = v["messages"].as_array().into_iter().flatten().find_map(|m| {
            let text = m["text"].as_str()?;
            text.contains(needle).then(|| text.to_string())
        });
        if let Some(text) = found {
            return text;
        }
        assert!(Instant::now() < deadline, "no history entry with {needle:?}: {v:#}");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}

#[tokio::test]
async fn with_the_setting_off_a_marketing_template_goes_to_messages_and_a_wrong_count_is_refused() {
    // The window closes at once: the newsletter goes out as marketing (consent checked), as a
    // campaign's would.
    let window = Duration::from_secs(3);
    let sys = System::start_with(|o| {
        o.marketing_messages_api = Some(false);
        o.service_window = Some(window);
    })
    .await;
    let to = sys.opted_in_customer().await;
    let anna = sys.agent_token(ANNA, "agent").await;
    tokio::time::sleep(window + Duration::from_secs(1)).await;
    let before = sys.messages_to(&to).await.len();

    // Body parameter and URL-button parameter: 2. One or three are refused before queueing.
    for wrong in [&["Erika"][..], &["Erika", "spring", "extra"], &[]] {
        let (status, v) = send_template(&sys, &anna, &to, newsletter("de", wrong)).await;
        assert_eq!(status, 422, "{wrong:?}: {v}");
        assert!(v["message"].as_str().unwrap_or_default().contains("takes 2 parameter(s)"), "{v}");
    }
    let (status, v) = send_template(&sys, &anna, &to, newsletter("de", &["Erika", "spring"])).await;
    assert_eq!(status, 202, "{v}");

    let sent = sys.assert_settles_at(&to, before + 1, Duration::from_secs(2)).await;
    let m = &sent[before];
    assert_eq!((m["type"].as_str(), m["template"].as_str()), (Some("template"), Some("newsletter")));
    assert_eq!(m["endpoint"], "messages", "{m}");
    assert_eq!(m["parameters"], json!(["Erika", "spring"]), "body, then the URL button's");
    let text = m["text"].as_str().unwrap();
    assert!(text.starts_with("Hallo Erika!") && !text.contains("{{"), "{text}");
    assert_eq!(m["url_buttons"], json!([{ "text": "Jetzt ansehen", "url": format!("{COLLECTION}spring") }]));
    // Every entry names its endpoint.
    assert!(sent.iter().all(|m| m["endpoint"] == "messages"), "{sent:#?}");

    // The history shows what the customer saw: the body and the button with its URL.
    let shown = thread_text(&sys, &anna, &to, "Jetzt ansehen").await;
    assert_eq!(shown, format!("{text}\n[Jetzt ansehen] {COLLECTION}spring"));
    sys.stop().await;
}

#[tokio::test]
async fn with_the_setting_on_marketing_templates_go_to_marketing_messages_and_the_rest_to_messages() {
    let sys = System::start_with(|o| o.marketing_messages_api = Some(true)).await;
    let to = sys.opted_in_customer().await;
    let anna = sys.agent_token(ANNA, "agent").await;
    // The bot's own answer (before an agent writes, after which the bot stays silent).
    sys.say("whatsapp", &to, "Hallo").await;
    let before = sys.wait_for_messages(&to, 3).await.len();

    let (status, v) = send_template(&sys, &anna, &to, newsletter("en", &["Erika", "summer-26"])).await;
    assert_eq!(status, 202, "{v}");
    let utility = json!({ "name": "order_confirmation", "language": "de", "parameters": ["#1001", "49,90 €"] });
    let (status, v) = send_template(&sys, &anna, &to, utility).await;
    assert_eq!(status, 202, "{v}");
    let (status, v) = send_template(&sys, &anna, &to, newsletter("en", &["Erika"])).await;
    assert_eq!(status, 422, "{v}");

    let sent = sys.wait_for_messages(&to, before + 2).await;
    let after: Vec<&Value> = sent[before..].iter().collect();
    let newsletter = after.iter().find(|m| m["template"] == "newsletter").expect("newsletter sent");
    assert_eq!(newsletter["endpoint"], "marketing_messages", "{newsletter}");
    assert_eq!(newsletter["parameters"], json!(["Erika", "summer-26"]));
    assert!(newsletter["text"].as_str().unwrap().starts_with("Hi Erika!"), "{newsletter}");
    assert_eq!(newsletter["url_buttons"], json!([{ "text": "Shop now", "url": format!("{COLLECTION}summer-26") }]));
    let receipt = after.iter().find(|m| m["template"] == "order_confirmation").expect("utility template sent");
    assert_eq!(receipt["endpoint"], "messages", "{receipt}");
    assert_eq!(receipt["parameters"], json!(["#1001", "49,90 €"]));
    // The opt-in question, its confirmation and the bot's answer: all through /messages.
    assert_eq!(before, 3);
    assert!(sent[..before].iter().all(|m| m["endpoint"] == "messages"), "{sent:#?}");
    sys.assert_settles_at(&to, before + 2, Duration::from_secs(1)).await;
    sys.stop().await;
}
