//! The chat cart: typed and button commands, the pure cart state machine, shop checkout links,
//! the reminder rule and the brand-editable cart texts (`config/cart.<locale>.toml`).
//!
//! Everything here is pure: the adapter loads the cart and pre-fetches the catalog items the
//! command names (or the category for Browse), passes `now`, and stores the returned cart with
//! a condition on the version it read. So `apply` twice from the same cart gives the same answer.
use super::flows::{
    self, MAX_BUTTON_TITLE, MAX_INTERACTIVE_TEXT, MAX_LIST_BUTTON, MAX_ROW_DESCRIPTION, MAX_ROW_TITLE,
    MAX_SECTION_TITLE, MAX_TEXT,
};
use super::ids::IdError;
use super::message::{Button, ListRow, ListSection, OutboundBody};
use super::money::{Currency, Money};
use super::orders::format_money;
use super::texts::{next_placeholder, placeholders};
use crate::config::ConfigError;
use crate::shops::Platform;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

// ---- SKU and catalog ----

/// A shop SKU (also the WhatsApp catalog `retailer_id`): 1..=64 of `[A-Za-z0-9._-]`. Kept as
/// the shop spells it; customers may type it in any case, so compare with [`Sku::matches`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(try_from = "String", into = "String")]
pub struct Sku(String);

pub const MAX_SKU_LEN: usize = 64;

impl Sku {
    pub fn parse(s: impl Into<String>) -> Result<Self, IdError> {
        let s = s.into();
        if s.is_empty() {
            return Err(IdError::Empty("sku"));
        }
        if s.len() > MAX_SKU_LEN {
            return Err(IdError::TooLong { what: "sku", len: s.len(), max: MAX_SKU_LEN });
        }
        if !s.bytes().all(is_sku_byte) {
            return Err(IdError::BadCharacters { what: "sku" });
        }
        Ok(Self(s))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// Case-insensitive: `ts-m` finds `TS-M`.
    pub fn matches(&self, other: &str) -> bool {
        self.0.eq_ignore_ascii_case(other)
    }
}

fn is_sku_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

impl TryFrom<String> for Sku {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        Self::parse(s)
    }
}
impl From<Sku> for String {
    fn from(v: Sku) -> String {
        v.0
    }
}
impl fmt::Display for Sku {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One sellable variant as the product webhooks synced it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct CatalogItem {
    pub sku: Sku,
    pub title: String,
    pub platform: Platform,
    /// Shopify: the `myshopify.com` domain; WooCommerce: the store host.
    pub shop: String,
    pub product_id: u64,
    /// Shopify variant id; WooCommerce variation id, 0 for a simple product.
    pub variant_id: u64,
    pub price: Money,
    pub available: bool,
    pub category: Option<String>,
    pub updated_at: i64,
}

/// The catalog item for a SKU: an available one if several share it.
fn find_item<'a>(catalog: &'a [CatalogItem], sku: &str) -> Option<&'a CatalogItem> {
    let mut hits = catalog.iter().filter(|i| i.sku.matches(sku));
    let first = hits.next()?;
    if first.available {
        return Some(first);
    }
    Some(hits.find(|i| i.available).unwrap_or(first))
}

// ---- cart ----

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct CartLine {
    pub sku: Sku,
    pub title: String,
    pub product_id: u64,
    pub variant_id: u64,
    pub quantity: u32,
    pub unit_price: Money,
}

impl CartLine {
    fn from_item(item: &CatalogItem, quantity: u32) -> Self {
        Self {
            sku: item.sku.clone(),
            title: item.title.clone(),
            product_id: item.product_id,
            variant_id: item.variant_id,
            quantity,
            unit_price: item.price,
        }
    }

    /// Unit price × quantity (saturating: a line total never wraps).
    pub fn amount(&self) -> Money {
        Money::new(self.unit_price.minor.saturating_mul(i64::from(self.quantity)), self.unit_price.currency)
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum CartStatus {
    #[default]
    Open,
    CheckoutSent,
    Converted,
}

/// The shop order the checkout link turned into (matched by the `parley_cart` attribute).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Conversion {
    pub order_id: u64,
    pub revenue: Money,
    pub at: i64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Cart {
    pub id: String,
    pub lines: Vec<CartLine>,
    pub status: CartStatus,
    pub created_at: i64,
    pub updated_at: i64,
    pub checkout_sent_at: Option<i64>,
    pub reminded_at: Option<i64>,
    pub converted: Option<Conversion>,
    /// Ids of the latest inbound messages already applied: a message re-processed after a
    /// failure (the channel retries it) must not add its items twice.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applied: Vec<String>,
    /// The agent who built or changed the cart in the team inbox: its order is theirs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
}

/// How many applied message ids a cart remembers.
pub const APPLIED_MEMORY: usize = 20;

impl Cart {
    pub fn has_applied(&self, message_id: &str) -> bool {
        self.applied.iter().any(|m| m == message_id)
    }

    /// Records that `message_id` was applied (the newest [`APPLIED_MEMORY`] are kept).
    pub fn mark_applied(&mut self, message_id: &str) {
        self.applied.push(message_id.to_string());
        let excess = self.applied.len().saturating_sub(APPLIED_MEMORY);
        self.applied.drain(..excess);
    }

    pub fn new(id: String, now: i64) -> Self {
        Self { id, created_at: now, updated_at: now, ..Self::default() }
    }

    /// One total per currency, ordered by currency code (a cart may mix currencies when the
    /// catalog does; it is never converted).
    pub fn totals(&self) -> Vec<Money> {
        let mut sums: BTreeMap<Currency, i64> = BTreeMap::new();
        for line in &self.lines {
            let a = line.amount();
            let sum = sums.entry(a.currency).or_insert(0);
            *sum = sum.saturating_add(a.minor);
        }
        sums.into_iter().map(|(c, minor)| Money::new(minor, c)).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    fn line_index(&self, sku: &str) -> Option<usize> {
        self.lines.iter().position(|l| l.sku.matches(sku))
    }

    /// The shop order for this cart arrived: the cart becomes read-only.
    pub fn converted(&self, order_id: u64, revenue: Money, now: i64) -> Cart {
        Cart {
            status: CartStatus::Converted,
            converted: Some(Conversion { order_id, revenue, at: now }),
            ..self.clone()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CartLimits {
    pub max_quantity_per_line: u32,
    pub max_lines: usize,
}

impl Default for CartLimits {
    fn default() -> Self {
        Self { max_quantity_per_line: 10, max_lines: 20 }
    }
}

// ---- commands ----

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CartCommand {
    Add {
        sku: String,
        quantity: u32,
    },
    Remove {
        sku: String,
    },
    SetQuantity {
        sku: String,
        quantity: u32,
    },
    Show,
    Clear,
    Checkout,
    Browse {
        category: Option<String>,
    },
    /// A WhatsApp catalog `order` message: `(retailer id, quantity)` per product.
    FromCatalogOrder {
        items: Vec<(String, u32)>,
    },
}

/// Typed quantities above this are a typo, not an order.
pub const MAX_TYPED_QUANTITY: u32 = 999;

const ADD_WORDS: &[&str] = &["add", "hinzufügen", "hinzufugen", "hinzufuegen", "nimm"];
const REMOVE_WORDS: &[&str] = &["remove", "delete", "entfernen", "entferne", "löschen", "lösche"];
const SET_WORDS: &[&str] = &["set", "menge"];
const BROWSE_WORDS: &[&str] = &["browse", "catalog", "catalogue", "katalog", "sortiment"];
const SHOW_PHRASES: &[&str] = &[
    "cart",
    "warenkorb",
    "my cart",
    "show cart",
    "view cart",
    "mein warenkorb",
    "warenkorb anzeigen",
    "zeig warenkorb",
];
const CLEAR_PHRASES: &[&str] =
    &["clear", "clear cart", "empty cart", "leeren", "warenkorb leeren", "leere warenkorb", "leere den warenkorb"];
const CHECKOUT_PHRASES: &[&str] = &["checkout", "check out", "kasse", "zur kasse", "bezahlen", "jetzt bezahlen"];
/// Words that are never a SKU, so "add a gift note" or "nimm das" stay ordinary sentences.
const NOT_SKUS: &[&str] = &[
    "a", "an", "the", "to", "it", "this", "that", "more", "some", "one", "me", "my", "ein", "eine", "einen", "einer",
    "den", "der", "die", "das", "dem", "mehr", "noch", "es", "mir", "bitte", "please",
];
/// At most this many words after a browse word are a category; more is a sentence.
const MAX_CATEGORY_WORDS: usize = 3;

/// A whole message as a cart command, German or English; `None` for anything else, including
/// ordinary sentences that merely contain a command word. Quantities default to 1 and must be
/// 1..=999 (`set SKU 0` is allowed and removes). SKUs keep the case typed.
pub fn parse_command(text: &str) -> Option<CartCommand> {
    // Edge punctuation goes ("add TS-M, 2!"), inner SKU characters stay.
    let tokens: Vec<&str> = text
        .split_whitespace()
        .map(|t| t.trim_matches(|c: char| !(c.is_alphanumeric() || c == '×')))
        .filter(|t| !t.is_empty())
        .collect();
    let words: Vec<String> = tokens.iter().map(|t| flows::normalize(t)).collect();
    let phrase = words.join(" ");
    if SHOW_PHRASES.contains(&phrase.as_str()) {
        return Some(CartCommand::Show);
    }
    if CLEAR_PHRASES.contains(&phrase.as_str()) {
        return Some(CartCommand::Clear);
    }
    if CHECKOUT_PHRASES.contains(&phrase.as_str()) {
        return Some(CartCommand::Checkout);
    }
    let (first, rest) = (words.first()?.as_str(), &tokens[1..]);
    if BROWSE_WORDS.contains(&first) {
        return match rest.len() {
            0 => Some(CartCommand::Browse { category: None }),
            n if n <= MAX_CATEGORY_WORDS => Some(CartCommand::Browse { category: Some(rest.join(" ")) }),
            _ => None,
        };
    }
    if ADD_WORDS.contains(&first) {
        return item_and_quantity(rest).map(|(sku, quantity)| CartCommand::Add { sku, quantity });
    }
    if REMOVE_WORDS.contains(&first) {
        return match rest {
            [sku] => sku_token(sku).map(|sku| CartCommand::Remove { sku }),
            _ => None,
        };
    }
    if SET_WORDS.contains(&first) {
        return match rest {
            [sku, q] | [q, sku] if sku_token(sku).is_some() && number(q).is_some() => {
                let quantity = number(q).filter(|&q| q <= MAX_TYPED_QUANTITY)?;
                Some(CartCommand::SetQuantity { sku: sku.to_string(), quantity })
            }
            _ => None,
        };
    }
    // "TS-M entfernen" (German word order).
    if let [sku, verb] = tokens.as_slice() {
        if REMOVE_WORDS.contains(&flows::normalize(verb).as_str()) {
            return sku_token(sku).map(|sku| CartCommand::Remove { sku });
        }
    }
    // Without a verb only the explicit multiplier forms: "2x TS-M", "TS-M x2", "2 x TS-M".
    match tokens.as_slice() {
        [_, _] | [_, _, _] if has_multiplier(&tokens) => {
            item_and_quantity(&tokens).map(|(sku, quantity)| CartCommand::Add { sku, quantity })
        }
        _ => None,
    }
}

fn has_multiplier(tokens: &[&str]) -> bool {
    tokens.iter().any(|t| multiplier(t).is_some() || is_times(t))
}

fn is_times(t: &str) -> bool {
    matches!(t, "x" | "X" | "×")
}

/// `2x`, `x2`, `2×`, `×2`.
fn multiplier(t: &str) -> Option<u32> {
    let strip = |s: &str| s.strip_suffix(['x', 'X', '×']).or_else(|| s.strip_prefix(['x', 'X', '×'])).map(String::from);
    strip(t).and_then(|n| number(&n))
}

fn number(t: &str) -> Option<u32> {
    if t.is_empty() || t.len() > 6 || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}

fn sku_token(t: &str) -> Option<String> {
    let lower = t.to_lowercase();
    (Sku::parse(t).is_ok() && !NOT_SKUS.contains(&lower.as_str())).then(|| t.to_string())
}

/// `SKU`, `SKU 2`, `2 SKU`, `SKU x2`, `2x SKU`, `SKU x 2`, `2 x SKU`; the quantity 1..=999.
fn item_and_quantity(tokens: &[&str]) -> Option<(String, u32)> {
    let pair = |sku: &str, q: Option<u32>| Some((sku_token(sku)?, q?));
    let (sku, q) = match tokens {
        [sku] => (sku_token(sku)?, 1),
        [a, times, b] if is_times(times) => pair(a, number(b)).or_else(|| pair(b, number(a)))?,
        [a, b] => {
            pair(a, number(b).or_else(|| multiplier(b))).or_else(|| pair(b, number(a).or_else(|| multiplier(a))))?
        }
        _ => return None,
    };
    (1..=MAX_TYPED_QUANTITY).contains(&q).then_some((sku, q))
}

/// Button and list-row ids: `cart:add:<SKU>`, `cart:remove:<SKU>`, `cart:show`, `cart:clear`,
/// `cart:checkout`, `cart:browse`, `cart:browse:<category>`.
pub fn parse_payload(payload: &str) -> Option<CartCommand> {
    let rest = payload.trim().strip_prefix("cart:")?;
    let (verb, arg) = match rest.split_once(':') {
        Some((v, a)) => (v, Some(a)),
        None => (rest, None),
    };
    let sku = |a: Option<&str>| a.filter(|a| Sku::parse(*a).is_ok()).map(str::to_string);
    match (verb, arg) {
        ("add", a) => sku(a).map(|sku| CartCommand::Add { sku, quantity: 1 }),
        ("remove", a) => sku(a).map(|sku| CartCommand::Remove { sku }),
        ("show", None) => Some(CartCommand::Show),
        ("clear", None) => Some(CartCommand::Clear),
        ("checkout", None) => Some(CartCommand::Checkout),
        ("browse", None) => Some(CartCommand::Browse { category: None }),
        ("browse", Some(c)) if !c.trim().is_empty() => Some(CartCommand::Browse { category: Some(c.trim().into()) }),
        _ => None,
    }
}

// ---- decisions ----

#[derive(Debug, Clone, PartialEq)]
pub struct CartDecision {
    pub cart: Cart,
    /// Whether `cart` differs from the one passed in (the adapter stores it only then).
    pub changed: bool,
    pub reply: CartReply,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitKind {
    /// `max` is the quantity per line.
    Quantity,
    /// `max` is the number of lines.
    Lines,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CartReply {
    /// `line` is the whole line after the add (its total quantity).
    Added {
        line: CartLine,
    },
    Removed {
        sku: Sku,
        title: String,
    },
    Updated,
    Shown,
    Cleared,
    Empty,
    UnknownSku {
        sku: String,
    },
    SoldOut {
        title: String,
    },
    LimitReached {
        kind: LimitKind,
        max: u32,
    },
    NotInCart {
        sku: String,
    },
    /// `dropped`: titles of lines removed because the item is gone or sold out.
    Checkout {
        url: String,
        price_changes: Vec<(String, Money, Money)>,
        dropped: Vec<String>,
    },
    /// Checkout found nothing left to sell; the cart is now empty.
    Unavailable {
        dropped: Vec<String>,
    },
    /// Available catalog items (the category's, if one was asked for), in catalog order.
    Browse {
        items: Vec<CatalogItem>,
    },
    /// A catalog order replaced the lines; `skipped`: unknown SKUs and sold-out titles;
    /// `limited`: a quantity or the number of lines was cut to the limits.
    OrderImported {
        skipped: Vec<String>,
        limited: bool,
    },
    AlreadyConverted,
}

/// Where checkout links point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WooLinkStyle {
    /// `/checkout-link/?products=…` (WooCommerce 9.x shareable checkout links).
    #[default]
    WholeCart,
    /// `/?add-to-cart=ID&quantity=N` for older shops: carries only the FIRST line.
    SingleProduct,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutConfig {
    pub platform: Platform,
    /// `https://parley-demo.myshopify.com` or the WooCommerce store URL (a trailing `/` is fine).
    pub shop_url: String,
    pub woo_style: WooLinkStyle,
    /// Shopify `discount`, WooCommerce `coupon` (not supported by the single-product style).
    pub discount: Option<String>,
}

/// Applies one command. Read-only on a converted cart: Show and Browse still answer, every
/// other command (Add and catalog orders too) gets `AlreadyConverted` with the cart unchanged;
/// the adapter then opens a NEW cart (fresh id) and applies the command to it, so a converted
/// cart's lines and attribution are never touched.
pub fn apply(
    cart: &Cart,
    cmd: &CartCommand,
    catalog: &[CatalogItem],
    limits: &CartLimits,
    checkout: &CheckoutConfig,
    now: i64,
) -> CartDecision {
    let same = |reply| CartDecision { cart: cart.clone(), changed: false, reply };
    let show = || same(if cart.is_empty() { CartReply::Empty } else { CartReply::Shown });
    if cart.status == CartStatus::Converted && !matches!(cmd, CartCommand::Show | CartCommand::Browse { .. }) {
        return same(CartReply::AlreadyConverted);
    }
    let changed = |mut next: Cart, reply| {
        touch(&mut next, now);
        CartDecision { cart: next, changed: true, reply }
    };
    let max_qty = limits.max_quantity_per_line;
    match cmd {
        CartCommand::Show => show(),
        CartCommand::Browse { category } => {
            let wanted = category.as_deref().map(flows::normalize);
            let items = catalog
                .iter()
                .filter(|i| i.available)
                .filter(|i| match &wanted {
                    None => true,
                    Some(w) => i.category.as_deref().is_some_and(|c| flows::normalize(c) == *w),
                })
                .cloned()
                .collect();
            same(CartReply::Browse { items })
        }
        // Nothing to add; a hand-built zero must not create an empty line.
        CartCommand::Add { quantity: 0, .. } => show(),
        CartCommand::Add { sku, quantity } => {
            let Some(item) = find_item(catalog, sku) else {
                return same(CartReply::UnknownSku { sku: sku.clone() });
            };
            if !item.available {
                return same(CartReply::SoldOut { title: item.title.clone() });
            }
            let mut next = cart.clone();
            let line = match cart.line_index(sku) {
                Some(i) => {
                    let total = next.lines[i].quantity.saturating_add(*quantity);
                    if total > max_qty {
                        return same(CartReply::LimitReached { kind: LimitKind::Quantity, max: max_qty });
                    }
                    // The catalog is fresher than the line: take its title and price.
                    next.lines[i] = CartLine::from_item(item, total);
                    next.lines[i].clone()
                }
                None => {
                    if *quantity > max_qty {
                        return same(CartReply::LimitReached { kind: LimitKind::Quantity, max: max_qty });
                    }
                    if next.lines.len() >= limits.max_lines {
                        return same(CartReply::LimitReached { kind: LimitKind::Lines, max: lines_max(limits) });
                    }
                    next.lines.push(CartLine::from_item(item, *quantity));
                    next.lines[next.lines.len() - 1].clone()
                }
            };
            changed(next, CartReply::Added { line })
        }
        CartCommand::Remove { sku } | CartCommand::SetQuantity { sku, quantity: 0 } => match cart.line_index(sku) {
            None => same(CartReply::NotInCart { sku: sku.clone() }),
            Some(i) => {
                let mut next = cart.clone();
                let line = next.lines.remove(i);
                changed(next, CartReply::Removed { sku: line.sku, title: line.title })
            }
        },
        CartCommand::SetQuantity { sku, quantity } => match cart.line_index(sku) {
            None => same(CartReply::NotInCart { sku: sku.clone() }),
            Some(_) if *quantity > max_qty => same(CartReply::LimitReached { kind: LimitKind::Quantity, max: max_qty }),
            Some(i) if cart.lines[i].quantity == *quantity => same(CartReply::Updated),
            Some(i) => {
                let mut next = cart.clone();
                next.lines[i].quantity = *quantity;
                changed(next, CartReply::Updated)
            }
        },
        CartCommand::Clear if cart.is_empty() => same(CartReply::Cleared),
        CartCommand::Clear => changed(Cart { lines: vec![], ..cart.clone() }, CartReply::Cleared),
        CartCommand::FromCatalogOrder { items } => {
            let (lines, skipped, limited) = import_order(items, catalog, limits);
            if lines == cart.lines {
                return same(CartReply::OrderImported { skipped, limited });
            }
            changed(Cart { lines, ..cart.clone() }, CartReply::OrderImported { skipped, limited })
        }
        CartCommand::Checkout if cart.is_empty() => same(CartReply::Empty),
        CartCommand::Checkout => {
            let mut next = cart.clone();
            let mut price_changes = Vec::new();
            let mut dropped = Vec::new();
            next.lines.clear();
            for line in &cart.lines {
                match find_item(catalog, line.sku.as_str()) {
                    Some(item) if item.available => {
                        if item.price != line.unit_price {
                            price_changes.push((item.title.clone(), line.unit_price, item.price));
                        }
                        next.lines.push(CartLine::from_item(item, line.quantity));
                    }
                    Some(item) => dropped.push(item.title.clone()),
                    None => dropped.push(line.title.clone()),
                }
            }
            if next.is_empty() {
                return changed(next, CartReply::Unavailable { dropped });
            }
            next.status = CartStatus::CheckoutSent;
            next.checkout_sent_at = Some(now);
            next.updated_at = now;
            let url = checkout_link(&next, checkout);
            CartDecision { cart: next, changed: true, reply: CartReply::Checkout { url, price_changes, dropped } }
        }
    }
}

fn lines_max(limits: &CartLimits) -> u32 {
    u32::try_from(limits.max_lines).unwrap_or(u32::MAX)
}

/// An edit: the cart is open again (a new checkout link is needed) and idle from now.
fn touch(cart: &mut Cart, now: i64) {
    cart.updated_at = now;
    if cart.status == CartStatus::CheckoutSent {
        cart.status = CartStatus::Open;
    }
}

/// The lines of a catalog order: duplicates merged, unknown and sold-out items skipped, cut to
/// the limits (a catalog order is the customer's whole choice, so it is kept as far as it fits).
fn import_order(
    items: &[(String, u32)],
    catalog: &[CatalogItem],
    limits: &CartLimits,
) -> (Vec<CartLine>, Vec<String>, bool) {
    let mut lines: Vec<CartLine> = Vec::new();
    let mut skipped = Vec::new();
    let mut limited = false;
    for (sku, quantity) in items {
        if *quantity == 0 {
            continue;
        }
        let item = match find_item(catalog, sku) {
            Some(item) if item.available => item,
            Some(item) => {
                skipped.push(item.title.clone());
                continue;
            }
            None => {
                skipped.push(sku.chars().take(MAX_SKU_LEN).collect());
                continue;
            }
        };
        let wanted = match lines.iter().position(|l| l.sku == item.sku) {
            Some(i) => lines[i].quantity.saturating_add(*quantity),
            None if lines.len() >= limits.max_lines => {
                limited = true;
                continue;
            }
            None => *quantity,
        };
        let quantity = wanted.min(limits.max_quantity_per_line);
        limited |= quantity < wanted;
        if quantity == 0 {
            continue;
        }
        match lines.iter().position(|l| l.sku == item.sku) {
            Some(i) => lines[i].quantity = quantity,
            None => lines.push(CartLine::from_item(item, quantity)),
        }
    }
    (lines, skipped, limited)
}

// ---- checkout links ----

/// The shop link that opens checkout with the cart's lines, tagged with the cart id so the
/// order webhook is attributed back to this cart (Shopify: cart attribute `parley_cart`, which
/// comes back as `note_attributes`; WooCommerce: the `parley_cart` query parameter, which the
/// Parley shop plugin stores on the order).
pub fn checkout_link(cart: &Cart, cfg: &CheckoutConfig) -> String {
    let base = cfg.shop_url.trim().trim_end_matches('/');
    let cart_id = encode(&cart.id);
    let discount = cfg.discount.as_deref().map(str::trim).filter(|d| !d.is_empty());
    match cfg.platform {
        Platform::Shopify => {
            let items: Vec<String> = cart.lines.iter().map(|l| format!("{}:{}", l.variant_id, l.quantity)).collect();
            let mut url = format!("{base}/cart/{}?attributes%5Bparley_cart%5D={cart_id}&ref=parley", items.join(","));
            if let Some(d) = discount {
                url.push_str(&format!("&discount={}", encode(d)));
            }
            url
        }
        Platform::WooCommerce => {
            let woo_id = |l: &CartLine| if l.variant_id != 0 { l.variant_id } else { l.product_id };
            match cfg.woo_style {
                WooLinkStyle::WholeCart => {
                    let items: Vec<String> =
                        cart.lines.iter().map(|l| format!("{}:{}", woo_id(l), l.quantity)).collect();
                    let mut url = format!("{base}/checkout-link/?products={}&parley_cart={cart_id}", items.join(","));
                    if let Some(d) = discount {
                        url.push_str(&format!("&coupon={}", encode(d)));
                    }
                    url
                }
                // Older shops only take one product per link: the first line; the customer adds
                // the rest in the shop. A coupon cannot be passed this way.
                WooLinkStyle::SingleProduct => {
                    let (id, qty) = cart.lines.first().map(|l| (woo_id(l), l.quantity)).unwrap_or((0, 0));
                    format!("{base}/?add-to-cart={id}&quantity={qty}&parley_cart={cart_id}")
                }
            }
        }
    }
}

/// RFC 3986 percent-encoding of a query value: everything but the unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ---- reminders ----

/// One reminder per cart: open or checkout-sent, with lines, idle for longer than
/// `delay_secs` (strictly), never reminded, not converted.
pub fn reminder_due(cart: &Cart, now: i64, delay_secs: i64) -> bool {
    matches!(cart.status, CartStatus::Open | CartStatus::CheckoutSent)
        && !cart.is_empty()
        && cart.reminded_at.is_none()
        && cart.converted.is_none()
        && now.saturating_sub(cart.updated_at) > delay_secs
}

// ---- texts ----

/// Used for a locale without texts.
pub const DEFAULT_LOCALE: &str = "de";
/// Cart lines shown under a reply; the rest is one `more` line (interactive bodies are short).
pub const MAX_VIEW_LINES: usize = 10;
const MAX_LINE_TITLE: usize = 60;

pub(crate) const EMBEDDED: &[(&str, &str, &str)] = &[
    ("config/cart.de.toml", "de", include_str!("../../../config/cart.de.toml")),
    ("config/cart.en.toml", "en", include_str!("../../../config/cart.en.toml")),
];

/// The brand-editable cart texts, one file per locale, validated at load.
#[derive(Debug, Clone)]
pub struct CartTexts {
    // Never empty.
    locales: Vec<LocaleTexts>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct LocaleTexts {
    #[serde(skip)]
    locale: String,
    line: String,
    total: String,
    more: String,
    buttons: RawButtons,
    replies: RawReplies,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawButtons {
    checkout: String,
    browse: String,
    clear: String,
    list: String,
    section: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReplies {
    added: String,
    removed: String,
    updated: String,
    shown: String,
    cleared: String,
    empty: String,
    unknown_sku: String,
    sold_out: String,
    limit_quantity: String,
    limit_lines: String,
    not_in_cart: String,
    checkout: String,
    price_changed: String,
    dropped: String,
    unavailable: String,
    browse: String,
    browse_empty: String,
    already_converted: String,
    order_imported: String,
    skipped: String,
    limited: String,
    reminder: String,
}

impl CartTexts {
    /// The files shipped in `config/`, compiled into the binary.
    pub fn embedded() -> Result<Self, ConfigError> {
        Self::from_sources(EMBEDDED)
    }

    /// `(file name for errors, locale, TOML)` per locale.
    pub fn from_sources(sources: &[(&'static str, &str, &str)]) -> Result<Self, ConfigError> {
        let mut locales: Vec<LocaleTexts> = Vec::with_capacity(sources.len());
        for (file, locale, src) in sources {
            let texts = LocaleTexts::parse(file, locale, src)?;
            if locales.iter().any(|l| l.locale == texts.locale) {
                return Err(ConfigError::Invalid { name: file, reason: format!("locale '{locale}' is loaded twice") });
            }
            locales.push(texts);
        }
        if locales.is_empty() {
            return Err(ConfigError::Invalid { name: "config/cart.<locale>.toml", reason: "no cart texts".into() });
        }
        Ok(Self { locales })
    }

    /// `de_DE` finds `de`; a locale without texts gets [`DEFAULT_LOCALE`], else any.
    fn for_locale(&self, locale: &str) -> &LocaleTexts {
        let wanted = locale.trim().split(['_', '-']).next().unwrap_or_default().to_ascii_lowercase();
        let find = |l: &str| self.locales.iter().find(|t| t.locale == l);
        find(&wanted).or_else(|| find(DEFAULT_LOCALE)).unwrap_or(&self.locales[0])
    }

    /// The answer to a command: the reply text, the cart under it with checkout, browse and
    /// clear buttons, the product list for Browse, the link for Checkout.
    pub fn render(&self, locale: &str, cart: &Cart, reply: &CartReply) -> OutboundBody {
        let t = self.for_locale(locale);
        let r = &t.replies;
        let money = |m: Money| format_money(m, &t.locale);
        match reply {
            CartReply::Added { line } => t.with_cart(
                fill(
                    &r.added,
                    &[
                        ("quantity", line.quantity.to_string()),
                        ("title", clean(&line.title, MAX_LINE_TITLE)),
                        ("sku", line.sku.to_string()),
                    ],
                ),
                cart,
            ),
            CartReply::Removed { sku, title } => t.with_cart(
                fill(&r.removed, &[("title", clean(title, MAX_LINE_TITLE)), ("sku", sku.to_string())]),
                cart,
            ),
            CartReply::Updated => t.with_cart(r.updated.clone(), cart),
            CartReply::Shown => t.with_cart(r.shown.clone(), cart),
            CartReply::Cleared => t.with_cart(r.cleared.clone(), cart),
            CartReply::Empty => t.with_cart(r.empty.clone(), cart),
            CartReply::UnknownSku { sku } => {
                t.with_cart(fill(&r.unknown_sku, &[("sku", clean(sku, MAX_SKU_LEN))]), cart)
            }
            CartReply::SoldOut { title } => {
                t.with_cart(fill(&r.sold_out, &[("title", clean(title, MAX_LINE_TITLE))]), cart)
            }
            CartReply::LimitReached { kind, max } => {
                let text = match kind {
                    LimitKind::Quantity => &r.limit_quantity,
                    LimitKind::Lines => &r.limit_lines,
                };
                t.with_cart(fill(text, &[("max", max.to_string())]), cart)
            }
            CartReply::NotInCart { sku } => {
                t.with_cart(fill(&r.not_in_cart, &[("sku", clean(sku, MAX_SKU_LEN))]), cart)
            }
            CartReply::Checkout { url, price_changes, dropped } => {
                let mut parts: Vec<String> = price_changes
                    .iter()
                    .map(|(title, old, new)| {
                        fill(
                            &r.price_changed,
                            &[("title", clean(title, MAX_LINE_TITLE)), ("old", money(*old)), ("new", money(*new))],
                        )
                    })
                    .collect();
                parts.extend(dropped.iter().map(|d| t.dropped(d)));
                // The link goes last but is never cut: trim the notes instead.
                let link = fill(&r.checkout, &[("url", url.clone())]);
                let room = MAX_TEXT.saturating_sub(link.chars().count() + 2);
                let notes = truncate(&parts.join("\n"), room);
                OutboundBody::text(if notes.is_empty() { link } else { format!("{notes}\n\n{link}") })
            }
            CartReply::Unavailable { dropped } => {
                let mut parts = vec![r.unavailable.clone()];
                parts.extend(dropped.iter().map(|d| t.dropped(d)));
                t.with_cart(parts.join("\n"), cart)
            }
            CartReply::Browse { items } if items.is_empty() => t.with_cart(r.browse_empty.clone(), cart),
            CartReply::Browse { items } => {
                let rows = items
                    .iter()
                    .take(flows::MAX_LIST_ROWS)
                    .map(|i| ListRow {
                        id: format!("cart:add:{}", i.sku),
                        title: clean(&i.title, MAX_ROW_TITLE),
                        description: Some(truncate(&money(i.price), MAX_ROW_DESCRIPTION)),
                    })
                    .collect();
                OutboundBody::List {
                    text: truncate(&r.browse, MAX_INTERACTIVE_TEXT),
                    button: t.buttons.list.clone(),
                    sections: vec![ListSection { title: t.buttons.section.clone(), rows }],
                }
            }
            CartReply::OrderImported { skipped, limited } => {
                let mut parts = vec![r.order_imported.clone()];
                if !skipped.is_empty() {
                    let items: Vec<String> = skipped.iter().map(|s| clean(s, MAX_LINE_TITLE)).collect();
                    parts.push(fill(&r.skipped, &[("items", items.join(", "))]));
                }
                if *limited {
                    parts.push(r.limited.clone());
                }
                t.with_cart(parts.join("\n"), cart)
            }
            CartReply::AlreadyConverted => OutboundBody::text(truncate(&r.already_converted, MAX_TEXT)),
        }
    }

    /// The abandoned-cart reminder (free text; outside the 24-hour window the sender uses the
    /// approved template instead).
    pub fn reminder(&self, locale: &str, cart: &Cart, link: &str) -> String {
        let t = self.for_locale(locale);
        let text = fill(
            &t.replies.reminder,
            &[
                ("items", t.view_lines(cart).join("\n")),
                ("total", t.total_lines(cart).join("\n")),
                ("link", link.to_string()),
            ],
        );
        truncate(&text, MAX_TEXT)
    }
}

impl LocaleTexts {
    fn parse(file: &'static str, locale: &str, src: &str) -> Result<Self, ConfigError> {
        let err = |reason: String| ConfigError::Invalid { name: file, reason };
        if !(locale.len() == 2 && locale.bytes().all(|b| b.is_ascii_lowercase())) {
            return Err(err(format!("locale '{locale}' must be a two-letter language code like 'de'")));
        }
        let mut t: LocaleTexts = toml::from_str(src).map_err(|e| err(e.to_string().trim_end().to_string()))?;
        t.locale = locale.to_string();
        let mut errors = Vec::new();
        let r = &t.replies;
        let checks: &[(&str, &str, &[&str], &[&str])] = &[
            ("line", &t.line, &["quantity", "title", "amount"], &["title"]),
            ("total", &t.total, &["total"], &["total"]),
            ("more", &t.more, &["count"], &["count"]),
            ("replies.added", &r.added, &["quantity", "title", "sku"], &[]),
            ("replies.removed", &r.removed, &["title", "sku"], &[]),
            ("replies.updated", &r.updated, &[], &[]),
            ("replies.shown", &r.shown, &[], &[]),
            ("replies.cleared", &r.cleared, &[], &[]),
            ("replies.empty", &r.empty, &[], &[]),
            ("replies.unknown_sku", &r.unknown_sku, &["sku"], &["sku"]),
            ("replies.sold_out", &r.sold_out, &["title"], &["title"]),
            ("replies.limit_quantity", &r.limit_quantity, &["max"], &["max"]),
            ("replies.limit_lines", &r.limit_lines, &["max"], &["max"]),
            ("replies.not_in_cart", &r.not_in_cart, &["sku"], &["sku"]),
            ("replies.checkout", &r.checkout, &["url"], &["url"]),
            ("replies.price_changed", &r.price_changed, &["title", "old", "new"], &["title"]),
            ("replies.dropped", &r.dropped, &["title"], &["title"]),
            ("replies.unavailable", &r.unavailable, &[], &[]),
            ("replies.browse", &r.browse, &[], &[]),
            ("replies.browse_empty", &r.browse_empty, &[], &[]),
            ("replies.already_converted", &r.already_converted, &[], &[]),
            ("replies.order_imported", &r.order_imported, &[], &[]),
            ("replies.skipped", &r.skipped, &["items"], &["items"]),
            ("replies.limited", &r.limited, &[], &[]),
            ("replies.reminder", &r.reminder, &["items", "total", "link"], &["link"]),
        ];
        for (name, text, allowed, required) in checks {
            check_text(name, text, allowed, required, &mut errors);
        }
        let b = &t.buttons;
        let labels: &[(&str, &str, usize)] = &[
            ("buttons.checkout", &b.checkout, MAX_BUTTON_TITLE),
            ("buttons.browse", &b.browse, MAX_BUTTON_TITLE),
            ("buttons.clear", &b.clear, MAX_BUTTON_TITLE),
            ("buttons.list", &b.list, MAX_LIST_BUTTON),
            ("buttons.section", &b.section, MAX_SECTION_TITLE),
        ];
        for (name, label, max) in labels {
            let n = label.trim().chars().count();
            if n == 0 || n > *max {
                errors.push(format!("{name} must be 1 to {max} characters, it has {n}"));
            }
        }
        if errors.is_empty() {
            Ok(t)
        } else {
            Err(err(errors.join("; ")))
        }
    }

    fn dropped(&self, title: &str) -> String {
        fill(&self.replies.dropped, &[("title", clean(title, MAX_LINE_TITLE))])
    }

    fn view_lines(&self, cart: &Cart) -> Vec<String> {
        let mut out: Vec<String> = cart
            .lines
            .iter()
            .take(MAX_VIEW_LINES)
            .map(|l| {
                fill(
                    &self.line,
                    &[
                        ("quantity", l.quantity.to_string()),
                        ("title", clean(&l.title, MAX_LINE_TITLE)),
                        ("amount", format_money(l.amount(), &self.locale)),
                    ],
                )
            })
            .collect();
        if cart.lines.len() > MAX_VIEW_LINES {
            out.push(fill(&self.more, &[("count", (cart.lines.len() - MAX_VIEW_LINES).to_string())]));
        }
        out
    }

    fn total_lines(&self, cart: &Cart) -> Vec<String> {
        cart.totals().into_iter().map(|m| fill(&self.total, &[("total", format_money(m, &self.locale))])).collect()
    }

    /// `intro`, then the cart and its three buttons; an empty cart gets only the browse button.
    fn with_cart(&self, intro: String, cart: &Cart) -> OutboundBody {
        let browse = Button { id: "cart:browse".into(), title: self.buttons.browse.clone() };
        if cart.is_empty() {
            return OutboundBody::Buttons { text: truncate(&intro, MAX_INTERACTIVE_TEXT), buttons: vec![browse] };
        }
        let view = [self.view_lines(cart), self.total_lines(cart)].concat().join("\n");
        OutboundBody::Buttons {
            text: truncate(&format!("{intro}\n\n{view}"), MAX_INTERACTIVE_TEXT),
            buttons: vec![
                Button { id: "cart:checkout".into(), title: self.buttons.checkout.clone() },
                browse,
                Button { id: "cart:clear".into(), title: self.buttons.clear.clone() },
            ],
        }
    }
}

fn check_text(name: &str, text: &str, allowed: &[&str], required: &[&str], errors: &mut Vec<String>) {
    if text.trim().is_empty() {
        errors.push(format!("{name} is empty"));
        return;
    }
    if text.chars().count() > MAX_INTERACTIVE_TEXT / 2 {
        errors.push(format!("{name} is longer than {} characters", MAX_INTERACTIVE_TEXT / 2));
    }
    let used = placeholders(text);
    for p in &used {
        if !allowed.contains(p) {
            let list = if allowed.is_empty() { "none".to_string() } else { allowed.join(", ") };
            errors.push(format!("{name}: unknown placeholder {{{p}}} (allowed: {list})"));
        }
    }
    for p in required {
        if !used.contains(p) {
            errors.push(format!("{name} must contain {{{p}}}"));
        }
    }
}

/// One pass, so values containing braces stay as they are.
fn fill(template: &str, values: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some((before, name, after)) = next_placeholder(rest) {
        out.push_str(before);
        match values.iter().find(|(n, _)| *n == name) {
            Some((_, v)) => out.push_str(v),
            None => {
                out.push('{');
                out.push_str(name);
                out.push('}');
            }
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Shop text on one line, cut to `max` characters.
fn clean(s: &str, max: usize) -> String {
    truncate(&s.split_whitespace().collect::<Vec<_>>().join(" "), max)
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
    t.push('…');
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn eur(minor: i64) -> Money {
        Money::new(minor, Currency::parse("EUR").unwrap())
    }

    fn item(sku: &str, title: &str, variant: u64, price: i64, available: bool) -> CatalogItem {
        CatalogItem {
            sku: Sku::parse(sku).unwrap(),
            title: title.into(),
            platform: Platform::Shopify,
            shop: "parley-demo.myshopify.com".into(),
            product_id: 1000 + variant,
            variant_id: variant,
            price: eur(price),
            available,
            category: Some("Shirts".into()),
            updated_at: 0,
        }
    }

    fn catalog() -> Vec<CatalogItem> {
        vec![
            item("TS-M", "T-Shirt M", 11, 1990, true),
            item("TS-L", "T-Shirt L", 12, 1990, true),
            item("MUG", "Becher", 13, 1200, true),
            item("CAP", "Kappe", 14, 1500, false),
        ]
    }

    fn shopify() -> CheckoutConfig {
        CheckoutConfig {
            platform: Platform::Shopify,
            shop_url: "https://parley-demo.myshopify.com".into(),
            woo_style: WooLinkStyle::WholeCart,
            discount: None,
        }
    }

    fn run(cart: &Cart, cmd: CartCommand) -> CartDecision {
        apply(cart, &cmd, &catalog(), &CartLimits::default(), &shopify(), 500)
    }

    fn add(sku: &str, quantity: u32) -> CartCommand {
        CartCommand::Add { sku: sku.into(), quantity }
    }

    fn cart_with(items: &[(&str, u32)]) -> Cart {
        let mut cart = Cart::new("c1".into(), 100);
        for (sku, q) in items {
            cart = run(&cart, add(sku, *q)).cart;
        }
        cart
    }

    #[test]
    fn sku_parses_and_matches_case_insensitively() {
        assert!(Sku::parse("TS-M_01.x").is_ok());
        assert!(Sku::parse("").is_err());
        assert!(Sku::parse("a b").is_err());
        assert!(Sku::parse("a:b").is_err());
        assert!(Sku::parse("x".repeat(65)).is_err());
        assert!(Sku::parse("x".repeat(64)).is_ok());
        assert!(Sku::parse("TS-M").unwrap().matches("ts-m"));
        assert!(!Sku::parse("TS-M").unwrap().matches("ts-l"));
        let json = serde_json::to_string(&Sku::parse("TS-M").unwrap()).unwrap();
        assert_eq!(json, "\"TS-M\"");
        assert!(serde_json::from_str::<Sku>("\"bad sku\"").is_err());
    }

    #[test]
    fn parses_typed_commands() {
        use CartCommand as C;
        let a = |sku: &str, quantity| Some(C::Add { sku: sku.into(), quantity });
        let table: Vec<(&str, Option<CartCommand>)> = vec![
            ("add TS-M 2", a("TS-M", 2)),
            ("Add ts-m", a("ts-m", 1)),
            ("ADD 3 TS-M", a("TS-M", 3)),
            ("add TS-M x2", a("TS-M", 2)),
            ("add TS-M, 2!", a("TS-M", 2)),
            ("2x TS-M", a("TS-M", 2)),
            ("2× TS-M", a("TS-M", 2)),
            ("2 x TS-M", a("TS-M", 2)),
            ("TS-M x2", a("TS-M", 2)),
            ("TS-M x 3", a("TS-M", 3)),
            ("hinzufügen TS-M 2", a("TS-M", 2)),
            ("Hinzufu\u{0308}gen TS-M 2", a("TS-M", 2)),
            ("nimm TS-M", a("TS-M", 1)),
            ("nimm 2 MUG.", a("MUG", 2)),
            ("add TS-M 999", a("TS-M", 999)),
            ("cart", Some(C::Show)),
            ("Warenkorb?", Some(C::Show)),
            ("mein Warenkorb", Some(C::Show)),
            ("remove TS-M", Some(C::Remove { sku: "TS-M".into() })),
            ("entfernen ts-m", Some(C::Remove { sku: "ts-m".into() })),
            ("TS-M entfernen", Some(C::Remove { sku: "TS-M".into() })),
            ("set TS-M 4", Some(C::SetQuantity { sku: "TS-M".into(), quantity: 4 })),
            ("set TS-M 0", Some(C::SetQuantity { sku: "TS-M".into(), quantity: 0 })),
            ("clear", Some(C::Clear)),
            ("Leeren!", Some(C::Clear)),
            ("Warenkorb leeren", Some(C::Clear)),
            ("checkout", Some(C::Checkout)),
            ("Kasse", Some(C::Checkout)),
            ("zur Kasse!", Some(C::Checkout)),
            ("bezahlen", Some(C::Checkout)),
            ("browse", Some(C::Browse { category: None })),
            ("Katalog", Some(C::Browse { category: None })),
            ("sortiment Shirts", Some(C::Browse { category: Some("Shirts".into()) })),
            // Negatives: ordinary sentences and bad quantities.
            ("I want to add a gift note", None),
            ("add a gift note", None),
            ("add a", None),
            ("nimm das", None),
            ("add", None),
            ("add TS-M 0", None),
            ("0x TS-M", None),
            ("add TS-M 1000", None),
            ("add TS-M 99999999999", None),
            ("add TS-M 2 3", None),
            ("add TS#M", None),
            ("remove", None),
            ("remove TS-M please now", None),
            ("please remove the blue shirt", None),
            ("is my cart saved?", None),
            ("what is in the catalog of summer shirts today", None),
            ("TS-M 2", None),
            ("size 42", None),
            ("", None),
            ("   ", None),
            ("set TS-M 1000", None),
        ];
        for (text, want) in table {
            assert_eq!(parse_command(text), want, "{text:?}");
        }
    }

    #[test]
    fn parses_payloads() {
        use CartCommand as C;
        assert_eq!(parse_payload("cart:add:TS-M"), Some(C::Add { sku: "TS-M".into(), quantity: 1 }));
        assert_eq!(parse_payload("cart:remove:TS-M"), Some(C::Remove { sku: "TS-M".into() }));
        assert_eq!(parse_payload("cart:show"), Some(C::Show));
        assert_eq!(parse_payload("cart:clear"), Some(C::Clear));
        assert_eq!(parse_payload("cart:checkout"), Some(C::Checkout));
        assert_eq!(parse_payload("cart:browse"), Some(C::Browse { category: None }));
        assert_eq!(parse_payload("cart:browse:Shirts"), Some(C::Browse { category: Some("Shirts".into()) }));
        for bad in ["cart:add:", "cart:add", "cart:add:a b", "cart:show:x", "cart:browse:", "flow:x", "add:TS-M", ""] {
            assert_eq!(parse_payload(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn add_creates_then_sums_and_takes_catalog_spelling() {
        let cart = Cart::new("c1".into(), 100);
        let d = run(&cart, add("ts-m", 2));
        assert!(d.changed);
        assert_eq!(d.cart.lines.len(), 1);
        assert_eq!(d.cart.lines[0].sku.as_str(), "TS-M");
        assert_eq!(d.cart.lines[0].unit_price, eur(1990));
        assert_eq!(d.cart.updated_at, 500);
        assert_eq!(d.cart.created_at, 100);
        let d2 = run(&d.cart, add("TS-M", 3));
        assert_eq!(d2.cart.lines.len(), 1);
        assert_eq!(d2.cart.lines[0].quantity, 5);
        assert!(matches!(d2.reply, CartReply::Added { ref line } if line.quantity == 5));
        assert_eq!(d2.cart.totals(), vec![eur(9950)]);
    }

    #[test]
    fn add_rejects_unknown_sold_out_and_limits_without_change() {
        let cart = cart_with(&[("TS-M", 9)]);
        let d = run(&cart, add("NOPE", 1));
        assert_eq!(d.reply, CartReply::UnknownSku { sku: "NOPE".into() });
        assert!(!d.changed);
        assert_eq!(d.cart, cart);
        let d = run(&cart, add("cap", 1));
        assert_eq!(d.reply, CartReply::SoldOut { title: "Kappe".into() });
        assert_eq!(d.cart, cart);
        let d = run(&cart, add("TS-M", 2));
        assert_eq!(d.reply, CartReply::LimitReached { kind: LimitKind::Quantity, max: 10 });
        assert_eq!(d.cart, cart);
        let d = run(&cart, add("MUG", 11));
        assert_eq!(d.reply, CartReply::LimitReached { kind: LimitKind::Quantity, max: 10 });
        assert!(run(&cart, add("TS-M", 1)).changed);

        let limits = CartLimits { max_quantity_per_line: 10, max_lines: 2 };
        let two = cart_with(&[("TS-M", 1), ("TS-L", 1)]);
        let d = apply(&two, &add("MUG", 1), &catalog(), &limits, &shopify(), 500);
        assert_eq!(d.reply, CartReply::LimitReached { kind: LimitKind::Lines, max: 2 });
        assert!(!d.changed);
        // An existing line may still grow when the cart is full.
        assert!(apply(&two, &add("ts-l", 1), &catalog(), &limits, &shopify(), 500).changed);
    }

    #[test]
    fn add_prefers_an_available_item_among_duplicates() {
        let mut cat = catalog();
        cat.insert(0, item("MUG", "Alter Becher", 99, 900, false));
        let d = apply(&Cart::new("c".into(), 0), &add("mug", 1), &cat, &CartLimits::default(), &shopify(), 1);
        assert!(matches!(d.reply, CartReply::Added { ref line } if line.variant_id == 13));
    }

    #[test]
    fn remove_and_set_quantity() {
        let cart = cart_with(&[("TS-M", 2), ("MUG", 1)]);
        let d = run(&cart, CartCommand::Remove { sku: "mug".into() });
        assert_eq!(d.reply, CartReply::Removed { sku: Sku::parse("MUG").unwrap(), title: "Becher".into() });
        assert_eq!(d.cart.lines.len(), 1);
        let d = run(&cart, CartCommand::Remove { sku: "TS-L".into() });
        assert_eq!(d.reply, CartReply::NotInCart { sku: "TS-L".into() });
        assert!(!d.changed);
        let d = run(&cart, CartCommand::SetQuantity { sku: "ts-m".into(), quantity: 7 });
        assert_eq!(d.reply, CartReply::Updated);
        assert_eq!(d.cart.lines[0].quantity, 7);
        let d = run(&cart, CartCommand::SetQuantity { sku: "TS-M".into(), quantity: 0 });
        assert!(matches!(d.reply, CartReply::Removed { .. }));
        assert_eq!(d.cart.lines.len(), 1);
        let d = run(&cart, CartCommand::SetQuantity { sku: "TS-M".into(), quantity: 11 });
        assert_eq!(d.reply, CartReply::LimitReached { kind: LimitKind::Quantity, max: 10 });
        assert!(!d.changed);
        let d = run(&cart, CartCommand::SetQuantity { sku: "TS-M".into(), quantity: 2 });
        assert_eq!((d.reply, d.changed), (CartReply::Updated, false));
        let d = run(&cart, CartCommand::SetQuantity { sku: "CAP".into(), quantity: 2 });
        assert_eq!(d.reply, CartReply::NotInCart { sku: "CAP".into() });
    }

    #[test]
    fn show_clear_and_checkout_on_empty() {
        let empty = Cart::new("c1".into(), 100);
        assert_eq!(run(&empty, CartCommand::Show).reply, CartReply::Empty);
        let d = run(&empty, CartCommand::Checkout);
        assert_eq!((d.reply, d.changed), (CartReply::Empty, false));
        let d = run(&empty, CartCommand::Clear);
        assert_eq!((d.reply, d.changed), (CartReply::Cleared, false));
        let cart = cart_with(&[("TS-M", 2)]);
        assert_eq!(run(&cart, CartCommand::Show).reply, CartReply::Shown);
        let d = run(&cart, CartCommand::Clear);
        assert!(d.changed && d.cart.is_empty());
        assert_eq!(d.reply, CartReply::Cleared);
    }

    #[test]
    fn catalog_order_replaces_lines() {
        let cart = cart_with(&[("TS-M", 2), ("MUG", 1)]);
        let items = vec![
            ("TS-L".to_string(), 3),
            ("CAP".to_string(), 1),
            ("GONE".to_string(), 1),
            ("ts-l".to_string(), 1),
            ("MUG".to_string(), 0),
        ];
        let d = run(&cart, CartCommand::FromCatalogOrder { items });
        assert!(d.changed);
        assert_eq!(d.cart.lines.len(), 1);
        assert_eq!((d.cart.lines[0].sku.as_str(), d.cart.lines[0].quantity), ("TS-L", 4));
        assert_eq!(d.reply, CartReply::OrderImported { skipped: vec!["Kappe".into(), "GONE".into()], limited: false });

        let d = run(&cart, CartCommand::FromCatalogOrder { items: vec![("MUG".into(), 25)] });
        assert_eq!(d.cart.lines[0].quantity, 10);
        assert_eq!(d.reply, CartReply::OrderImported { skipped: vec![], limited: true });

        let limits = CartLimits { max_quantity_per_line: 10, max_lines: 1 };
        let order = CartCommand::FromCatalogOrder { items: vec![("MUG".into(), 1), ("TS-M".into(), 1)] };
        let d = apply(&cart, &order, &catalog(), &limits, &shopify(), 500);
        assert_eq!(d.cart.lines.len(), 1);
        assert!(matches!(d.reply, CartReply::OrderImported { limited: true, .. }));
    }

    #[test]
    fn checkout_refreshes_prices_drops_gone_items_and_sends_link() {
        let cart = cart_with(&[("TS-M", 2), ("MUG", 1), ("TS-L", 1)]);
        let mut cat = catalog();
        cat[0].price = eur(2490);
        cat[0].title = "T-Shirt M (Bio)".into();
        cat[2].available = false; // MUG
        cat.remove(1); // TS-L unknown now
        let d = apply(&cart, &CartCommand::Checkout, &cat, &CartLimits::default(), &shopify(), 900);
        assert!(d.changed);
        assert_eq!(d.cart.status, CartStatus::CheckoutSent);
        assert_eq!(d.cart.checkout_sent_at, Some(900));
        assert_eq!(d.cart.lines.len(), 1);
        assert_eq!(d.cart.lines[0].unit_price, eur(2490));
        assert_eq!(d.cart.lines[0].title, "T-Shirt M (Bio)");
        let CartReply::Checkout { url, price_changes, dropped } = d.reply else { panic!("{:?}", d.reply) };
        assert_eq!(url, "https://parley-demo.myshopify.com/cart/11:2?attributes%5Bparley_cart%5D=c1&ref=parley");
        assert_eq!(price_changes, vec![("T-Shirt M (Bio)".to_string(), eur(1990), eur(2490))]);
        assert_eq!(dropped, vec!["Becher".to_string(), "T-Shirt L".to_string()]);

        // Nothing left: the cart empties and stays open.
        let d = apply(&cart, &CartCommand::Checkout, &[], &CartLimits::default(), &shopify(), 900);
        assert!(d.cart.is_empty());
        assert_eq!(d.cart.status, CartStatus::Open);
        assert!(matches!(d.reply, CartReply::Unavailable { ref dropped } if dropped.len() == 3));
    }

    #[test]
    fn editing_after_checkout_reopens_the_cart() {
        let sent = run(&cart_with(&[("TS-M", 1)]), CartCommand::Checkout).cart;
        assert_eq!(sent.status, CartStatus::CheckoutSent);
        let d = apply(&sent, &add("MUG", 1), &catalog(), &CartLimits::default(), &shopify(), 777);
        assert_eq!(d.cart.status, CartStatus::Open);
        assert_eq!(d.cart.updated_at, 777);
        assert_eq!(d.cart.checkout_sent_at, Some(500));
        // A read does not reopen it.
        assert_eq!(run(&sent, CartCommand::Show).cart.status, CartStatus::CheckoutSent);
    }

    #[test]
    fn converted_cart_is_read_only() {
        let cart = cart_with(&[("TS-M", 1)]).converted(42, eur(1990), 600);
        for cmd in [
            add("MUG", 1),
            CartCommand::Remove { sku: "TS-M".into() },
            CartCommand::SetQuantity { sku: "TS-M".into(), quantity: 3 },
            CartCommand::Clear,
            CartCommand::Checkout,
            CartCommand::FromCatalogOrder { items: vec![("MUG".into(), 1)] },
        ] {
            let d = run(&cart, cmd.clone());
            assert_eq!((d.reply, d.changed), (CartReply::AlreadyConverted, false), "{cmd:?}");
            assert_eq!(d.cart, cart);
        }
        assert_eq!(run(&cart, CartCommand::Show).reply, CartReply::Shown);
        assert!(matches!(run(&cart, CartCommand::Browse { category: None }).reply, CartReply::Browse { .. }));
    }

    #[test]
    fn browse_lists_available_items_of_the_category() {
        let mut cat = catalog();
        cat[2].category = Some("Küche".into());
        let d = apply(
            &Cart::new("c".into(), 0),
            &CartCommand::Browse { category: Some("shirts".into()) },
            &cat,
            &CartLimits::default(),
            &shopify(),
            1,
        );
        let CartReply::Browse { items } = d.reply else { panic!() };
        assert_eq!(items.iter().map(|i| i.sku.as_str()).collect::<Vec<_>>(), ["TS-M", "TS-L"]);
        let d = apply(
            &Cart::default(),
            &CartCommand::Browse { category: None },
            &cat,
            &CartLimits::default(),
            &shopify(),
            1,
        );
        assert!(matches!(d.reply, CartReply::Browse { ref items } if items.len() == 3));
        assert!(!d.changed);
    }

    #[test]
    fn apply_is_pure() {
        let cart = cart_with(&[("TS-M", 1)]);
        for cmd in [add("MUG", 2), CartCommand::Checkout, CartCommand::Clear, CartCommand::Show] {
            assert_eq!(run(&cart, cmd.clone()), run(&cart, cmd));
        }
    }

    #[test]
    fn checkout_links() {
        let mut cart = cart_with(&[("TS-M", 2), ("TS-L", 1)]);
        cart.id = "01J/x y".into();
        let mut cfg = shopify();
        cfg.shop_url.push('/');
        assert_eq!(
            checkout_link(&cart, &cfg),
            "https://parley-demo.myshopify.com/cart/11:2,12:1?attributes%5Bparley_cart%5D=01J%2Fx%20y&ref=parley"
        );
        cfg.discount = Some("SOMMER 10%".into());
        assert_eq!(
            checkout_link(&cart, &cfg),
            "https://parley-demo.myshopify.com/cart/11:2,12:1?attributes%5Bparley_cart%5D=01J%2Fx%20y&ref=parley\
             &discount=SOMMER%2010%25"
        );

        cart.id = "c1".into();
        cart.lines[1].variant_id = 0; // a simple Woo product: its product id
        let mut woo = CheckoutConfig {
            platform: Platform::WooCommerce,
            shop_url: "https://shop.example.de".into(),
            woo_style: WooLinkStyle::WholeCart,
            discount: None,
        };
        assert_eq!(
            checkout_link(&cart, &woo),
            "https://shop.example.de/checkout-link/?products=11:2,1012:1&parley_cart=c1"
        );
        woo.discount = Some("WILLKOMMEN&5".into());
        assert_eq!(
            checkout_link(&cart, &woo),
            "https://shop.example.de/checkout-link/?products=11:2,1012:1&parley_cart=c1&coupon=WILLKOMMEN%265"
        );
        woo.woo_style = WooLinkStyle::SingleProduct;
        assert_eq!(checkout_link(&cart, &woo), "https://shop.example.de/?add-to-cart=11&quantity=2&parley_cart=c1");
    }

    #[test]
    fn reminder_due_table() {
        let base = {
            let mut c = cart_with(&[("TS-M", 1)]);
            c.updated_at = 1000;
            c
        };
        let with = |f: fn(&mut Cart)| {
            let mut c = base.clone();
            f(&mut c);
            c
        };
        let cases: Vec<(Cart, i64, bool)> = vec![
            (base.clone(), 1000 + 3600 + 1, true),
            (base.clone(), 1000 + 3600, false),
            (base.clone(), 1000 + 60, false),
            (with(|c| c.status = CartStatus::CheckoutSent), 9999, true),
            (with(|c| c.lines.clear()), 9999, false),
            (with(|c| c.reminded_at = Some(5000)), 9999, false),
            (base.converted(1, eur(1990), 2000), 9999, false),
            (with(|c| c.status = CartStatus::Converted), 9999, false),
        ];
        for (i, (cart, now, want)) in cases.into_iter().enumerate() {
            assert_eq!(reminder_due(&cart, now, 3600), want, "case {i}");
        }
    }

    fn texts() -> CartTexts {
        CartTexts::embedded().expect("embedded cart texts load")
    }

    #[test]
    fn renders_cart_view_with_money_and_buttons() {
        let cart = cart_with(&[("TS-M", 2), ("MUG", 1)]);
        let d = run(&cart, CartCommand::Show);
        let OutboundBody::Buttons { text, buttons } = texts().render("de_DE", &d.cart, &d.reply) else { panic!() };
        assert!(text.starts_with("🛒 Dein Warenkorb:"), "{text}");
        assert!(text.contains("2× T-Shirt M — 39,80 €"), "{text}");
        assert!(text.contains("1× Becher — 12,00 €"), "{text}");
        assert!(text.contains("Summe: 51,80 €"), "{text}");
        let ids: Vec<&str> = buttons.iter().map(|b| b.id.as_str()).collect();
        assert_eq!(ids, ["cart:checkout", "cart:browse", "cart:clear"]);
        assert!(buttons.iter().all(|b| b.title.chars().count() <= MAX_BUTTON_TITLE));

        let OutboundBody::Buttons { text, .. } = texts().render("en", &d.cart, &d.reply) else { panic!() };
        assert!(text.contains("2× T-Shirt M — €39.80") && text.contains("Total: €51.80"), "{text}");

        // Two currencies: two totals.
        let mut mixed = cart.clone();
        mixed.lines[1].unit_price = Money::new(1500, Currency::parse("USD").unwrap());
        assert_eq!(mixed.totals().len(), 2);
        let OutboundBody::Buttons { text, .. } = texts().render("de", &mixed, &CartReply::Shown) else { panic!() };
        assert!(text.contains("Summe: 39,80 €") && text.contains("Summe: 15,00 USD"), "{text}");

        // An empty cart only offers browsing.
        let OutboundBody::Buttons { buttons, .. } = texts().render("de", &Cart::default(), &CartReply::Empty) else {
            panic!()
        };
        assert_eq!(buttons.len(), 1);
        assert_eq!(buttons[0].id, "cart:browse");
    }

    #[test]
    fn renders_long_carts_within_the_interactive_limit() {
        let mut cart = Cart::new("c".into(), 0);
        for i in 0..20u64 {
            let mut l =
                CartLine::from_item(&item(&format!("SKU{i}"), &"Sehr langer Titel ".repeat(8), i, 999, true), 3);
            l.quantity = 10;
            cart.lines.push(l);
        }
        let OutboundBody::Buttons { text, buttons } = texts().render("de", &cart, &CartReply::Shown) else { panic!() };
        assert!(text.chars().count() <= MAX_INTERACTIVE_TEXT);
        assert!(buttons.len() <= 3);
        let view = texts().for_locale("de").view_lines(&cart);
        assert_eq!(view.len(), MAX_VIEW_LINES + 1);
        assert_eq!(view.last().unwrap(), "… und 10 weitere Artikel");
    }

    #[test]
    fn renders_browse_as_a_list_of_at_most_ten() {
        let mut items = Vec::new();
        for i in 0..14u64 {
            items.push(item(&format!("SKU-{i}"), "Ein wirklich sehr langer Produktname", i, 123456, true));
        }
        let body = texts().render("de", &Cart::default(), &CartReply::Browse { items });
        let OutboundBody::List { text, button, sections } = body else { panic!() };
        assert!(!text.is_empty() && button.chars().count() <= MAX_LIST_BUTTON);
        assert_eq!(sections.len(), 1);
        let rows = &sections[0].rows;
        assert_eq!(rows.len(), 10);
        assert_eq!(rows[0].id, "cart:add:SKU-0");
        assert_eq!(parse_payload(&rows[0].id), Some(CartCommand::Add { sku: "SKU-0".into(), quantity: 1 }));
        assert!(rows.iter().all(|r| r.title.chars().count() <= MAX_ROW_TITLE));
        assert_eq!(rows[0].title, "Ein wirklich sehr lange…");
        assert_eq!(rows[0].description.as_deref(), Some("1.234,56 €"));
        // Nothing found: plain answer with the cart buttons.
        let body = texts().render("en", &Cart::default(), &CartReply::Browse { items: vec![] });
        assert!(matches!(body, OutboundBody::Buttons { ref text, .. } if text.contains("couldn't find")));
    }

    #[test]
    fn renders_checkout_with_price_notes_and_other_replies() {
        let reply = CartReply::Checkout {
            url: "https://x.example/cart/1:1".into(),
            price_changes: vec![("T-Shirt M".into(), eur(1990), eur(2490))],
            dropped: vec!["Becher".into()],
        };
        let OutboundBody::Text { text } = texts().render("de", &Cart::default(), &reply) else { panic!() };
        assert!(text.contains("T-Shirt M hat sich geändert: 19,90 € → 24,90 €"), "{text}");
        assert!(text.contains("Becher ist nicht mehr verfügbar"), "{text}");
        assert!(text.contains("https://x.example/cart/1:1"), "{text}");

        let cart = cart_with(&[("TS-M", 1)]);
        let all = [
            CartReply::Added { line: cart.lines[0].clone() },
            CartReply::Removed { sku: Sku::parse("MUG").unwrap(), title: "Becher".into() },
            CartReply::Updated,
            CartReply::Cleared,
            CartReply::UnknownSku { sku: "NOPE".into() },
            CartReply::SoldOut { title: "Kappe".into() },
            CartReply::LimitReached { kind: LimitKind::Quantity, max: 10 },
            CartReply::LimitReached { kind: LimitKind::Lines, max: 20 },
            CartReply::NotInCart { sku: "CAP".into() },
            CartReply::Unavailable { dropped: vec!["Becher".into()] },
            CartReply::OrderImported { skipped: vec!["Kappe".into()], limited: true },
            CartReply::AlreadyConverted,
        ];
        for locale in ["de", "en", "fr"] {
            for reply in &all {
                let body = texts().render(locale, &cart, reply);
                let text = match &body {
                    OutboundBody::Text { text } | OutboundBody::Buttons { text, .. } => text,
                    other => panic!("{other:?}"),
                };
                assert!(!text.is_empty() && !text.contains('{'), "{locale} {reply:?}: {text}");
            }
        }
        let OutboundBody::Buttons { text, .. } =
            texts().render("de", &cart, &CartReply::LimitReached { kind: LimitKind::Quantity, max: 10 })
        else {
            panic!()
        };
        assert!(text.contains("höchstens 10 Stück"), "{text}");
    }

    #[test]
    fn reminder_text() {
        let cart = cart_with(&[("TS-M", 2)]);
        let text = texts().reminder("de", &cart, "https://x.example/cart/11:2");
        assert!(text.contains("2× T-Shirt M — 39,80 €") && text.contains("Summe: 39,80 €"), "{text}");
        assert!(text.ends_with("https://x.example/cart/11:2"), "{text}");
        assert!(texts().reminder("en", &cart, "L").contains("Total: €39.80"));
    }

    #[test]
    fn texts_are_validated_at_load() {
        let de = include_str!("../../../config/cart.de.toml");
        let load = |src: &str| CartTexts::from_sources(&[("config/cart.de.toml", "de", src)]);
        assert!(load(de).is_ok());
        let bad = de.replace("{url}", "{link}");
        let Err(ConfigError::Invalid { name, reason }) = load(&bad) else { panic!() };
        assert_eq!(name, "config/cart.de.toml");
        assert!(reason.contains("replies.checkout") && reason.contains("{url}"), "{reason}");
        let bad = de.replace("checkout = \"Zur Kasse\"", "checkout = \"Jetzt sicher zur Kasse gehen\"");
        assert!(matches!(load(&bad), Err(ConfigError::Invalid { reason, .. }) if reason.contains("buttons.checkout")));
        let bad = format!("{de}\nunknown_key = 1\n");
        assert!(load(&bad).is_err());
        let bad = de.replace("sold_out = ", "# sold_out = ");
        assert!(load(&bad).is_err());
        let twice = CartTexts::from_sources(&[("a.toml", "de", de), ("b.toml", "de", de)]);
        assert!(matches!(twice, Err(ConfigError::Invalid { name: "b.toml", .. })));
        assert!(CartTexts::from_sources(&[]).is_err());
    }

    fn command() -> impl Strategy<Value = CartCommand> {
        let sku = prop::sample::select(vec!["TS-M", "ts-l", "MUG", "CAP", "NOPE", "mug"]).prop_map(String::from);
        prop_oneof![
            (sku.clone(), 0u32..30).prop_map(|(sku, quantity)| CartCommand::Add { sku, quantity }),
            (sku.clone(), any::<u32>()).prop_map(|(sku, quantity)| CartCommand::Add { sku, quantity }),
            sku.clone().prop_map(|sku| CartCommand::Remove { sku }),
            (sku.clone(), 0u32..15).prop_map(|(sku, quantity)| CartCommand::SetQuantity { sku, quantity }),
            Just(CartCommand::Show),
            Just(CartCommand::Clear),
            Just(CartCommand::Checkout),
            Just(CartCommand::Browse { category: None }),
            prop::collection::vec((sku, any::<u32>()), 0..8).prop_map(|items| CartCommand::FromCatalogOrder { items }),
        ]
    }

    proptest! {
        #[test]
        fn apply_never_panics_nor_exceeds_limits(
            cmds in prop::collection::vec(command(), 0..40),
            max_q in 1u32..12,
            max_lines in 1usize..4,
        ) {
            let limits = CartLimits { max_quantity_per_line: max_q, max_lines };
            let mut cart = Cart::new("c".into(), 0);
            for (t, cmd) in cmds.iter().enumerate() {
                let d = apply(&cart, cmd, &catalog(), &limits, &shopify(), t as i64 + 1);
                prop_assert!(d.cart.lines.len() <= max_lines);
                prop_assert!(d.cart.lines.iter().all(|l| (1..=max_q).contains(&l.quantity)));
                prop_assert!(d.changed || d.cart == cart);
                // No duplicate lines for one SKU.
                for (i, l) in d.cart.lines.iter().enumerate() {
                    prop_assert!(d.cart.lines[i + 1..].iter().all(|o| !o.sku.matches(l.sku.as_str())));
                }
                let _ = texts().render("de", &d.cart, &d.reply);
                cart = d.cart;
            }
        }
    }

    #[test]
    fn applied_message_ids_are_remembered_and_bounded() {
        let mut cart = Cart::new("c1".into(), 0);
        assert!(!cart.has_applied("wamid.1"));
        for n in 0..(APPLIED_MEMORY + 5) {
            cart.mark_applied(&format!("wamid.{n}"));
        }
        assert_eq!(cart.applied.len(), APPLIED_MEMORY);
        assert!(!cart.has_applied("wamid.0"), "the oldest are forgotten");
        assert!(cart.has_applied(&format!("wamid.{}", APPLIED_MEMORY + 4)));
        // Stored carts without the field still load.
        let old: Cart = serde_json::from_str(r#"{"id":"c","lines":[],"status":"open","created_at":0,"updated_at":0,"checkout_sent_at":null,"reminded_at":null,"converted":null}"#).unwrap();
        assert!(old.applied.is_empty());
    }
}
