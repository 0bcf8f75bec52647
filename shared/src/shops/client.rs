//! REST clients for the reconciler: Shopify Admin REST (`orders.json`, `webhooks.json`) and
//! WooCommerce REST v3 (`/wp-json/wc/v3/orders`, `/webhooks`). Read-only.
use super::{shopify, woocommerce, OrderSnapshot, ShopParseError};
use crate::config::ShopSettings;
use base64::Engine;
use secrecy::ExposeSecret;

#[derive(Debug, thiserror::Error)]
pub enum ShopApiError {
    #[error("shop API unreachable: {0}")]
    Unreachable(String),
    #[error("shop API answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("shop API answer could not be read: {0}")]
    Parse(#[from] ShopParseError),
    #[error("{0} is not configured")]
    NotConfigured(&'static str),
}

const MAX_PAGES: usize = 50;

fn error_text(e: &reqwest::Error) -> String {
    crate::channels::meta::outbound::error_chain(e)
}

async fn checked(resp: reqwest::Response) -> Result<reqwest::Response, ShopApiError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let body: String = resp.text().await.unwrap_or_default().chars().take(300).collect();
    Err(ShopApiError::Status { status: status.as_u16(), body })
}

/// The `rel="next"` URL of a `Link` header (Shopify's cursor pagination).
pub fn next_link(link: Option<&str>) -> Option<String> {
    link?.split(',').find_map(|part| {
        let (url, rel) = part.split_once(';')?;
        rel.contains("rel=\"next\"").then(|| url.trim().trim_start_matches('<').trim_end_matches('>').to_string())
    })
}

pub struct ShopifyClient<'a> {
    http: &'a reqwest::Client,
    settings: &'a ShopSettings,
}

impl<'a> ShopifyClient<'a> {
    pub fn new(http: &'a reqwest::Client, settings: &'a ShopSettings) -> Result<Self, ShopApiError> {
        if settings.shopify_access_token.is_none() || settings.shopify_domain.is_empty() {
            return Err(ShopApiError::NotConfigured("SHOPIFY_ACCESS_TOKEN"));
        }
        Ok(Self { http, settings })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/admin/api/{}/{path}", self.settings.shopify_admin_base, self.settings.shopify_api_version)
    }

    async fn get(&self, url: &str) -> Result<reqwest::Response, ShopApiError> {
        let token = self.settings.shopify_access_token.as_ref().expect("checked in new").expose_secret();
        let resp = self
            .http
            .get(url)
            .header("X-Shopify-Access-Token", token)
            .send()
            .await
            .map_err(|e| ShopApiError::Unreachable(error_text(&e)))?;
        checked(resp).await
    }

    /// Orders updated since `since` (RFC 3339), every page.
    pub async fn orders_since(&self, since: &str) -> Result<Vec<Result<OrderSnapshot, ShopParseError>>, ShopApiError> {
        let mut url =
            format!("{}?updated_at_min={}&status=any&limit=250", self.url("orders.json"), since.replace('+', "%2B"));
        let mut out = Vec::new();
        for _ in 0..MAX_PAGES {
            let resp = self.get(&url).await?;
            let next = next_link(resp.headers().get("link").and_then(|v| v.to_str().ok()));
            let body = resp.bytes().await.map_err(|e| ShopApiError::Unreachable(error_text(&e)))?;
            out.extend(shopify::parse_orders_page(&self.settings.shopify_domain, &body)?);
            match next {
                Some(n) => url = n,
                None => break,
            }
        }
        Ok(out)
    }

    /// The topics the shop currently delivers to us.
    pub async fn webhook_topics(&self) -> Result<Vec<String>, ShopApiError> {
        let resp = self.get(&self.url("webhooks.json")).await?;
        let body = resp.bytes().await.map_err(|e| ShopApiError::Unreachable(error_text(&e)))?;
        Ok(shopify::parse_webhooks_page(&body)?)
    }
}

pub struct WooClient<'a> {
    http: &'a reqwest::Client,
    settings: &'a ShopSettings,
    auth: String,
}

impl<'a> WooClient<'a> {
    pub fn new(http: &'a reqwest::Client, settings: &'a ShopSettings) -> Result<Self, ShopApiError> {
        let (Some(key), Some(secret)) = (&settings.woo_consumer_key, &settings.woo_consumer_secret) else {
            return Err(ShopApiError::NotConfigured("WOOCOMMERCE_CONSUMER_KEY / WOOCOMMERCE_CONSUMER_SECRET"));
        };
        let auth = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            key.expose_secret(),
            secret.expose_secret()
        ));
        Ok(Self { http, settings, auth: format!("Basic {auth}") })
    }

    async fn get(&self, path_and_query: &str) -> Result<reqwest::Response, ShopApiError> {
        let url = format!("{}/wp-json/wc/v3/{path_and_query}", self.settings.woo_store_url);
        let resp = self
            .http
            .get(url)
            .header("Authorization", &self.auth)
            .send()
            .await
            .map_err(|e| ShopApiError::Unreachable(error_text(&e)))?;
        checked(resp).await
    }

    /// Orders modified after `since` (ISO 8601, UTC), every page.
    pub async fn orders_since(&self, since: &str) -> Result<Vec<Result<OrderSnapshot, ShopParseError>>, ShopApiError> {
        let host = self.settings.woo_host();
        let mut out = Vec::new();
        for page in 1..=MAX_PAGES {
            let resp = self
                .get(&format!("orders?modified_after={since}&dates_are_gmt=true&per_page=100&page={page}&orderby=modified&order=asc"))
                .await?;
            let pages: usize = resp
                .headers()
                .get("x-wp-totalpages")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(1);
            let body = resp.bytes().await.map_err(|e| ShopApiError::Unreachable(error_text(&e)))?;
            out.extend(woocommerce::parse_orders_page(&host, &body)?);
            if page >= pages {
                break;
            }
        }
        Ok(out)
    }

    /// (topic, status) of the shop's webhooks.
    pub async fn webhooks(&self) -> Result<Vec<(String, String)>, ShopApiError> {
        let resp = self.get("webhooks?per_page=100").await?;
        let body = resp.bytes().await.map_err(|e| ShopApiError::Unreachable(error_text(&e)))?;
        Ok(woocommerce::parse_webhooks_page(&body)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_header_next() {
        let h = r#"<https://s.myshopify.com/admin/api/2026-07/orders.json?page_info=abc&limit=250>; rel="previous", <https://s.myshopify.com/admin/api/2026-07/orders.json?page_info=def&limit=250>; rel="next""#;
        assert_eq!(
            next_link(Some(h)).as_deref(),
            Some("https://s.myshopify.com/admin/api/2026-07/orders.json?page_info=def&limit=250")
        );
        assert_eq!(next_link(Some(r#"<https://x>; rel="previous""#)), None);
        assert_eq!(next_link(None), None);
    }
}
