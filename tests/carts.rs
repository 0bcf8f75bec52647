//! Carts in chat end to end: product webhooks fill the catalog, chat commands build the cart,
//! the checkout link carries the cart back on the order, idle carts get one reminder.
use parley_tests::*;
use serde_json::json;
use std::time::Duration;

const QUIET: Duration = Duration::from_millis(1500);

/// Creates a two-variant product in the sandbox shop (and so, by webhook, in the catalog).
async fn product(sys: &System) -> (u64, u64) {
    let p = sys
        .shop(
            "products",
            json!({"platform": "shopify", "title": "T-Shirt", "product_type": "Shirts",
                   "variants": [{"sku": "TSHIRT-M", "title": "M", "price": "19.90", "inventory": 5},
                                {"sku": "TSHIRT-L", "title": "L", "price": "21.90", "inventory": 5}]}),
        )
        .await;
    assert_eq!(p["webhook_status"], 200, "{p}");
    let variant = |sku: &str| {
        p["variants"].as_array().unwrap().iter().find(|v| v["sku"] == sku).unwrap()["variant_id"].as_u64().unwrap()
    };
    (variant("TSHIRT-M"), variant("TSHIRT-L"))
}

fn last_text(msgs: &[serde_json::Value]) -> String {
    msgs.last().unwrap()["text"].as_str().unwrap_or_default().to_string()
}

async fn cart_of(sys: &System, to: &str) -> parley::domain::cart::Cart {
    let contact =
        parley::domain::ContactId::new(parley::domain::Channel::WhatsApp, parley::domain::Address::parse(to).unwrap());
    sys.store().get_cart(&contact).await.unwrap().expect("a cart").cart
}

#[tokio::test]
async fn build_a_cart_by_typing_and_check_out_with_a_link_that_converts() {
    let sys = System::start().await;
    let (m, l) = product(&sys).await;
    let to = sys.opted_in_customer().await;

    sys.say("whatsapp", &to, "add TSHIRT-M 2").await;
    let got = sys.wait_for_messages(&to, 3).await;
    assert!(last_text(&got).contains("T-Shirt"), "{got:#?}");
    sys.say("whatsapp", &to, "1x tshirt-l").await;
    sys.wait_for_messages(&to, 4).await;
    sys.say("whatsapp", &to, "Warenkorb").await;
    let got = sys.wait_for_messages(&to, 5).await;
    let view = last_text(&got);
    assert!(view.contains("61,70"), "total of 2×19,90 + 21,90: {view}");

    // Unknown SKU: a clear answer, the cart unchanged.
    sys.say("whatsapp", &to, "add NOPE-1 1").await;
    let got = sys.wait_for_messages(&to, 6).await;
    assert!(last_text(&got).contains("NOPE-1"), "{got:#?}");
    assert_eq!(cart_of(&sys, &to).await.lines.len(), 2);

    sys.say("whatsapp", &to, "kasse").await;
    let got = sys.wait_for_messages(&to, 7).await;
    let link_text = last_text(&got);
    let cart = cart_of(&sys, &to).await;
    let expected = format!(
        "https://parley-demo.myshopify.com/cart/{m}:2,{l}:1?attributes%5Bparley_cart%5D={}&ref=parley",
        cart.id
    );
    assert!(link_text.contains(&expected), "{link_text}\nexpected {expected}");

    // The order comes back with the cart id: the cart is converted and the confirmation follows.
    let order = sys
        .shop(
            "orders",
            json!({"platform": "shopify", "phone": format!("+{to}"), "attributes": {"parley_cart": cart.id},
                   "items": [{"sku": "TSHIRT-M", "title": "T-Shirt – M", "quantity": 2, "price": "19.90"},
                             {"sku": "TSHIRT-L", "title": "T-Shirt – L", "quantity": 1, "price": "21.90"}]}),
        )
        .await;
    assert_eq!(order["webhook_status"], 200);
    sys.wait_for_messages(&to, 8).await;
    let cart = cart_of(&sys, &to).await;
    assert_eq!(cart.status, parley::domain::cart::CartStatus::Converted);
    assert_eq!(cart.converted.as_ref().unwrap().order_id, order["order_id"].as_u64().unwrap());
    assert_eq!(cart.converted.as_ref().unwrap().revenue.minor, 6170);
    sys.stop().await;
}

#[tokio::test]
async fn sold_out_items_cannot_be_added() {
    let sys = System::start().await;
    let p = sys
        .shop("products", json!({"platform": "shopify", "title": "Cap", "variants": [{"sku": "CAP-1", "title": "One size", "price": "12.50", "inventory": 3}]}))
        .await;
    sys.shop(&format!("products/{}/soldout", p["product_id"]), json!({})).await;
    let to = customer();
    sys.say("whatsapp", &to, "add CAP-1").await;
    let got = sys.wait_for_messages(&to, 1).await;
    assert!(last_text(&got).contains("Cap"), "{got:#?}");
    let contact = parley::domain::ContactId::new(
        parley::domain::Channel::WhatsApp,
        parley::domain::Address::parse(to.as_str()).unwrap(),
    );
    let cart = sys.store().get_cart(&contact).await.unwrap();
    assert!(cart.map(|c| c.cart.lines.is_empty()).unwrap_or(true));
    sys.stop().await;
}

#[tokio::test]
async fn concurrent_adds_lose_nothing() {
    let sys = System::start().await;
    product(&sys).await;
    let to = customer();
    let posts: Vec<_> = (0..6)
        .map(|i| {
            let sku = if i % 2 == 0 { "TSHIRT-M" } else { "TSHIRT-L" };
            wa_text(&to, &wamid(), &format!("add {sku} 1"))
        })
        .collect();
    let results = futures::future::join_all(posts.iter().map(|b| sys.post_meta(b))).await;
    assert!(results.iter().all(|r| r.status() == 200));
    sys.wait_for_messages(&to, 6).await;
    let cart = cart_of(&sys, &to).await;
    let qty = |sku: &str| cart.lines.iter().find(|l| l.sku.as_str() == sku).map(|l| l.quantity).unwrap_or(0);
    assert_eq!((qty("TSHIRT-M"), qty("TSHIRT-L")), (3, 3), "{cart:?}");
    sys.stop().await;
}

#[tokio::test]
async fn a_whatsapp_catalog_order_becomes_the_cart_and_messenger_carts_work_too() {
    let sys = System::start().await;
    product(&sys).await;
    let to = customer();
    let order = json!({"type": "order", "order": {"catalog_id": "194836987003835", "text": "",
        "product_items": [{"product_retailer_id": "TSHIRT-L", "quantity": 2, "item_price": 21.9, "currency": "EUR"}]}});
    assert_eq!(sys.post_meta(&wa_delivery(&to, &wamid(), now(), order)).await.status(), 200);
    sys.wait_for_messages(&to, 1).await;
    let cart = cart_of(&sys, &to).await;
    assert_eq!(cart.lines.len(), 1);
    assert_eq!(cart.lines[0].quantity, 2);

    let m = psid();
    sys.say("messenger", &m, "add TSHIRT-M").await;
    sys.wait_for_messages(&m, 1).await;
    sys.say("messenger", &m, "checkout").await;
    let got = sys.wait_for_messages(&m, 2).await;
    assert!(last_text(&got).contains("/cart/"), "{got:#?}");
    sys.stop().await;
}

#[tokio::test]
async fn idle_carts_get_one_reminder_only_with_marketing_consent() {
    let sys = System::start().await;
    product(&sys).await;
    let consented = sys.opted_in_customer().await;
    let stranger = customer();
    for to in [&consented, &stranger] {
        sys.say("whatsapp", to, "add TSHIRT-M 1").await;
    }
    sys.wait_for_messages(&consented, 3).await;
    sys.wait_for_messages(&stranger, 1).await;
    // Reminders are due after CART_REMINDER_DELAY_MINUTES (0 in the tests).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    sys.run_function("cart-reminder").await;
    let got = sys.wait_for_messages(&consented, 4).await;
    assert!(last_text(&got).contains("/cart/"), "{got:#?}");
    sys.run_function("cart-reminder").await;
    sys.assert_settles_at(&consented, 4, QUIET).await;
    sys.assert_settles_at(&stranger, 1, Duration::ZERO).await;
    sys.stop().await;
}

#[tokio::test]
async fn no_reminder_after_conversion_or_stop() {
    let sys = System::start().await;
    product(&sys).await;
    let converted = sys.opted_in_customer().await;
    sys.say("whatsapp", &converted, "add TSHIRT-M 1").await;
    sys.say("whatsapp", &converted, "kasse").await;
    sys.wait_for_messages(&converted, 4).await;
    let cart = cart_of(&sys, &converted).await;
    sys.shop(
        "orders",
        json!({"platform": "shopify", "phone": format!("+{converted}"), "attributes": {"parley_cart": cart.id},
               "items": [{"sku": "TSHIRT-M", "title": "T-Shirt – M", "quantity": 1, "price": "19.90"}]}),
    )
    .await;
    sys.wait_for_messages(&converted, 5).await;

    let stopped = sys.opted_in_customer().await;
    sys.say("whatsapp", &stopped, "add TSHIRT-L 1").await;
    sys.wait_for_messages(&stopped, 3).await;
    sys.say("whatsapp", &stopped, "STOP").await;
    sys.wait_for_messages(&stopped, 4).await;

    tokio::time::sleep(Duration::from_millis(1100)).await;
    sys.run_function("cart-reminder").await;
    sys.assert_settles_at(&converted, 5, QUIET).await;
    sys.assert_settles_at(&stopped, 4, Duration::ZERO).await;
    sys.stop().await;
}

#[tokio::test]
async fn an_abandoned_shop_checkout_gets_one_reminder_with_its_recovery_link() {
    let sys = System::start().await;
    let items = json!([{"sku": "TSHIRT-M", "title": "T-Shirt – M", "quantity": 1, "price": "19.90"}]);
    let abandoned = sys.opted_in_customer().await;
    let chk = sys.shop("checkouts", json!({"phone": format!("+{abandoned}"), "items": items})).await;
    assert_eq!(chk["webhook_status"], 200, "{chk}");
    let url = chk["abandoned_checkout_url"].as_str().unwrap().to_string();

    let completed = sys.opted_in_customer().await;
    let done = sys.shop("checkouts", json!({"phone": format!("+{completed}"), "items": items})).await;
    sys.shop(&format!("checkouts/{}/complete", done["checkout_id"]), json!({})).await;

    let ordered = sys.opted_in_customer().await;
    sys.shop("checkouts", json!({"phone": format!("+{ordered}"), "items": items})).await;
    sys.shop("orders", json!({"platform": "shopify", "phone": format!("+{ordered}"), "items": items})).await;
    sys.wait_for_messages(&ordered, 3).await;

    tokio::time::sleep(Duration::from_millis(1100)).await;
    sys.run_function("cart-reminder").await;
    let got = sys.wait_for_messages(&abandoned, 3).await;
    assert!(last_text(&got).contains(&url), "{got:#?}");
    sys.run_function("cart-reminder").await;
    sys.assert_settles_at(&abandoned, 3, QUIET).await;
    sys.assert_settles_at(&completed, 2, Duration::ZERO).await;
    sys.assert_settles_at(&ordered, 3, Duration::ZERO).await;
    sys.stop().await;
}

#[tokio::test]
async fn browsing_lists_the_catalog_and_a_category_filters_it() {
    let sys = System::start().await;
    product(&sys).await;
    let to = sys.opted_in_customer().await;

    sys.say("whatsapp", &to, "Katalog").await;
    let got = sys.wait_for_messages(&to, 3).await;
    let listed = got.last().unwrap().to_string();
    assert!(listed.contains("TSHIRT-M") && listed.contains("TSHIRT-L"), "{listed}");

    sys.say("whatsapp", &to, "katalog shirts").await;
    let got = sys.wait_for_messages(&to, 4).await;
    assert!(got.last().unwrap().to_string().contains("TSHIRT-M"), "{got:#?}");

    sys.say("whatsapp", &to, "katalog hosen").await;
    let got = sys.wait_for_messages(&to, 5).await;
    assert!(last_text(&got).contains("keine Produkte"), "{got:#?}");
    sys.stop().await;
}
