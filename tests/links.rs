//! Tracked links (`GET /r/{token}`), black-box: links made by the link service for real contacts
//! through the store, followed over HTTP like a recipient's browser follows them.
use parley::domain::links::LinkToken;
use parley::domain::ContactId;
use parley_tests::*;
use std::collections::BTreeSet;

const BROWSER: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/126.0 Mobile Safari/537.36";

struct Answer {
    status: u16,
    location: Option<String>,
    header: std::collections::HashMap<String, String>,
    body: String,
}

async fn open_with(sys: &System, method: reqwest::Method, url: &str, user_agent: &str) -> Answer {
    let r = sys.http.request(method, url).header("user-agent", user_agent).send().await.unwrap();
    let header = r
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or_default().to_string()))
        .collect::<std::collections::HashMap<_, _>>();
    Answer {
        status: r.status().as_u16(),
        location: header.get("location").cloned(),
        header,
        body: r.text().await.unwrap(),
    }
}

/// A recipient's click (the harness never follows redirects: the 302 is the answer).
async fn click(sys: &System, url: &str) -> Answer {
    open_with(sys, reqwest::Method::GET, url, BROWSER).await
}

fn contact(digits: &str) -> ContactId {
    ContactId::from_path("whatsapp", digits).unwrap()
}

/// A contact who wrote to the shop, so they exist in the store.
async fn real_contact(sys: &System) -> String {
    let digits = customer();
    sys.say("whatsapp", &digits, "Hallo").await;
    sys.wait_for_messages(&digits, 1).await;
    digits
}

fn campaign() -> String {
    format!("c-{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

fn short_links(sys: &System, text: &str) -> Vec<String> {
    text.split_whitespace().filter(|w| w.starts_with(&format!("{}/r/", sys.base))).map(str::to_string).collect()
}

#[tokio::test]
async fn a_click_redirects_to_the_original_with_utm_and_counts_total_and_unique() {
    let sys = System::start().await;
    let anna = real_contact(&sys).await;
    let camp = campaign();
    let text = "Sommer-Sale: https://parley-demo.myshopify.com/collections/summer?sort=price#top. \
                Fragen? mailto:hilfe@parley-demo.example";
    let tracked = sys.track_text(&camp, &anna, text).await;
    let links = short_links(&sys, &tracked);
    assert_eq!(links.len(), 1, "{tracked}");
    let short = links[0].trim_end_matches('.').to_string();
    // Only the URL was replaced; the sentence and the mailto: stay as they were.
    assert_eq!(
        tracked,
        format!("Sommer-Sale: {short}. Fragen? mailto:hilfe@parley-demo.example"),
        "the text around the link is kept"
    );
    let token = short.rsplit('/').next().unwrap();
    assert!(LinkToken::parse(token).is_some(), "{token}");
    assert!(!short.contains(&anna[2..]) && !short.contains(&camp), "the short link names nobody: {short}");

    let want = format!(
        "https://parley-demo.myshopify.com/collections/summer?sort=price&utm_source=whatsapp&utm_medium=chat&utm_campaign={camp}#top"
    );
    let first = click(&sys, &short).await;
    assert_eq!((first.status, first.location.as_deref()), (302, Some(want.as_str())), "{}", first.body);
    assert_eq!(first.header["cache-control"], "no-store");
    assert_eq!(first.header["referrer-policy"], "no-referrer");
    assert!(first.body.is_empty(), "{}", first.body);

    let second = click(&sys, &short).await;
    assert_eq!((second.status, second.location.as_deref()), (302, Some(want.as_str())));
    let clicks = sys.store().campaign_clicks(&camp).await.unwrap();
    assert_eq!((clicks.total, clicks.unique), (2, 1), "two clicks by one recipient");

    // Another recipient of the same campaign gets their own link to the same page.
    let ben = real_contact(&sys).await;
    let bens = short_links(&sys, &sys.track_text(&camp, &ben, text).await)[0].trim_end_matches('.').to_string();
    assert_ne!(bens, short);
    assert_eq!(click(&sys, &bens).await.location.as_deref(), Some(want.as_str()));
    let clicks = sys.store().campaign_clicks(&camp).await.unwrap();
    assert_eq!((clicks.total, clicks.unique), (3, 2));

    // HEAD and link-preview fetchers get the same redirect but count nowhere.
    let head = open_with(&sys, reqwest::Method::HEAD, &short, BROWSER).await;
    assert_eq!((head.status, head.location.as_deref()), (302, Some(want.as_str())));
    let preview = open_with(&sys, reqwest::Method::GET, &short, "WhatsApp/2.24.6.77 A").await;
    assert_eq!((preview.status, preview.location.as_deref()), (302, Some(want.as_str())));
    let clicks = sys.store().campaign_clicks(&camp).await.unwrap();
    assert_eq!((clicks.total, clicks.unique), (3, 2), "neither HEAD nor a preview is a click");

    // A retried fan-out tracks the same text again: the same link, its clicks kept.
    assert_eq!(sys.track_text(&camp, &anna, text).await, tracked);
    let link = sys.store().get_link(&LinkToken::parse(token).unwrap()).await.unwrap().unwrap();
    assert_eq!((link.clicks, link.recipient, link.campaign.as_str()), (2, contact(&anna), camp.as_str()));
    assert!(link.first_click_at.is_some());
    // Tracking a text that already holds our short link does not wrap it again.
    assert_eq!(sys.track_text(&camp, &anna, &tracked).await, tracked);

    // The link is the contact's: listed in their export.
    let export = sys.store().export_contact(&contact(&anna)).await.unwrap();
    assert!(export.messages.iter().any(|m| m["url"] == want.as_str()), "{:#?}", export.messages);

    // What the function did, in IAM terms: exactly what template.yaml grants campaign-api.
    let ops: BTreeSet<(String, String)> = sys
        .running
        .aws_operations()
        .into_iter()
        .filter(|o| o.function == "campaign-api")
        .map(|o| (o.action, o.resource))
        .collect();
    let pair = |a: &str| (a.to_string(), "Table".to_string());
    assert_eq!(ops, BTreeSet::from([pair("dynamodb:GetItem"), pair("dynamodb:UpdateItem")]));
    sys.stop().await;
}

#[tokio::test]
async fn unknown_and_malformed_tokens_answer_404_with_a_page() {
    let sys = System::start().await;
    let unknown = LinkToken::derive(b"not-the-key", "c-1", "whatsapp#4915123456789", "https://x.example/");
    for path in [
        format!("/r/{unknown}"),
        "/r/short".into(),
        "/r/AAAAAAAAAAAAAAAAAAAAAB".into(),
        "/r/AAAAAAAAAAAAAAAAAAAA%2F%2F".into(),
        "/r/..%2F..%2Fetc%2Fpasswd".into(),
        format!("/r/{unknown}/extra"),
        "/r/".into(),
    ] {
        let a = click(&sys, &sys.url(&path)).await;
        assert_eq!(a.status, 404, "{path}: {}", a.body);
        assert_eq!(a.location, None, "{path}");
        if path != "/r/" {
            assert!(a.header["content-type"].starts_with("text/html"), "{path}");
            assert!(a.body.contains("This link is not valid"), "{path}: {}", a.body);
        }
    }
    let head = open_with(&sys, reqwest::Method::HEAD, &sys.url(&format!("/r/{unknown}")), BROWSER).await;
    assert_eq!((head.status, head.body.as_str()), (404, ""));
    let post = open_with(&sys, reqwest::Method::POST, &sys.url(&format!("/r/{unknown}")), BROWSER).await;
    assert_eq!(post.status, 405);
    assert_eq!(post.header["allow"], "GET, HEAD");
    sys.stop().await;
}

#[tokio::test]
async fn urls_that_may_not_be_tracked_never_become_links() {
    let sys = System::start().await;
    let anna = real_contact(&sys).await;
    let camp = campaign();
    let links = sys.running.app.links().unwrap();
    let c = parley::links::LinkCampaign { id: &camp, utm_campaign: &camp };
    for url in [
        "javascript:alert(document.cookie)",
        "JAVASCRIPT:alert(1)//https://parley-demo.myshopify.com",
        "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
        "vbscript:msgbox(1)",
        "mailto:hilfe@parley-demo.example",
        "tel:+4930123456",
        "file:///etc/passwd",
        "ftp://files.example/x",
        "https://parley-demo.myshopify.com@evil.example/",
        "https://user:pass@evil.example/",
        "//evil.example/path",
        "evil.example",
    ] {
        let r = links.track_url(c, &contact(&anna), url, now()).await;
        assert!(matches!(r, Err(parley::links::LinkError::Untrackable(_))), "{url}: {r:?}");
    }
    let text = "Klick javascript:alert(1) oder https://a:b@evil.example/x oder data:text/html,hi";
    assert_eq!(sys.track_text(&camp, &anna, text).await, text, "nothing in it may be tracked");
    // Nothing was stored for the contact.
    let export = sys.store().export_contact(&contact(&anna)).await.unwrap();
    assert!(export.messages.iter().all(|m| m.get("url").is_none()), "{:#?}", export.messages);
    assert_eq!(sys.store().campaign_clicks(&camp).await.unwrap().total, 0);
    sys.stop().await;
}

#[tokio::test]
async fn the_redirect_only_ever_goes_to_the_stored_url() {
    let sys = System::start().await;
    let anna = real_contact(&sys).await;
    let camp = campaign();
    let link = sys.track_link(&camp, &anna, "https://parley-demo.myshopify.com/products/tshirt").await;
    let want = format!(
        "https://parley-demo.myshopify.com/products/tshirt?utm_source=whatsapp&utm_medium=chat&utm_campaign={camp}"
    );
    assert_eq!(link.url, want);
    for attempt in [
        format!("{}?next=https://evil.example", link.short_url),
        format!("{}?url=https%3A%2F%2Fevil.example&redirect=//evil.example", link.short_url),
        format!("{}?location=javascript:alert(1)", link.short_url),
        format!("{}#https://evil.example", link.short_url),
    ] {
        let r = open_with(&sys, reqwest::Method::GET, &attempt, BROWSER).await;
        assert_eq!((r.status, r.location.as_deref()), (302, Some(want.as_str())), "{attempt}");
    }
    // A Host or forwarding header changes nothing either.
    let r = sys
        .http
        .get(&link.short_url)
        .header("x-forwarded-host", "evil.example")
        .header("referer", "https://evil.example/")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], want.as_str());
    for path in
        [format!("/r/{}/https://evil.example", link.token), "/r//evil.example".into(), "/r/https://evil.example".into()]
    {
        let r = click(&sys, &sys.url(&path)).await;
        assert_eq!((r.status, r.location), (404, None), "{path}");
    }
    sys.stop().await;
}

#[tokio::test]
async fn erasing_the_contact_removes_their_links() {
    let sys = System::start().await;
    let anna = real_contact(&sys).await;
    let camp = campaign();
    let link = sys.track_link(&camp, &anna, "https://parley-demo.myshopify.com/collections/all").await;
    assert_eq!(click(&sys, &link.short_url).await.status, 302);

    let r = sys
        .http
        .delete(sys.url(&format!("/contacts/whatsapp/{anna}")))
        .header("x-api-key", ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(sys.store().get_link(&link.token).await.unwrap(), None, "the link item is gone");
    let after = click(&sys, &link.short_url).await;
    assert_eq!((after.status, after.location), (404, None));
    // The click after the erase created nothing; the campaign keeps its count (no one in it).
    assert_eq!(sys.store().get_link(&link.token).await.unwrap(), None);
    let clicks = sys.store().campaign_clicks(&camp).await.unwrap();
    assert_eq!((clicks.total, clicks.unique), (1, 1));
    sys.stop().await;
}
