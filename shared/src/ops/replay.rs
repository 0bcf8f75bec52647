//! Replaying a saved webhook delivery (Meta, Shopify, WooCommerce): re-signed with the configured
//! secret and posted to the webhook, as the platform would.
//!
//! A saved delivery is either an API Gateway HTTP API event (what a function receives; the
//! `events/apigw/*_post.json` samples: path, headers and body as delivered) or a bare body as the
//! platform posts it (`events/meta/*.json`, `events/shopify/*.json`, …); a bare shop body needs
//! its topic, and gets a fresh delivery id.
use super::OpsError;
use crate::channels::signature::{sign, Encoding};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Meta,
    Shopify,
    WooCommerce,
}

impl Platform {
    pub fn parse(s: &str) -> Result<Self, OpsError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "meta" | "whatsapp" | "messenger" | "instagram" => Ok(Platform::Meta),
            "shopify" => Ok(Platform::Shopify),
            "woocommerce" | "woo" => Ok(Platform::WooCommerce),
            other => Err(OpsError::Invalid(format!("unknown platform {other:?}: meta, shopify or woocommerce"))),
        }
    }

    pub fn path(self) -> &'static str {
        match self {
            Platform::Meta => "/webhooks/meta",
            Platform::Shopify => "/webhooks/shopify",
            Platform::WooCommerce => "/webhooks/woocommerce",
        }
    }

    /// The signature header (lower case, as API Gateway passes headers).
    pub fn signature_header(self) -> &'static str {
        match self {
            Platform::Meta => "x-hub-signature-256",
            Platform::Shopify => "x-shopify-hmac-sha256",
            Platform::WooCommerce => "x-wc-webhook-signature",
        }
    }

    fn encoding(self) -> Encoding {
        match self {
            Platform::Meta => Encoding::PrefixedHex,
            Platform::Shopify | Platform::WooCommerce => Encoding::Base64,
        }
    }

    /// The env var holding the secret the webhook checks (the functions read the same).
    pub fn secret_var(self) -> &'static str {
        match self {
            Platform::Meta => "META_APP_SECRET",
            Platform::Shopify => "SHOPIFY_WEBHOOK_SECRET",
            Platform::WooCommerce => "WOOCOMMERCE_WEBHOOK_SECRET",
        }
    }

    fn from_path(path: &str) -> Option<Self> {
        [Platform::Meta, Platform::Shopify, Platform::WooCommerce].into_iter().find(|p| p.path() == path)
    }
}

/// A delivery ready to post.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub platform: Platform,
    pub path: String,
    /// Lower-case names; the signature header is set by [`Delivery::sign`].
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// How to read a bare body (ignored for an API Gateway event, which says it all).
#[derive(Debug, Clone, Default)]
pub struct BareOptions {
    pub platform: Option<Platform>,
    /// `orders/create` (Shopify) or `order.created` (WooCommerce).
    pub topic: Option<String>,
    /// `x-shopify-shop-domain` (default `SHOPIFY_SHOP_DOMAIN`).
    pub shop_domain: Option<String>,
    /// `x-wc-webhook-source` (default `WOOCOMMERCE_STORE_URL`).
    pub woo_source: Option<String>,
}

/// Headers that belong to the hop that recorded the delivery, not to the delivery.
const HOP_HEADERS: &[&str] =
    &["host", "content-length", "x-forwarded-for", "x-forwarded-port", "x-forwarded-proto", "x-amzn-trace-id"];

impl Delivery {
    /// Reads a saved delivery (see the module doc).
    pub fn load(file: &[u8], opts: &BareOptions) -> Result<Self, OpsError> {
        let json: serde_json::Value = serde_json::from_slice(file)
            .map_err(|e| OpsError::Invalid(format!("not a JSON file: {}", crate::privacy::describe_json_error(&e))))?;
        if let (Some(path), Some(headers), Some(body)) = (
            json.get("rawPath").and_then(|v| v.as_str()),
            json.get("headers").and_then(|v| v.as_object()),
            json.get("body"),
        ) {
            let platform = Platform::from_path(path).ok_or_else(|| {
                OpsError::Invalid(format!("{path} is not a webhook route (meta, shopify, woocommerce)"))
            })?;
            let body = body.as_str().unwrap_or_default();
            let body = if json.get("isBase64Encoded").and_then(|v| v.as_bool()).unwrap_or(false) {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD
                    .decode(body)
                    .map_err(|_| OpsError::Invalid("isBase64Encoded, but the body is not base64".into()))?
            } else {
                body.as_bytes().to_vec()
            };
            let headers = headers
                .iter()
                .filter(|(k, _)| !HOP_HEADERS.contains(&k.to_ascii_lowercase().as_str()))
                .filter_map(|(k, v)| Some((k.to_ascii_lowercase(), v.as_str()?.to_string())))
                .collect();
            return Ok(Delivery { platform, path: path.to_string(), headers, body });
        }
        Self::bare(file, &json, opts)
    }

    fn bare(file: &[u8], json: &serde_json::Value, opts: &BareOptions) -> Result<Self, OpsError> {
        let meta_object = matches!(
            json.get("object").and_then(|v| v.as_str()),
            Some("whatsapp_business_account" | "page" | "instagram")
        );
        let platform = match (opts.platform, meta_object) {
            (Some(p), _) => p,
            (None, true) => Platform::Meta,
            (None, false) => {
                return Err(OpsError::Invalid(
                    "not a Meta delivery nor an API Gateway event: say --platform shopify|woocommerce and --topic"
                        .into(),
                ))
            }
        };
        let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
        let topic = || {
            opts.topic.clone().filter(|t| !t.trim().is_empty()).ok_or_else(|| {
                OpsError::Invalid("a bare shop delivery needs --topic (orders/create, order.created, …)".into())
            })
        };
        let delivery_id = uuid::Uuid::new_v4().to_string();
        match platform {
            Platform::Meta => {}
            Platform::Shopify => {
                let domain = opts
                    .shop_domain
                    .clone()
                    .ok_or_else(|| OpsError::NotConfigured("SHOPIFY_SHOP_DOMAIN (or --shop-domain)".into()))?;
                headers.extend([
                    ("x-shopify-topic".into(), topic()?),
                    ("x-shopify-shop-domain".into(), domain),
                    ("x-shopify-webhook-id".into(), delivery_id),
                ]);
            }
            Platform::WooCommerce => {
                let topic = topic()?;
                let source = opts
                    .woo_source
                    .clone()
                    .ok_or_else(|| OpsError::NotConfigured("WOOCOMMERCE_STORE_URL (or --woo-source)".into()))?;
                let (resource, event) = topic.split_once('.').unwrap_or((topic.as_str(), ""));
                headers.extend([
                    ("x-wc-webhook-resource".into(), resource.to_string()),
                    ("x-wc-webhook-event".into(), event.to_string()),
                    ("x-wc-webhook-source".into(), source),
                    ("x-wc-webhook-delivery-id".into(), delivery_id),
                    ("x-wc-webhook-topic".into(), topic),
                ]);
            }
        }
        Ok(Delivery { platform, path: platform.path().to_string(), headers, body: file.to_vec() })
    }

    /// Sets a header, replacing one of the same name.
    pub fn set_header(&mut self, name: &str, value: &str) {
        let name = name.trim().to_ascii_lowercase();
        self.headers.retain(|(k, _)| *k != name);
        self.headers.push((name, value.to_string()));
    }

    /// Signs the body with `secret` as the platform does.
    pub fn sign(&mut self, secret: &str) {
        let sig = sign(self.platform.encoding(), secret, &self.body);
        self.set_header(self.platform.signature_header(), &sig);
    }

    pub fn signed(&self) -> bool {
        self.headers.iter().any(|(k, _)| k == self.platform.signature_header())
    }
}

/// What the webhook answered.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReplayOutcome {
    pub platform: Platform,
    pub url: String,
    pub status: u16,
    /// The answer's body when it is short JSON (an error code); never echoed otherwise.
    pub answer: Option<serde_json::Value>,
}

/// Posts the delivery to `base` (the API's URL) + its path. A non-2xx answer is `Rejected`,
/// carried with the outcome so the caller can print both.
pub async fn post(
    http: &reqwest::Client,
    base: &str,
    delivery: &Delivery,
) -> Result<(ReplayOutcome, Option<OpsError>), OpsError> {
    let url = format!("{}{}", base.trim_end_matches('/'), delivery.path);
    let mut req = http.post(&url).body(delivery.body.clone());
    for (k, v) in &delivery.headers {
        req = req.header(k, v);
    }
    // The error names no URL: a webhook URL can carry a key.
    let resp = req.send().await.map_err(|e| {
        OpsError::Unreachable(if e.is_timeout() { "timed out".into() } else { "connection failed".into() })
    })?;
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    let answer = (text.len() <= 2048).then(|| serde_json::from_str(&text).ok()).flatten();
    let outcome = ReplayOutcome { platform: delivery.platform, url, status, answer };
    let err = (!(200..300).contains(&status)).then_some(OpsError::Rejected { status });
    Ok((outcome, err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_an_api_gateway_event_and_drops_the_hop_headers() {
        let ev = serde_json::json!({
            "rawPath": "/webhooks/shopify",
            "headers": {"Host": "x", "x-shopify-topic": "orders/create", "x-shopify-hmac-sha256": "old", "content-length": "2"},
            "body": "{}",
            "isBase64Encoded": false
        });
        let mut d = Delivery::load(ev.to_string().as_bytes(), &BareOptions::default()).unwrap();
        assert_eq!(d.platform, Platform::Shopify);
        assert_eq!(d.body, b"{}");
        assert!(d.headers.iter().all(|(k, _)| k != "host" && k != "content-length"));
        d.sign("s");
        let sig: Vec<_> = d.headers.iter().filter(|(k, _)| k == "x-shopify-hmac-sha256").collect();
        assert_eq!(sig.len(), 1);
        assert_eq!(sig[0].1, sign(Encoding::Base64, "s", b"{}"));
    }

    #[test]
    fn a_bare_meta_body_is_recognised_and_a_bare_shop_body_needs_its_topic() {
        let meta = br#"{"object":"whatsapp_business_account","entry":[]}"#;
        let d = Delivery::load(meta, &BareOptions::default()).unwrap();
        assert_eq!((d.platform, d.path.as_str()), (Platform::Meta, "/webhooks/meta"));
        assert!(!d.signed());
        let order = br#"{"id":1}"#;
        assert!(matches!(Delivery::load(order, &BareOptions::default()), Err(OpsError::Invalid(_))));
        let opts = BareOptions { platform: Some(Platform::WooCommerce), ..Default::default() };
        assert!(matches!(Delivery::load(order, &opts), Err(OpsError::Invalid(_))));
        let opts = BareOptions {
            platform: Some(Platform::WooCommerce),
            topic: Some("order.created".into()),
            woo_source: Some("https://shop.example".into()),
            ..Default::default()
        };
        let d = Delivery::load(order, &opts).unwrap();
        let h = |n: &str| d.headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        assert_eq!(h("x-wc-webhook-resource").as_deref(), Some("order"));
        assert_eq!(h("x-wc-webhook-event").as_deref(), Some("created"));
    }
}
