//! The fuzz targets' entry points (`fuzz/`, `make fuzz`) and the stable replay of their corpus
//! (`fuzz/corpus/<target>/`, replayed by this module's tests in `make test`).
//!
//! Each entry takes arbitrary bytes, runs one parser the way production calls it, and panics only
//! when a documented property breaks: libFuzzer reports that panic like any other, and the replay
//! test fails on it. Parsers never panic on their own input; these properties say what their
//! `Ok`/`Err` means.
use crate::channels::meta::inbound::{self, InboundParseError};
use crate::channels::signature::{self, Encoding, SignatureError, Verifier};
use crate::domain::cart::{self, CartCommand, Sku, MAX_TYPED_QUANTITY};
use crate::domain::flows::{normalize, FlowSet, Flows};
use crate::domain::Currency;
use crate::shops::{shopify, woocommerce, ShopEvent, ShopParseError};
use serde_json::Value;

/// A target's entry point: arbitrary bytes in, a panic only for a broken property.
pub type Entry = fn(&[u8]);

/// Every target by its directory name under `fuzz/corpus/`, with its entry point.
pub const TARGETS: &[(&str, Entry)] = &[
    ("meta_delivery", meta_delivery),
    ("shopify_webhook", shopify_webhook),
    ("woocommerce_webhook", woocommerce_webhook),
    ("signature_header", signature_header),
    ("chat_command", chat_command),
    ("flows_file", flows_file),
];

/// Meta webhook body. Differential: where the one-pass WhatsApp path answers, it answers exactly
/// what the tolerant parser does. `Err` only for a body that is not JSON (`NotJson`) or not an
/// object with a non-null `object` (`NotAnEnvelope`); every odd item inside is a skip, never an error.
pub fn meta_delivery(data: &[u8]) {
    let tolerant = inbound::parse_tolerant(data);
    if let Some(fast) = inbound::parse_fast(data) {
        match &tolerant {
            Ok(t) => assert_eq!(&fast, t, "the fast path differs from the tolerant one"),
            Err(e) => panic!("the fast path took a body the tolerant parser refused: {e}"),
        }
    }
    let result = inbound::parse_delivery(data);
    let json: Option<Value> = serde_json::from_slice(data).ok();
    match (&json, &result) {
        (None, Err(InboundParseError::NotJson(_))) => {}
        (Some(root), Err(InboundParseError::NotAnEnvelope)) => {
            assert!(root.get("object").is_none_or(Value::is_null), "an envelope was refused")
        }
        (Some(root), Ok(_)) => assert!(root.get("object").is_some_and(|o| !o.is_null()), "a non-envelope was taken"),
        (json, result) => panic!("shape: JSON {} → {result:?}", json.is_some()),
    }
}

/// The first byte picks the topic (so the fuzzer reaches every branch), the second the shop
/// currency; the rest is the body.
fn shop_input<'a>(data: &'a [u8], topics: &[&'static str]) -> (&'static str, Option<Currency>, &'a [u8]) {
    let (&t, rest) = data.split_first().unwrap_or((&0, &[]));
    let (&c, body) = rest.split_first().unwrap_or((&0, &[]));
    let topic = topics[usize::from(t) % topics.len()];
    let currency = match c % 3 {
        0 => None,
        1 => Currency::parse("EUR").ok(),
        _ => Currency::parse("JPY").ok(),
    };
    (topic, currency, body)
}

/// Whatever the body, an ignored topic is acknowledged and a parsed one is an event or a
/// `ShopParseError` (never a panic); an error names no body content beyond a JSON position.
fn check_shop_result(topic: &str, body: &[u8], result: &Result<ShopEvent, ShopParseError>) {
    match result {
        Ok(ShopEvent::Ignored { topic: t, .. }) => assert_eq!(t, topic),
        Ok(_) => {}
        Err(ShopParseError::NotJson(_)) => {
            assert!(serde_json::from_slice::<Value>(body).is_err(), "valid JSON reported as NotJson")
        }
        Err(_) => {}
    }
}

pub fn shopify_webhook(data: &[u8]) {
    const TOPICS: &[&str] = &[
        "orders/create",
        "orders/updated",
        "orders/cancelled",
        "fulfillments/create",
        "refunds/create",
        "customers/redact",
        "customers_marketing_consent/update",
        "customers_whats_app_marketing_consent/update",
        "products/create",
        "products/delete",
        "checkouts/update",
        "checkouts/delete",
        "app/uninstalled",
    ];
    let (topic, currency, body) = shop_input(data, TOPICS);
    let result = shopify::parse_webhook_with_currency(topic, "fuzz.myshopify.com", body, currency);
    check_shop_result(topic, body, &result);
    // The reconciler's pages come from the same API in the same shapes.
    if let Ok(orders) = shopify::parse_orders_page("fuzz.myshopify.com", body) {
        assert!(orders.iter().flatten().all(|o| o.order.shop == "fuzz.myshopify.com"));
    }
    let _ = shopify::parse_webhooks_page(body);
}

pub fn woocommerce_webhook(data: &[u8]) {
    const TOPICS: &[&str] =
        &["order.created", "order.updated", "order.deleted", "product.created", "product.deleted", "coupon.created"];
    let (topic, currency, body) = shop_input(data, TOPICS);
    let result = woocommerce::parse_webhook_with_currency(topic, "shop.example", body, currency);
    if woocommerce::is_ping(body) {
        assert!(matches!(result, Ok(ShopEvent::Ignored { .. })), "a setup ping must be acknowledged");
    }
    check_shop_result(topic, body, &result);
    if let Ok(orders) = woocommerce::parse_orders_page("shop.example", body) {
        assert!(orders.iter().flatten().all(|o| o.order.shop == "shop.example"));
    }
    let _ = woocommerce::parse_webhooks_page(body);
}

/// Up to the first newline: the header value; the rest: the body. Both encodings: a blank header
/// is `Missing`; `Ok` only for the body's own MAC (decoded bytes equal); the verifier always
/// accepts what it signs.
pub fn signature_header(data: &[u8]) {
    let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let Ok(header) = std::str::from_utf8(&data[..split]) else { return };
    let body = data.get(split + 1..).unwrap_or(&[]);
    for encoding in [Encoding::PrefixedHex, Encoding::Base64] {
        let verifier = Verifier::new(encoding, "fuzz-secret".to_string().into(), Some("old-secret".to_string().into()));
        let result = verifier.verify(body, Some(header));
        if header.trim().is_empty() {
            assert_eq!(result, Err(SignatureError::Missing));
        }
        if result.is_ok() {
            let matches = |secret: &str| {
                let own = signature::sign(encoding, secret, body);
                match encoding {
                    Encoding::PrefixedHex => own.eq_ignore_ascii_case(header.trim()),
                    Encoding::Base64 => own == header.trim(),
                }
            };
            assert!(matches("fuzz-secret") || matches("old-secret"), "accepted a signature it did not make");
        }
        assert_eq!(verifier.verify(body, Some(&verifier.sign(body))), Ok(()));
        assert_eq!(verifier.verify(body, None), Err(SignatureError::Missing));
    }
}

/// A chat message as a cart command and a button id as one: a command names a valid SKU and a
/// quantity the cart accepts.
pub fn chat_command(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let check = |c: &CartCommand| match c {
        CartCommand::Add { sku, quantity } => {
            assert!(Sku::parse(sku.as_str()).is_ok(), "invalid SKU {sku:?}");
            assert!((1..=MAX_TYPED_QUANTITY).contains(quantity));
        }
        CartCommand::Remove { sku } => assert!(Sku::parse(sku.as_str()).is_ok(), "invalid SKU {sku:?}"),
        CartCommand::SetQuantity { sku, quantity } => {
            assert!(Sku::parse(sku.as_str()).is_ok(), "invalid SKU {sku:?}");
            assert!(*quantity <= MAX_TYPED_QUANTITY);
        }
        CartCommand::Browse { category: Some(c) } => assert!(!c.trim().is_empty()),
        _ => {}
    };
    if let Some(c) = cart::parse_command(&text) {
        check(&c);
    }
    if let Some(c) = cart::parse_payload(&text) {
        check(&c);
        if let CartCommand::Add { quantity, .. } = c {
            assert_eq!(quantity, 1, "a button adds one");
        }
    }
    // Keywords are matched on normalised text: normalising twice changes nothing.
    let once = normalize(&text);
    assert_eq!(normalize(&once), once, "normalize is not idempotent");
}

/// A flows file (TOML) as the loader reads it from the config bucket or directory: `Ok` is a set
/// that also loads into a `Flows` (its locale's lookups answer), `Err` a `ConfigError` naming the file.
pub fn flows_file(data: &[u8]) {
    let Ok(src) = std::str::from_utf8(data) else { return };
    match FlowSet::parse("fuzz", "en", src) {
        Ok(set) => {
            let flows = Flows::from_sets(vec![set]).expect("a valid set loads");
            let set = flows.for_locale("fuzz", "en");
            for flow in set.flows() {
                assert!(set.flow(&flow.id).is_some(), "a parsed flow is found by its id");
            }
        }
        Err(e) => assert!(e.to_string().contains("fuzz.en.toml"), "the error names the file: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// `make test` replays every committed corpus input through its target's entry point on the
    /// stable toolchain (no libFuzzer), so an input that once broke a parser stays fixed.
    #[test]
    fn fuzz_corpus_replays_without_a_broken_property() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
        let mut total = 0;
        for (name, entry) in TARGETS {
            let dir = root.join(name);
            let files: Vec<_> = std::fs::read_dir(&dir)
                .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
                .map(|f| f.expect("corpus entry").path())
                .collect();
            assert!(!files.is_empty(), "corpus {name} is empty");
            for file in &files {
                let data = std::fs::read(file).expect("corpus file");
                let run = std::panic::catch_unwind(|| entry(&data));
                assert!(run.is_ok(), "{name}: {} broke a property", file.display());
            }
            total += files.len();
        }
        assert!(total >= TARGETS.len());
    }
}
