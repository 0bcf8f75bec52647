//! The team inbox's conversation state: who answers a contact — the bot, or a person.
//!
//! Rules, and where [`decide`] enforces them:
//! 1. A conversation is `bot` (the bot answers), `waiting` (the customer asked for a person and
//!    nobody has taken it), `assigned` (a person answers; the bot stays silent) or `resolved`
//!    (done; the bot answers again until the customer asks for a person anew).
//! 2. The customer's request for a person makes a `bot` or `resolved` conversation `waiting`
//!    from now; a `waiting` one keeps its original waiting time (the queue is fair) and an
//!    `assigned` one stays with its agent — [`Command::HandoverRequested`].
//! 3. An agent claims an unassigned conversation for themselves; one assigned to someone else
//!    is refused ([`Refusal::AssignedToOther`]) — only an admin moves it ([`Command::Assign`]).
//!    Claiming one's own conversation again changes nothing.
//! 4. An agent's reply to a conversation nobody has makes it theirs (the bot must not talk over
//!    them); a reply to one assigned to someone else leaves the assignee alone —
//!    [`Command::Replied`].
//! 5. Release hands the conversation back to the bot, resolve closes it; both clear the
//!    assignee and the handover — [`Command::Release`], [`Command::Resolve`].
//! 6. The bot stays silent exactly while the state is `waiting` or `assigned` ([`State::human`]).
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum State {
    #[default]
    Bot,
    Waiting,
    Assigned,
    Resolved,
}

impl State {
    pub const ALL: [State; 4] = [State::Waiting, State::Assigned, State::Resolved, State::Bot];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Bot => "bot",
            State::Waiting => "waiting",
            State::Assigned => "assigned",
            State::Resolved => "resolved",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// A person has the conversation: the bot stays silent.
    pub fn human(self) -> bool {
        matches!(self, State::Waiting | State::Assigned)
    }
}

/// The conversation part of a contact.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Conversation {
    pub state: State,
    pub assignee: Option<String>,
    /// Unix seconds since the customer has been waiting for a person.
    pub waiting_since: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    HandoverRequested,
    Claim { agent: String },
    Assign { to: String },
    Replied { agent: String },
    Release,
    Resolve,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("this conversation is assigned to {0}")]
    AssignedToOther(String),
}

/// The conversation after `cmd`; `None` when nothing changes.
pub fn decide(conv: &Conversation, cmd: &Command, now: i64) -> Result<Option<Conversation>, Refusal> {
    let to = |state, assignee: Option<&str>, waiting_since| Conversation {
        state,
        assignee: assignee.map(str::to_string),
        waiting_since,
    };
    let next = match (conv.state, cmd) {
        // Rule 2.
        (State::Bot | State::Resolved, Command::HandoverRequested) => to(State::Waiting, None, Some(now)),
        (State::Waiting | State::Assigned, Command::HandoverRequested) => return Ok(None),
        // Rule 3.
        (State::Assigned, Command::Claim { agent }) => {
            return match conv.assignee.as_deref() {
                Some(a) if a == agent => Ok(None),
                Some(a) => Err(Refusal::AssignedToOther(a.to_string())),
                None => Ok(Some(to(State::Assigned, Some(agent), None))),
            };
        }
        (_, Command::Claim { agent }) => to(State::Assigned, Some(agent), None),
        (_, Command::Assign { to: who }) => {
            if conv.state == State::Assigned && conv.assignee.as_deref() == Some(who) {
                return Ok(None);
            }
            to(State::Assigned, Some(who), None)
        }
        // Rule 4.
        (State::Assigned, Command::Replied { .. }) if conv.assignee.is_some() => return Ok(None),
        (_, Command::Replied { agent }) => to(State::Assigned, Some(agent), None),
        // Rule 5.
        (State::Bot, Command::Release) if conv.assignee.is_none() => return Ok(None),
        (_, Command::Release) => to(State::Bot, None, None),
        (State::Resolved, Command::Resolve) => return Ok(None),
        (_, Command::Resolve) => to(State::Resolved, None, None),
    };
    Ok(Some(next))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(state: State, assignee: Option<&str>, waiting_since: Option<i64>) -> Conversation {
        Conversation { state, assignee: assignee.map(str::to_string), waiting_since }
    }

    #[test]
    fn asking_for_a_person_queues_once_and_keeps_the_place_in_the_queue() {
        let waiting = decide(&Conversation::default(), &Command::HandoverRequested, 100).unwrap().unwrap();
        assert_eq!(waiting, conv(State::Waiting, None, Some(100)));
        assert_eq!(decide(&waiting, &Command::HandoverRequested, 200), Ok(None));
        let assigned = conv(State::Assigned, Some("anna"), None);
        assert_eq!(decide(&assigned, &Command::HandoverRequested, 200), Ok(None));
        let resolved = conv(State::Resolved, None, None);
        assert_eq!(decide(&resolved, &Command::HandoverRequested, 300).unwrap().unwrap().waiting_since, Some(300));
    }

    #[test]
    fn claims_never_take_a_conversation_from_someone_else() {
        let waiting = conv(State::Waiting, None, Some(1));
        let anna = decide(&waiting, &Command::Claim { agent: "anna".into() }, 2).unwrap().unwrap();
        assert_eq!(anna, conv(State::Assigned, Some("anna"), None));
        assert_eq!(decide(&anna, &Command::Claim { agent: "anna".into() }, 3), Ok(None));
        assert_eq!(
            decide(&anna, &Command::Claim { agent: "bob".into() }, 3),
            Err(Refusal::AssignedToOther("anna".into()))
        );
        let bob = decide(&anna, &Command::Assign { to: "bob".into() }, 3).unwrap().unwrap();
        assert_eq!(bob.assignee.as_deref(), Some("bob"));
    }

    #[test]
    fn a_reply_takes_an_unowned_conversation_and_leaves_an_owned_one() {
        let bot = Conversation::default();
        let r = decide(&bot, &Command::Replied { agent: "anna".into() }, 5).unwrap().unwrap();
        assert_eq!(r, conv(State::Assigned, Some("anna"), None));
        assert_eq!(decide(&r, &Command::Replied { agent: "bob".into() }, 6), Ok(None));
    }

    #[test]
    fn release_and_resolve_give_the_bot_its_voice_back() {
        let anna = conv(State::Assigned, Some("anna"), None);
        let released = decide(&anna, &Command::Release, 9).unwrap().unwrap();
        assert_eq!(released, Conversation::default());
        assert!(!released.state.human());
        assert_eq!(decide(&released, &Command::Release, 9), Ok(None));
        let resolved = decide(&anna, &Command::Resolve, 9).unwrap().unwrap();
        assert_eq!((resolved.state, resolved.assignee), (State::Resolved, None));
        assert!(State::Waiting.human() && State::Assigned.human());
        for s in State::ALL {
            assert_eq!(State::parse(s.as_str()), Some(s));
        }
    }
}
