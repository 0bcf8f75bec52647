//! `POST /webhooks/shopify` and `POST /webhooks/woocommerce`: verify (raw body, constant time,
//! two secrets), check the shop, dedupe the delivery, then the same idempotent order path the
//! reconciler uses — and answer well inside Shopify's 5 seconds.
use super::{json_response, ApiError, App};
use crate::channels::signature::{Encoding, Verifier};
use crate::domain::Currency;
use crate::observability::count;
use crate::orders::{handle_shop_event, match_contact};
use crate::shops::{shopify, woocommerce, OrderRef, Platform, ShopEvent, ShopParseError};
use crate::store::inbound::Claim;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use secrecy::ExposeSecret;
use std::time::Duration;

fn header<'a>(req: &'a Request<Bytes>, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

fn required<'a>(req: &'a Request<Bytes>, name: &'static str) -> Result<&'a str, ApiError> {
    header(req, name).ok_or_else(|| ApiError::BadRequest(format!("header {name} is missing")))
}

/// A verified delivery, ready to be deduped and handled.
struct Delivery<'a> {
    platform: Platform,
    shop: String,
    topic: &'a str,
    delivery_id: &'a str,
}

pub async fn shopify(app: &App, req: Request<Bytes>) -> Result<Response<String>, ApiError> {
    let s = &app.shops;
    if s.shopify_secret.expose_secret().is_empty() {
        return Err(ApiError::NotFound);
    }
    check_size(app, &req)?;
    let verifier = Verifier::new(Encoding::Base64, s.shopify_secret.clone(), s.shopify_secret_previous.clone());
    verifier.verify(req.body(), header(&req, "x-shopify-hmac-sha256"))?;
    let domain = required(&req, "x-shopify-shop-domain")?.to_ascii_lowercase();
    if domain != s.shopify_domain {
        count("ShopWebhookWrongShop", 1);
        return Err(ApiError::Forbidden);
    }
    let delivery = Delivery {
        platform: Platform::Shopify,
        shop: domain,
        topic: required(&req, "x-shopify-topic")?,
        delivery_id: required(&req, "x-shopify-webhook-id")?,
    };
    if let Some(event_id) = header(&req, "x-shopify-event-id") {
        tracing::debug!(event_id, "shopify event");
    }
    handle(app, &req, delivery, shopify::parse_webhook_with_currency).await
}

pub async fn woocommerce(app: &App, req: Request<Bytes>) -> Result<Response<String>, ApiError> {
    let s = &app.shops;
    if s.woo_secret.expose_secret().is_empty() {
        return Err(ApiError::NotFound);
    }
    // The setup ping comes unsigned and must get exactly 200, or WooCommerce refuses to save the hook.
    if header(&req, "x-wc-webhook-signature").is_none() && woocommerce::is_ping(req.body()) {
        count("ShopWebhookPings", 1);
        return Ok(json_response(StatusCode::OK, &serde_json::json!({ "status": "pong" })));
    }
    check_size(app, &req)?;
    let verifier = Verifier::new(Encoding::Base64, s.woo_secret.clone(), s.woo_secret_previous.clone());
    verifier.verify(req.body(), header(&req, "x-wc-webhook-signature"))?;
    let source = required(&req, "x-wc-webhook-source")?.trim_end_matches('/');
    if !source.eq_ignore_ascii_case(&s.woo_store_url) {
        count("ShopWebhookWrongShop", 1);
        return Err(ApiError::Forbidden);
    }
    let delivery = Delivery {
        platform: Platform::WooCommerce,
        shop: s.woo_host(),
        topic: required(&req, "x-wc-webhook-topic")?,
        delivery_id: required(&req, "x-wc-webhook-delivery-id")?,
    };
    handle(app, &req, delivery, woocommerce::parse_webhook_with_currency).await
}

fn check_size(app: &App, req: &Request<Bytes>) -> Result<(), ApiError> {
    let (size, limit) = (req.body().len(), app.meta.max_body_bytes);
    if size > limit {
        return Err(ApiError::TooLarge { size, limit });
    }
    Ok(())
}

async fn handle(
    app: &App,
    req: &Request<Bytes>,
    d: Delivery<'_>,
    parse: impl Fn(&str, &str, &[u8], Option<Currency>) -> Result<ShopEvent, ShopParseError>,
) -> Result<Response<String>, ApiError> {
    let pk = crate::store::keys::shop_delivery_pk(d.platform.as_str(), &d.shop, d.delivery_id);
    let now = crate::time_util::now_unix();
    let ttl = Duration::from_secs(app.shops.delivery_dedupe_hours * 3600);
    match app.store.claim(&pk, now, app.settings.claim_lease, ttl).await? {
        Claim::Claimed => {}
        Claim::Done => {
            count("ShopWebhookDuplicates", 1);
            tracing::info!(platform = d.platform.as_str(), topic = d.topic, "duplicate shop delivery ignored");
            return Ok(json_response(StatusCode::OK, &serde_json::json!({ "status": "duplicate" })));
        }
        held @ Claim::Held { .. } => {
            // Not done yet (its invocation may have died): the shop must retry, not move on.
            count("ShopWebhookInFlight", 1);
            return Err(ApiError::InFlight { retry_after: held.retry_after(now).unwrap_or(1) });
        }
    }
    let result = async {
        let event = parse(d.topic, &d.shop, req.body(), Some(app.shops.shop_currency)).map_err(|e| match e {
            ShopParseError::NotJson(_) => ApiError::BadRequest("body is not valid JSON".into()),
            other => ApiError::BadRequest(other.to_string()),
        })?;
        match &event {
            ShopEvent::CustomerRedact { phones, country, order_ids } => {
                redact(app, d.platform, &d.shop, phones, country.as_deref(), order_ids).await?;
                Ok(crate::orders::ShopOutcome::default())
            }
            ShopEvent::Ignored { topic, reason } => {
                count("ShopWebhookIgnored", 1);
                tracing::info!(topic, reason, "shop topic acknowledged, nothing to do");
                Ok(crate::orders::ShopOutcome { ignored: Some(reason.clone()), ..Default::default() })
            }
            _ => handle_shop_event(app, &event).await,
        }
    }
    .await;
    match result {
        Ok(outcome) => {
            app.store.finish_claim(&pk).await?;
            count("ShopWebhooks", 1);
            tracing::info!(platform = d.platform.as_str(), topic = d.topic, ?outcome, "shop delivery accepted");
            Ok(json_response(StatusCode::OK, &serde_json::json!({ "status": "accepted" })))
        }
        Err(e) => {
            // Give the delivery back so the platform's retry is processed again.
            if let Err(release) = app.store.release_claim(&pk).await {
                tracing::warn!(error = %release, "could not give the delivery's claim back");
            }
            Err(e)
        }
    }
}

/// Shopify `customers/redact`: erase the people and the named orders' notification state.
async fn redact(
    app: &App,
    platform: Platform,
    shop: &str,
    phones: &[String],
    country: Option<&str>,
    order_ids: &[u64],
) -> Result<(), ApiError> {
    for phone in phones {
        if let Ok(contact) = match_contact(std::slice::from_ref(phone), country, &app.consent.default_phone_region) {
            super::consent::erase_contact(app, &contact).await?;
        }
    }
    let orders: Vec<OrderRef> =
        order_ids.iter().map(|id| OrderRef { platform, shop: shop.to_string(), order_id: *id }).collect();
    app.store.delete_orders(&orders).await?;
    count("ShopRedactions", 1);
    Ok(())
}
