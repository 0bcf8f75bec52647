//! The shop reconciler (scheduled): polls orders changed since the last run and feeds them through
//! the same idempotent path as the webhooks, so a lost or never-retried delivery (WooCommerce never
//! retries) still yields exactly one message; and checks the shops still deliver every topic.
use crate::api::{ApiError, App};
use crate::observability::count;
use crate::orders::handle_shop_event;
use crate::shops::client::{ShopApiError, ShopifyClient, WooClient};
use crate::shops::{OrderSnapshot, ShopEvent, ShopParseError};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Topics Parley needs from Shopify; a missing one raises `WebhookSubscriptionMissing`. Without
/// the product topics the chat catalog stays empty, without the checkout topics no abandoned
/// checkout is ever reminded: both fail silently, so they are checked like the order topics.
pub const SHOPIFY_TOPICS: &[&str] = &[
    "orders/create",
    "orders/paid",
    "orders/cancelled",
    "fulfillments/create",
    "fulfillments/update",
    "products/create",
    "products/update",
    "checkouts/create",
    "checkouts/update",
    "customers/redact",
];
/// Topics Parley needs from WooCommerce, which must be `active` (it disables hooks that fail).
pub const WOO_TOPICS: &[&str] = &["order.created", "order.updated", "product.created", "product.updated"];

/// Re-read a little before the last run: clocks differ and a shop's `updated_at` can lag.
const OVERLAP_SECS: i64 = 600;

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ReconcileReport {
    pub platform: &'static str,
    pub shop: String,
    pub orders_seen: usize,
    pub messages_enqueued: usize,
    pub unreadable_orders: usize,
    pub missing_subscriptions: Vec<String>,
    pub error: Option<String>,
}

fn window_start(app: &App, watermark: Option<i64>, now: i64) -> i64 {
    watermark.map(|w| w - OVERLAP_SECS).unwrap_or(now - app.shops.reconcile_lookback_minutes * 60)
}

async fn feed(
    app: &App,
    orders: Vec<Result<OrderSnapshot, ShopParseError>>,
    report: &mut ReconcileReport,
) -> Result<(), ApiError> {
    for order in orders {
        match order {
            Ok(snapshot) => {
                report.orders_seen += 1;
                let outcome = handle_shop_event(app, &ShopEvent::Order(snapshot)).await?;
                report.messages_enqueued += outcome.enqueued;
            }
            Err(e) => {
                report.unreadable_orders += 1;
                tracing::warn!(error = %e, "reconciler skipped an unreadable order");
            }
        }
    }
    Ok(())
}

/// One run over every configured shop. A shop whose API fails is reported, the others still run.
pub async fn run(app: &App, http: &reqwest::Client) -> Vec<ReconcileReport> {
    let mut reports = Vec::new();
    if let Ok(client) = ShopifyClient::new(http, &app.shops) {
        reports.push(reconcile_shopify(app, &client).await);
    }
    if !app.shops.woo_store_url.is_empty() {
        if let Ok(client) = WooClient::new(http, &app.shops) {
            reports.push(reconcile_woo(app, &client).await);
        }
    }
    for r in &reports {
        count("ReconcileOrdersSeen", r.orders_seen as u64);
        count("ReconcileMessagesEnqueued", r.messages_enqueued as u64);
        count("WebhookSubscriptionMissing", r.missing_subscriptions.len() as u64);
        if r.error.is_some() {
            count("ReconcileFailed", 1);
        }
        if !r.missing_subscriptions.is_empty() {
            tracing::error!(platform = r.platform, missing = ?r.missing_subscriptions, "shop webhook subscriptions are missing or disabled: re-create them");
        }
    }
    crate::observability::flush();
    reports
}

fn failed(report: &mut ReconcileReport, e: impl std::fmt::Display) {
    tracing::warn!(platform = report.platform, error = %e, "reconcile failed");
    report.error = Some(e.to_string());
}

async fn reconcile_shopify(app: &App, client: &ShopifyClient<'_>) -> ReconcileReport {
    let shop = app.shops.shopify_domain.clone();
    let mut report = ReconcileReport { platform: "shopify", shop: shop.clone(), ..Default::default() };
    let now = crate::time_util::now_unix();
    let result: Result<(), String> = async {
        let watermark = app.store.reconcile_watermark("shopify", &shop).await.map_err(|e| e.to_string())?;
        let since = OffsetDateTime::from_unix_timestamp(window_start(app, watermark, now))
            .map_err(|e| e.to_string())?
            .format(&Rfc3339)
            .map_err(|e| e.to_string())?;
        let orders = client.orders_since(&since).await.map_err(|e: ShopApiError| e.to_string())?;
        feed(app, orders, &mut report).await.map_err(|e| e.to_string())?;
        app.store.set_reconcile_watermark("shopify", &shop, now).await.map_err(|e| e.to_string())?;
        Ok(())
    }
    .await;
    if let Err(e) = result {
        failed(&mut report, e);
    }
    match client.webhook_topics().await {
        Ok(topics) => {
            report.missing_subscriptions =
                SHOPIFY_TOPICS.iter().filter(|t| !topics.iter().any(|x| x == *t)).map(|t| t.to_string()).collect();
        }
        Err(e) => failed(&mut report, format!("webhook check: {e}")),
    }
    report
}

async fn reconcile_woo(app: &App, client: &WooClient<'_>) -> ReconcileReport {
    let shop = app.shops.woo_host();
    let mut report = ReconcileReport { platform: "woocommerce", shop: shop.clone(), ..Default::default() };
    let now = crate::time_util::now_unix();
    let result: Result<(), String> = async {
        let watermark = app.store.reconcile_watermark("woocommerce", &shop).await.map_err(|e| e.to_string())?;
        let start =
            OffsetDateTime::from_unix_timestamp(window_start(app, watermark, now)).map_err(|e| e.to_string())?;
        // Sent without an offset and with `dates_are_gmt=true`, so WooCommerce reads it as UTC.
        let since = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            start.year(),
            u8::from(start.month()),
            start.day(),
            start.hour(),
            start.minute(),
            start.second()
        );
        let orders = client.orders_since(&since).await.map_err(|e| e.to_string())?;
        feed(app, orders, &mut report).await.map_err(|e| e.to_string())?;
        app.store.set_reconcile_watermark("woocommerce", &shop, now).await.map_err(|e| e.to_string())?;
        Ok(())
    }
    .await;
    if let Err(e) = result {
        failed(&mut report, e);
    }
    match client.webhooks().await {
        Ok(hooks) => {
            report.missing_subscriptions = WOO_TOPICS
                .iter()
                .filter(|t| !hooks.iter().any(|(topic, status)| topic == *t && status == "active"))
                .map(|t| t.to_string())
                .collect();
        }
        Err(e) => failed(&mut report, format!("webhook check: {e}")),
    }
    report
}

#[cfg(test)]
mod tests {
    use super::{SHOPIFY_TOPICS, WOO_TOPICS};

    /// README's "Connect your shop" section: what a shop owner sets up by hand.
    fn connect_your_shop() -> &'static str {
        let readme = include_str!("../../README.md");
        let start = readme.find("## Connect your shop").expect("README has a Connect your shop section");
        let rest = &readme[start + 3..];
        &readme[start..start + 3 + rest.find("\n## ").unwrap_or(rest.len())]
    }

    #[test]
    fn readme_subscribes_every_shopify_topic_the_reconciler_requires() {
        let section = connect_your_shop();
        // The shopify.app.toml example is what people copy: every required topic must be in it.
        let toml_start = section.find("[webhooks]").expect("the shopify.app.toml example");
        let toml = &section[toml_start..toml_start + section[toml_start..].find("```").unwrap()];
        let listed = section[..toml_start].to_string();
        for topic in SHOPIFY_TOPICS {
            let quoted = format!("\"{topic}\"");
            assert!(toml.contains(&quoted), "README's shopify.app.toml example lacks {topic}");
            assert!(listed.contains(&format!("`{topic}`")), "README's Shopify topic list lacks `{topic}`");
        }
    }

    #[test]
    fn readme_sets_up_every_woocommerce_topic_the_reconciler_requires() {
        let section = connect_your_shop();
        for topic in WOO_TOPICS {
            // `order.created` is "Order created" in WooCommerce's webhook form.
            let (resource, event) = topic.split_once('.').unwrap();
            let mut label = format!("{resource} {event}");
            label[..1].make_ascii_uppercase();
            assert!(
                section.contains(&format!("**{label}**")),
                "README's WooCommerce setup lacks the topic **{label}**"
            );
        }
    }
}
