//! Segments: saved filters over the contacts a campaign may reach.
//!
//! Rules, and where [`Segment::check`] enforces them:
//! 1. Confirmed `marketing` consent is always required; it is not a filter and cannot be turned
//!    off ([`Skip::NoConsent`], checked first).
//! 2. Every other filter is optional; an absent filter lets everyone through. Present filters
//!    must all hold (AND); within `tags_any` one tag suffices (OR), within `tags_all` all must be set.
//! 3. `country` is the phone's country (ISO 3166 alpha-2, upper case); a contact without a known
//!    phone country never matches a country filter.
//! 4. Orders: `none` means no order is known, `any` at least one; `last_order_before/after` and
//!    `spent_at_least` (in the shop currency's minor units) look at the shop orders matched to the
//!    contact.
//! 5. Cart state compares the contact's current chat cart (`open`, `checkout_sent`, `converted`);
//!    no cart never matches.
//! 6. `last_inbound_before/after` compare the customer's newest message (unix seconds).
use super::cart::CartStatus;
use super::consent::ConsentState;
use super::Channel;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrdersFilter {
    None,
    Any,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Segment {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<Channel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags_any: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags_all: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orders: Option<OrdersFilter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_order_before: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_order_after: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spent_at_least: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cart: Option<CartStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_inbound_before: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_inbound_after: Option<i64>,
}

/// What is known about one contact when a segment is evaluated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub channel: Option<Channel>,
    pub marketing: ConsentState,
    pub locale: Option<String>,
    pub country: Option<String>,
    pub tags: Vec<String>,
    pub last_inbound_at: Option<i64>,
    /// Orders matched to the contact: (created at, total in minor units).
    pub orders: Vec<(i64, i64)>,
    pub cart: Option<CartStatus>,
}

/// Why a contact is not a recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Skip {
    NoConsent,
    NotInSegment,
    InvalidAddress,
    FrequencyCap,
    /// A template parameter names a field the contact lacks, and has no fallback.
    MissingParameter,
}

impl Skip {
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::NoConsent => "no_consent",
            Skip::NotInSegment => "not_in_segment",
            Skip::InvalidAddress => "invalid_address",
            Skip::FrequencyCap => "frequency_cap",
            Skip::MissingParameter => "missing_parameter",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SegmentError(pub String);

impl Segment {
    /// Normalises and checks the filters once, when the campaign is created.
    pub fn validated(mut self) -> Result<Segment, SegmentError> {
        if let Some(c) = &self.country {
            let c = c.trim().to_ascii_uppercase();
            if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(SegmentError("country must be a two-letter ISO code such as DE".into()));
            }
            self.country = Some(c);
        }
        if let Some(l) = &self.locale {
            let l = l.trim().to_ascii_lowercase();
            if l.len() != 2 || !l.bytes().all(|b| b.is_ascii_lowercase()) {
                return Err(SegmentError("locale must be a two-letter language code such as de".into()));
            }
            self.locale = Some(l);
        }
        for list in [&mut self.tags_any, &mut self.tags_all] {
            for t in list.iter_mut() {
                *t = t.trim().to_lowercase();
                let ok = (1..=40).contains(&t.len())
                    && t.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
                if !ok {
                    return Err(SegmentError("tags are 1 to 40 characters of a-z, 0-9, _ and -".into()));
                }
            }
        }
        if self.spent_at_least.is_some_and(|s| s < 0) {
            return Err(SegmentError("spent_at_least must not be negative".into()));
        }
        Ok(self)
    }

    /// Whether the orders need to be looked up (they cost a query per contact).
    pub fn needs_orders(&self) -> bool {
        self.orders.is_some()
            || self.last_order_before.is_some()
            || self.last_order_after.is_some()
            || self.spent_at_least.is_some()
    }

    pub fn needs_cart(&self) -> bool {
        self.cart.is_some()
    }

    /// Rule 1 first, then rules 2–6.
    pub fn check(&self, f: &Facts) -> Result<(), Skip> {
        if f.marketing != ConsentState::Confirmed {
            return Err(Skip::NoConsent);
        }
        let ok = self.channel.is_none_or(|c| f.channel == Some(c))
            && self.locale.as_ref().is_none_or(|l| f.locale.as_deref().is_some_and(|fl| fl.starts_with(l.as_str())))
            && self.country.as_ref().is_none_or(|c| f.country.as_ref() == Some(c))
            && (self.tags_any.is_empty() || self.tags_any.iter().any(|t| f.tags.contains(t)))
            && self.tags_all.iter().all(|t| f.tags.contains(t))
            && self.orders.is_none_or(|o| match o {
                OrdersFilter::None => f.orders.is_empty(),
                OrdersFilter::Any => !f.orders.is_empty(),
            })
            && self.last_order_before.is_none_or(|b| f.orders.iter().map(|o| o.0).max().is_some_and(|l| l < b))
            && self.last_order_after.is_none_or(|a| f.orders.iter().map(|o| o.0).max().is_some_and(|l| l > a))
            && self.spent_at_least.is_none_or(|s| f.orders.iter().map(|o| o.1).sum::<i64>() >= s)
            && self.cart.is_none_or(|c| f.cart == Some(c))
            && self.last_inbound_before.is_none_or(|b| f.last_inbound_at.is_some_and(|l| l < b))
            && self.last_inbound_after.is_none_or(|a| f.last_inbound_at.is_some_and(|l| l > a));
        if ok {
            Ok(())
        } else {
            Err(Skip::NotInSegment)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn confirmed() -> Facts {
        Facts {
            channel: Some(Channel::WhatsApp),
            marketing: ConsentState::Confirmed,
            locale: Some("de".into()),
            country: Some("DE".into()),
            tags: vec!["vip".into()],
            last_inbound_at: Some(1_000),
            orders: vec![(500, 2_000), (900, 3_000)],
            cart: Some(CartStatus::CheckoutSent),
        }
    }

    #[test]
    fn consent_is_required_and_comes_first() {
        let everyone = Segment::default();
        assert_eq!(everyone.check(&confirmed()), Ok(()));
        for state in [ConsentState::None, ConsentState::Pending, ConsentState::Revoked] {
            let f = Facts { marketing: state, ..confirmed() };
            assert_eq!(everyone.check(&f), Err(Skip::NoConsent));
        }
        let narrow = Segment { country: Some("FR".into()), ..Segment::default() };
        let f = Facts { marketing: ConsentState::Revoked, ..confirmed() };
        assert_eq!(narrow.check(&f), Err(Skip::NoConsent), "consent is reported before the filters");
    }

    #[test]
    fn every_filter_must_hold() {
        let f = confirmed();
        let yes = |s: Segment| assert_eq!(s.check(&f), Ok(()), "{s:?}");
        let no = |s: Segment| assert_eq!(s.check(&f), Err(Skip::NotInSegment), "{s:?}");
        let d = Segment::default;
        yes(Segment { country: Some("DE".into()), locale: Some("de".into()), ..d() });
        no(Segment { country: Some("AT".into()), ..d() });
        yes(Segment { tags_any: vec!["x".into(), "vip".into()], ..d() });
        no(Segment { tags_all: vec!["vip".into(), "x".into()], ..d() });
        yes(Segment { orders: Some(OrdersFilter::Any), spent_at_least: Some(5_000), ..d() });
        no(Segment { orders: Some(OrdersFilter::None), ..d() });
        no(Segment { spent_at_least: Some(5_001), ..d() });
        yes(Segment { last_order_after: Some(800), last_order_before: Some(1_000), ..d() });
        no(Segment { last_order_before: Some(900), ..d() });
        yes(Segment { cart: Some(CartStatus::CheckoutSent), ..d() });
        no(Segment { cart: Some(CartStatus::Open), ..d() });
        yes(Segment { last_inbound_after: Some(999), ..d() });
        no(Segment { last_inbound_before: Some(1_000), ..d() });
        no(Segment { channel: Some(Channel::Messenger), ..d() });
        let unknown_country = Facts { country: None, ..confirmed() };
        assert_eq!(Segment { country: Some("DE".into()), ..d() }.check(&unknown_country), Err(Skip::NotInSegment));
    }

    #[test]
    fn filters_are_normalised_and_checked_once() {
        let s = Segment {
            country: Some(" de".into()),
            locale: Some("DE".into()),
            tags_any: vec!["VIP".into()],
            ..Segment::default()
        };
        let s = s.validated().unwrap();
        assert_eq!(
            (s.country.as_deref(), s.locale.as_deref(), s.tags_any[0].as_str()),
            (Some("DE"), Some("de"), "vip")
        );
        assert!(Segment { country: Some("Germany".into()), ..Segment::default() }.validated().is_err());
        assert!(Segment { tags_all: vec!["no spaces".into()], ..Segment::default() }.validated().is_err());
    }
}
