//! Shopify webhook payloads and Admin REST responses mapped to [`ShopEvent`].
//!
//! Payloads are read field by field from a `serde_json::Value`: Shopify adds fields in every API
//! version and sends ids above 2^53, so ids are read as `u64` and never pass through `f64`.
//! Required fields (order id, currency, total, a fulfillment's `order_id`) fail the parse;
//! optional fields that are absent, empty or of an unexpected type become `None`, so one odd
//! field never costs a customer message.
use super::event::{
    CheckoutSnapshot, Fulfillment, LineItem, OrderRef, OrderSnapshot, OrderStatus, Platform, ProductVariant,
    ShipmentStatus, ShopConsent, ShopEvent, ShopParseError,
};
use super::json::{country, currency, field, id, invalid, money, objects, opt_id, push_phone, quantity, text};
use crate::domain::{Currency, Money};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The topics Parley acts on, by the event they map to.
enum Topic {
    Order,
    Fulfillment,
    Refund,
    CustomerRedact,
    SmsConsent,
    WhatsAppConsent,
    Product,
    ProductDelete,
    Checkout,
}

impl Topic {
    /// The topic, or why it is ignored.
    fn parse(topic: &str) -> Result<Self, &'static str> {
        Ok(match topic.trim().to_ascii_lowercase().as_str() {
            "orders/create"
            | "orders/paid"
            | "orders/updated"
            | "orders/cancelled"
            | "orders/fulfilled"
            | "orders/partially_fulfilled" => Topic::Order,
            "fulfillments/create" | "fulfillments/update" => Topic::Fulfillment,
            "refunds/create" => Topic::Refund,
            "customers/redact" => Topic::CustomerRedact,
            "customers_marketing_consent/update" => Topic::SmsConsent,
            "customers_whats_app_marketing_consent/update" => Topic::WhatsAppConsent,
            "products/create" | "products/update" => Topic::Product,
            "products/delete" => Topic::ProductDelete,
            "checkouts/create" | "checkouts/update" => Topic::Checkout,
            "checkouts/delete" => return Err("a deleted checkout's payload is only its id"),
            _ => return Err("not a topic Parley acts on"),
        })
    }
}

/// Maps one webhook delivery (`X-Shopify-Topic`, `X-Shopify-Shop-Domain`, the verified raw body).
/// Ignored topics are acknowledged without reading the body. Product payloads carry no currency:
/// see [`parse_webhook_with_currency`].
pub fn parse_webhook(topic: &str, shop_domain: &str, body: &[u8]) -> Result<ShopEvent, ShopParseError> {
    parse_webhook_with_currency(topic, shop_domain, body, None)
}

/// [`parse_webhook`] with the shop's currency, which product prices are in. Without it (and
/// without `presentment_prices` in the payload) products/create|update are ignored.
pub fn parse_webhook_with_currency(
    topic: &str,
    shop_domain: &str,
    body: &[u8],
    shop_currency: Option<Currency>,
) -> Result<ShopEvent, ShopParseError> {
    let kind = match Topic::parse(topic) {
        Ok(kind) => kind,
        Err(reason) => return Ok(ShopEvent::Ignored { topic: topic.to_string(), reason: reason.to_string() }),
    };
    let root = parse_object(body)?;
    match kind {
        Topic::Order => parse_order(shop_domain, &root).map(ShopEvent::Order),
        Topic::Fulfillment => Ok(ShopEvent::Fulfillment {
            order: order_ref(shop_domain, id(root.get("order_id"), "order_id")?),
            fulfillment: parse_fulfillment(&root)?,
            destination_phone: text(at(&root, &["destination", "phone"])),
            country: country(at(&root, &["destination", "country_code"])),
        }),
        Topic::Refund => Ok(ShopEvent::Refund { order: order_ref(shop_domain, id(root.get("order_id"), "order_id")?) }),
        Topic::CustomerRedact => customer_redact(&root),
        Topic::SmsConsent => {
            consent_event(topic, root.get("phone"), root.get("sms_marketing_consent"), "sms", "sms_marketing_consent")
        }
        Topic::WhatsAppConsent => consent_event(
            topic,
            root.get("phone_number"),
            root.get("whats_app_marketing_consent"),
            "whatsapp",
            "whats_app_marketing_consent",
        ),
        Topic::Product => {
            let Some(currency) = product_currency(&root).or(shop_currency) else {
                let reason = "product prices carry no currency and the shop currency is not known";
                return Ok(ShopEvent::Ignored { topic: topic.to_string(), reason: reason.to_string() });
            };
            let items = parse_product(&root, currency)?;
            Ok(ShopEvent::Products {
                platform: Platform::Shopify,
                shop: shop_domain.to_string(),
                items,
                deleted: false,
            })
        }
        Topic::ProductDelete => Ok(ShopEvent::Products {
            platform: Platform::Shopify,
            shop: shop_domain.to_string(),
            items: vec![deleted_product(id(root.get("id"), "id")?)],
            deleted: true,
        }),
        Topic::Checkout => parse_checkout(shop_domain, &root).map(ShopEvent::Checkout),
    }
}

/// Maps one product object (webhook body or an element of `GET products.json`): one entry per
/// variant. A variant without an id or with an unreadable price is skipped.
pub fn parse_product(product: &Value, currency: Currency) -> Result<Vec<ProductVariant>, ShopParseError> {
    if !product.is_object() {
        return Err(invalid("product", "not a JSON object"));
    }
    let product_id = id(product.get("id"), "id")?;
    let title = text(product.get("title")).unwrap_or_default();
    // Webhooks carry `status`; older payloads without it were active products.
    let active = text(product.get("status")).is_none_or(|s| s.eq_ignore_ascii_case("active"));
    let category = text(product.get("product_type"));
    let product_updated = timestamp(product.get("updated_at"));
    Ok(objects(product.get("variants"))
        .filter_map(|v| {
            let variant_id = opt_id(v.get("id"), "id").ok().flatten()?;
            let price = money(v.get("price"), currency, "price").ok()?;
            let in_stock = text(v.get("inventory_policy")).is_some_and(|p| p.eq_ignore_ascii_case("continue"))
                || v.get("inventory_quantity").and_then(Value::as_i64).is_some_and(|q| q > 0)
                || v.get("inventory_management").is_none_or(Value::is_null);
            Some(ProductVariant {
                product_id,
                variant_id,
                sku: text(v.get("sku")),
                title: match text(v.get("title")) {
                    Some(t) if t != "Default Title" && !title.is_empty() => format!("{title} – {t}"),
                    Some(t) if title.is_empty() => t,
                    _ => title.clone(),
                },
                available: active && price.is_some() && in_stock,
                price: price.unwrap_or(Money::new(0, currency)),
                category: category.clone(),
                updated_at: timestamp(v.get("updated_at")).or(product_updated),
            })
        })
        .collect())
}

/// The currency of the first variant's `presentment_prices` (older API versions send them).
fn product_currency(product: &Value) -> Option<Currency> {
    objects(product.get("variants"))
        .flat_map(|v| objects(v.get("presentment_prices")))
        .find_map(|p| Currency::parse(&text(at(p, &["price", "currency_code"]))?).ok())
}

/// products/delete carries only the id: no variants, no price (zero in `XXX`, "no currency").
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

/// Maps one checkout (checkouts/create|update body). Abandonment is for the caller to infer:
/// `completed_at` still empty some time after `updated_at`.
pub fn parse_checkout(shop_domain: &str, checkout: &Value) -> Result<CheckoutSnapshot, ShopParseError> {
    if !checkout.is_object() {
        return Err(invalid("checkout", "not a JSON object"));
    }
    let checkout_id = id(checkout.get("id"), "id")?;
    let currency = currency(checkout.get("currency").or_else(|| checkout.get("presentment_currency")))?;
    let total =
        money(checkout.get("total_price"), currency, "total_price")?.ok_or(ShopParseError::Missing("total_price"))?;
    let shipping = checkout.get("shipping_address");
    let billing = checkout.get("billing_address");
    let mut phones = Vec::new();
    for phone in [
        checkout.get("phone"),
        checkout.get("sms_marketing_phone"),
        at(checkout, &["customer", "phone"]),
        field(shipping, "phone"),
        field(billing, "phone"),
    ] {
        push_phone(&mut phones, phone);
    }
    Ok(CheckoutSnapshot {
        platform: Platform::Shopify,
        shop: shop_domain.to_string(),
        checkout_id,
        token: text(checkout.get("token")),
        abandoned_checkout_url: text(checkout.get("abandoned_checkout_url")),
        completed_at: timestamp(checkout.get("completed_at")),
        phones,
        country: country(field(shipping, "country_code")).or_else(|| country(field(billing, "country_code"))),
        currency,
        total,
        items: objects(checkout.get("line_items")).map(|item| line_item(item, currency)).collect(),
        attributes: objects(checkout.get("note_attributes"))
            .filter_map(|a| Some((text(a.get("name"))?, scalar(a.get("value"))?)))
            .collect(),
        updated_at: timestamp(checkout.get("updated_at")),
        buyer_accepts_sms_marketing: checkout
            .get("buyer_accepts_sms_marketing")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    })
}

/// Maps one order object (webhook body or an element of `GET orders.json`).
pub fn parse_order(shop_domain: &str, order: &Value) -> Result<OrderSnapshot, ShopParseError> {
    if !order.is_object() {
        return Err(invalid("order", "not a JSON object"));
    }
    let order_id = id(order.get("id"), "id")?;
    let currency = currency(order.get("currency"))?;
    let total =
        money(order.get("total_price"), currency, "total_price")?.ok_or(ShopParseError::Missing("total_price"))?;
    let customer = order.get("customer");
    let shipping = order.get("shipping_address");
    let billing = order.get("billing_address");

    let mut phones = Vec::new();
    for phone in [order.get("phone"), field(customer, "phone"), field(shipping, "phone"), field(billing, "phone")] {
        push_phone(&mut phones, phone);
    }
    let name = text(order.get("name"))
        .or_else(|| opt_id(order.get("order_number"), "order_number").ok().flatten().map(|n| format!("#{n}")))
        .unwrap_or_else(|| order_id.to_string());

    Ok(OrderSnapshot {
        order: order_ref(shop_domain, order_id),
        name,
        status: order_status(order),
        currency,
        total,
        items: objects(order.get("line_items")).map(|item| line_item(item, currency)).collect(),
        phones,
        country: country(field(shipping, "country_code")).or_else(|| country(field(billing, "country_code"))),
        customer_first_name: text(field(customer, "first_name")).or_else(|| text(field(shipping, "first_name"))),
        locale: text(order.get("customer_locale")),
        attributes: objects(order.get("note_attributes"))
            .filter_map(|a| Some((text(a.get("name"))?, scalar(a.get("value"))?)))
            .collect(),
        created_at: timestamp(order.get("created_at")),
        updated_at: timestamp(order.get("updated_at")),
        // An embedded fulfillment without an id cannot be tracked: skipped, not fatal.
        fulfillments: objects(order.get("fulfillments")).filter_map(|f| parse_fulfillment(f).ok()).collect(),
        marketing_consent: parse_consent(field(customer, "whats_app_marketing_consent"), "whatsapp")
            .or_else(|| parse_consent(field(customer, "sms_marketing_consent"), "sms")),
        test: order.get("test").and_then(Value::as_bool).unwrap_or(false),
    })
}

/// Admin REST `GET orders.json` → one result per order, so one bad order does not lose the page.
pub fn parse_orders_page(
    shop_domain: &str,
    body: &[u8],
) -> Result<Vec<Result<OrderSnapshot, ShopParseError>>, ShopParseError> {
    let root = parse_object(body)?;
    Ok(list(&root, "orders")?.iter().map(|order| parse_order(shop_domain, order)).collect())
}

/// Admin REST `GET webhooks.json` → the subscribed topics.
pub fn parse_webhooks_page(body: &[u8]) -> Result<Vec<String>, ShopParseError> {
    let root = parse_object(body)?;
    Ok(list(&root, "webhooks")?.iter().filter_map(|hook| text(hook.get("topic"))).collect())
}

fn order_status(order: &Value) -> OrderStatus {
    if text(order.get("cancelled_at")).is_some() {
        return OrderStatus::Cancelled;
    }
    match text(order.get("financial_status")).map(|s| s.to_ascii_lowercase()).as_deref() {
        Some("paid" | "partially_paid" | "partially_refunded") => OrderStatus::Paid,
        Some("refunded") => OrderStatus::Refunded,
        // A voided authorization is never captured: the order will not be paid.
        Some("voided") => OrderStatus::Cancelled,
        // pending, authorized, expired and unknown values: placed, not (yet) paid.
        _ => OrderStatus::Placed,
    }
}

fn line_item(item: &Value, currency: Currency) -> LineItem {
    LineItem {
        title: text(item.get("title")).or_else(|| text(item.get("name"))).unwrap_or_default(),
        quantity: quantity(item.get("quantity")),
        sku: text(item.get("sku")),
        variant_id: opt_id(item.get("variant_id"), "variant_id").ok().flatten(),
        product_id: opt_id(item.get("product_id"), "product_id").ok().flatten(),
        unit_price: money(item.get("price"), currency, "price").ok().flatten(),
    }
}

/// A fulfillment object (the `fulfillments/*` body or an order's `fulfillments[]` element).
fn parse_fulfillment(f: &Value) -> Result<Fulfillment, ShopParseError> {
    Ok(Fulfillment {
        id: id(f.get("id"), "id")?.to_string(),
        status: text(f.get("status")).map(|s| s.to_ascii_lowercase()),
        shipment_status: text(f.get("shipment_status")).map(|s| shipment_status(&s)),
        tracking_company: text(f.get("tracking_company")),
        tracking_numbers: merged(f.get("tracking_numbers"), f.get("tracking_number")),
        tracking_urls: merged(f.get("tracking_urls"), f.get("tracking_url")),
        updated_at: timestamp(f.get("updated_at")),
    })
}

fn shipment_status(s: &str) -> ShipmentStatus {
    match s.to_ascii_lowercase().as_str() {
        "label_printed" => ShipmentStatus::LabelPrinted,
        "label_purchased" => ShipmentStatus::LabelPurchased,
        "confirmed" => ShipmentStatus::Confirmed,
        "in_transit" => ShipmentStatus::InTransit,
        "out_for_delivery" => ShipmentStatus::OutForDelivery,
        "attempted_delivery" => ShipmentStatus::AttemptedDelivery,
        "ready_for_pickup" => ShipmentStatus::ReadyForPickup,
        "delivered" => ShipmentStatus::Delivered,
        "failure" => ShipmentStatus::Failure,
        // Newer carrier states (carrier_picked_up, delayed, picked_up, …) are kept, not dropped.
        other => ShipmentStatus::Other(other.to_string()),
    }
}

/// The list first, then the single field Shopify mirrors from it; deduplicated, order kept.
fn merged(many: Option<&Value>, one: Option<&Value>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let values = many.and_then(Value::as_array).into_iter().flatten().chain(one);
    for value in values.filter_map(|v| text(Some(v))) {
        if !out.contains(&value) {
            out.push(value);
        }
    }
    out
}

fn customer_redact(root: &Value) -> Result<ShopEvent, ShopParseError> {
    let mut phones = Vec::new();
    push_phone(&mut phones, at(root, &["customer", "phone"]));
    // Strict on purpose: silently dropping an id would leave that order's data behind.
    let order_ids = match root.get("orders_to_redact") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(ids)) => ids.iter().map(|v| id(Some(v), "orders_to_redact")).collect::<Result<_, _>>()?,
        Some(_) => return Err(invalid("orders_to_redact", "not an array")),
    };
    // The payload carries no address, so no default region for the phone.
    Ok(ShopEvent::CustomerRedact { phones, country: None, order_ids })
}

fn consent_event(
    topic: &str,
    phone: Option<&Value>,
    consent: Option<&Value>,
    kind: &str,
    field: &'static str,
) -> Result<ShopEvent, ShopParseError> {
    if matches!(consent, None | Some(Value::Null)) {
        return Err(ShopParseError::Missing(field));
    }
    Ok(match parse_consent(consent, kind) {
        Some(consent) => ShopEvent::CustomerConsent { phone: text(phone), country: None, consent },
        // Shopify's own sample sends `"state": null`: there is nothing to record.
        None => ShopEvent::Ignored { topic: topic.to_string(), reason: format!("{field} has no state") },
    })
}

/// `sms_marketing_consent` (`consent_updated_at`, `consent_collected_from`) and
/// `whats_app_marketing_consent` (`updated_at`, `collected_from`); `None` without a state.
/// Values come in either case (REST lowercase, GraphQL enums uppercase).
fn parse_consent(consent: Option<&Value>, kind: &str) -> Option<ShopConsent> {
    let consent = consent.filter(|c| c.is_object())?;
    let lower = |key: &str| text(consent.get(key)).map(|s| s.to_ascii_lowercase());
    Some(ShopConsent {
        state: lower("state")?,
        opt_in_level: lower("opt_in_level"),
        collected_from: lower("consent_collected_from").or_else(|| lower("collected_from")),
        updated_at: timestamp(consent.get("consent_updated_at")).or_else(|| timestamp(consent.get("updated_at"))),
        kind: kind.to_string(),
    })
}

fn order_ref(shop_domain: &str, order_id: u64) -> OrderRef {
    OrderRef { platform: Platform::Shopify, shop: shop_domain.to_string(), order_id }
}

// ---- JSON helpers (the shared ones are in `super::json`) ----------------------------------------

fn parse_object(body: &[u8]) -> Result<Value, ShopParseError> {
    let root: Value =
        serde_json::from_slice(body).map_err(|e| ShopParseError::NotJson(crate::privacy::describe_json_error(&e)))?;
    if root.is_object() {
        Ok(root)
    } else {
        Err(invalid("body", "not a JSON object"))
    }
}

/// The array under `key` of a REST response; Shopify reports failures as `{"errors": …}`.
fn list<'v>(root: &'v Value, key: &'static str) -> Result<&'v [Value], ShopParseError> {
    match root.get(key) {
        Some(Value::Array(items)) => Ok(items),
        Some(Value::Null) | None => match root.get("errors") {
            Some(errors) => Err(invalid("body", format!("Shopify returned errors: {errors}"))),
            None => Err(ShopParseError::Missing(key)),
        },
        Some(_) => Err(invalid(key, "not an array")),
    }
}

fn at<'v>(v: &'v Value, path: &[&str]) -> Option<&'v Value> {
    path.iter().try_fold(v, |v, key| v.get(key))
}

/// A string, number or bool as text (cart attribute values are not always strings).
fn scalar(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// RFC 3339 with offset (`2021-12-31T19:00:00-05:00`) → unix seconds; unparsable → `None`.
fn timestamp(v: Option<&Value>) -> Option<i64> {
    OffsetDateTime::parse(&text(v)?, &Rfc3339).ok().map(OffsetDateTime::unix_timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const SHOP: &str = "parley-demo.myshopify.com";
    const ORDER_ID: u64 = 820982911946154508;
    const TOPICS: &[&str] = &[
        "orders/create",
        "orders/paid",
        "orders/updated",
        "orders/cancelled",
        "orders/fulfilled",
        "orders/partially_fulfilled",
        "fulfillments/create",
        "fulfillments/update",
        "refunds/create",
        "customers/redact",
        "customers_marketing_consent/update",
        "customers_whats_app_marketing_consent/update",
        "products/create",
        "products/update",
        "products/delete",
        "checkouts/create",
        "checkouts/update",
    ];

    fn eur(minor: i64) -> Money {
        Money::new(minor, Currency::parse("EUR").unwrap())
    }

    fn order(topic: &str, body: &[u8]) -> OrderSnapshot {
        match parse_webhook(topic, SHOP, body).unwrap() {
            ShopEvent::Order(order) => order,
            other => panic!("expected an order, got {other:?}"),
        }
    }

    fn fulfillment(body: &[u8]) -> (OrderRef, Fulfillment, Option<String>, Option<String>) {
        match parse_webhook("fulfillments/update", SHOP, body).unwrap() {
            ShopEvent::Fulfillment { order, fulfillment, destination_phone, country } => {
                (order, fulfillment, destination_phone, country)
            }
            other => panic!("expected a fulfillment, got {other:?}"),
        }
    }

    #[test]
    fn orders_create_maps_every_field() {
        let o = order("orders/create", include_bytes!("../../../events/shopify/orders_create.json"));
        assert_eq!(o.order, OrderRef { platform: Platform::Shopify, shop: SHOP.into(), order_id: ORDER_ID });
        assert_eq!(o.name, "#1001");
        assert_eq!(o.status, OrderStatus::Placed);
        assert_eq!(o.currency.as_str(), "EUR");
        assert_eq!(o.total, eur(10960));
        assert_eq!(
            o.items,
            vec![
                LineItem {
                    title: "Merino Beanie".into(),
                    quantity: 2,
                    sku: Some("BEANIE-MER-GRY".into()),
                    variant_id: Some(642667041472713922),
                    product_id: Some(788032119674292922),
                    unit_price: Some(eur(3990)),
                },
                LineItem {
                    title: "Wollsocken 3er-Pack".into(),
                    quantity: 1,
                    sku: Some("SOCKS-WOOL-3".into()),
                    variant_id: Some(39072856),
                    product_id: Some(632910392),
                    unit_price: Some(eur(2490)),
                },
            ]
        );
        // order phone and customer.phone are the same number; shipping and billing share another.
        assert_eq!(o.phones, vec!["+4915123456789", "0151 23456789"]);
        assert_eq!(o.country.as_deref(), Some("DE"));
        assert_eq!(o.customer_first_name.as_deref(), Some("Lena"));
        assert_eq!(o.locale.as_deref(), Some("de"));
        assert_eq!(
            o.attributes,
            vec![
                ("parley_cart".to_string(), "c_7f3a9d2e".to_string()),
                ("parley_session".to_string(), "wa:4915123456789".to_string())
            ]
        );
        assert_eq!(o.created_at, Some(1773480093));
        assert_eq!(o.updated_at, Some(1773480093));
        assert!(o.fulfillments.is_empty());
        assert_eq!(
            o.marketing_consent,
            Some(ShopConsent {
                state: "subscribed".into(),
                opt_in_level: Some("single_opt_in".into()),
                collected_from: Some("shopify".into()),
                updated_at: Some(1773480058),
                kind: "sms".into(),
            })
        );
        assert!(!o.test);
    }

    #[test]
    fn orders_paid_and_cancelled_statuses() {
        let paid = order("orders/paid", include_bytes!("../../../events/shopify/orders_paid.json"));
        assert_eq!(
            (paid.order.order_id, paid.status, paid.updated_at),
            (ORDER_ID, OrderStatus::Paid, Some(1773561791))
        );
        // cancelled_at wins over financial_status "refunded".
        let cancelled = order("orders/cancelled", include_bytes!("../../../events/shopify/orders_cancelled.json"));
        assert_eq!(cancelled.status, OrderStatus::Cancelled);
        assert_eq!(cancelled.updated_at, Some(1773589330));
        assert_eq!(cancelled.total, eur(10960));
    }

    #[test]
    fn financial_status_mapping() {
        let status = |financial: &str, cancelled_at: Value| {
            let o = json!({"id": 1, "currency": "EUR", "total_price": "1.00",
                           "financial_status": financial, "cancelled_at": cancelled_at});
            parse_order(SHOP, &o).unwrap().status
        };
        assert_eq!(status("pending", Value::Null), OrderStatus::Placed);
        assert_eq!(status("authorized", Value::Null), OrderStatus::Placed);
        assert_eq!(status("PAID", Value::Null), OrderStatus::Paid);
        assert_eq!(status("partially_paid", Value::Null), OrderStatus::Paid);
        assert_eq!(status("partially_refunded", Value::Null), OrderStatus::Paid);
        assert_eq!(status("refunded", Value::Null), OrderStatus::Refunded);
        assert_eq!(status("voided", Value::Null), OrderStatus::Cancelled);
        assert_eq!(status("paid", json!("2026-03-15T16:42:10+01:00")), OrderStatus::Cancelled);
    }

    #[test]
    fn order_without_phones_or_with_a_free_form_phone() {
        let none = order("orders/create", include_bytes!("../../../events/shopify/orders_create_no_phone.json"));
        assert_eq!((none.order.order_id, none.name.as_str()), (ORDER_ID + 1, "#1002"));
        assert!(none.phones.is_empty());
        assert_eq!(none.country.as_deref(), Some("DE"));
        assert_eq!(none.marketing_consent, None);
        assert!(none.attributes.is_empty());

        let bad = order("orders/create", include_bytes!("../../../events/shopify/orders_create_invalid_phone.json"));
        assert_eq!((bad.order.order_id, bad.status), (ORDER_ID + 2, OrderStatus::Paid));
        assert_eq!(bad.phones, vec!["555-555-SHIP"]);
        assert_eq!(bad.country.as_deref(), Some("DE"));
    }

    #[test]
    fn fulfillment_create_update_and_corrected_tracking() {
        let url = "https://www.dhl.com/de-de/home/tracking/tracking-express.html?submit=1&tracking-id=";
        let (order, f, phone, country) =
            fulfillment(include_bytes!("../../../events/shopify/fulfillments_create.json"));
        assert_eq!(order.order_id, ORDER_ID);
        assert_eq!(
            f,
            Fulfillment {
                id: "5876543210987".into(),
                status: Some("success".into()),
                shipment_status: None,
                tracking_company: Some("DHL Express".into()),
                tracking_numbers: vec!["4312345678".into()],
                tracking_urls: vec![format!("{url}4312345678")],
                updated_at: Some(1773645150),
            }
        );
        assert_eq!((phone.as_deref(), country.as_deref()), (Some("0151 23456789"), Some("DE")));

        let (_, fixed, ..) =
            fulfillment(include_bytes!("../../../events/shopify/fulfillments_update_new_tracking.json"));
        assert_eq!(fixed.id, f.id);
        assert_eq!(fixed.shipment_status, Some(ShipmentStatus::InTransit));
        assert_eq!(fixed.tracking_numbers, vec!["4312345699"]);
        assert_eq!(fixed.tracking_urls, vec![format!("{url}4312345699")]);

        let (_, delivered, ..) =
            fulfillment(include_bytes!("../../../events/shopify/fulfillments_update_delivered.json"));
        assert_eq!(delivered.shipment_status, Some(ShipmentStatus::Delivered));
        assert_eq!(delivered.updated_at, Some(1773741947));
    }

    #[test]
    fn tracking_numbers_merge_and_unknown_shipment_status_is_kept() {
        let body = json!({"id": "77", "order_id": ORDER_ID, "shipment_status": "CARRIER_PICKED_UP",
                          "tracking_number": "B", "tracking_numbers": ["A", "B", "A", ""],
                          "tracking_url": "https://t/b", "tracking_urls": null});
        let (order, f, phone, country) = fulfillment(body.to_string().as_bytes());
        assert_eq!(order.order_id, ORDER_ID);
        assert_eq!(f.id, "77");
        assert_eq!(f.tracking_numbers, vec!["A", "B"]);
        assert_eq!(f.tracking_urls, vec!["https://t/b"]);
        assert_eq!(f.shipment_status, Some(ShipmentStatus::Other("carrier_picked_up".into())));
        assert_eq!((phone, country), (None, None));
    }

    #[test]
    fn fulfillment_without_order_id_is_missing() {
        let body = br#"{"id": 1, "tracking_number": "X"}"#;
        assert_eq!(parse_webhook("fulfillments/create", SHOP, body), Err(ShopParseError::Missing("order_id")));
    }

    #[test]
    fn customers_redact_lists_phone_and_orders() {
        let body = include_bytes!("../../../events/shopify/customers_redact.json");
        assert_eq!(
            parse_webhook("customers/redact", SHOP, body).unwrap(),
            ShopEvent::CustomerRedact {
                phones: vec!["+4915123456789".into()],
                country: None,
                order_ids: vec![ORDER_ID, ORDER_ID + 1, 450789469],
            }
        );
        let bad = br#"{"customer": {"phone": "+49"}, "orders_to_redact": [1, "x"]}"#;
        assert!(matches!(
            parse_webhook("customers/redact", SHOP, bad),
            Err(ShopParseError::Invalid { field: "orders_to_redact", .. })
        ));
    }

    #[test]
    fn sms_consent_update() {
        let body = include_bytes!("../../../events/shopify/customers_marketing_consent_update.json");
        assert_eq!(
            parse_webhook("customers_marketing_consent/update", SHOP, body).unwrap(),
            ShopEvent::CustomerConsent {
                phone: Some("+4915123456789".into()),
                country: None,
                consent: ShopConsent {
                    state: "subscribed".into(),
                    opt_in_level: Some("confirmed_opt_in".into()),
                    collected_from: Some("other".into()),
                    updated_at: Some(1773480302),
                    kind: "sms".into(),
                },
            }
        );
        // Shopify's official sample: no state, nothing to record.
        let sample = br#"{"id":706405506930370084,"phone":null,"sms_marketing_consent":{"state":null,"opt_in_level":null,"consent_updated_at":null,"consent_collected_from":"other"}}"#;
        assert!(matches!(
            parse_webhook("customers_marketing_consent/update", SHOP, sample),
            Ok(ShopEvent::Ignored { .. })
        ));
        assert_eq!(
            parse_webhook("customers_marketing_consent/update", SHOP, br#"{"id": 1}"#),
            Err(ShopParseError::Missing("sms_marketing_consent"))
        );
    }

    #[test]
    fn whatsapp_consent_update_lowercases_enums() {
        let body = br#"{"customer_id": 115310627314723954, "phone_number": "+4915123456789",
            "whats_app_marketing_consent": {"state": "UNSUBSCRIBED", "opt_in_level": "SINGLE_OPT_IN",
            "updated_at": "2026-03-14T10:25:02+01:00", "collected_from": "SHOPIFY"}}"#;
        assert_eq!(
            parse_webhook("customers_whats_app_marketing_consent/update", SHOP, body).unwrap(),
            ShopEvent::CustomerConsent {
                phone: Some("+4915123456789".into()),
                country: None,
                consent: ShopConsent {
                    state: "unsubscribed".into(),
                    opt_in_level: Some("single_opt_in".into()),
                    collected_from: Some("shopify".into()),
                    updated_at: Some(1773480302),
                    kind: "whatsapp".into(),
                },
            }
        );
    }

    #[test]
    fn order_prefers_whatsapp_consent_and_falls_back_for_names() {
        let o = json!({
            "id": "820982911946154508", "currency": "eur", "total_price": "5", "order_number": 1009, "phone": "+43-1-234",
            "customer": {"phone": " ", "sms_marketing_consent": {"state": "subscribed"},
                         "whats_app_marketing_consent": {"state": "Subscribed", "opt_in_level": null}},
            "shipping_address": {"first_name": "Steve", "country_code": "de"},
            "billing_address": {"country_code": "AT", "phone": "+43 1 234"},
            "note_attributes": [{"name": "n", "value": 3}, {"name": "", "value": "x"}, {"value": "y"}]
        });
        let s = parse_order(SHOP, &o).unwrap();
        assert_eq!(s.order.order_id, ORDER_ID);
        assert_eq!(s.name, "#1009");
        assert_eq!(s.total, eur(500));
        assert_eq!(s.customer_first_name.as_deref(), Some("Steve"));
        assert_eq!(s.country.as_deref(), Some("DE"));
        // The same number, formatted differently, is listed once (first spelling kept).
        assert_eq!(s.phones, vec!["+43-1-234"]);
        assert_eq!(s.attributes, vec![("n".to_string(), "3".to_string())]);
        let consent = s.marketing_consent.unwrap();
        assert_eq!(
            (consent.kind.as_str(), consent.state.as_str(), consent.opt_in_level),
            ("whatsapp", "subscribed", None)
        );
    }

    #[test]
    fn orders_list_page() {
        let page = parse_orders_page(SHOP, include_bytes!("../../../events/shopify/orders_list.json")).unwrap();
        assert_eq!(page.len(), 2);
        let first = page[0].as_ref().unwrap();
        assert_eq!((first.order.order_id, first.status), (ORDER_ID, OrderStatus::Paid));
        assert_eq!(first.fulfillments.len(), 1);
        assert_eq!(first.fulfillments[0].tracking_numbers, vec!["4312345678"]);
        assert_eq!(first.fulfillments[0].tracking_company.as_deref(), Some("DHL Express"));
        let second = page[1].as_ref().unwrap();
        assert_eq!((second.order.order_id, second.name.as_str(), second.test), (ORDER_ID + 1, "#1002", true));
    }

    #[test]
    fn a_bad_order_does_not_lose_the_page() {
        let body = br#"{"orders": [
            {"currency": "EUR", "total_price": "1.00"},
            {"id": 820982911946154509, "currency": "EUR", "total_price": "1.00"},
            {"id": 3, "total_price": "1.00"},
            {"id": 4, "currency": "EUR", "total_price": "1,00"}
        ]}"#;
        let page = parse_orders_page(SHOP, body).unwrap();
        assert_eq!(page[0], Err(ShopParseError::Missing("id")));
        assert_eq!(page[1].as_ref().unwrap().order.order_id, 820982911946154509);
        assert_eq!(page[2], Err(ShopParseError::Missing("currency")));
        assert!(matches!(page[3], Err(ShopParseError::Invalid { field: "total_price", .. })));
        assert!(matches!(
            parse_orders_page(SHOP, br#"{"errors": "[API] Invalid API key or access token"}"#),
            Err(ShopParseError::Invalid { field: "body", .. })
        ));
    }

    #[test]
    fn webhooks_page_lists_topics() {
        let topics = parse_webhooks_page(include_bytes!("../../../events/shopify/webhooks_list.json")).unwrap();
        assert_eq!(
            topics,
            vec![
                "orders/create",
                "orders/paid",
                "orders/updated",
                "orders/cancelled",
                "fulfillments/create",
                "fulfillments/update",
                "customers_marketing_consent/update"
            ]
        );
        assert_eq!(parse_webhooks_page(b"{}"), Err(ShopParseError::Missing("webhooks")));
    }

    #[test]
    fn refund_maps_to_its_order() {
        let body = br#"{"id": 929361465, "order_id": 820982911946154508, "note": "x", "refund_line_items": []}"#;
        assert_eq!(
            parse_webhook("refunds/create", SHOP, body).unwrap(),
            ShopEvent::Refund {
                order: OrderRef { platform: Platform::Shopify, shop: SHOP.into(), order_id: ORDER_ID }
            }
        );
    }

    fn products(topic: &str, body: &[u8]) -> (Vec<ProductVariant>, bool) {
        match parse_webhook_with_currency(topic, SHOP, body, Some(eur(0).currency)).unwrap() {
            ShopEvent::Products { platform: Platform::Shopify, shop, items, deleted } if shop == SHOP => {
                (items, deleted)
            }
            other => panic!("expected products, got {other:?}"),
        }
    }

    fn checkout(topic: &str, body: &[u8]) -> CheckoutSnapshot {
        match parse_webhook(topic, SHOP, body).unwrap() {
            ShopEvent::Checkout(c) => c,
            other => panic!("expected a checkout, got {other:?}"),
        }
    }

    #[test]
    fn products_create_maps_one_entry_per_variant() {
        let (items, deleted) =
            products("products/create", include_bytes!("../../../events/shopify/products_create.json"));
        assert!(!deleted);
        let variant = |variant_id, sku: &str, title: &str| ProductVariant {
            product_id: 8949425012345,
            variant_id,
            sku: Some(sku.into()),
            title: title.into(),
            price: eur(1990),
            available: true,
            category: Some("Shirts".into()),
            updated_at: Some(1773478802),
        };
        assert_eq!(
            items,
            vec![
                variant(49148385111111, "TSHIRT-M", "T-Shirt – M"),
                variant(49148385222222, "TSHIRT-L", "T-Shirt – L")
            ]
        );
    }

    #[test]
    fn products_update_sold_out_is_unavailable() {
        let body = include_bytes!("../../../events/shopify/products_update_soldout.json");
        let (items, _) = products("products/update", body);
        assert_eq!(items.len(), 2);
        assert!(items.iter().all(|v| !v.available && v.price == eur(1990)));
        assert_eq!(items[0].updated_at, Some(1773595800));
        // Without a currency (none in the payload, none given) the product cannot be priced.
        assert!(matches!(parse_webhook("products/update", SHOP, body), Ok(ShopEvent::Ignored { .. })));
    }

    #[test]
    fn product_availability_rules() {
        let available = |status: &str, policy: &str, quantity: i64, management: Value| {
            let p = json!({"id": 1, "title": "Cap", "status": status, "variants": [{"id": 2, "title": "Default Title",
                "price": "5.00", "inventory_policy": policy, "inventory_quantity": quantity,
                "inventory_management": management}]});
            let v = parse_product(&p, eur(0).currency).unwrap().remove(0);
            assert_eq!(v.title, "Cap");
            v.available
        };
        assert!(available("active", "deny", 1, json!("shopify")));
        assert!(!available("active", "deny", 0, json!("shopify")));
        assert!(available("active", "continue", 0, json!("shopify")));
        assert!(available("active", "deny", -3, Value::Null));
        assert!(!available("draft", "deny", 5, json!("shopify")));
        assert!(!available("archived", "continue", 5, Value::Null));
    }

    #[test]
    fn product_currency_from_presentment_prices_and_bad_variants_skipped() {
        let body = json!({"id": "7", "title": "Mug", "variants": [
            {"id": 8, "title": "White", "price": "12.5", "sku": "",
             "presentment_prices": [{"price": {"amount": "12.50", "currency_code": "CHF"}}]},
            {"title": "no id", "price": "1.00"},
            {"id": 9, "price": "1,00"}
        ]});
        match parse_webhook("products/create", SHOP, body.to_string().as_bytes()).unwrap() {
            ShopEvent::Products { items, .. } => {
                assert_eq!(items.len(), 1);
                assert_eq!((items[0].product_id, items[0].variant_id), (7, 8));
                assert_eq!(items[0].price, Money::new(1250, Currency::parse("CHF").unwrap()));
                assert_eq!((items[0].sku.as_deref(), items[0].title.as_str()), (None, "Mug – White"));
                assert_eq!(items[0].category, None);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse_webhook_with_currency("products/create", SHOP, br#"{"title": "x"}"#, Some(eur(0).currency)),
            Err(ShopParseError::Missing("id"))
        );
    }

    #[test]
    fn products_delete_carries_the_product_id() {
        let (items, deleted) = products("products/delete", br#"{"id": 8949425012345}"#);
        assert!(deleted);
        assert_eq!(items.len(), 1);
        assert_eq!((items[0].product_id, items[0].variant_id, items[0].available), (8949425012345, 0, false));
        // No currency needed to delete.
        assert!(matches!(
            parse_webhook("products/delete", SHOP, br#"{"id": 1}"#),
            Ok(ShopEvent::Products { deleted: true, .. })
        ));
    }

    #[test]
    fn checkouts_create_is_an_open_checkout() {
        let c = checkout("checkouts/create", include_bytes!("../../../events/shopify/checkouts_create.json"));
        assert_eq!((c.platform, c.shop.as_str(), c.checkout_id), (Platform::Shopify, SHOP, 37845092106262));
        assert_eq!(c.token.as_deref(), Some("c1a9e5b7d3f24e6a8b0c2d4e6f8a0b1c"));
        assert_eq!(
            c.abandoned_checkout_url.as_deref(),
            Some("https://parley-demo.myshopify.com/checkouts/c1a9e5b7d3f24e6a8b0c2d4e6f8a0b1c/recover?key=4f1d2c3b5a69788796a5b4c3d2e1f0a9")
        );
        assert_eq!(c.completed_at, None);
        // phone, sms_marketing_phone and customer.phone are one number; the addresses another.
        assert_eq!(c.phones, vec!["+4915123456789", "0151 23456789"]);
        assert_eq!(c.country.as_deref(), Some("DE"));
        assert_eq!((c.currency.as_str(), c.total), ("EUR", eur(3980)));
        assert_eq!(
            c.items,
            vec![LineItem {
                title: "T-Shirt".into(),
                quantity: 2,
                sku: Some("TSHIRT-M".into()),
                variant_id: Some(49148385111111),
                product_id: Some(8949425012345),
                unit_price: Some(eur(1990)),
            }]
        );
        assert_eq!(c.attributes, vec![("parley_cart".to_string(), "c_7f3a9d2e".to_string())]);
        assert_eq!(c.updated_at, Some(1773482681));
        assert!(c.buyer_accepts_sms_marketing);
    }

    #[test]
    fn checkouts_update_completed() {
        let c = checkout("checkouts/update", include_bytes!("../../../events/shopify/checkouts_update_completed.json"));
        assert_eq!(c.checkout_id, 37845092106262);
        assert_eq!(c.completed_at, Some(1773483605));
        assert_eq!(c.updated_at, Some(1773483605));
        assert_eq!(
            parse_webhook("checkouts/update", SHOP, br#"{"id": 1, "currency": "EUR"}"#),
            Err(ShopParseError::Missing("total_price"))
        );
        assert_eq!(
            parse_webhook("checkouts/create", SHOP, br#"{"currency": "EUR", "total_price": "1"}"#),
            Err(ShopParseError::Missing("id"))
        );
    }

    #[test]
    fn other_topics_are_ignored_without_reading_the_body() {
        for topic in ["checkouts/delete", "carts/update", "shop/redact", "orders/delete", "bogus"] {
            match parse_webhook(topic, SHOP, b"not json") {
                Ok(ShopEvent::Ignored { topic: t, reason }) => assert!(t == topic && !reason.is_empty()),
                other => panic!("{topic}: {other:?}"),
            }
        }
    }

    #[test]
    fn malformed_bodies() {
        let full = include_bytes!("../../../events/shopify/orders_create.json");
        assert!(matches!(
            parse_webhook("orders/create", SHOP, &full[..full.len() / 2]),
            Err(ShopParseError::NotJson(_))
        ));
        assert!(matches!(parse_webhook("orders/create", SHOP, b""), Err(ShopParseError::NotJson(_))));
        assert!(matches!(parse_webhook("orders/create", SHOP, b"[1]"), Err(ShopParseError::Invalid { .. })));
        assert_eq!(
            parse_webhook("orders/create", SHOP, br#"{"currency": "EUR", "total_price": "1"}"#),
            Err(ShopParseError::Missing("id"))
        );
        // A float id would have lost precision: rejected rather than rounded.
        assert!(matches!(
            parse_webhook(
                "orders/create",
                SHOP,
                br#"{"id": 8.209829119461545e17, "currency": "EUR", "total_price": "1"}"#
            ),
            Err(ShopParseError::Invalid { field: "id", .. })
        ));
        assert!(matches!(
            parse_webhook("orders/create", SHOP, br#"{"id": 1, "currency": "EURO", "total_price": "1"}"#),
            Err(ShopParseError::Invalid { field: "currency", .. })
        ));
    }

    #[test]
    fn every_truncation_of_a_fixture_is_not_json() {
        let full = include_bytes!("../../../events/shopify/fulfillments_create.json");
        let end = full.iter().rposition(|b| *b == b'}').unwrap();
        for len in 0..end {
            assert!(matches!(
                parse_webhook("fulfillments/create", SHOP, &full[..len]),
                Err(ShopParseError::NotJson(_))
            ));
        }
    }

    /// JSON trees built from the field names the parser reads, to reach past the JSON parser.
    fn payload() -> impl Strategy<Value = Value> {
        const KEYS: &[&str] = &[
            "id",
            "order_id",
            "name",
            "order_number",
            "currency",
            "total_price",
            "price",
            "financial_status",
            "cancelled_at",
            "phone",
            "customer",
            "shipping_address",
            "billing_address",
            "country_code",
            "first_name",
            "line_items",
            "quantity",
            "variant_id",
            "product_id",
            "title",
            "sku",
            "fulfillments",
            "tracking_number",
            "tracking_numbers",
            "tracking_url",
            "tracking_urls",
            "shipment_status",
            "status",
            "destination",
            "note_attributes",
            "value",
            "created_at",
            "updated_at",
            "sms_marketing_consent",
            "whats_app_marketing_consent",
            "state",
            "opt_in_level",
            "orders_to_redact",
            "phone_number",
            "test",
            "variants",
            "product_type",
            "inventory_policy",
            "inventory_quantity",
            "inventory_management",
            "presentment_prices",
            "currency_code",
            "sms_marketing_phone",
            "completed_at",
            "abandoned_checkout_url",
            "buyer_accepts_sms_marketing",
            "token",
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "[0-9.eE+-]{0,24}".prop_map(Value::from),
            "\\PC{0,16}".prop_map(Value::from),
            Just(Value::from("2021-12-31T19:00:00-05:00")),
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
            let _ = parse_webhook(topic, SHOP, &body);
        }

        #[test]
        fn parse_webhook_never_panics_on_json(topic in prop::sample::select(TOPICS), body in payload()) {
            let _ = parse_webhook(topic, SHOP, &serde_json::to_vec(&body).unwrap());
            // Valid required fields, so the optional-field paths are reached every time.
            let mut forced = body;
            for (key, value) in [("id", json!(ORDER_ID)), ("order_id", json!(ORDER_ID)), ("currency", json!("EUR")), ("total_price", json!("1.00"))] {
                forced[key] = value;
            }
            let _ = parse_webhook(topic, SHOP, &serde_json::to_vec(&forced).unwrap());
            let _ = parse_orders_page(SHOP, &serde_json::to_vec(&json!({"orders": [forced.clone()]})).unwrap());
            let _ = parse_webhook_with_currency(topic, SHOP, &serde_json::to_vec(&forced).unwrap(), Some(eur(0).currency));
            let _ = parse_product(&forced, eur(0).currency);
        }
    }
}
