//! The team inbox as an application service: the conversation list, one thread with its contact
//! panel, and the agents' actions (claim, assign, reply, cart, notes, tags, release, resolve).
//! Agent messages travel like every other message: an envelope on the outbound queue, sent by
//! the sender with the same exactly-once, consent and window rules. Every action is audited.
//!
//! A reply reads top-down: load the contact → decide what may be sent (window, template,
//! consent) → record it as queued → enqueue → take the conversation → audit.
use crate::config::Accounts;
use crate::domain::cart::{Cart, CartCommand, CartReply, CatalogItem};
use crate::domain::consent::{ConsentPurpose, ConsentState};
use crate::domain::history::Entry;
use crate::domain::inbox::{decide, Command, Conversation, Refusal, State};
use crate::domain::templates::{TemplateCategory, Templates};
use crate::domain::{ContactId, OutboundBody, OutboundId, Purpose};
use crate::observability::count;
use crate::queue::{Envelope, Producer, QueueError};
use crate::store::contacts::{ContactRecord, Preview};
use crate::store::history::Page;
use crate::store::inbox::{AgentAttribution, AuditEvent, Note};
use crate::store::{Store, StoreError};
use serde::Serialize;
use serde_json::json;

/// How many conversations one state contributes to the list at most.
pub const LIST_LIMIT: usize = 200;
/// Longest agent text (WhatsApp's limit for a text body).
pub const MAX_TEXT_CHARS: usize = 4096;
pub const MAX_TAGS: usize = 50;

#[derive(Debug, thiserror::Error)]
pub enum InboxError {
    #[error("no conversation with this contact")]
    NotFound,
    #[error("the 24-hour customer-service window is closed: send an approved template instead")]
    WindowClosed { templates: Vec<TemplateInfo> },
    #[error("the customer has not confirmed messages for this purpose ({0})")]
    NoConsent(&'static str),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Refused(#[from] Refusal),
    #[error("no shop is connected, so there is no catalog or checkout")]
    NoShop,
    #[error("{0}")]
    Cart(String),
    #[error("the conversation changed at the same time; try again")]
    Contended,
    /// DynamoDB or SQS failed: retry.
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Queue(#[from] QueueError),
    /// A dependency outside the inbox failed (the cart service).
    #[error("{0}")]
    Unavailable(String),
}

/// Where carts, the catalog and the bot's hand-back words come from (the cart service and
/// the flows), so the inbox depends on them only through this port.
pub trait CartPort {
    /// Applies a cart command on behalf of `agent`; `None` when no shop is connected.
    fn apply(
        &self,
        contact: &ContactId,
        cmd: &CartCommand,
        message_id: &str,
        agent: &str,
        now: i64,
    ) -> impl std::future::Future<Output = Result<Option<(Cart, CartReply)>, InboxError>> + Send;
    /// The cart message the customer gets (lines, total, checkout link), in their language.
    fn render(&self, locale: &str, cart: &Cart, reply: &CartReply) -> OutboundBody;
    fn catalog(&self) -> impl std::future::Future<Output = Result<Option<Vec<CatalogItem>>, InboxError>> + Send;
    fn cart(&self, contact: &ContactId) -> impl std::future::Future<Output = Result<Option<Cart>, InboxError>> + Send;
    /// The checkout link of a cart; `None` when no shop is connected.
    fn checkout_link(&self, cart: &Cart) -> Option<String>;
    /// What the bot says when a person hands the conversation back.
    fn release_replies(&self, record: &ContactRecord, now: i64) -> Vec<Envelope>;
}

/// The inbox's ports.
pub struct Inbox<'a, C: CartPort> {
    pub store: &'a Store,
    pub producer: &'a Producer,
    pub templates: &'a Templates,
    pub accounts: &'a Accounts,
    /// The customer-service window in seconds.
    pub window_secs: i64,
    pub carts: &'a C,
}

#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub state: Option<State>,
    pub channel: Option<crate::domain::Channel>,
    /// An agent id; conversations assigned to them.
    pub assignee: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Window {
    pub window_open: bool,
    pub window_remaining_secs: i64,
    pub window_closes_at: Option<i64>,
}

fn window(record: &ContactRecord, window_secs: i64, now: i64) -> Window {
    let closes = record.last_inbound_at.map(|t| t + window_secs);
    let remaining = closes.map(|c| (c - now).max(0)).unwrap_or(0);
    Window { window_open: remaining > 0, window_remaining_secs: remaining, window_closes_at: closes }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    pub channel: String,
    pub address: String,
    pub address_masked: String,
    pub name: Option<String>,
    pub state: State,
    pub assignee: Option<String>,
    pub waiting_since: Option<i64>,
    pub last_message: Option<Preview>,
    pub last_activity_at: Option<i64>,
    #[serde(flatten)]
    pub window: Window,
    pub unread: u64,
    pub tags: Vec<String>,
}

fn summary(r: &ContactRecord, window_secs: i64, now: i64) -> Summary {
    let conv = r.conversation();
    Summary {
        channel: r.channel.as_str().to_string(),
        address: r.address.as_str().to_string(),
        address_masked: r.address.redacted(),
        name: r.name.clone(),
        state: conv.state,
        assignee: conv.assignee,
        waiting_since: conv.waiting_since,
        last_message: r.last_preview.clone(),
        last_activity_at: r.last_preview.as_ref().map(|p| p.at).max(r.last_inbound_at),
        window: window(r, window_secs, now),
        unread: r.unread(),
        tags: r.tags.clone(),
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TemplateInfo {
    pub name: String,
    pub language: String,
    pub category: String,
    pub parameters: usize,
    /// How many of `parameters` are the body's; the rest are the URL buttons', in order.
    pub body_parameters: usize,
    pub preview: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReplyOptions {
    /// Free text may be sent now (the window is open).
    pub text_allowed: bool,
    /// Why not, in plain words, when it may not.
    pub reason: Option<String>,
    /// Approved templates that may be sent now (in the contact's language first).
    pub templates: Vec<TemplateInfo>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PurposeView {
    pub state: ConsentState,
    pub latest_event: Option<crate::store::consent::ConsentAuditEvent>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ContactView {
    #[serde(flatten)]
    pub summary: Summary,
    pub locale: Option<String>,
    pub consent: std::collections::BTreeMap<&'static str, PurposeView>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CartView {
    pub id: String,
    pub status: crate::domain::cart::CartStatus,
    pub lines: Vec<serde_json::Value>,
    /// The total (`null` for an empty cart); a cart mixing currencies has one per currency in
    /// `totals`.
    pub total: Option<serde_json::Value>,
    pub totals: Vec<serde_json::Value>,
    pub checkout_url: Option<String>,
    pub agent: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OrderView {
    pub platform: String,
    pub order_id: u64,
    pub name: String,
    pub state: String,
    pub total: serde_json::Value,
    pub created_at: Option<i64>,
    /// The agent whose cart the order came from.
    pub agent: Option<String>,
    /// The messages the customer got about it, in order (confirmation, shipped, tracking, …).
    pub notifications: Vec<serde_json::Value>,
    pub fulfillments: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Thread {
    pub contact: ContactView,
    pub reply: ReplyOptions,
    pub messages: Vec<crate::store::history::Message>,
    pub next_before: Option<String>,
    pub cart: Option<CartView>,
    pub orders: Vec<OrderView>,
    pub notes: Vec<Note>,
}

/// What an agent sends.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Text(String),
    Template { name: String, language: String, parameters: Vec<String> },
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CartOutcome {
    pub cart: CartView,
    pub checkout_url: Option<String>,
    /// The message with the link, when it was sent.
    pub message_id: Option<String>,
}

fn money_json(m: &crate::domain::Money) -> serde_json::Value {
    json!({ "minor": m.minor, "currency": m.currency.as_str(), "display": m.to_string() })
}

fn cart_view(cart: &Cart, checkout_url: Option<String>) -> CartView {
    CartView {
        id: cart.id.clone(),
        status: cart.status,
        lines: cart
            .lines
            .iter()
            .map(|l| {
                json!({
                    "sku": l.sku.as_str(), "name": l.title, "quantity": l.quantity,
                    "unit_price": money_json(&l.unit_price), "line_total": money_json(&l.amount()),
                })
            })
            .collect(),
        total: cart.totals().first().map(money_json),
        totals: cart.totals().iter().map(money_json).collect(),
        checkout_url,
        agent: cart.agent.clone(),
    }
}

fn template_info(t: &crate::domain::templates::TemplateDef) -> TemplateInfo {
    TemplateInfo {
        name: t.name.clone(),
        language: t.language.clone(),
        category: t.category.as_str().to_string(),
        parameters: t.param_count(),
        body_parameters: t.body_param_count(),
        // The URL buttons too, their placeholders numbered as the positional parameters are.
        preview: t.preview(),
    }
}

fn now_ms() -> i64 {
    (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis()) as i64
}

impl<C: CartPort> Inbox<'_, C> {
    /// Waiting conversations first (longest waiting first), then the rest, most recent first.
    pub async fn list(&self, filter: &ListFilter, now: i64) -> Result<Vec<Summary>, InboxError> {
        let states: Vec<State> = match filter.state {
            Some(s) => vec![s],
            None => State::ALL.to_vec(),
        };
        let fetched = futures::future::join_all(states.iter().map(|s| self.store.inbox(*s, LIST_LIMIT))).await;
        let mut waiting = Vec::new();
        let mut rest = Vec::new();
        for (state, records) in states.iter().zip(fetched) {
            for r in records? {
                // A record listed under an old state mid-change shows up once, under its own.
                if r.conversation().state != *state {
                    continue;
                }
                if filter.channel.is_some_and(|c| c != r.channel) {
                    continue;
                }
                if filter.assignee.as_ref().is_some_and(|a| r.assignee.as_ref() != Some(a)) {
                    continue;
                }
                let s = summary(&r, self.window_secs, now);
                if *state == State::Waiting {
                    waiting.push(s);
                } else {
                    rest.push(s);
                }
            }
        }
        waiting.sort_by_key(|s| s.waiting_since.unwrap_or_default());
        rest.sort_by_key(|s| std::cmp::Reverse(s.last_activity_at.unwrap_or_default()));
        waiting.extend(rest);
        Ok(waiting)
    }

    async fn record(&self, contact: &ContactId) -> Result<ContactRecord, InboxError> {
        self.store.get_contact(contact).await?.ok_or(InboxError::NotFound)
    }

    fn reply_options(&self, record: &ContactRecord, now: i64) -> ReplyOptions {
        let open = window(record, self.window_secs, now).window_open;
        let whatsapp = record.channel == crate::domain::Channel::WhatsApp;
        let locale = record.locale.clone().unwrap_or_default();
        let mut templates: Vec<TemplateInfo> = if whatsapp {
            self.templates
                .iter()
                .filter(|t| open || self.template_purpose_allowed(record, t.category))
                .map(template_info)
                .collect()
        } else {
            Vec::new()
        };
        templates.sort_by_key(|t| (!t.language.starts_with(&locale), t.name.clone(), t.language.clone()));
        let reason = (!open).then(|| {
            if whatsapp {
                "The customer last wrote more than 24 hours ago: only an approved template can be sent.".to_string()
            } else {
                "The customer last wrote more than 24 hours ago: Messenger and Instagram allow no message until they write again."
                    .to_string()
            }
        });
        ReplyOptions { text_allowed: open, reason, templates }
    }

    fn template_purpose_allowed(&self, record: &ContactRecord, category: TemplateCategory) -> bool {
        record.consent.allows(purpose_consent(category))
    }

    /// One conversation: the contact panel, a page of messages (newest page unless `before`),
    /// the cart, the orders and the notes.
    pub async fn thread(
        &self,
        contact: &ContactId,
        before: Option<&str>,
        limit: usize,
        now: i64,
    ) -> Result<Thread, InboxError> {
        let record = self.record(contact).await?;
        let (page, events, cart, orders, attributions, notes) = futures::join!(
            self.store.history(contact, before, limit),
            self.store.consent_events(contact),
            self.carts.cart(contact),
            self.store.contact_orders(contact),
            self.store.attributions(contact),
            self.store.notes(contact),
        );
        let Page { messages, next_before } = page?;
        let events = events?;
        let consent = ConsentPurpose::ALL
            .iter()
            .map(|p| {
                let view = PurposeView {
                    state: record.consent.get(*p).state,
                    // Newest first.
                    latest_event: events.iter().find(|e| e.purpose == *p).cloned(),
                };
                (p.as_str(), view)
            })
            .collect();
        let attributions = attributions?;
        let orders = orders?
            .into_iter()
            .filter_map(|state| {
                let o = state.order.as_ref()?;
                let agent: Option<&AgentAttribution> = attributions.iter().find(|a| a.order_id == o.order.order_id);
                Some(OrderView {
                    platform: o.order.platform.as_str().to_string(),
                    order_id: o.order.order_id,
                    name: o.name.clone(),
                    state: format!("{:?}", state.stage).to_lowercase(),
                    total: money_json(&o.total),
                    created_at: o.created_at,
                    agent: agent.map(|a| a.agent.clone()),
                    notifications: state.sent.iter().map(|k| json!({ "kind": k })).collect(),
                    fulfillments: state
                        .fulfillments
                        .iter()
                        .map(|(id, f)| {
                            json!({
                                "id": id, "status": f.status, "carrier": f.carrier, "delivered": f.delivered,
                                "tracking": f.tracking.iter().map(|t| t.number.clone()).collect::<Vec<_>>(),
                                "updated_at": f.updated_at,
                            })
                        })
                        .collect(),
                })
            })
            .collect();
        let cart = cart?.filter(|c| !c.lines.is_empty()).map(|c| {
            // Rebuilt from the stored cart exactly as the checkout command built it.
            let link = (c.status == crate::domain::cart::CartStatus::CheckoutSent)
                .then(|| self.carts.checkout_link(&c))
                .flatten();
            cart_view(&c, link)
        });
        Ok(Thread {
            contact: ContactView {
                summary: summary(&record, self.window_secs, now),
                locale: record.locale.clone(),
                consent,
            },
            reply: self.reply_options(&record, now),
            messages,
            next_before,
            cart,
            orders,
            notes: notes?,
        })
    }

    /// Moves the conversation with `cmd` (optimistic: re-read and decide again on a race).
    async fn transition(
        &self,
        agent: &str,
        contact: &ContactId,
        cmd: Command,
        action: &str,
        now: i64,
    ) -> Result<(ContactRecord, Conversation, bool), InboxError> {
        for _ in 0..5 {
            let record = self.record(contact).await?;
            let old = record.conversation();
            let Some(new) = decide(&old, &cmd, now)? else {
                return Ok((record, old, false));
            };
            if self.store.set_conversation(contact, &old, &new, now).await? {
                self.audit(
                    contact,
                    agent,
                    action,
                    json!({ "from": old.state, "to": new.state, "assignee": new.assignee }),
                )
                .await?;
                return Ok((record, new, true));
            }
        }
        Err(InboxError::Contended)
    }

    async fn audit(
        &self,
        contact: &ContactId,
        agent: &str,
        action: &str,
        detail: serde_json::Value,
    ) -> Result<(), InboxError> {
        let event = AuditEvent { agent: agent.to_string(), action: action.to_string(), detail, at_ms: now_ms() };
        self.store.audit(contact, &event).await?;
        count("AgentActions", 1);
        Ok(())
    }

    pub async fn claim(&self, agent: &str, contact: &ContactId, now: i64) -> Result<Conversation, InboxError> {
        let cmd = Command::Claim { agent: agent.to_string() };
        Ok(self.transition(agent, contact, cmd, "claim", now).await?.1)
    }

    /// Admin only (the API checks the role).
    pub async fn assign(
        &self,
        admin: &str,
        contact: &ContactId,
        to: &str,
        now: i64,
    ) -> Result<Conversation, InboxError> {
        let to = to.trim();
        if to.is_empty() || to.len() > 200 {
            return Err(InboxError::Invalid("assignee must be an agent id (1 to 200 characters)".into()));
        }
        let cmd = Command::Assign { to: to.to_string() };
        Ok(self.transition(admin, contact, cmd, "assign", now).await?.1)
    }

    pub async fn resolve(&self, agent: &str, contact: &ContactId, now: i64) -> Result<Conversation, InboxError> {
        Ok(self.transition(agent, contact, Command::Resolve, "resolve", now).await?.1)
    }

    /// Back to the bot; the customer is told (the flows' hand-back words) if a person had it.
    pub async fn release(&self, agent: &str, contact: &ContactId, now: i64) -> Result<Conversation, InboxError> {
        let (record, conv, changed) = self.transition(agent, contact, Command::Release, "release", now).await?;
        if changed && record.conversation().state.human() {
            let envelopes = self.carts.release_replies(&record, now);
            if !envelopes.is_empty() {
                self.producer.send(&envelopes).await?;
            }
        }
        Ok(conv)
    }

    pub async fn mark_read(&self, contact: &ContactId) -> Result<(), InboxError> {
        if self.store.mark_read(contact).await? {
            Ok(())
        } else {
            Err(InboxError::NotFound)
        }
    }

    /// Queues an agent's message: text inside the window; an approved template (WhatsApp) any
    /// time, outside the window only with the customer's consent for its category.
    /// `idempotency_key` (the client's, per composed message) makes a retried request the same
    /// message: same id, sent once.
    pub async fn reply(
        &self,
        agent: &str,
        contact: &ContactId,
        reply: Reply,
        idempotency_key: Option<&str>,
        now: i64,
    ) -> Result<OutboundId, InboxError> {
        let record = self.record(contact).await?;
        let open = window(&record, self.window_secs, now).window_open;
        let (body, purpose, kind) = match reply {
            Reply::Text(text) => {
                let text = text.trim().to_string();
                if text.is_empty() || text.chars().count() > MAX_TEXT_CHARS {
                    return Err(InboxError::Invalid(format!("text must be 1 to {MAX_TEXT_CHARS} characters")));
                }
                if !open {
                    return Err(InboxError::WindowClosed { templates: self.reply_options(&record, now).templates });
                }
                (OutboundBody::text(text), Purpose::Reply, "reply")
            }
            Reply::Template { name, language, parameters } => {
                if contact.channel != crate::domain::Channel::WhatsApp {
                    return Err(InboxError::Invalid("templates are a WhatsApp feature".into()));
                }
                let def = self
                    .templates
                    .get(&name, &language)
                    // Never echoed: a caller's typo may be anything, personal data included.
                    .ok_or_else(|| InboxError::Invalid("no approved template has this name and language".into()))?;
                let body = self.templates.body(&name, &language, &parameters).ok_or_else(|| {
                    InboxError::Invalid(format!(
                        "this template takes {} parameter(s), {} given",
                        def.param_count(),
                        parameters.len()
                    ))
                })?;
                let purpose = if open {
                    Purpose::Reply
                } else {
                    let consent = purpose_consent(def.category);
                    if !record.consent.allows(consent) {
                        return Err(InboxError::NoConsent(consent.as_str()));
                    }
                    match consent {
                        ConsentPurpose::Marketing => Purpose::Marketing,
                        ConsentPurpose::OrderUpdates => Purpose::OrderUpdate,
                    }
                };
                (body, purpose, "template")
            }
        };
        let id = agent_message_id(agent, contact, idempotency_key)?;
        self.send(agent, &record, id.clone(), body, purpose, now).await?;
        self.transition(agent, contact, Command::Replied { agent: agent.to_string() }, "take", now).await?;
        self.audit(contact, agent, kind, json!({ "message_id": id.as_str() })).await?;
        count("AgentMessages", 1);
        Ok(id)
    }

    /// Records the message as queued (the thread shows it at once) and enqueues it. The same id
    /// again (a retried request) is enqueued again but sent once: the queue's deduplication and
    /// the sender's claim on the id see to that.
    async fn send(
        &self,
        agent: &str,
        record: &ContactRecord,
        id: OutboundId,
        body: OutboundBody,
        purpose: Purpose,
        now: i64,
    ) -> Result<OutboundId, InboxError> {
        let account = record
            .account
            .as_deref()
            .and_then(|a| self.accounts.get(record.channel, a))
            .or_else(|| self.accounts.iter().find(|a| a.channel == record.channel))
            .ok_or_else(|| InboxError::Invalid("no configured account can reach this channel".into()))?;
        let author = format!("agent:{agent}");
        let env = Envelope {
            v: crate::queue::ENVELOPE_VERSION,
            id: id.clone(),
            account: account.id.clone(),
            contact: record.contact_id(),
            purpose,
            body,
            fallback: None,
            withheld: None,
            in_reply_to: None,
            created_at: now,
            created_ms: Some(crate::time_util::now_millis()),
            campaign: None,
            author: Some(author.clone()),
        };
        let entry = Entry::outbound(&env.body, self.templates, Some(&author));
        self.store.record_queued(&env, &entry.to_json()).await?;
        if let Err(e) = self.producer.send(std::slice::from_ref(&env)).await {
            // Not queued: say so in the thread rather than showing it as on its way forever.
            if let Err(mark) = self.store.mark_failed(&env.id, None, crate::store::outbound::UNQUEUED).await {
                tracing::warn!(error = %mark, "could not mark an unqueued agent message failed");
            }
            return Err(e.into());
        }
        self.store.set_preview(&env.contact, &Preview::new("out", &entry.text, now)).await?;
        Ok(id)
    }

    /// Adds catalog items to the customer's cart and, when asked, sends the checkout link (the
    /// order it turns into is attributed to the cart and to `agent`).
    pub async fn cart(
        &self,
        agent: &str,
        contact: &ContactId,
        items: &[(String, u32)],
        send_link: bool,
        now: i64,
    ) -> Result<CartOutcome, InboxError> {
        if items.is_empty() && !send_link {
            return Err(InboxError::Invalid("give items to add, or send_checkout_link".into()));
        }
        if items.len() > 50 {
            return Err(InboxError::Invalid("at most 50 items at once".into()));
        }
        let record = self.record(contact).await?;
        if send_link && !window(&record, self.window_secs, now).window_open {
            return Err(InboxError::WindowClosed { templates: self.reply_options(&record, now).templates });
        }
        let request = uuid::Uuid::new_v4().simple().to_string();
        let mut last = None;
        for (i, (sku, quantity)) in items.iter().enumerate() {
            if *quantity == 0 || *quantity > crate::domain::cart::MAX_TYPED_QUANTITY {
                return Err(InboxError::Invalid(format!(
                    "quantity must be 1 to {}",
                    crate::domain::cart::MAX_TYPED_QUANTITY
                )));
            }
            let cmd = CartCommand::Add { sku: sku.clone(), quantity: *quantity };
            let (cart, reply) = self
                .carts
                .apply(contact, &cmd, &format!("agent:{request}:{i}"), agent, now)
                .await?
                .ok_or(InboxError::NoShop)?;
            match &reply {
                CartReply::Added { .. } | CartReply::Updated | CartReply::Shown => {}
                // Items are named by their position: what was typed is never echoed.
                CartReply::UnknownSku { .. } => {
                    return Err(InboxError::Cart(format!("item {}: no product has this SKU", i + 1)))
                }
                CartReply::SoldOut { .. } => return Err(InboxError::Cart(format!("item {}: sold out", i + 1))),
                CartReply::LimitReached { max, .. } => {
                    return Err(InboxError::Cart(format!("the cart limit ({max}) is reached")))
                }
                _ => return Err(InboxError::Cart(format!("item {}: the cart did not take it", i + 1))),
            }
            last = Some(cart);
        }
        let mut checkout_url = None;
        let mut message_id = None;
        if send_link {
            let (cart, reply) = self
                .carts
                .apply(contact, &CartCommand::Checkout, &format!("agent:{request}:checkout"), agent, now)
                .await?
                .ok_or(InboxError::NoShop)?;
            let CartReply::Checkout { url, .. } = &reply else {
                return Err(InboxError::Cart(match reply {
                    CartReply::Empty => "the cart is empty".into(),
                    CartReply::Unavailable { .. } => "nothing in the cart is available any more".into(),
                    _ => "no checkout link could be made from this cart".into(),
                }));
            };
            checkout_url = Some(url.clone());
            let locale = record.locale.clone().unwrap_or_else(|| "de".into());
            let body = self.carts.render(&locale, &cart, &reply);
            let id = agent_message_id(agent, contact, Some(&format!("checkout:{request}")))?;
            message_id = Some(self.send(agent, &record, id, body, Purpose::Reply, now).await?.as_str().to_string());
            self.transition(agent, contact, Command::Replied { agent: agent.to_string() }, "take", now).await?;
            last = Some(cart);
        }
        let cart = last.ok_or(InboxError::Cart("the cart did not change".into()))?;
        let detail = json!({ "skus": items.iter().map(|(s, q)| json!({"sku": s, "quantity": q})).collect::<Vec<_>>(),
            "checkout_link_sent": send_link, "cart_id": cart.id, "message_id": message_id });
        self.audit(contact, agent, "cart", detail).await?;
        Ok(CartOutcome { cart: cart_view(&cart, checkout_url.clone()), checkout_url, message_id })
    }

    pub async fn add_note(&self, agent: &str, contact: &ContactId, text: &str) -> Result<Note, InboxError> {
        let text = text.trim();
        if text.is_empty() || text.chars().count() > crate::store::inbox::MAX_NOTE_CHARS {
            return Err(InboxError::Invalid(format!(
                "a note is 1 to {} characters",
                crate::store::inbox::MAX_NOTE_CHARS
            )));
        }
        self.record(contact).await?;
        let note = self.store.add_note(contact, agent, text, now_ms()).await?;
        self.audit(contact, agent, "note", json!({ "note_id": note.id })).await?;
        Ok(note)
    }

    /// The contact's audit trail, newest first.
    pub async fn audit_trail(&self, contact: &ContactId) -> Result<Vec<AuditEvent>, InboxError> {
        Ok(self.store.audit_events(contact).await?)
    }

    /// Approved templates, for the composer's picker.
    pub fn templates(&self) -> Vec<TemplateInfo> {
        self.templates.iter().map(template_info).collect()
    }

    /// Catalog items whose SKU or title contains `q` (case-insensitive), available first.
    pub async fn catalog(&self, q: &str) -> Result<Vec<CatalogItem>, InboxError> {
        let q = q.trim().to_lowercase();
        let mut items: Vec<CatalogItem> = self
            .carts
            .catalog()
            .await?
            .ok_or(InboxError::NoShop)?
            .into_iter()
            .filter(|i| {
                q.is_empty() || i.sku.as_str().to_lowercase().contains(&q) || i.title.to_lowercase().contains(&q)
            })
            .collect();
        items.sort_by_key(|i| (!i.available, i.title.clone()));
        items.truncate(50);
        Ok(items)
    }
}

/// The id of an agent's message: derived from the client's idempotency key (so a retry is the
/// same message), else fresh.
fn agent_message_id(agent: &str, contact: &ContactId, idempotency_key: Option<&str>) -> Result<OutboundId, InboxError> {
    let id = match idempotency_key.map(str::trim).filter(|k| !k.is_empty()) {
        Some(key) if key.len() > 200 => {
            return Err(InboxError::Invalid("the idempotency key is at most 200 characters".into()))
        }
        Some(key) => {
            use sha2::{Digest, Sha256};
            let digest = Sha256::digest(format!("{agent}\n{}\n{key}", contact.key()).as_bytes());
            format!("a-{}", &hex::encode(digest)[..32])
        }
        None => format!("a-{}", uuid::Uuid::new_v4().simple()),
    };
    OutboundId::parse(id).map_err(|e| InboxError::Invalid(e.to_string()))
}

/// Which consent a template of `category` needs outside the window.
fn purpose_consent(category: TemplateCategory) -> ConsentPurpose {
    match category {
        TemplateCategory::Marketing => ConsentPurpose::Marketing,
        _ => ConsentPurpose::OrderUpdates,
    }
}

/// Tags as CONTRACT.md defines them: lower-case `[a-z0-9_-]{1,40}`.
pub fn parse_tag(t: &str) -> Result<String, InboxError> {
    let t = t.trim().to_lowercase();
    let ok = (1..=40).contains(&t.len())
        && t.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(t)
    } else {
        Err(InboxError::Invalid("tags are 1 to 40 characters of a-z, 0-9, _ and -".into()))
    }
}

/// Adds and removes tags on a contact (agents, the admin API and the shop share it); returns
/// the tags now set, sorted.
pub async fn change_tags(
    store: &Store,
    contact: &ContactId,
    add: &[String],
    remove: &[String],
) -> Result<Vec<String>, InboxError> {
    let add: Vec<String> = add.iter().map(|t| parse_tag(t)).collect::<Result<_, _>>()?;
    let remove: Vec<String> = remove.iter().map(|t| parse_tag(t)).collect::<Result<_, _>>()?;
    for _ in 0..5 {
        let record = store.get_contact(contact).await?.ok_or(InboxError::NotFound)?;
        let mut tags: std::collections::BTreeSet<String> = record.tags.iter().cloned().collect();
        tags.extend(add.iter().cloned());
        for t in &remove {
            tags.remove(t);
        }
        if tags.len() > MAX_TAGS {
            return Err(InboxError::Invalid(format!("at most {MAX_TAGS} tags per contact")));
        }
        let new: Vec<String> = tags.into_iter().collect();
        if new == record.tags {
            return Ok(new);
        }
        if store.replace_tags(contact, &record.tags, &new).await? {
            return Ok(new);
        }
    }
    Err(InboxError::Contended)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_follow_the_contract() {
        assert_eq!(parse_tag(" VIP ").unwrap(), "vip");
        assert_eq!(parse_tag("repeat_buyer-2").unwrap(), "repeat_buyer-2");
        for bad in ["", "with space", "ümlaut", &"x".repeat(41), "a.b"] {
            assert!(parse_tag(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn marketing_templates_need_marketing_consent_and_the_rest_order_updates() {
        assert_eq!(purpose_consent(TemplateCategory::Marketing), ConsentPurpose::Marketing);
        assert_eq!(purpose_consent(TemplateCategory::Utility), ConsentPurpose::OrderUpdates);
    }
}
