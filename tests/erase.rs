//! Erase means erased: after a whole journey (chat, consent, cart, checkout link, an abandoned
//! Shopify checkout, an order from the cart, a shipment, a campaign's tracked link) the admin
//! erase and Shopify's `customers/redact` leave no item in the table that holds the person's
//! number (in any format), name, e-mail, texts or links — only the pseudonymised consent proof.
use aws_sdk_dynamodb::types::AttributeValue;
use parley_tests::*;
use serde_json::json;
use std::collections::HashMap;
use std::time::{Duration, Instant};

const QUIET: Duration = Duration::from_millis(1000);

/// Everything that identifies the test's person, as the journey produced it.
struct Person {
    digits: String,
    first: String,
    email: String,
    checkout_link: String,
    recovery: String,
    order_id: u64,
    /// Their tracked link (`{base}/r/{token}`).
    short_link: String,
    /// Everything to look for in the table afterwards (numbers in every format, names, …).
    identifiers: Vec<String>,
}

/// Every string in an item (keys, values, nested lists and maps), one per line.
fn flatten(av: &AttributeValue, out: &mut String) {
    match av {
        AttributeValue::S(s) | AttributeValue::N(s) => {
            out.push_str(s);
            out.push('\n');
        }
        AttributeValue::Ss(v) | AttributeValue::Ns(v) => v.iter().for_each(|s| {
            out.push_str(s);
            out.push('\n');
        }),
        AttributeValue::L(v) => v.iter().for_each(|a| flatten(a, out)),
        AttributeValue::M(m) => m.iter().for_each(|(k, a)| {
            out.push_str(k);
            out.push('\n');
            flatten(a, out);
        }),
        _ => {}
    }
}

/// The whole table, every item as its text (the test may scan; the erase may not).
async fn scan_table(sys: &System) -> Vec<(String, String)> {
    let mut items = Vec::new();
    let mut start: Option<HashMap<String, AttributeValue>> = None;
    loop {
        let page = sys
            .store()
            .client()
            .scan()
            .table_name(sys.store().table())
            .consistent_read(true)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .unwrap();
        for item in page.items() {
            let pk = item.get("pk").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            let mut text = String::new();
            flatten(&AttributeValue::M(item.clone()), &mut text);
            items.push((pk, text));
        }
        match page.last_evaluated_key() {
            Some(k) if !k.is_empty() => start = Some(k.clone()),
            _ => return items,
        }
    }
}

fn holding<'a>(items: &'a [(String, String)], needle: &str) -> Vec<&'a str> {
    items.iter().filter(|(_, text)| text.contains(needle)).map(|(pk, _)| pk.as_str()).collect()
}

fn last_text(msgs: &[serde_json::Value]) -> String {
    msgs.last().unwrap()["text"].as_str().unwrap_or_default().to_string()
}

fn url_in(text: &str) -> String {
    let start = text.find("https://").unwrap_or_else(|| panic!("no link in {text}"));
    text[start..].split_whitespace().next().unwrap().to_string()
}

/// The full journey of one WhatsApp customer through HTTP; returns what identifies them.
async fn journey(sys: &System) -> Person {
    sys.seed_demo_catalog().await;

    let digits = customer();
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let (first, last) = (format!("Wilhelmine{tag}"), format!("Quastenberg{tag}"));
    let email = format!("wilhelmine.{tag}@example.org");
    let text = format!("Ich suche ein Geschenk für Tante Brunhilde {tag}");
    let profile_name = format!("{first} {last}");
    let say = |t: &str| {
        let body = wa_text(&digits, &wamid(), t).replace("Erika Muster", &profile_name);
        async move { assert_eq!(sys.post_meta(&body).await.status(), 200) }
    };

    say(&text).await;
    sys.wait_for_messages(&digits, 1).await;
    say("START").await;
    sys.wait_for_messages(&digits, 2).await;
    say("JA").await;
    sys.wait_for_messages(&digits, 3).await;
    say("add TSHIRT-M 2").await;
    sys.wait_for_messages(&digits, 4).await;
    say("kasse").await;
    let got = sys.wait_for_messages(&digits, 5).await;
    let checkout_link = url_in(&last_text(&got));
    let cart_id = checkout_link.split("parley_cart%5D=").nth(1).unwrap().split('&').next().unwrap().to_string();

    // Shopify tells of a checkout for this number (typed with spaces), left open.
    let spaced = format!("+49 151 {} {}", &digits[5..9], &digits[9..]);
    let items = json!([{"sku": "TSHIRT-M", "title": "T-Shirt – M", "quantity": 2, "price": "19.90"}]);
    let chk = sys
        .shop(
            "checkouts",
            json!({"phone": spaced, "first_name": first, "last_name": last, "email": email, "items": items}),
        )
        .await;
    assert_eq!(chk["webhook_status"], 200, "{chk}");
    let recovery = chk["abandoned_checkout_url"].as_str().unwrap().to_string();

    // The order from the chat cart, with the number in national format, then the shipment.
    let national = format!("0{}", &digits[2..]);
    let order = sys
        .shop(
            "orders",
            json!({"platform": "shopify", "phone": national, "first_name": first, "last_name": last,
                   "email": email, "country": "DE", "attributes": {"parley_cart": cart_id}, "items": items}),
        )
        .await;
    assert_eq!(order["webhook_status"], 200, "{order}");
    let order_id = order["order_id"].as_u64().unwrap();
    sys.wait_for_messages(&digits, 6).await;
    let tracking = format!("https://www.dhl.de/track?piececode=0034{tag}");
    let ship = json!({"tracking_company": "DHL", "tracking_number": format!("0034{tag}"), "tracking_url": tracking});
    assert_eq!(sys.shop(&format!("orders/{order_id}/fulfill"), ship).await["webhook_status"], 200);
    sys.assert_settles_at(&digits, 7, QUIET).await;

    // Wait until the sender has recorded every message it sent (the records that hold texts).
    let start = Instant::now();
    loop {
        let items = scan_table(sys).await;
        let recorded = items.iter().filter(|(pk, text)| pk.starts_with("PM#") && text.contains(&digits)).count();
        if recorded >= 7 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "only {recorded} provider records");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A campaign's tracked link for them, clicked.
    let link_target = format!("https://parley-demo.myshopify.com/pages/gift-{tag}");
    let link = sys.track_link("cmp-erase", &digits, &link_target).await;
    assert_eq!(sys.http.get(&link.short_url).send().await.unwrap().status(), 302);

    let identifiers = vec![
        digits.clone(),
        format!("+{digits}"),
        national,
        spaced,
        format!("{} {} {}", &digits[..2], &digits[2..5], &digits[5..]),
        first.clone(),
        last,
        profile_name,
        email.clone(),
        text,
        checkout_link.clone(),
        recovery.clone(),
        tracking,
        link_target,
        link.token.to_string(),
    ];
    let short_link = link.short_url;
    Person { digits, first, email, checkout_link, recovery, order_id, short_link, identifiers }
}

/// Before: the journey left the person all over the table (so the scan can see them).
async fn assert_present(sys: &System, p: &Person) {
    let items = scan_table(sys).await;
    for id in [&p.digits, &p.first, &p.checkout_link, &p.recovery] {
        assert!(!holding(&items, id).is_empty(), "the journey should have stored {id}");
    }
    assert!(items.iter().any(|(pk, t)| pk.starts_with("CHK#") && t.contains(&p.recovery)), "checkout stored");
    assert!(items.iter().any(|(pk, t)| pk.starts_with("LINK#") && t.contains(&p.digits)), "tracked link stored");
}

/// After: nothing holds any identifier; the consent proof is kept under the pseudonym.
async fn assert_erased(sys: &System, p: &Person) {
    let items = scan_table(sys).await;
    let leaks: Vec<(String, Vec<&str>)> =
        p.identifiers.iter().map(|id| (id.clone(), holding(&items, id))).filter(|(_, pks)| !pks.is_empty()).collect();
    assert!(leaks.is_empty(), "items still naming the person: {leaks:#?}");
    let contact = parley::domain::ContactId::new(
        parley::domain::Channel::WhatsApp,
        parley::domain::Address::parse(p.digits.as_str()).unwrap(),
    );
    let pseudonym = parley::privacy::contact_pseudonym("local-pseudonym-key", &contact);
    let proof = sys.store().pseudonymised_events(&pseudonym).await.unwrap();
    assert_eq!(proof.len(), 4, "pending and confirmed, both purposes: {proof:#?}");
    assert!(proof.iter().all(|e| e.address.is_none() && e.message_id.is_none() && e.message_id_hash.is_some()));
    assert!(items.iter().any(|(pk, _)| pk == &format!("P#{pseudonym}")));
    // Their tracked link is gone with them: it answers 404 (and the click creates nothing).
    let r = sys.http.get(&p.short_link).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert!(holding(&scan_table(sys).await, &p.digits).is_empty());
}

#[tokio::test]
async fn admin_erase_leaves_nothing_that_names_the_person() {
    let sys = System::start().await;
    let p = journey(&sys).await;
    assert_present(&sys, &p).await;
    let r = sys
        .http
        .delete(sys.url(&format!("/contacts/whatsapp/{}", p.digits)))
        .header("x-api-key", ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_erased(&sys, &p).await;
    sys.stop().await;
}

#[tokio::test]
async fn shopify_customers_redact_leaves_nothing_that_names_the_person() {
    let sys = System::start().await;
    let p = journey(&sys).await;
    assert_present(&sys, &p).await;
    let redact = json!({
        "shop_id": 71234567890u64,
        "shop_domain": SHOPIFY_DOMAIN,
        "customer": {"id": 115310627314723954u64, "email": p.email, "phone": format!("+{}", p.digits)},
        "orders_to_redact": [p.order_id],
    })
    .to_string();
    assert_eq!(sys.post_shopify("customers/redact", &redact, SHOPIFY_DOMAIN).await.status(), 200);
    assert_erased(&sys, &p).await;
    sys.stop().await;
}
