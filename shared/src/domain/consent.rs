//! Consent per contact and purpose: `none → pending → confirmed → revoked`.
//!
//! Pure: the current consent and one event in, the new consent, what changed and what to tell
//! the customer out. The adapters persist the result, write the audit events (who, when, which
//! channel, which words, which source) and send the replies. Consent is answered before the
//! conversation engine (`conversation::decide`), so STOP is honoured before anything else.
//!
//! Rules (each is enforced in [`apply`] and covered by the tests below):
//! - A purpose is confirmed only through a double opt-in: a [`ConsentEvent::RequestOptIn`] makes
//!   it pending, and a [`ConsentEvent::Confirm`] confirms it only when its timestamp is at or
//!   after the request's and at most [`ConsentPolicy::confirm_validity_secs`] later. A YES
//!   written before the request (a late or re-delivered message) cannot be an answer to it.
//!   A shop's own double opt-in ([`ConsentEvent::ShopConfirmed`]) is the only other way in, and
//!   it never overrides `revoked`.
//! - STOP revokes every purpose at once and is acknowledged once.
//! - A revoked contact comes back only through a fresh request and confirmation.
use super::flows::normalize;
use serde::{Deserialize, Serialize};

/// What a contact agrees to receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum ConsentPurpose {
    /// Business-initiated service messages: order confirmation, shipping, delivery.
    OrderUpdates,
    /// Reminders and campaigns.
    Marketing,
}

impl ConsentPurpose {
    pub const ALL: [ConsentPurpose; 2] = [ConsentPurpose::OrderUpdates, ConsentPurpose::Marketing];

    pub fn as_str(self) -> &'static str {
        match self {
            ConsentPurpose::OrderUpdates => "order_updates",
            ConsentPurpose::Marketing => "marketing",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum ConsentState {
    #[default]
    None,
    /// Asked, waiting for the customer's YES.
    Pending,
    Confirmed,
    /// Said STOP (or stopped marketing in the app); never messaged again until a fresh opt-in.
    Revoked,
}

impl ConsentState {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentState::None => "none",
            ConsentState::Pending => "pending",
            ConsentState::Confirmed => "confirmed",
            ConsentState::Revoked => "revoked",
        }
    }
}

/// One purpose's state. Invariant kept by [`apply`]: `requested_at` is set exactly while pending.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PurposeConsent {
    pub state: ConsentState,
    /// Unix seconds of the last state change.
    pub changed_at: Option<i64>,
    /// Start of the current pending request; the confirmation validity counts from here.
    pub requested_at: Option<i64>,
    /// When the last confirmation question went out for this purpose (rate limit).
    pub request_sent_at: Option<i64>,
}

/// A contact's consent. Which purposes the open request asked for is exactly the set of
/// pending purposes: only [`ConsentEvent::RequestOptIn`] makes a purpose pending.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Consent {
    pub order_updates: PurposeConsent,
    pub marketing: PurposeConsent,
    /// [`ConsentPolicy::policy_version`] in force when the customer last confirmed in the chat.
    pub policy_version: Option<String>,
}

impl Consent {
    pub fn get(&self, p: ConsentPurpose) -> &PurposeConsent {
        match p {
            ConsentPurpose::OrderUpdates => &self.order_updates,
            ConsentPurpose::Marketing => &self.marketing,
        }
    }

    fn get_mut(&mut self, p: ConsentPurpose) -> &mut PurposeConsent {
        match p {
            ConsentPurpose::OrderUpdates => &mut self.order_updates,
            ConsentPurpose::Marketing => &mut self.marketing,
        }
    }

    /// The most advanced state over all purposes: confirmed if any is confirmed, else pending,
    /// else revoked, else none.
    pub fn overall(&self) -> ConsentState {
        let states = ConsentPurpose::ALL.map(|p| self.get(p).state);
        [ConsentState::Confirmed, ConsentState::Pending, ConsentState::Revoked]
            .into_iter()
            .find(|s| states.contains(s))
            .unwrap_or(ConsentState::None)
    }

    /// Business-initiated messages for this purpose may go out.
    pub fn allows(&self, p: ConsentPurpose) -> bool {
        self.get(p).state == ConsentState::Confirmed
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentPolicy {
    /// How long a YES counts after the request (default 48 h).
    pub confirm_validity_secs: i64,
    /// Minimum gap between two confirmation messages from non-chat requests (default 24 h).
    pub resend_after_secs: i64,
    /// Version of the consent wording, recorded with each chat confirmation.
    pub policy_version: String,
}

impl Default for ConsentPolicy {
    fn default() -> Self {
        Self { confirm_validity_secs: 48 * 3600, resend_after_secs: 24 * 3600, policy_version: "1".to_string() }
    }
}

/// Where an opt-in request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// START/ANMELDEN, a configured keyword or a button in the chat.
    Chat,
    /// POST /consent/optin from the brand's website.
    Web,
    /// The shop (checkout checkbox and the like).
    Shop,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Chat => "chat",
            Via::Web => "web",
            Via::Shop => "shop",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ConsentEvent {
    /// START/ANMELDEN/a button (chat) or POST /consent/optin (web).
    RequestOptIn { purposes: Vec<ConsentPurpose>, via: Via },
    /// YES/JA.
    Confirm,
    /// NO/NEIN.
    Decline,
    /// STOP/STOPP/ABMELDEN/UNSUBSCRIBE/ABBESTELLEN.
    Stop,
    /// WhatsApp `user_preferences`: the user stopped marketing messages in the app.
    MarketingStoppedInApp,
    /// WhatsApp `user_preferences`: resumed. Not consent, so it changes nothing (but is audited).
    MarketingResumedInApp,
    /// A marketing send failed with 131050 (the user stopped marketing messages).
    MarketingSendRejected,
    /// A shop recorded a confirmed (double) opt-in.
    ShopConfirmed { purposes: Vec<ConsentPurpose> },
}

/// What to tell the customer, if anything (the flows file holds the words).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentReply {
    /// The YES/NO question. From the chat it is the interactive message; for web and shop
    /// requests the window is closed, so the adapter sends the confirmation template instead.
    Question,
    Welcome,
    Declined,
    StopAck,
    AlreadyConfirmed,
    /// The YES came after the request had expired; the customer has to start again.
    Expired,
}

impl ConsentReply {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentReply::Question => "question",
            ConsentReply::Welcome => "welcome",
            ConsentReply::Declined => "declined",
            ConsentReply::StopAck => "stop_ack",
            ConsentReply::AlreadyConfirmed => "already_confirmed",
            ConsentReply::Expired => "expired",
        }
    }
}

/// A real state change of one purpose (`from != to`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub purpose: ConsentPurpose,
    pub from: ConsentState,
    pub to: ConsentState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentDecision {
    pub consent: Consent,
    /// In [`ConsentPurpose::ALL`] order; empty when no state changed.
    pub transitions: Vec<Transition>,
    pub reply: Option<ConsentReply>,
    /// A confirmation question must go out (already rate-limited; `request_sent_at` is set).
    pub send_request: bool,
}

/// Applies one event at `now` (unix seconds).
///
/// - `RequestOptIn`: each requested purpose that is none, revoked or pending-but-expired becomes
///   pending from `now`; a valid pending or a confirmed purpose stays as it is. If a requested
///   purpose is pending afterwards, the question is sent (`send_request`, reply `Question`)
///   when the request came from the chat (the customer asked, so they get an answer), or when
///   the contact's last question went out more than `resend_after_secs` ago or never (web and
///   shop requests must not turn into repeated messages). Every requested purpose already
///   confirmed → `AlreadyConfirmed`. An empty list changes nothing.
/// - `Confirm` at `now`: every pending purpose with `requested_at <= now <= requested_at +
///   confirm_validity_secs` is confirmed (`Welcome`). Expired pending purposes fall back to none;
///   if nothing was confirmed that answers `Expired`. A purpose requested after `now` stays
///   pending, untouched. Nothing confirmable → no change beyond expiry and no reply, so the
///   conversation can answer the word.
/// - `Decline`: pending → none (`Declined`); otherwise no change and no reply.
/// - `Stop`: every purpose → revoked, also from none. `StopAck` only if something changed,
///   so a second STOP is not answered again.
/// - `MarketingStoppedInApp`, `MarketingSendRejected`: marketing → revoked, silently.
/// - `MarketingResumedInApp`: nothing (resuming in the app is not consent to us).
/// - `ShopConfirmed`: the purposes → confirmed, the shop's double opt-in being the proof; but
///   a revoked purpose stays revoked (after STOP only a fresh double opt-in in the chat counts).
pub fn apply(current: &Consent, event: &ConsentEvent, now: i64, policy: &ConsentPolicy) -> ConsentDecision {
    let mut step = Step { consent: current.clone(), transitions: Vec::new(), now, policy };
    let (reply, send_request) = match event {
        ConsentEvent::RequestOptIn { purposes, via } => step.request(purposes, *via),
        ConsentEvent::Confirm => (step.confirm(), false),
        ConsentEvent::Decline => (step.decline(), false),
        ConsentEvent::Stop => (step.stop(), false),
        ConsentEvent::MarketingStoppedInApp | ConsentEvent::MarketingSendRejected => {
            step.set(ConsentPurpose::Marketing, ConsentState::Revoked);
            (None, false)
        }
        ConsentEvent::MarketingResumedInApp => (None, false),
        ConsentEvent::ShopConfirmed { purposes } => {
            for p in dedup(purposes) {
                if !matches!(step.state(p), ConsentState::Revoked | ConsentState::Confirmed) {
                    step.set(p, ConsentState::Confirmed);
                }
            }
            (None, false)
        }
    };
    ConsentDecision { consent: step.consent, transitions: step.transitions, reply, send_request }
}

struct Step<'a> {
    consent: Consent,
    transitions: Vec<Transition>,
    now: i64,
    policy: &'a ConsentPolicy,
}

impl Step<'_> {
    fn state(&self, p: ConsentPurpose) -> ConsentState {
        self.consent.get(p).state
    }

    /// Moves a purpose to `to`, recording a transition only for a real change.
    fn set(&mut self, p: ConsentPurpose, to: ConsentState) {
        let now = self.now;
        let slot = self.consent.get_mut(p);
        if slot.state == to {
            return;
        }
        self.transitions.push(Transition { purpose: p, from: slot.state, to });
        slot.state = to;
        slot.changed_at = Some(now);
        slot.requested_at = (to == ConsentState::Pending).then_some(now);
    }

    /// Pending, but the YES would come too late. A pending without a start (a damaged record)
    /// counts as expired, so it can never be confirmed.
    fn expired(&self, p: ConsentPurpose) -> bool {
        let slot = self.consent.get(p);
        slot.state == ConsentState::Pending
            && slot.requested_at.is_none_or(|t| self.now.saturating_sub(t) > self.policy.confirm_validity_secs)
    }

    fn request(&mut self, purposes: &[ConsentPurpose], via: Via) -> (Option<ConsentReply>, bool) {
        let wanted = dedup(purposes);
        if wanted.is_empty() {
            return (None, false);
        }
        for &p in &wanted {
            match self.state(p) {
                ConsentState::Confirmed => {}
                ConsentState::Pending if !self.expired(p) => {}
                // An expired pending starts over: same state, new start.
                ConsentState::Pending => self.consent.get_mut(p).requested_at = Some(self.now),
                ConsentState::None | ConsentState::Revoked => self.set(p, ConsentState::Pending),
            }
        }
        let pending: Vec<_> = wanted.into_iter().filter(|&p| self.state(p) == ConsentState::Pending).collect();
        if pending.is_empty() {
            return (Some(ConsentReply::AlreadyConfirmed), false);
        }
        // Per contact, not per purpose: one question covers every pending purpose, and a
        // web form submitted again and again must not become a stream of messages.
        let last_sent = ConsentPurpose::ALL.iter().filter_map(|&p| self.consent.get(p).request_sent_at).max();
        let due =
            via == Via::Chat || last_sent.is_none_or(|t| self.now.saturating_sub(t) > self.policy.resend_after_secs);
        if !due {
            return (None, false);
        }
        for p in pending {
            self.consent.get_mut(p).request_sent_at = Some(self.now);
        }
        (Some(ConsentReply::Question), true)
    }

    fn confirm(&mut self) -> Option<ConsentReply> {
        let (mut confirmed, mut expired) = (false, false);
        for p in ConsentPurpose::ALL {
            if self.state(p) != ConsentState::Pending {
                continue;
            }
            if self.expired(p) {
                self.set(p, ConsentState::None);
                expired = true;
            } else if self.consent.get(p).requested_at.is_some_and(|t| self.now < t) {
                // Written before the question went out: not an answer to it.
            } else {
                self.set(p, ConsentState::Confirmed);
                confirmed = true;
            }
        }
        if confirmed {
            self.consent.policy_version = Some(self.policy.policy_version.clone());
            Some(ConsentReply::Welcome)
        } else {
            expired.then_some(ConsentReply::Expired)
        }
    }

    fn decline(&mut self) -> Option<ConsentReply> {
        let mut declined = false;
        for p in ConsentPurpose::ALL {
            if self.state(p) == ConsentState::Pending {
                self.set(p, ConsentState::None);
                declined = true;
            }
        }
        declined.then_some(ConsentReply::Declined)
    }

    fn stop(&mut self) -> Option<ConsentReply> {
        let before = self.transitions.len();
        for p in ConsentPurpose::ALL {
            self.set(p, ConsentState::Revoked);
        }
        (self.transitions.len() > before).then_some(ConsentReply::StopAck)
    }
}

/// Sorted, without duplicates.
fn dedup(purposes: &[ConsentPurpose]) -> Vec<ConsentPurpose> {
    let mut v = purposes.to_vec();
    v.sort();
    v.dedup();
    v
}

/// A consent word typed by the customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConsentCommand {
    Start,
    Yes,
    No,
    Stop,
}

/// German and English, in every locale: people answer in either language.
pub const START_WORDS: &[&str] = &["start", "anmelden"];
pub const YES_WORDS: &[&str] = &["yes", "ja"];
pub const NO_WORDS: &[&str] = &["no", "nein"];
pub const STOP_WORDS: &[&str] = &["stop", "stopp", "abmelden", "unsubscribe", "abbestellen"];

/// Button payloads of the consent messages (and of templates that carry consent buttons).
pub const PAYLOAD_START: &str = "consent:start";
pub const PAYLOAD_YES: &str = "consent:yes";
pub const PAYLOAD_NO: &str = "consent:no";
pub const PAYLOAD_STOP: &str = "consent:stop";

/// The consent command a text is, if any. The whole message must be the word (case,
/// punctuation, whitespace and emoji do not matter): "Stop 🛑" stops, "stop sending me stuff"
/// does not, since a word inside a sentence is too weak a signal to revoke or grant consent.
/// `extra_start_keywords` are the flows file's `consent.start_keywords`.
pub fn classify(text: &str, extra_start_keywords: &[String]) -> Option<ConsentCommand> {
    let t = normalize(text);
    if t.is_empty() {
        return None;
    }
    let is = |words: &[&str]| words.contains(&t.as_str());
    if is(STOP_WORDS) {
        Some(ConsentCommand::Stop)
    } else if is(YES_WORDS) {
        Some(ConsentCommand::Yes)
    } else if is(NO_WORDS) {
        Some(ConsentCommand::No)
    } else if is(START_WORDS) || extra_start_keywords.iter().any(|k| normalize(k) == t) {
        Some(ConsentCommand::Start)
    } else {
        None
    }
}

/// The consent command a button payload is, if any (exact: payloads are ids, not words).
pub fn classify_payload(payload: &str) -> Option<ConsentCommand> {
    match payload {
        PAYLOAD_START => Some(ConsentCommand::Start),
        PAYLOAD_YES => Some(ConsentCommand::Yes),
        PAYLOAD_NO => Some(ConsentCommand::No),
        PAYLOAD_STOP => Some(ConsentCommand::Stop),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use ConsentPurpose::{Marketing, OrderUpdates};
    use ConsentState as S;

    const H: i64 = 3600;
    const T0: i64 = 1_700_000_000;

    fn policy() -> ConsentPolicy {
        ConsentPolicy::default()
    }

    fn run(c: &Consent, e: ConsentEvent, now: i64) -> ConsentDecision {
        apply(c, &e, now, &policy())
    }

    fn request(purposes: &[ConsentPurpose], via: Via) -> ConsentEvent {
        ConsentEvent::RequestOptIn { purposes: purposes.to_vec(), via }
    }

    fn states(c: &Consent) -> (ConsentState, ConsentState) {
        (c.order_updates.state, c.marketing.state)
    }

    /// Both purposes requested from the chat at T0.
    fn pending_both() -> Consent {
        run(&Consent::default(), request(&ConsentPurpose::ALL, Via::Chat), T0).consent
    }

    fn confirmed_both() -> Consent {
        run(&pending_both(), ConsentEvent::Confirm, T0 + H).consent
    }

    #[test]
    fn chat_double_opt_in_asks_then_confirms_with_welcome() {
        let d = run(&Consent::default(), request(&ConsentPurpose::ALL, Via::Chat), T0);
        assert_eq!(states(&d.consent), (S::Pending, S::Pending));
        assert_eq!((d.reply, d.send_request), (Some(ConsentReply::Question), true));
        assert_eq!(
            d.transitions,
            vec![
                Transition { purpose: OrderUpdates, from: S::None, to: S::Pending },
                Transition { purpose: Marketing, from: S::None, to: S::Pending },
            ]
        );
        let m = &d.consent.marketing;
        assert_eq!((m.changed_at, m.requested_at, m.request_sent_at), (Some(T0), Some(T0), Some(T0)));

        let d = run(&d.consent, ConsentEvent::Confirm, T0 + 47 * H);
        assert_eq!(states(&d.consent), (S::Confirmed, S::Confirmed));
        assert_eq!(d.reply, Some(ConsentReply::Welcome));
        assert!(!d.send_request);
        assert_eq!(d.transitions.len(), 2);
        assert!(d.consent.allows(Marketing) && d.consent.allows(OrderUpdates));
        assert_eq!(d.consent.marketing.changed_at, Some(T0 + 47 * H));
        assert_eq!(d.consent.marketing.requested_at, None);
        assert_eq!(d.consent.policy_version.as_deref(), Some("1"));
    }

    #[test]
    fn confirm_covers_exactly_the_requested_purposes() {
        let d = run(&Consent::default(), request(&[Marketing], Via::Web), T0);
        let d = run(&d.consent, ConsentEvent::Confirm, T0 + H);
        assert_eq!(states(&d.consent), (S::None, S::Confirmed));
        assert_eq!(d.transitions, vec![Transition { purpose: Marketing, from: S::Pending, to: S::Confirmed }]);
    }

    #[test]
    fn confirmation_within_validity_only() {
        // Exactly at the limit still counts.
        let d = run(&pending_both(), ConsentEvent::Confirm, T0 + 48 * H);
        assert_eq!(d.reply, Some(ConsentReply::Welcome));

        let d = run(&pending_both(), ConsentEvent::Confirm, T0 + 48 * H + 1);
        assert_eq!(states(&d.consent), (S::None, S::None));
        assert_eq!(d.reply, Some(ConsentReply::Expired));
        assert!(d.transitions.iter().all(|t| t.from == S::Pending && t.to == S::None));
        // The customer starts again and then it works.
        let d = run(&d.consent, request(&ConsentPurpose::ALL, Via::Chat), T0 + 49 * H);
        assert_eq!(d.reply, Some(ConsentReply::Question));
        let d = run(&d.consent, ConsentEvent::Confirm, T0 + 50 * H);
        assert_eq!(states(&d.consent), (S::Confirmed, S::Confirmed));
    }

    #[test]
    fn a_yes_written_before_the_request_does_not_confirm_it() {
        // One second before the request: nothing changes, nothing is said.
        let c = pending_both();
        let d = run(&c, ConsentEvent::Confirm, T0 - 1);
        assert_eq!((&d.consent, &d.transitions, d.reply), (&c, &vec![], None));
        // Long before (a re-delivered old message): the same.
        let d = run(&c, ConsentEvent::Confirm, T0 - 30 * 24 * H);
        assert_eq!((&d.consent, d.reply), (&c, None));
        // Exactly at the request's second it counts (chat START and JA in the same second).
        let d = run(&c, ConsentEvent::Confirm, T0);
        assert_eq!((states(&d.consent), d.reply), ((S::Confirmed, S::Confirmed), Some(ConsentReply::Welcome)));
        // A purpose asked for after the YES stays pending while the earlier one is confirmed.
        let c = run(&Consent::default(), request(&[OrderUpdates], Via::Web), T0).consent;
        let c = run(&c, request(&[Marketing], Via::Web), T0 + 2 * H).consent;
        let d = run(&c, ConsentEvent::Confirm, T0 + H);
        assert_eq!(states(&d.consent), (S::Confirmed, S::Pending));
        assert_eq!(d.consent.marketing.requested_at, Some(T0 + 2 * H));
        assert_eq!(d.transitions, vec![Transition { purpose: OrderUpdates, from: S::Pending, to: S::Confirmed }]);
    }

    #[test]
    fn confirm_with_one_valid_and_one_expired_purpose_welcomes_the_valid_one() {
        let c = run(&Consent::default(), request(&[OrderUpdates], Via::Web), T0).consent;
        let c = run(&c, request(&[Marketing], Via::Web), T0 + 40 * H).consent;
        let d = run(&c, ConsentEvent::Confirm, T0 + 50 * H);
        assert_eq!(states(&d.consent), (S::None, S::Confirmed));
        assert_eq!(d.reply, Some(ConsentReply::Welcome));
    }

    #[test]
    fn yes_without_a_request_changes_nothing_and_says_nothing() {
        for c in [Consent::default(), confirmed_both(), run(&confirmed_both(), ConsentEvent::Stop, T0).consent] {
            let d = run(&c, ConsentEvent::Confirm, T0 + 2 * H);
            assert_eq!((d.consent, d.transitions, d.reply), (c, vec![], None));
        }
    }

    #[test]
    fn decline_leaves_it_at_none() {
        let d = run(&pending_both(), ConsentEvent::Decline, T0 + H);
        assert_eq!(states(&d.consent), (S::None, S::None));
        assert_eq!(d.reply, Some(ConsentReply::Declined));
        assert_eq!(d.consent.order_updates.requested_at, None);
        let again = run(&d.consent, ConsentEvent::Decline, T0 + 2 * H);
        assert_eq!((again.reply, again.transitions.len()), (None, 0));
        // NO to nothing pending keeps a confirmation.
        let d = run(&confirmed_both(), ConsentEvent::Decline, T0 + 2 * H);
        assert_eq!((states(&d.consent), d.reply), ((S::Confirmed, S::Confirmed), None));
    }

    #[test]
    fn stop_revokes_everything_and_is_acknowledged_once() {
        for c in [Consent::default(), pending_both(), confirmed_both()] {
            let d = run(&c, ConsentEvent::Stop, T0 + 3 * H);
            assert_eq!(states(&d.consent), (S::Revoked, S::Revoked));
            assert_eq!(d.reply, Some(ConsentReply::StopAck));
            assert_eq!(d.consent.marketing.changed_at, Some(T0 + 3 * H));
            assert_eq!(d.consent.marketing.requested_at, None);
            let d = run(&d.consent, ConsentEvent::Stop, T0 + 4 * H);
            assert_eq!((d.reply, d.transitions.len()), (None, 0));
        }
        // Marketing already revoked in the app: STOP still revokes order updates and is answered.
        let c = run(&confirmed_both(), ConsentEvent::MarketingStoppedInApp, T0 + 2 * H).consent;
        let d = run(&c, ConsentEvent::Stop, T0 + 3 * H);
        assert_eq!(d.reply, Some(ConsentReply::StopAck));
        assert_eq!(d.transitions, vec![Transition { purpose: OrderUpdates, from: S::Confirmed, to: S::Revoked }]);
    }

    #[test]
    fn revoked_comes_back_only_through_a_fresh_double_opt_in() {
        let revoked = run(&confirmed_both(), ConsentEvent::Stop, T0 + 2 * H).consent;
        let d = run(&revoked, ConsentEvent::Confirm, T0 + 3 * H);
        assert_eq!(states(&d.consent), (S::Revoked, S::Revoked));
        let d = run(&revoked, ConsentEvent::ShopConfirmed { purposes: ConsentPurpose::ALL.to_vec() }, T0 + 3 * H);
        assert_eq!((states(&d.consent), d.transitions.len()), ((S::Revoked, S::Revoked), 0));

        let d = run(&revoked, request(&ConsentPurpose::ALL, Via::Chat), T0 + 30 * H);
        assert_eq!(states(&d.consent), (S::Pending, S::Pending));
        assert!(d.transitions.iter().all(|t| t.from == S::Revoked && t.to == S::Pending));
        let d = run(&d.consent, ConsentEvent::Confirm, T0 + 31 * H);
        assert_eq!(states(&d.consent), (S::Confirmed, S::Confirmed));
    }

    #[test]
    fn in_app_stop_and_131050_revoke_marketing_only_and_silently() {
        for e in [ConsentEvent::MarketingStoppedInApp, ConsentEvent::MarketingSendRejected] {
            let d = run(&confirmed_both(), e.clone(), T0 + 5 * H);
            assert_eq!(states(&d.consent), (S::Confirmed, S::Revoked));
            assert_eq!(d.transitions, vec![Transition { purpose: Marketing, from: S::Confirmed, to: S::Revoked }]);
            assert_eq!((d.reply, d.send_request), (None, false));
            let again = run(&d.consent, e.clone(), T0 + 6 * H);
            assert!(again.transitions.is_empty());
            let d = run(&Consent::default(), e, T0);
            assert_eq!(states(&d.consent), (S::None, S::Revoked));
        }
    }

    #[test]
    fn in_app_resume_is_not_consent() {
        for c in [Consent::default(), run(&confirmed_both(), ConsentEvent::MarketingStoppedInApp, T0).consent] {
            let d = run(&c, ConsentEvent::MarketingResumedInApp, T0 + H);
            assert_eq!((&d.consent, d.transitions.len(), d.reply, d.send_request), (&c, 0, None, false));
        }
    }

    #[test]
    fn shop_confirmation_confirms_directly_but_never_overrides_revoked() {
        let shop = |p: &[ConsentPurpose]| ConsentEvent::ShopConfirmed { purposes: p.to_vec() };
        let d = run(&Consent::default(), shop(&[OrderUpdates, OrderUpdates]), T0);
        assert_eq!(states(&d.consent), (S::Confirmed, S::None));
        assert_eq!(d.transitions, vec![Transition { purpose: OrderUpdates, from: S::None, to: S::Confirmed }]);
        assert_eq!(d.reply, None);
        let d = run(&pending_both(), shop(&[Marketing]), T0 + H);
        assert_eq!(states(&d.consent), (S::Pending, S::Confirmed));
        assert_eq!(d.consent.marketing.requested_at, None);
        let c = run(&Consent::default(), ConsentEvent::MarketingSendRejected, T0).consent;
        let d = run(&c, shop(&ConsentPurpose::ALL), T0 + H);
        assert_eq!(states(&d.consent), (S::Confirmed, S::Revoked));
    }

    #[test]
    fn request_for_confirmed_purposes_says_already_confirmed() {
        let d = run(&confirmed_both(), request(&[Marketing], Via::Chat), T0 + 2 * H);
        assert_eq!((d.reply, d.send_request, d.transitions.len()), (Some(ConsentReply::AlreadyConfirmed), false, 0));
        // One confirmed, one new: ask for the new one only.
        let c = run(&Consent::default(), ConsentEvent::ShopConfirmed { purposes: vec![OrderUpdates] }, T0).consent;
        let d = run(&c, request(&ConsentPurpose::ALL, Via::Chat), T0 + H);
        assert_eq!(states(&d.consent), (S::Confirmed, S::Pending));
        assert_eq!(d.reply, Some(ConsentReply::Question));
    }

    #[test]
    fn empty_request_changes_nothing() {
        let d = run(&Consent::default(), request(&[], Via::Web), T0);
        assert_eq!((d.consent, d.transitions, d.reply, d.send_request), (Consent::default(), vec![], None, false));
    }

    #[test]
    fn web_requests_send_at_most_one_question_per_resend_period() {
        let d = run(&Consent::default(), request(&ConsentPurpose::ALL, Via::Web), T0);
        assert_eq!((d.reply, d.send_request), (Some(ConsentReply::Question), true));
        // Submitted again within 24 h: still pending from T0, no message.
        let d2 = run(&d.consent, request(&ConsentPurpose::ALL, Via::Web), T0 + 23 * H);
        assert_eq!((d2.reply, d2.send_request, d2.transitions.len()), (None, false, 0));
        assert_eq!(d2.consent.marketing.requested_at, Some(T0));
        // Another purpose does not slip past the limit either: one question covers both.
        let c = run(&Consent::default(), request(&[Marketing], Via::Web), T0).consent;
        let d3 = run(&c, request(&[OrderUpdates], Via::Shop), T0 + H);
        assert_eq!((states(&d3.consent), d3.send_request), ((S::Pending, S::Pending), false));
        // After 24 h the question may go out again; the pending keeps its start.
        let d4 = run(&d2.consent, request(&ConsentPurpose::ALL, Via::Web), T0 + 24 * H + 1);
        assert_eq!((d4.reply, d4.send_request), (Some(ConsentReply::Question), true));
        assert_eq!(d4.consent.marketing.request_sent_at, Some(T0 + 24 * H + 1));
        assert_eq!(d4.consent.marketing.requested_at, Some(T0));
    }

    #[test]
    fn chat_requests_are_always_answered() {
        let c = run(&Consent::default(), request(&ConsentPurpose::ALL, Via::Web), T0).consent;
        let d = run(&c, request(&ConsentPurpose::ALL, Via::Chat), T0 + H);
        assert_eq!((d.reply, d.send_request), (Some(ConsentReply::Question), true));
        assert_eq!(d.consent.marketing.request_sent_at, Some(T0 + H));
    }

    #[test]
    fn expired_pending_restarts_on_a_new_request() {
        let d = run(&pending_both(), request(&ConsentPurpose::ALL, Via::Web), T0 + 49 * H);
        assert_eq!(states(&d.consent), (S::Pending, S::Pending));
        assert!(d.transitions.is_empty(), "pending → pending is no transition");
        assert_eq!(d.consent.marketing.requested_at, Some(T0 + 49 * H));
        assert_eq!(d.consent.marketing.changed_at, Some(T0));
        assert!(d.send_request);
        let d = run(&d.consent, ConsentEvent::Confirm, T0 + 90 * H);
        assert_eq!(d.reply, Some(ConsentReply::Welcome));
    }

    #[test]
    fn damaged_pending_without_start_is_never_confirmed() {
        let mut c = Consent::default();
        c.marketing.state = S::Pending;
        let d = run(&c, ConsentEvent::Confirm, T0);
        assert_eq!((d.consent.marketing.state, d.reply), (S::None, Some(ConsentReply::Expired)));
    }

    #[test]
    fn overall_is_the_most_advanced_state() {
        let mk = |o, m| Consent {
            order_updates: PurposeConsent { state: o, ..Default::default() },
            marketing: PurposeConsent { state: m, ..Default::default() },
            policy_version: None,
        };
        assert_eq!(mk(S::None, S::None).overall(), S::None);
        assert_eq!(mk(S::Revoked, S::None).overall(), S::Revoked);
        assert_eq!(mk(S::Revoked, S::Pending).overall(), S::Pending);
        assert_eq!(mk(S::Confirmed, S::Revoked).overall(), S::Confirmed);
        assert_eq!(mk(S::Pending, S::Confirmed).overall(), S::Confirmed);
    }

    #[test]
    fn serde_names_and_old_records() {
        assert_eq!(serde_json::to_string(&ConsentPurpose::ALL).unwrap(), r#"["order_updates","marketing"]"#);
        assert_eq!(serde_json::to_string(&S::Revoked).unwrap(), r#""revoked""#);
        for p in ConsentPurpose::ALL {
            assert_eq!(serde_json::to_value(p).unwrap(), p.as_str());
        }
        let c: Consent = serde_json::from_str(r#"{"marketing":{"state":"confirmed"}}"#).unwrap();
        assert_eq!(states(&c), (S::None, S::Confirmed));
        let c = confirmed_both();
        assert_eq!(serde_json::from_str::<Consent>(&serde_json::to_string(&c).unwrap()).unwrap(), c);
        let e = request(&[Marketing], Via::Web);
        assert_eq!(
            serde_json::to_value(&e).unwrap(),
            serde_json::json!({"kind": "request_opt_in", "purposes": ["marketing"], "via": "web"})
        );
    }

    #[test]
    fn classify_words() {
        let none: &[String] = &[];
        let cases: &[(&str, Option<ConsentCommand>)] = &[
            ("STOP", Some(ConsentCommand::Stop)),
            (" stopp ", Some(ConsentCommand::Stop)),
            ("Stop 🛑", Some(ConsentCommand::Stop)),
            ("ABBESTELLEN!", Some(ConsentCommand::Stop)),
            ("abmelden", Some(ConsentCommand::Stop)),
            ("Unsubscribe.", Some(ConsentCommand::Stop)),
            ("ja", Some(ConsentCommand::Yes)),
            ("JA 👍", Some(ConsentCommand::Yes)),
            ("Yes!", Some(ConsentCommand::Yes)),
            ("nein", Some(ConsentCommand::No)),
            ("No.", Some(ConsentCommand::No)),
            ("start", Some(ConsentCommand::Start)),
            ("Anmelden", Some(ConsentCommand::Start)),
            ("stop sending me stuff", None),
            ("ja aber", None),
            ("startseite", None),
            ("", None),
            ("🛑", None),
        ];
        for (text, want) in cases {
            assert_eq!(classify(text, none), *want, "{text:?}");
        }
        let extra = vec!["Newsletter".to_string(), "Angebote abonnieren!".to_string()];
        assert_eq!(classify("newsletter 📬", &extra), Some(ConsentCommand::Start));
        assert_eq!(classify("ANGEBOTE  abonnieren", &extra), Some(ConsentCommand::Start));
        assert_eq!(classify("newsletter bitte", &extra), None);
        assert_eq!(classify("newsletter", none), None);
    }

    #[test]
    fn classify_payloads_exactly() {
        assert_eq!(classify_payload(PAYLOAD_YES), Some(ConsentCommand::Yes));
        assert_eq!(classify_payload(PAYLOAD_NO), Some(ConsentCommand::No));
        assert_eq!(classify_payload(PAYLOAD_START), Some(ConsentCommand::Start));
        assert_eq!(classify_payload(PAYLOAD_STOP), Some(ConsentCommand::Stop));
        assert_eq!(classify_payload("CONSENT:YES"), None);
        assert_eq!(classify_payload("yes"), None);
    }

    // ---- property tests over random event sequences ----

    fn purposes() -> impl Strategy<Value = Vec<ConsentPurpose>> {
        prop::collection::vec(prop_oneof![Just(OrderUpdates), Just(Marketing)], 0..3)
    }

    fn event() -> impl Strategy<Value = ConsentEvent> {
        let via = prop_oneof![Just(Via::Chat), Just(Via::Web), Just(Via::Shop)];
        prop_oneof![
            4 => (purposes(), via).prop_map(|(purposes, via)| ConsentEvent::RequestOptIn { purposes, via }),
            4 => Just(ConsentEvent::Confirm),
            1 => Just(ConsentEvent::Decline),
            2 => Just(ConsentEvent::Stop),
            1 => Just(ConsentEvent::MarketingStoppedInApp),
            1 => Just(ConsentEvent::MarketingResumedInApp),
            1 => Just(ConsentEvent::MarketingSendRejected),
            1 => purposes().prop_map(|purposes| ConsentEvent::ShopConfirmed { purposes }),
        ]
    }

    /// Seconds until the next event: mostly minutes to hours, sometimes days (to expire).
    fn step() -> impl Strategy<Value = i64> {
        prop_oneof![0..600i64, 0..30 * H, 0..4 * 24 * H]
    }

    fn covers(e: &ConsentEvent, p: ConsentPurpose) -> bool {
        match e {
            ConsentEvent::RequestOptIn { purposes, .. } | ConsentEvent::ShopConfirmed { purposes } => {
                purposes.contains(&p)
            }
            _ => false,
        }
    }

    /// Events that end a pending request for `p` without confirming it.
    fn ends_pending(e: &ConsentEvent, p: ConsentPurpose) -> bool {
        match e {
            ConsentEvent::Decline | ConsentEvent::Stop => true,
            ConsentEvent::MarketingStoppedInApp | ConsentEvent::MarketingSendRejected => p == Marketing,
            _ => false,
        }
    }

    fn arb_state() -> impl Strategy<Value = ConsentState> {
        prop_oneof![Just(S::None), Just(S::Pending), Just(S::Confirmed), Just(S::Revoked)]
    }

    fn arb_purpose_consent() -> impl Strategy<Value = PurposeConsent> {
        let t = prop::option::of(any::<i64>());
        (arb_state(), t.clone(), t.clone(), t).prop_map(|(state, changed_at, requested_at, request_sent_at)| {
            PurposeConsent { state, changed_at, requested_at, request_sent_at }
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn invariants_hold_over_random_sequences(steps in prop::collection::vec((event(), step()), 0..40)) {
            let pol = policy();
            let mut c = Consent::default();
            let mut now = T0;
            let mut history: Vec<(ConsentEvent, i64)> = Vec::new();
            let mut acks_since_opt_in = 0;
            let mut last_question: Option<i64> = None;
            for (e, dt) in steps {
                now += dt;
                let before = c.clone();
                let d = apply(&c, &e, now, &pol);

                // (3) transitions are exactly the real changes, in purpose order.
                let expected: Vec<Transition> = ConsentPurpose::ALL
                    .into_iter()
                    .filter(|&p| before.get(p).state != d.consent.get(p).state)
                    .map(|p| Transition { purpose: p, from: before.get(p).state, to: d.consent.get(p).state })
                    .collect();
                prop_assert_eq!(&d.transitions, &expected);
                for t in &d.transitions {
                    prop_assert_ne!(t.from, t.to);
                    prop_assert_eq!(d.consent.get(t.purpose).changed_at, Some(now));
                }

                for p in ConsentPurpose::ALL {
                    let slot = d.consent.get(p);
                    prop_assert_eq!(slot.requested_at.is_some(), slot.state == S::Pending);
                }

                for t in &d.transitions {
                    // (1) confirmed only through a valid double opt-in or a shop's confirmation.
                    if t.to == S::Confirmed {
                        match &e {
                            ConsentEvent::Confirm => {
                                prop_assert_eq!(t.from, S::Pending);
                                let start = before.get(t.purpose).requested_at.unwrap();
                                prop_assert!(start <= now && now - start <= pol.confirm_validity_secs);
                                // The request that opened it is in the history, with nothing
                                // ending the pending after it.
                                let opened = history.iter().rposition(|(h, at)| covers(h, t.purpose)
                                    && matches!(h, ConsentEvent::RequestOptIn { .. }) && *at == start);
                                prop_assert!(opened.is_some(), "no request at {start} for {:?}", t.purpose);
                                let after = &history[opened.unwrap() + 1..];
                                prop_assert!(!after.iter().any(|(h, _)| ends_pending(h, t.purpose)));
                            }
                            ConsentEvent::ShopConfirmed { .. } => {
                                prop_assert!(covers(&e, t.purpose));
                                prop_assert_ne!(t.from, S::Revoked);
                            }
                            other => prop_assert!(false, "confirmed by {other:?}"),
                        }
                    }
                    // (2) the way out of revoked is a new request (a confirmation follows via (1)).
                    if t.from == S::Revoked {
                        prop_assert_eq!(t.to, S::Pending);
                        let by_request = matches!(e, ConsentEvent::RequestOptIn { .. }) && covers(&e, t.purpose);
                        prop_assert!(by_request, "left revoked by {:?}", e);
                    }
                }
                if e == ConsentEvent::Stop {
                    prop_assert!(ConsentPurpose::ALL.iter().all(|&p| d.consent.get(p).state == S::Revoked));
                }

                // (4) STOP is acknowledged at most once until something leaves revoked.
                if d.transitions.iter().any(|t| t.from == S::Revoked) {
                    acks_since_opt_in = 0;
                }
                if d.reply == Some(ConsentReply::StopAck) {
                    acks_since_opt_in += 1;
                    prop_assert_eq!(&e, &ConsentEvent::Stop);
                }
                prop_assert!(acks_since_opt_in <= 1);

                // Questions: only with a pending purpose; web and shop respect the resend gap.
                prop_assert_eq!(d.send_request, d.reply == Some(ConsentReply::Question));
                if d.send_request {
                    prop_assert!(ConsentPurpose::ALL.iter().any(|&p| d.consent.get(p).state == S::Pending));
                    if !matches!(e, ConsentEvent::RequestOptIn { via: Via::Chat, .. }) {
                        prop_assert!(last_question.is_none_or(|t| now - t > pol.resend_after_secs));
                    }
                    last_question = Some(now);
                }

                // (6) overall follows the rule.
                let has = |s| ConsentPurpose::ALL.iter().any(|&p| d.consent.get(p).state == s);
                let want = if has(S::Confirmed) { S::Confirmed } else if has(S::Pending) { S::Pending }
                    else if has(S::Revoked) { S::Revoked } else { S::None };
                prop_assert_eq!(d.consent.overall(), want);

                history.push((e, now));
                c = d.consent;
            }
        }

        // (7) a confirmation counts exactly when requested_at <= its time <= requested_at + validity,
        // whatever the offset (before, at, after the request; at, around and past expiry).
        #[test]
        fn confirmation_counts_only_between_request_and_expiry(
            purposes in prop::collection::vec(prop_oneof![Just(OrderUpdates), Just(Marketing)], 1..3),
            via in prop_oneof![Just(Via::Chat), Just(Via::Web), Just(Via::Shop)],
            offset in prop_oneof![
                -3 * 24 * H..3 * 24 * H,
                -2i64..=2,
                48 * H - 2..=48 * H + 2,
            ],
        ) {
            let pol = policy();
            let c = apply(&Consent::default(), &ConsentEvent::RequestOptIn { purposes: purposes.clone(), via }, T0, &pol).consent;
            let d = apply(&c, &ConsentEvent::Confirm, T0 + offset, &pol);
            let counts = (0..=pol.confirm_validity_secs).contains(&offset);
            for p in ConsentPurpose::ALL {
                let want = if !purposes.contains(&p) {
                    S::None
                } else if counts {
                    S::Confirmed
                } else if offset < 0 {
                    S::Pending
                } else {
                    S::None
                };
                prop_assert_eq!(d.consent.get(p).state, want, "offset {}", offset);
            }
            let reply = if counts { Some(ConsentReply::Welcome) } else if offset < 0 { None } else { Some(ConsentReply::Expired) };
            prop_assert_eq!(d.reply, reply);
            if offset < 0 {
                // Untouched: the request can still be answered later.
                prop_assert_eq!(&d.consent, &c);
                let later = apply(&d.consent, &ConsentEvent::Confirm, T0, &pol);
                prop_assert_eq!(later.reply, Some(ConsentReply::Welcome));
            }
        }

        // (8) with events arriving out of order (timestamps jumping back), a purpose is still
        // confirmed only by a YES at or after its request and within the validity.
        #[test]
        fn out_of_order_confirmations_never_precede_their_request(
            steps in prop::collection::vec((event(), -2 * 24 * H..2 * 24 * H), 0..40),
        ) {
            let pol = policy();
            let mut c = Consent::default();
            for (e, at) in steps {
                let now = T0 + at;
                let d = apply(&c, &e, now, &pol);
                for t in &d.transitions {
                    if t.to == S::Confirmed && e == ConsentEvent::Confirm {
                        let start = c.get(t.purpose).requested_at.unwrap();
                        prop_assert!(start <= now, "confirmed at {} by a YES before the request at {}", now, start);
                        prop_assert!(now - start <= pol.confirm_validity_secs);
                    }
                }
                c = d.consent;
            }
        }

        // (5) never panics, whatever the stored record, the clock or the policy say.
        #[test]
        fn apply_never_panics(
            o in arb_purpose_consent(),
            m in arb_purpose_consent(),
            e in event(),
            now in any::<i64>(),
            validity in any::<i64>(),
            resend in any::<i64>(),
        ) {
            let c = Consent { order_updates: o, marketing: m, policy_version: None };
            let pol = ConsentPolicy { confirm_validity_secs: validity, resend_after_secs: resend, policy_version: "x".into() };
            let d = apply(&c, &e, now, &pol);
            prop_assert!(d.transitions.iter().all(|t| t.from != t.to));
            let _ = d.consent.overall();
        }

        #[test]
        fn classify_never_panics(text in "\\PC{0,64}") {
            let _ = classify(&text, &["newsletter".to_string()]);
        }
    }
}
