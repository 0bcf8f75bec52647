//! One event type for every shop platform, parsed once at the edge (ids as u64 — Shopify's exceed
//! 2^53 —, money in integer minor units, phones still raw: they are normalised with the shop's
//! country when the customer is matched).
use crate::domain::{Currency, Money};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Shopify,
    #[serde(rename = "woocommerce")]
    WooCommerce,
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Shopify => "shopify",
            Platform::WooCommerce => "woocommerce",
        }
    }
}

/// Which order of which shop: the business key every order message is idempotent on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OrderRef {
    pub platform: Platform,
    /// Shopify: the `myshopify.com` domain; WooCommerce: the store URL's host.
    pub shop: String,
    pub order_id: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Created, not (yet) paid: Shopify `pending`/`authorized`, Woo `on-hold`.
    Placed,
    /// Woo `pending` ("pending payment"): usually an abandoned checkout, so never confirmed.
    AwaitingPayment,
    /// Paid: Shopify `financial_status` paid/partially_paid, Woo `processing`.
    Paid,
    /// Woo `completed` (the shop marked it done, usually shipped).
    Completed,
    Cancelled,
    /// Refunded or failed: no customer message, counted.
    Refunded,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LineItem {
    pub title: String,
    pub quantity: u32,
    pub sku: Option<String>,
    pub variant_id: Option<u64>,
    pub product_id: Option<u64>,
    pub unit_price: Option<Money>,
}

/// Shipment progress as carriers report it (Shopify `shipment_status`; unknown values kept).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShipmentStatus {
    LabelPrinted,
    LabelPurchased,
    Confirmed,
    InTransit,
    OutForDelivery,
    AttemptedDelivery,
    ReadyForPickup,
    Delivered,
    Failure,
    Other(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fulfillment {
    /// Shopify fulfillment id; WooCommerce: the tracking item id or a stable stand-in.
    pub id: String,
    /// Shopify `status`: pending, open, success, cancelled, error, failure.
    pub status: Option<String>,
    pub shipment_status: Option<ShipmentStatus>,
    pub tracking_company: Option<String>,
    pub tracking_numbers: Vec<String>,
    pub tracking_urls: Vec<String>,
    /// Unix seconds.
    pub updated_at: Option<i64>,
}

/// The customer's marketing consent as the shop recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShopConsent {
    /// `subscribed`, `not_subscribed`, `unsubscribed`, `pending`, `redacted` (lowercased).
    pub state: String,
    /// `confirmed_opt_in`, `single_opt_in`, `unknown` (lowercased), when given.
    pub opt_in_level: Option<String>,
    pub collected_from: Option<String>,
    /// Unix seconds.
    pub updated_at: Option<i64>,
    /// `sms` or `whatsapp`: which consent field it came from.
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderSnapshot {
    pub order: OrderRef,
    /// Shown to the customer: Shopify `name` ("#1001"), Woo `number`.
    pub name: String,
    pub status: OrderStatus,
    pub currency: Currency,
    pub total: Money,
    pub items: Vec<LineItem>,
    /// Phone candidates, best first, as the shop gave them (order phone, customer, shipping, billing).
    pub phones: Vec<String>,
    /// ISO country of the shipping (else billing) address: the default region for the phones.
    pub country: Option<String>,
    pub customer_first_name: Option<String>,
    /// `customer_locale` (Shopify) if given, e.g. `de`, `en-US`.
    pub locale: Option<String>,
    /// Cart attributes / meta data (`note_attributes`, Woo `meta_data`): carries `parley_cart`.
    pub attributes: Vec<(String, String)>,
    /// Unix seconds.
    pub created_at: Option<i64>,
    pub updated_at: Option<i64>,
    /// Fulfillments known from the order itself (Shopify `fulfillments[]`, Woo tracking meta).
    pub fulfillments: Vec<Fulfillment>,
    pub marketing_consent: Option<ShopConsent>,
    /// Test orders (Shopify `test: true`) are handled like others but logged as such.
    pub test: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ShopEvent {
    /// orders/create, orders/paid, orders/updated, orders/cancelled; Woo order.created/updated.
    Order(OrderSnapshot),
    /// fulfillments/create, fulfillments/update: carries no customer phone (joined via the order).
    Fulfillment {
        order: OrderRef,
        fulfillment: Fulfillment,
        /// `destination.phone` and its country, used only if the order is unknown.
        destination_phone: Option<String>,
        country: Option<String>,
    },
    /// Refunds: no message, counted.
    Refund { order: OrderRef },
    /// customers/redact: erase these people.
    CustomerRedact { phones: Vec<String>, country: Option<String>, order_ids: Vec<u64> },
    /// customers_marketing_consent/update and the WhatsApp consent topic.
    CustomerConsent { phone: Option<String>, country: Option<String>, consent: ShopConsent },
    /// A topic Parley does not act on (yet): acknowledged, counted.
    Ignored { topic: String, reason: String },
    /// products/create, products/update; Woo product.created, product.updated: one entry per variant.
    /// products/delete, Woo product.deleted: `deleted`, one item per product with `variant_id` 0.
    Products { platform: Platform, shop: String, items: Vec<ProductVariant>, deleted: bool },
    /// checkouts/create, checkouts/update (Shopify): a checkout that may be abandoned.
    Checkout(CheckoutSnapshot),
}

/// One purchasable variant of a product (a simple product is one variant).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductVariant {
    pub product_id: u64,
    /// WooCommerce simple (and variable parent) products, deleted products: 0.
    pub variant_id: u64,
    pub sku: Option<String>,
    /// Product title, plus " – " and the variant title unless that is "Default Title".
    pub title: String,
    pub price: Money,
    /// Can be bought now (platform rules: see the parsers).
    pub available: bool,
    /// Shopify `product_type`, WooCommerce `categories[0].name`.
    pub category: Option<String>,
    /// Unix seconds.
    pub updated_at: Option<i64>,
}

/// A Shopify checkout: abandoned while `completed_at` stays empty (Shopify has no abandoned topic).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckoutSnapshot {
    pub platform: Platform,
    pub shop: String,
    pub checkout_id: u64,
    pub token: Option<String>,
    /// The recovery link Shopify puts in its own abandoned-checkout emails.
    pub abandoned_checkout_url: Option<String>,
    /// Unix seconds; `None` while the checkout is open.
    pub completed_at: Option<i64>,
    /// Phone candidates, best first: `phone`, `sms_marketing_phone`, customer, shipping, billing.
    pub phones: Vec<String>,
    /// ISO country of the shipping (else billing) address.
    pub country: Option<String>,
    pub currency: Currency,
    pub total: Money,
    pub items: Vec<LineItem>,
    /// `note_attributes`.
    pub attributes: Vec<(String, String)>,
    /// Unix seconds.
    pub updated_at: Option<i64>,
    pub buyer_accepts_sms_marketing: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShopParseError {
    #[error("body is not valid JSON: {0}")]
    NotJson(String),
    #[error("payload is missing {0}")]
    Missing(&'static str),
    #[error("field {field} is invalid: {reason}")]
    Invalid { field: &'static str, reason: String },
}
