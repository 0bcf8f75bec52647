//! WooCommerce webhook payloads and REST v3 responses mapped to [`ShopEvent`].
//!
//! A webhook body is the REST v3 order as `wp_json_encode` writes it (`\/`, `\uXXXX` escapes,
//! which any JSON parser decodes), built at delivery time, so one payload can already show a later
//! status. Totals are decimal strings, line item `price` is a number: both are accepted.
//! As for Shopify, required fields (id, currency, total) fail the parse; optional fields that
//! are absent, empty or of an unexpected type become `None`.
use super::event::{
    Fulfillment, LineItem, OrderRef, OrderSnapshot, OrderStatus, Platform, ProductVariant, ShopEvent, ShopParseError,
};
use super::json::{country, currency, field, id, invalid, money, objects, opt_id, push_phone, quantity, text};
use crate::domain::{Currency, Money};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime};

/// The Shipment Tracking (and AST) order meta key holding the tracking items.
const TRACKING_META_KEY: &str = "_wc_shipment_tracking_items";

/// The unsigned setup ping WooCommerce sends when a webhook is activated: `webhook_id=<digits>`.
/// It must be answered with exactly 200.
pub fn is_ping(body: &[u8]) -> bool {
    std::str::from_utf8(body)
        .ok()
        .and_then(|s| s.trim().strip_prefix("webhook_id="))
        .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
}

/// Maps one webhook delivery (`X-WC-Webhook-Topic`, the store URL's host, the verified raw body).
/// Ignored topics are acknowledged without reading the body. Product payloads carry no currency:
/// see [`parse_webhook_with_currency`].
pub fn parse_webhook(topic: &str, store_host: &str, body: &[u8]) -> Result<ShopEvent, ShopParseError> {
    parse_webhook_with_currency(topic, store_host, body, None)
}

/// [`parse_webhook`] with the store's currency, which product prices are in. Without it
/// product.created|updated|restored are ignored.
pub fn parse_webhook_with_currency(
    topic: &str,
    store_host: &str,
    body: &[u8],
    shop_currency: Option<Currency>,
) -> Result<ShopEvent, ShopParseError> {
    let ignored = |reason: &str| Ok(ShopEvent::Ignored { topic: topic.to_string(), reason: reason.to_string() });
    if is_ping(body) {
        return ignored("setup ping");
    }
    let products = |items, deleted| ShopEvent::Products {
        platform: Platform::WooCommerce,
        shop: store_host.to_string(),
        items,
        deleted,
    };
    match topic.trim().to_ascii_lowercase().as_str() {
        "order.created" | "order.updated" | "order.restored" => {}
        "order.deleted" => return ignored("a deleted order's payload is only its id"),
        "product.created" | "product.updated" | "product.restored" => {
            let Some(currency) = shop_currency else {
                return ignored("product prices carry no currency and the store currency is not known");
            };
            let root = parse_json(body)?;
            return Ok(products(vec![parse_product(&root, currency)?], false));
        }
        "product.deleted" => {
            // The payload is `{"id": N}`.
            let root = parse_json(body)?;
            return Ok(products(vec![deleted_product(id(root.get("id"), "id")?)], true));
        }
        _ => return ignored("not a topic Parley acts on"),
    }
    let root = parse_json(body)?;
    parse_order(store_host, &root).map(ShopEvent::Order)
}

fn parse_json(body: &[u8]) -> Result<Value, ShopParseError> {
    serde_json::from_slice(body).map_err(|e| ShopParseError::NotJson(crate::privacy::describe_json_error(&e)))
}

/// Maps one REST v3 product (webhook body or an element of `GET /wp-json/wc/v3/products`).
/// A variable product's webhook carries the parent with `variations` ids only, so it maps to
/// one entry with `variant_id` 0 (its `price` is the lowest variation price); a `variation`
/// maps to its parent's product id and its own id.
pub fn parse_product(product: &Value, currency: Currency) -> Result<ProductVariant, ShopParseError> {
    if !product.is_object() {
        return Err(invalid("product", "not a JSON object"));
    }
    let own_id = id(product.get("id"), "id")?;
    let parent = opt_id(product.get("parent_id"), "parent_id").ok().flatten().filter(|p| *p != 0);
    let is_variation = text(product.get("type")).as_deref() == Some("variation");
    let (product_id, variant_id) = match parent {
        Some(parent) if is_variation => (parent, own_id),
        _ => (own_id, 0),
    };
    // An empty price means "not for sale yet": zero and unavailable.
    let price = money(product.get("price"), currency, "price")?;
    let lower = |key: &str| text(product.get(key)).map(|s| s.to_ascii_lowercase());
    let available = price.is_some()
        && lower("status").as_deref() == Some("publish")
        && product.get("purchasable").and_then(Value::as_bool).unwrap_or(true)
        && matches!(lower("stock_status").as_deref(), Some("instock" | "onbackorder"));
    Ok(ProductVariant {
        product_id,
        variant_id,
        sku: text(product.get("sku")),
        title: text(product.get("name")).unwrap_or_default(),
        price: price.unwrap_or(Money::new(0, currency)),
        available,
        category: objects(product.get("categories")).next().and_then(|c| text(c.get("name"))),
        updated_at: naive_utc(product.get("date_modified_gmt")).or_else(|| naive_utc(product.get("date_modified"))),
    })
}

/// product.deleted carries only the id: no price (zero in `XXX`, "no currency").
fn deleted_product(product_id: u64) -> ProductVariant {
    ProductVariant {
        product_id,
        variant_id: 0,
        sku: None,
        title: String::new(),
        price: Money::new(0, Currency::parse("XXX").expect("valid code")),
        available: false,
        category: None,
        updated_at: None,
    }
}

/// Maps one REST v3 order object (webhook body or an element of `GET /wp-json/wc/v3/orders`).
pub fn parse_order(store_host: &str, order: &Value) -> Result<OrderSnapshot, ShopParseError> {
    if !order.is_object() {
        return Err(invalid("order", "not a JSON object"));
    }
    let order_id = id(order.get("id"), "id")?;
    let currency = currency(order.get("currency"))?;
    let total = money(order.get("total"), currency, "total")?.ok_or(ShopParseError::Missing("total"))?;
    let billing = order.get("billing");
    let shipping = order.get("shipping");

    let mut phones = Vec::new();
    push_phone(&mut phones, field(billing, "phone"));
    push_phone(&mut phones, field(shipping, "phone"));
    // `number` is a string and differs from `id` with sequential-order-number plugins.
    let name = text(order.get("number"))
        .or_else(|| opt_id(order.get("number"), "number").ok().flatten().map(|n| n.to_string()))
        .unwrap_or_else(|| order_id.to_string());
    let meta = objects(order.get("meta_data"));

    Ok(OrderSnapshot {
        order: OrderRef { platform: Platform::WooCommerce, shop: store_host.to_string(), order_id },
        name,
        status: order_status(text(order.get("status")).as_deref()),
        currency,
        total,
        items: objects(order.get("line_items")).map(|item| line_item(item, currency)).collect(),
        phones,
        country: country(field(shipping, "country")).or_else(|| country(field(billing, "country"))),
        customer_first_name: text(field(billing, "first_name")).or_else(|| text(field(shipping, "first_name"))),
        locale: None,
        // Keys starting with `_` are private plugin state; values that are not strings are skipped.
        attributes: meta
            .clone()
            .filter_map(|m| {
                let key = text(m.get("key")).filter(|k| !k.starts_with('_'))?;
                Some((key, m.get("value")?.as_str()?.to_string()))
            })
            .collect(),
        created_at: naive_utc(order.get("date_created_gmt")).or_else(|| naive_utc(order.get("date_created"))),
        updated_at: naive_utc(order.get("date_modified_gmt")).or_else(|| naive_utc(order.get("date_modified"))),
        fulfillments: meta
            .filter(|m| m.get("key").and_then(Value::as_str) == Some(TRACKING_META_KEY))
            .flat_map(|m| objects(m.get("value")))
            .filter_map(tracking_item)
            .collect(),
        marketing_consent: None,
        test: false,
    })
}

/// REST `GET /wp-json/wc/v3/orders` (a JSON array) → one result per order, so one bad order
/// does not lose the page.
pub fn parse_orders_page(
    store_host: &str,
    body: &[u8],
) -> Result<Vec<Result<OrderSnapshot, ShopParseError>>, ShopParseError> {
    Ok(parse_array(body)?.iter().map(|order| parse_order(store_host, order)).collect())
}

/// REST `GET /wp-json/wc/v3/webhooks` → `(topic, status)`; status is `active`, `paused`
/// (by an admin) or `disabled` (by delivery failures), `unknown` when absent.
pub fn parse_webhooks_page(body: &[u8]) -> Result<Vec<(String, String)>, ShopParseError> {
    Ok(parse_array(body)?
        .iter()
        .filter_map(|hook| {
            let status = text(hook.get("status")).map_or_else(|| "unknown".to_string(), |s| s.to_ascii_lowercase());
            Some((text(hook.get("topic"))?, status))
        })
        .collect())
}

fn order_status(status: Option<&str>) -> OrderStatus {
    match status.map(|s| s.trim_start_matches("wc-").to_ascii_lowercase()).as_deref() {
        Some("processing") => OrderStatus::Paid,
        Some("completed") => OrderStatus::Completed,
        Some("cancelled") => OrderStatus::Cancelled,
        Some("refunded") => OrderStatus::Refunded,
        Some("failed") => OrderStatus::Failed,
        // "Pending payment" is what an abandoned checkout stays in: nothing to confirm yet.
        Some("pending") | Some("checkout-draft") => OrderStatus::AwaitingPayment,
        // on-hold (e.g. bank transfer) and custom statuses: placed, not (yet) paid.
        _ => OrderStatus::Placed,
    }
}

fn line_item(item: &Value, currency: Currency) -> LineItem {
    // Woo uses 0 for "no variation" / a deleted product.
    let non_zero = |key: &'static str| opt_id(item.get(key), key).ok().flatten().filter(|id| *id != 0);
    LineItem {
        title: text(item.get("name")).unwrap_or_default(),
        quantity: quantity(item.get("quantity")),
        sku: text(item.get("sku")),
        variant_id: non_zero("variation_id"),
        product_id: non_zero("product_id"),
        unit_price: money(item.get("price"), currency, "price").ok().flatten(),
    }
}

/// One Shipment Tracking item → one fulfillment. Without a `tracking_id` the tracking number
/// stands in as the id; an item with neither is skipped.
fn tracking_item(item: &Value) -> Option<Fulfillment> {
    let number = text(item.get("tracking_number"));
    let id = text(item.get("tracking_id")).or_else(|| number.clone())?;
    Some(Fulfillment {
        id,
        status: None,
        shipment_status: None,
        // `formatted_*` are AST's display names for the built-in providers.
        tracking_company: text(item.get("custom_tracking_provider"))
            .or_else(|| text(item.get("formatted_tracking_provider")))
            .or_else(|| text(item.get("tracking_provider"))),
        tracking_numbers: number.into_iter().collect(),
        tracking_urls: text(item.get("custom_tracking_link"))
            .or_else(|| text(item.get("formatted_tracking_link")))
            .into_iter()
            .collect(),
        updated_at: date_shipped(item.get("date_shipped")),
    })
}

/// `date_shipped`: unix seconds (number or string) in meta, `YYYY-MM-DD` from the tracking REST API.
fn date_shipped(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok().or_else(|| {
            let date = Date::parse(s.trim(), format_description!("[year]-[month]-[day]")).ok()?;
            Some(date.midnight().assume_utc().unix_timestamp())
        }),
        _ => None,
    }
}

/// Woo dates are naive (`2017-03-22T19:28:02`): `*_gmt` is UTC, the others are site-local time,
/// read as UTC as the best available guess. An explicit offset is honoured.
fn naive_utc(v: Option<&Value>) -> Option<i64> {
    let s = text(v)?;
    if let Ok(t) = OffsetDateTime::parse(&s, &Rfc3339) {
        return Some(t.unix_timestamp());
    }
    PrimitiveDateTime::parse(&s, format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"))
        .ok()
        .map(|t| t.assume_utc().unix_timestamp())
}

// ---- JSON helpers (the shared ones are in `super::json`) ----------------------------------------

/// A REST list; WordPress reports failures as `{"code": …, "message": …}`.
fn parse_array(body: &[u8]) -> Result<Vec<Value>, ShopParseError> {
    match serde_json::from_slice(body).map_err(|e| ShopParseError::NotJson(crate::privacy::describe_json_error(&e)))? {
        Value::Array(items) => Ok(items),
        Value::Object(o) if o.contains_key("code") => {
            let code = o.get("code").and_then(Value::as_str).unwrap_or_default();
            let message = o.get("message").and_then(Value::as_str).unwrap_or_default();
            Err(invalid("body", format!("WooCommerce returned {code}: {message}")))
        }
        _ => Err(invalid("body", "not a JSON array")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// The host of the sandbox store `http://127.0.0.1:3000/sandbox/woo`.
    const STORE: &str = "127.0.0.1:3000";
    const TOPICS: &[&str] = &[
        "order.created",
        "order.updated",
        "order.restored",
        "order.deleted",
        "product.created",
        "product.updated",
        "product.deleted",
    ];

    fn eur(minor: i64) -> Money {
        Money::new(minor, Currency::parse("EUR").unwrap())
    }

    fn order(topic: &str, body: &[u8]) -> OrderSnapshot {
        match parse_webhook(topic, STORE, body).unwrap() {
            ShopEvent::Order(order) => order,
            other => panic!("expected an order, got {other:?}"),
        }
    }

    #[test]
    fn order_created_maps_every_field() {
        let o = order("order.created", include_bytes!("../../../events/woocommerce/order_created.json"));
        assert_eq!(o.order, OrderRef { platform: Platform::WooCommerce, shop: STORE.into(), order_id: 1042 });
        assert_eq!(o.name, "1042");
        assert_eq!(o.status, OrderStatus::Paid);
        assert_eq!(o.currency.as_str(), "EUR");
        assert_eq!(o.total, eur(7480));
        assert_eq!(
            o.items,
            vec![
                LineItem {
                    title: "Hoodie - Navy, L".into(),
                    quantity: 1,
                    sku: Some("HOODIE-NAVY-L".into()),
                    variant_id: Some(91),
                    product_id: Some(87),
                    // `price` is a JSON number net of tax (42.016807): rounded to cents.
                    unit_price: Some(eur(4202)),
                },
                LineItem {
                    title: "Socken 3er-Pack".into(),
                    quantity: 2,
                    sku: Some("SOCKS-3".into()),
                    variant_id: None,
                    product_id: Some(102),
                    unit_price: Some(eur(836)),
                },
            ]
        );
        assert_eq!(o.phones, vec!["0151 23456789", "+4915123456789"]);
        assert_eq!(o.country.as_deref(), Some("DE"));
        assert_eq!(o.customer_first_name.as_deref(), Some("Lena"));
        assert_eq!(o.locale, None);
        assert_eq!(
            o.attributes,
            vec![
                ("is_vat_exempt".to_string(), "no".to_string()),
                ("parley_cart".to_string(), "c_7f3a9d2e".to_string())
            ]
        );
        // `date_created_gmt` 2026-03-14T09:21:33, not the site-local 10:21:33.
        assert_eq!(o.created_at, Some(1773480093));
        assert_eq!(o.updated_at, Some(1773480095));
        assert!(o.fulfillments.is_empty());
        assert_eq!((o.marketing_consent, o.test), (None, false));
    }

    #[test]
    fn completed_order_carries_shipment_tracking() {
        let o =
            order("order.updated", include_bytes!("../../../events/woocommerce/order_updated_completed_tracking.json"));
        assert_eq!((o.order.order_id, o.status), (1042, OrderStatus::Completed));
        assert_eq!(o.updated_at, Some(1773669765));
        assert_eq!(
            o.fulfillments,
            vec![Fulfillment {
                id: "3f9a1c7e5b2d8f4a6c0e1b3d5f7a9c2e".into(),
                status: None,
                shipment_status: None,
                tracking_company: Some("DHL".into()),
                tracking_numbers: vec!["00340434161094042557".into()],
                tracking_urls: vec![
                    "https://www.dhl.de/de/privatkunden/pakete-empfangen/verfolgen.html?piececode=00340434161094042557"
                        .into()
                ],
                updated_at: Some(1773619200),
            }]
        );
        // The tracking meta is not an attribute.
        assert!(o.attributes.iter().all(|(k, _)| !k.starts_with('_')));
    }

    #[test]
    fn tracking_item_falls_back_to_the_provider_and_the_number() {
        let meta = json!([{"key": "_wc_shipment_tracking_items", "value": [
            {"tracking_provider": "dhl", "custom_tracking_provider": "", "custom_tracking_link": "",
             "tracking_number": "JJD0099", "date_shipped": 1773619200},
            {"tracking_provider": "ups", "date_shipped": "2026-03-16"},
            "not an item"
        ]}]);
        let o = json!({"id": 5, "currency": "EUR", "total": "1.00", "meta_data": meta});
        let f = parse_order(STORE, &o).unwrap().fulfillments;
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].id.as_str(), f[0].tracking_company.as_deref()), ("JJD0099", Some("dhl")));
        assert!(f[0].tracking_urls.is_empty());
        assert_eq!(f[0].updated_at, Some(1773619200));
        assert_eq!(date_shipped(Some(&json!("2026-03-16"))), Some(1773619200));
    }

    #[test]
    fn cancelled_order() {
        let o = order("order.updated", include_bytes!("../../../events/woocommerce/order_updated_cancelled.json"));
        assert_eq!((o.order.order_id, o.name.as_str()), (1043, "1043"));
        assert_eq!(o.status, OrderStatus::Cancelled);
        assert_eq!(o.total, eur(5000));
        // shipping.phone is empty: only the billing phone.
        assert_eq!(o.phones, vec!["0176 98765432"]);
        assert_eq!(o.customer_first_name.as_deref(), Some("Jonas"));
        assert_eq!(o.created_at, Some(1773507912));
    }

    #[test]
    fn status_mapping() {
        let status = |s: &str| {
            parse_order(STORE, &json!({"id": 1, "currency": "EUR", "total": "1.00", "status": s})).unwrap().status
        };
        assert_eq!(status("pending"), OrderStatus::AwaitingPayment);
        assert_eq!(status("on-hold"), OrderStatus::Placed);
        assert_eq!(status("checkout-draft"), OrderStatus::AwaitingPayment);
        assert_eq!(status("some-plugin-status"), OrderStatus::Placed);
        assert_eq!(status("processing"), OrderStatus::Paid);
        assert_eq!(status("wc-completed"), OrderStatus::Completed);
        assert_eq!(status("cancelled"), OrderStatus::Cancelled);
        assert_eq!(status("refunded"), OrderStatus::Refunded);
        assert_eq!(status("failed"), OrderStatus::Failed);
    }

    #[test]
    fn php_escapes_decode() {
        let raw = include_bytes!("../../../events/woocommerce/order_created_escaped.json");
        let text = std::str::from_utf8(raw).unwrap();
        assert!(text.contains(r"https:\/\/") && text.contains(r"\u00fc"), "fixture must keep PHP's escapes");
        let o = order("order.created", raw);
        assert_eq!((o.order.order_id, o.status), (1044, OrderStatus::Paid));
        assert_eq!(o.customer_first_name.as_deref(), Some("Jürgen"));
        assert_eq!(o.items[0].title, "Grüner Tee – Sencha");
        assert_eq!((o.items[0].quantity, o.items[0].unit_price), (2, Some(eur(836))));
        assert_eq!(o.total, eur(2480));
        assert_eq!(o.phones, vec!["0151 23456789"]);
        assert_eq!(
            o.attributes,
            vec![
                ("is_vat_exempt".to_string(), "no".to_string()),
                ("parley_return_url".to_string(), "https://wa.me/4915123456789?text=Bestellung%201044".to_string())
            ]
        );
    }

    #[test]
    fn orders_list_page() {
        let page = parse_orders_page(STORE, include_bytes!("../../../events/woocommerce/orders_list.json")).unwrap();
        let ids: Vec<_> = page.iter().map(|o| o.as_ref().map(|o| (o.order.order_id, o.status))).collect();
        assert_eq!(ids, vec![Ok((1042, OrderStatus::Completed)), Ok((1043, OrderStatus::Cancelled))]);
    }

    #[test]
    fn a_bad_order_does_not_lose_the_page() {
        let body = br#"[{"currency": "EUR", "total": "1.00"},
                        {"id": 7, "currency": "EUR", "total": "9.90", "number": "A-7"},
                        {"id": 8, "total": "1.00"}]"#;
        let page = parse_orders_page(STORE, body).unwrap();
        assert_eq!(page[0], Err(ShopParseError::Missing("id")));
        let good = page[1].as_ref().unwrap();
        assert_eq!((good.order.order_id, good.name.as_str(), good.total), (7, "A-7", eur(990)));
        assert_eq!(page[2], Err(ShopParseError::Missing("currency")));
        assert!(matches!(
            parse_orders_page(STORE, br#"{"code":"woocommerce_rest_cannot_view","message":"Sorry, you cannot list resources.","data":{"status":401}}"#),
            Err(ShopParseError::Invalid { field: "body", .. })
        ));
    }

    #[test]
    fn webhooks_page() {
        let hooks = parse_webhooks_page(include_bytes!("../../../events/woocommerce/webhooks_list.json")).unwrap();
        let hooks: Vec<(&str, &str)> = hooks.iter().map(|(t, s)| (t.as_str(), s.as_str())).collect();
        assert_eq!(
            hooks,
            vec![("order.created", "active"), ("order.updated", "disabled"), ("order.deleted", "paused")]
        );
        assert!(matches!(parse_webhooks_page(b"{}"), Err(ShopParseError::Invalid { .. })));
    }

    #[test]
    fn ping_detection() {
        assert!(is_ping(b"webhook_id=12"));
        assert!(is_ping(b" webhook_id=12\n"));
        assert!(!is_ping(b"webhook_id=12&x=1"));
        assert!(!is_ping(b"webhook_id="));
        assert!(!is_ping(b"webhook_id=-1"));
        assert!(!is_ping(br#"{"webhook_id":12}"#));
        assert!(!is_ping(b""));
        assert!(!is_ping(include_bytes!("../../../events/woocommerce/order_created.json")));
        assert!(matches!(parse_webhook("order.created", STORE, b"webhook_id=3"), Ok(ShopEvent::Ignored { .. })));
    }

    fn products(topic: &str, body: &[u8]) -> (Vec<ProductVariant>, bool) {
        match parse_webhook_with_currency(topic, STORE, body, Some(eur(0).currency)).unwrap() {
            ShopEvent::Products { platform: Platform::WooCommerce, shop, items, deleted } if shop == STORE => {
                (items, deleted)
            }
            other => panic!("expected products, got {other:?}"),
        }
    }

    #[test]
    fn product_created_maps_a_simple_product() {
        let raw = include_bytes!("../../../events/woocommerce/product_created.json");
        assert!(std::str::from_utf8(raw).unwrap().contains(r"https:\/\/"), "fixture must keep PHP's escapes");
        let (items, deleted) = products("product.created", raw);
        assert!(!deleted);
        assert_eq!(
            items,
            vec![ProductVariant {
                product_id: 118,
                variant_id: 0,
                sku: Some("CAP".into()),
                title: "Baseball Cap".into(),
                price: eur(1250),
                available: true,
                category: Some("Caps".into()),
                updated_at: Some(1773479400),
            }]
        );
        // The payload has no currency: without the store's, nothing can be priced.
        assert!(matches!(parse_webhook("product.created", STORE, raw), Ok(ShopEvent::Ignored { .. })));
    }

    #[test]
    fn product_availability_and_variations() {
        let product = |extra: Value| {
            let mut p = json!({"id": 118, "name": "Cap", "type": "simple", "status": "publish", "price": "12.50",
                               "purchasable": true, "stock_status": "instock"});
            merge(&mut p, extra);
            parse_product(&p, eur(0).currency).unwrap()
        };
        assert!(product(json!({})).available);
        assert!(product(json!({"stock_status": "onbackorder"})).available);
        assert!(!product(json!({"stock_status": "outofstock"})).available);
        assert!(!product(json!({"status": "draft"})).available);
        assert!(!product(json!({"purchasable": false})).available);
        let unpriced = product(json!({"price": ""}));
        assert_eq!((unpriced.available, unpriced.price), (false, eur(0)));
        // A variable parent is one entry; a variation maps to its parent.
        let parent = product(json!({"type": "variable", "variations": [120, 121], "price": "10"}));
        assert_eq!((parent.product_id, parent.variant_id, parent.price), (118, 0, eur(1000)));
        let variation = product(json!({"id": 121, "type": "variation", "parent_id": 118}));
        assert_eq!((variation.product_id, variation.variant_id), (118, 121));
        assert!(matches!(
            parse_webhook_with_currency("product.updated", STORE, br#"{"id": 1, "price": "x"}"#, Some(eur(0).currency)),
            Err(ShopParseError::Invalid { field: "price", .. })
        ));
    }

    #[test]
    fn product_deleted_carries_the_id() {
        let (items, deleted) = products("product.deleted", br#"{"id": 118}"#);
        assert!(deleted);
        assert_eq!((items.len(), items[0].product_id, items[0].variant_id), (1, 118, 0));
        assert!(matches!(parse_webhook("product.deleted", STORE, br#"{"id": 118}"#), Ok(ShopEvent::Products { .. })));
        assert_eq!(parse_webhook("product.deleted", STORE, b"{}"), Err(ShopParseError::Missing("id")));
    }

    fn merge(into: &mut Value, more: Value) {
        if let (Some(o), Value::Object(more)) = (into.as_object_mut(), more) {
            o.extend(more);
        }
    }

    #[test]
    fn other_topics_are_ignored() {
        // product.updated: no store currency given.
        for topic in ["order.deleted", "product.updated", "coupon.created", "action.woocommerce_x", ""] {
            match parse_webhook(topic, STORE, br#"{"id": 1042}"#) {
                Ok(ShopEvent::Ignored { topic: t, reason }) => assert!(t == topic && !reason.is_empty()),
                other => panic!("{topic}: {other:?}"),
            }
        }
    }

    #[test]
    fn malformed_bodies() {
        let full = include_bytes!("../../../events/woocommerce/order_created.json");
        for len in [0, 1, full.len() / 2, full.len() - 3] {
            assert!(matches!(parse_webhook("order.created", STORE, &full[..len]), Err(ShopParseError::NotJson(_))));
        }
        assert_eq!(
            parse_webhook("order.updated", STORE, br#"{"currency": "EUR", "total": "1.00"}"#),
            Err(ShopParseError::Missing("id"))
        );
        assert_eq!(
            parse_webhook("order.updated", STORE, br#"{"id": 1, "total": "1.00"}"#),
            Err(ShopParseError::Missing("currency"))
        );
        assert!(matches!(
            parse_webhook("order.updated", STORE, b"[]"),
            Err(ShopParseError::Invalid { field: "order", .. })
        ));
    }

    fn payload() -> impl Strategy<Value = Value> {
        const KEYS: &[&str] = &[
            "id",
            "number",
            "status",
            "currency",
            "total",
            "price",
            "billing",
            "shipping",
            "phone",
            "country",
            "first_name",
            "line_items",
            "name",
            "quantity",
            "sku",
            "product_id",
            "variation_id",
            "meta_data",
            "key",
            "value",
            "date_created",
            "date_created_gmt",
            "date_modified_gmt",
            "tracking_id",
            "tracking_number",
            "tracking_provider",
            "custom_tracking_provider",
            "custom_tracking_link",
            "date_shipped",
            "type",
            "parent_id",
            "purchasable",
            "stock_status",
            "categories",
            "date_modified",
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "[0-9.eE+-]{0,24}".prop_map(Value::from),
            "\\PC{0,16}".prop_map(Value::from),
            Just(Value::from("2026-03-14T09:21:33")),
            Just(Value::from(TRACKING_META_KEY)),
            Just(Value::from("EUR")),
        ];
        let tree = leaf.prop_recursive(4, 64, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec((prop::sample::select(KEYS), inner), 0..8)
                    .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
            ]
        });
        prop::collection::vec((prop::sample::select(KEYS), tree), 0..12)
            .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()))
    }

    proptest! {
        #[test]
        fn parse_webhook_never_panics_on_bytes(topic in prop::sample::select(TOPICS), body in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_webhook(topic, STORE, &body);
            let _ = is_ping(&body);
        }

        #[test]
        fn parse_webhook_never_panics_on_json(topic in prop::sample::select(TOPICS), body in payload()) {
            let _ = parse_webhook(topic, STORE, &serde_json::to_vec(&body).unwrap());
            // Valid required fields, so the optional-field paths are reached every time.
            let mut forced = body;
            for (key, value) in [("id", json!(1042)), ("currency", json!("EUR")), ("total", json!("1.00"))] {
                forced[key] = value;
            }
            let _ = parse_webhook(topic, STORE, &serde_json::to_vec(&forced).unwrap());
            let _ = parse_orders_page(STORE, &serde_json::to_vec(&json!([forced.clone()])).unwrap());
            let _ = parse_webhook_with_currency(topic, STORE, &serde_json::to_vec(&forced).unwrap(), Some(eur(0).currency));
        }
    }
}
