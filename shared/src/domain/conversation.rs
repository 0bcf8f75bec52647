//! The conversation engine: a contact's state and one inbound message in, the replies out.
//! Pure and synchronous; consent words and cart commands are answered before this runs.
use super::flows::{normalize, FlowSet};
use super::inbound::InboundContent;
use super::message::{OutboundBody, CONTINUE_PAYLOAD};

/// What the engine needs to know about the contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactView {
    pub locale: String,
    /// A person is handling the chat; the bot stays silent until released.
    pub handover: bool,
    /// Replies held back while the service window was closed (a template went out instead).
    pub pending: Vec<OutboundBody>,
}

impl ContactView {
    pub fn new(locale: impl Into<String>, handover: bool) -> Self {
        Self { locale: locale.into(), handover, pending: Vec::new() }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub replies: Vec<OutboundBody>,
    /// `Some` when the contact's handover flag must change.
    pub set_handover: Option<bool>,
    pub outcome: Outcome,
    /// How many held-back replies lead `replies` (the adapter clears them once queued).
    pub delivered_pending: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A flow answered; carries the flow id.
    Flow(String),
    Fallback,
    HandoverStarted,
    /// A person handles the chat, so the bot said nothing.
    HandoverSilent,
    Released,
    MediaAnswered,
    LocationAnswered,
    UnsupportedAnswered,
    /// A catalog cart arrived (answered with `order_received` until carts are handled).
    OrderReceived,
    /// Reactions need no answer.
    ReactionIgnored,
    /// The customer tapped "continue" on a window-closed template: the held-back replies.
    Continued,
}

impl Outcome {
    /// A low-cardinality name for metrics (the flow id is not part of it).
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Flow(_) => "flow",
            Outcome::Fallback => "fallback",
            Outcome::HandoverStarted => "handover_started",
            Outcome::HandoverSilent => "handover_silent",
            Outcome::Released => "released",
            Outcome::MediaAnswered => "media_answered",
            Outcome::LocationAnswered => "location_answered",
            Outcome::UnsupportedAnswered => "unsupported_answered",
            Outcome::OrderReceived => "order_received",
            Outcome::ReactionIgnored => "reaction_ignored",
            Outcome::Continued => "continued",
        }
    }
}

impl Decision {
    fn reply(body: &OutboundBody, outcome: Outcome) -> Self {
        Self { replies: vec![body.clone()], set_handover: None, outcome, delivered_pending: 0 }
    }

    fn silent(outcome: Outcome) -> Self {
        Self { replies: Vec::new(), set_handover: None, outcome, delivered_pending: 0 }
    }
}

/// Decides how the bot answers one inbound message. `flows` is the set for the contact's
/// locale (see `Flows::for_locale`).
pub fn decide(flows: &FlowSet, contact: &ContactView, content: &InboundContent) -> Decision {
    if contact.handover {
        return Decision::silent(Outcome::HandoverSilent);
    }
    // Whatever the customer wrote reopens the window: the held-back replies go first.
    let continued = matches!(content, InboundContent::Button { payload, .. } if payload == CONTINUE_PAYLOAD);
    let mut decision = if continued && !contact.pending.is_empty() {
        Decision::silent(Outcome::Continued)
    } else if continued {
        Decision::reply(flows.fallback(), Outcome::Fallback)
    } else {
        answer(flows, content)
    };
    if !contact.pending.is_empty() {
        decision.delivered_pending = contact.pending.len();
        decision.replies.splice(0..0, contact.pending.iter().cloned());
    }
    decision
}

fn answer(flows: &FlowSet, content: &InboundContent) -> Decision {
    match content {
        InboundContent::Text { body } => route_text(flows, body),
        InboundContent::Button { payload, title } => route_payload(flows, payload, title),
        InboundContent::ListReply { id, title, .. } => route_payload(flows, id, title),
        InboundContent::Order { .. } => Decision::reply(flows.order_received(), Outcome::OrderReceived),
        InboundContent::Location { .. } => Decision::reply(flows.location(), Outcome::LocationAnswered),
        InboundContent::Media { .. } => Decision::reply(flows.media(), Outcome::MediaAnswered),
        InboundContent::Reaction { .. } => Decision::silent(Outcome::ReactionIgnored),
        InboundContent::Unsupported { .. } => Decision::reply(flows.unsupported(), Outcome::UnsupportedAnswered),
    }
}

/// An agent handed the chat back to the bot (admin API or `#bot` from the inbox).
pub fn release(flows: &FlowSet) -> Decision {
    Decision {
        replies: vec![flows.handover().released.clone()],
        set_handover: Some(false),
        outcome: Outcome::Released,
        delivered_pending: 0,
    }
}

fn handover(flows: &FlowSet) -> Decision {
    Decision {
        replies: vec![flows.handover().reply.clone()],
        set_handover: Some(true),
        outcome: Outcome::HandoverStarted,
        delivered_pending: 0,
    }
}

fn route_text(flows: &FlowSet, text: &str) -> Decision {
    let normalized = normalize(text);
    let words: Vec<&str> = normalized.split(' ').filter(|w| !w.is_empty()).collect();
    if flows.handover().keywords.iter().any(|k| k.equals(&words)) {
        return handover(flows);
    }
    match flows.flows().iter().find(|f| f.keywords.iter().any(|k| k.occurs_in(&words))) {
        Some(flow) => Decision::reply(&flow.reply, Outcome::Flow(flow.id.clone())),
        None => Decision::reply(flows.fallback(), Outcome::Fallback),
    }
}

fn route_payload(flows: &FlowSet, payload: &str, title: &str) -> Decision {
    if let Some(flow) = flows.flows().iter().find(|f| f.payloads.iter().any(|p| p == payload)) {
        return Decision::reply(&flow.reply, Outcome::Flow(flow.id.clone()));
    }
    if flows.handover().payloads.iter().any(|p| p == payload) {
        return handover(flows);
    }
    // Payloads from older messages or templates may no longer exist; the title still says
    // what the customer meant.
    route_text(flows, title)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::flows::{Flows, MAX_BUTTONS, MAX_LIST_ROWS};
    use proptest::prelude::*;
    use std::sync::OnceLock;

    fn flows() -> &'static Flows {
        static FLOWS: OnceLock<Flows> = OnceLock::new();
        FLOWS.get_or_init(|| Flows::embedded().expect("embedded flows"))
    }

    fn de() -> &'static FlowSet {
        flows().for_locale("default", "de")
    }

    fn en() -> &'static FlowSet {
        flows().for_locale("default", "en")
    }

    fn bot(locale: &str) -> ContactView {
        ContactView::new(locale, false)
    }

    fn text(s: &str) -> InboundContent {
        InboundContent::Text { body: s.into() }
    }

    fn say(set: &FlowSet, s: &str) -> Decision {
        decide(set, &bot(set.locale()), &text(s))
    }

    fn flow_of(d: &Decision) -> &str {
        match &d.outcome {
            Outcome::Flow(id) => id,
            other => panic!("expected a flow, got {other:?}"),
        }
    }

    fn reply_text(d: &Decision) -> &str {
        match &d.replies[..] {
            [OutboundBody::Text { text } | OutboundBody::Buttons { text, .. } | OutboundBody::List { text, .. }] => {
                text
            }
            other => panic!("expected one reply, got {other:?}"),
        }
    }

    #[test]
    fn keyword_match_ignores_case_punctuation_and_emoji() {
        for msg in ["Lieferzeit?? 🚚", "LIEFERZEIT", "  lieferzeit!!! ", "Wie ist die Lieferzeit nach Wien?"] {
            let d = say(de(), msg);
            assert_eq!(flow_of(&d), "delivery", "{msg}");
            assert_eq!(d.replies[0], de().flow("delivery").unwrap().reply);
            assert_eq!(d.set_handover, None);
        }
        assert_eq!(flow_of(&say(de(), "Welche GRÖSSE brauche ich?")), "sizes");
        assert_eq!(flow_of(&say(de(), "Wie lange dauert's?")), "delivery");
    }

    #[test]
    fn keywords_match_whole_words_and_phrases_only() {
        assert_eq!(flow_of(&say(en(), "shipping")), "delivery");
        assert_eq!(say(en(), "reshippingx").outcome, Outcome::Fallback);
        assert_eq!(say(en(), "shippings").outcome, Outcome::Fallback);
        // "how long" is a phrase: both words, adjacent, in order.
        assert_eq!(flow_of(&say(en(), "How long, roughly?")), "delivery");
        assert_eq!(say(en(), "long how").outcome, Outcome::Fallback);
    }

    #[test]
    fn first_flow_in_file_order_wins() {
        // "Hallo" belongs to the menu, "Versand" to delivery; delivery comes first in the file.
        assert_eq!(flow_of(&say(de(), "Hallo, was kostet der Versand?")), "delivery");
        assert_eq!(flow_of(&say(de(), "Hallo!")), "menu");
        // "mein Paket" (order status) comes before "wann kommt" (delivery).
        assert_eq!(flow_of(&say(de(), "Wann kommt mein Paket?")), "order_status");
    }

    #[test]
    fn button_and_list_payloads_route_exactly() {
        let d = decide(de(), &bot("de"), &InboundContent::Button { payload: "returns".into(), title: "egal".into() });
        assert_eq!(flow_of(&d), "returns");
        let d = decide(
            en(),
            &bot("en"),
            &InboundContent::ListReply { id: "size_shoes".into(), title: "Sneakers".into(), description: None },
        );
        assert_eq!(flow_of(&d), "size_shoes");
        assert!(reply_text(&d).contains("EU 36–46"));
        // Payloads are ids, not keywords: no normalisation.
        let d = decide(de(), &bot("de"), &InboundContent::Button { payload: "RETURNS".into(), title: "x".into() });
        assert_eq!(d.outcome, Outcome::Fallback);
    }

    #[test]
    fn every_shipped_button_and_list_row_leads_somewhere() {
        for set in flows().sets() {
            let mut bodies: Vec<&OutboundBody> = set.flows().iter().map(|f| &f.reply).collect();
            bodies.extend([set.fallback(), set.location(), set.media(), set.unsupported(), set.order_received()]);
            for body in bodies {
                let taps: Vec<InboundContent> = match body {
                    OutboundBody::Buttons { buttons, .. } => buttons
                        .iter()
                        .map(|b| InboundContent::Button { payload: b.id.clone(), title: b.title.clone() })
                        .collect(),
                    OutboundBody::List { sections, .. } => sections
                        .iter()
                        .flat_map(|s| &s.rows)
                        .map(|r| InboundContent::ListReply {
                            id: r.id.clone(),
                            title: r.title.clone(),
                            description: None,
                        })
                        .collect(),
                    _ => vec![],
                };
                for tap in taps {
                    let d = decide(set, &bot(set.locale()), &tap);
                    assert!(
                        matches!(d.outcome, Outcome::Flow(_) | Outcome::HandoverStarted),
                        "{}: {tap:?} → {:?}",
                        set.locale(),
                        d.outcome
                    );
                }
            }
        }
    }

    #[test]
    fn unknown_payload_falls_back_to_the_title() {
        let d =
            decide(de(), &bot("de"), &InboundContent::Button { payload: "old-id".into(), title: "Rückgabe".into() });
        assert_eq!(flow_of(&d), "returns");
        let d = decide(de(), &bot("de"), &InboundContent::Button { payload: "old-id".into(), title: "Hilfe".into() });
        assert_eq!(d.outcome, Outcome::HandoverStarted);
    }

    #[test]
    fn unknown_text_gets_the_fallback() {
        for msg in ["Kann man bei euch Gutscheine kaufen?", "🙂", "", "?!"] {
            let d = say(de(), msg);
            assert_eq!(d.outcome, Outcome::Fallback, "{msg:?}");
            assert_eq!(d.replies, vec![de().fallback().clone()]);
            assert_eq!(d.set_handover, None);
        }
    }

    #[test]
    fn handover_starts_on_the_whole_text_only() {
        let d = say(de(), "Hilfe!");
        assert_eq!(d.outcome, Outcome::HandoverStarted);
        assert_eq!(d.set_handover, Some(true));
        assert_eq!(d.replies, vec![de().handover().reply.clone()]);
        assert_eq!(say(en(), "  HUMAN ").outcome, Outcome::HandoverStarted);
        assert_eq!(say(en(), "talk to a person").outcome, Outcome::HandoverStarted);
        // The keyword inside a longer question is not a handover request.
        assert_ne!(say(de(), "Hilfe bei der Größe bitte").outcome, Outcome::HandoverStarted);
        assert_eq!(flow_of(&say(de(), "Hilfe bei der Größe bitte")), "sizes");
        let d = decide(de(), &bot("de"), &InboundContent::Button { payload: "agent".into(), title: "x".into() });
        assert_eq!((d.outcome, d.set_handover), (Outcome::HandoverStarted, Some(true)));
    }

    #[test]
    fn bot_is_silent_during_handover_for_every_content() {
        let human = ContactView::new("de", true);
        let contents = [
            text("Lieferzeit"),
            text("Hilfe"),
            text("irgendwas"),
            InboundContent::Button { payload: "menu".into(), title: "Menü".into() },
            InboundContent::ListReply { id: "sizes".into(), title: "x".into(), description: None },
            InboundContent::Order { catalog_id: None, items: vec![], note: None },
            InboundContent::Location { latitude: 52.5, longitude: 13.4, name: None },
            InboundContent::Media { media_kind: "image".into(), media_id: None, caption: None },
            InboundContent::Reaction { emoji: "👍".into() },
            InboundContent::Unsupported { type_name: "contacts".into() },
        ];
        for c in &contents {
            let d = decide(de(), &human, c);
            assert!(d.replies.is_empty(), "{c:?}");
            assert_eq!(d.set_handover, None);
            assert_eq!(d.outcome, Outcome::HandoverSilent);
        }
    }

    #[test]
    fn release_hands_back_with_the_release_reply() {
        let d = release(en());
        assert_eq!(d.set_handover, Some(false));
        assert_eq!(d.outcome, Outcome::Released);
        assert_eq!(d.replies, vec![en().handover().released.clone()]);
        assert!(reply_text(&d).contains("handed the chat back"));
    }

    #[test]
    fn german_and_english_by_locale() {
        let de_reply = reply_text(&say(flows().for_locale("default", "de_DE"), "Versand")).to_string();
        let en_reply = reply_text(&say(flows().for_locale("default", "en"), "shipping")).to_string();
        assert!(de_reply.contains("Werktagen"), "{de_reply}");
        assert!(en_reply.contains("business days"), "{en_reply}");
        // The German file does not understand English-only words and vice versa.
        assert_eq!(say(de(), "shipping").outcome, Outcome::Fallback);
        assert_eq!(say(en(), "Versand").outcome, Outcome::Fallback);
    }

    #[test]
    fn media_location_unsupported_order_and_reactions() {
        let c = bot("de");
        let d = decide(de(), &c, &InboundContent::Media { media_kind: "audio".into(), media_id: None, caption: None });
        assert_eq!((d.outcome.clone(), d.replies.clone()), (Outcome::MediaAnswered, vec![de().media().clone()]));
        assert!(reply_text(&d).contains("Sprachnachrichten"));
        let d = decide(de(), &c, &InboundContent::Location { latitude: 52.5, longitude: 13.4, name: None });
        assert_eq!((d.outcome, d.replies), (Outcome::LocationAnswered, vec![de().location().clone()]));
        let d = decide(de(), &c, &InboundContent::Unsupported { type_name: "contacts".into() });
        assert_eq!((d.outcome, d.replies), (Outcome::UnsupportedAnswered, vec![de().unsupported().clone()]));
        let d = decide(de(), &c, &InboundContent::Order { catalog_id: None, items: vec![], note: None });
        assert_eq!((d.outcome, d.replies), (Outcome::OrderReceived, vec![de().order_received().clone()]));
        let d = decide(de(), &c, &InboundContent::Reaction { emoji: "❤️".into() });
        assert_eq!((d.outcome, d.replies.len(), d.set_handover), (Outcome::ReactionIgnored, 0, None));
    }

    #[test]
    fn outcome_names_for_metrics() {
        assert_eq!(Outcome::Flow("delivery".into()).as_str(), "flow");
        assert_eq!(Outcome::HandoverSilent.as_str(), "handover_silent");
        assert_eq!(Outcome::OrderReceived.as_str(), "order_received");
    }

    fn check_limits(d: &Decision) -> Result<(), TestCaseError> {
        prop_assert!(d.replies.len() <= 1);
        for r in &d.replies {
            match r {
                OutboundBody::Buttons { buttons, .. } => prop_assert!((1..=MAX_BUTTONS).contains(&buttons.len())),
                OutboundBody::List { sections, .. } => {
                    let rows: usize = sections.iter().map(|s| s.rows.len()).sum();
                    prop_assert!((1..=MAX_LIST_ROWS).contains(&rows));
                }
                OutboundBody::Text { text } => prop_assert!(!text.is_empty()),
                OutboundBody::Template { .. } => prop_assert!(false, "the engine never sends templates"),
            }
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn decide_never_panics_and_respects_limits(
            body in prop_oneof![any::<String>(), "\\PC{0,200}", "(Hi|hilfe|Lieferzeit|size|🚚|[?!.,]| ){0,12}"],
            locale in prop_oneof![Just("de".to_string()), Just("en".to_string()), "[a-zA-Z_-]{0,6}"],
            handover in any::<bool>(),
        ) {
            let set = flows().for_locale("default", &locale);
            let c = ContactView { locale, handover, pending: Vec::new() };
            let d = decide(set, &c, &InboundContent::Text { body: body.clone() });
            check_limits(&d)?;
            prop_assert_eq!(d.replies.is_empty(), handover);
            let d = decide(set, &c, &InboundContent::Button { payload: body.clone(), title: body });
            check_limits(&d)?;
        }
    }

    #[test]
    fn held_back_replies_lead_the_next_answer_and_continue_sends_only_them() {
        let held = OutboundBody::text("Deine Antwort von gestern");
        let mut c = bot("de");
        c.pending = vec![held.clone()];
        let tap = InboundContent::Button { payload: CONTINUE_PAYLOAD.into(), title: "Weiter".into() };
        let d = decide(de(), &c, &tap);
        assert_eq!(d.replies, vec![held.clone()]);
        assert_eq!(d.outcome, Outcome::Continued);
        assert_eq!(d.delivered_pending, 1);

        let d = decide(de(), &c, &InboundContent::Text { body: "Lieferzeit".into() });
        assert_eq!(d.replies.len(), 2);
        assert_eq!(d.replies[0], held);
        assert_eq!(d.delivered_pending, 1);
        assert!(matches!(d.outcome, Outcome::Flow(_)));

        // Nothing held back: "continue" gets the fallback (it offers the menu), not silence.
        let d = decide(de(), &bot("de"), &tap);
        assert_eq!(d.replies, vec![de().fallback().clone()]);
        assert_eq!(d.delivered_pending, 0);

        // A person has the chat: nothing goes out, the held-back replies stay.
        c.handover = true;
        let d = decide(de(), &c, &tap);
        assert!(d.replies.is_empty());
        assert_eq!(d.delivered_pending, 0);
    }
}
