//! A contact's conversation history, read from the records the message loop writes anyway: the
//! inbound claims and the outbound records (with their provider records for delivery status),
//! all under the contact in `gsi1`, sorted by time (`H#{ts}#…`). Newest page first, paged back.
use super::{keys, s, Store, StoreError};
use crate::domain::failure::failure_reason;
use crate::domain::history::Entry;
use crate::domain::ContactId;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;
use std::collections::HashMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    In,
    Out,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MessageError {
    pub code: Option<i64>,
    pub reason: String,
}

/// One message of the thread.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    pub id: String,
    pub direction: Direction,
    pub kind: String,
    pub text: String,
    /// Unix seconds (the channel's timestamp inbound, the enqueue time outbound).
    pub at: i64,
    /// `customer`, `bot`, or `agent:<id>`.
    pub author: String,
    /// `received` (inbound); `queued`, `sending`, `sent`, `delivered`, `read`, `failed` (outbound).
    pub status: String,
    pub error: Option<MessageError>,
    pub template: Option<String>,
}

/// A page of the thread, oldest first; `next_before` fetches the older page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Page {
    pub messages: Vec<Message>,
    pub next_before: Option<String>,
}

type Item = HashMap<String, AttributeValue>;

fn attr<'a>(item: &'a Item, k: &str) -> Option<&'a str> {
    item.get(k).and_then(|v| v.as_s().ok()).map(String::as_str)
}

fn num(item: &Item, k: &str) -> Option<i64> {
    item.get(k).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok())
}

/// The message key of a history item: a provider record (`…#S`) belongs to its message.
fn message_key(sk: &str) -> &str {
    sk.strip_suffix("#S").unwrap_or(sk)
}

fn error_of(item: &Item) -> Option<MessageError> {
    let code = num(item, "error_code");
    let reason = match code {
        Some(_) => failure_reason(code).to_string(),
        None => attr(item, "detail")?.to_string(),
    };
    Some(MessageError { code, reason })
}

/// Folds a message's items (its record, and for outbound its provider record) into one.
fn fold(key: &str, items: &[&Item]) -> Option<Message> {
    let inbound = key.contains("#I#");
    let main = items.iter().find(|i| attr(i, "hist").is_some())?;
    let entry = Entry::from_json(attr(main, "hist")?)?;
    let at = num(main, "at").unwrap_or_default();
    let id = key.rsplit('#').next().unwrap_or_default().to_string();
    if inbound {
        return Some(Message {
            id,
            direction: Direction::In,
            kind: entry.kind,
            text: entry.text,
            at,
            author: "customer".into(),
            status: "received".into(),
            error: None,
            template: None,
        });
    }
    let record = attr(main, "status").unwrap_or("queued");
    let delivery = items.iter().find(|i| attr(i, "sk") == Some("PM"));
    let (status, error) = match (record, delivery) {
        ("failed", _) => ("failed".to_string(), error_of(main)),
        ("dropped", _) => ("failed".to_string(), error_of(main)),
        ("retry", _) => ("sending".to_string(), None),
        ("sent", Some(pm)) => {
            let st = attr(pm, "status").unwrap_or("sent").to_string();
            let err = (st == "failed").then(|| error_of(pm)).flatten();
            (st, err)
        }
        (other, _) => (other.to_string(), None),
    };
    Some(Message {
        id,
        direction: Direction::Out,
        kind: entry.kind,
        text: entry.text,
        at,
        author: entry.author.unwrap_or_else(|| "bot".into()),
        status,
        error,
        template: entry.template,
    })
}

/// Every history message among a contact's `gsi1` items (export), oldest first.
pub(crate) fn fold_all(items: &[Item]) -> Vec<Message> {
    let mut grouped: std::collections::BTreeMap<String, Vec<&Item>> = std::collections::BTreeMap::new();
    for item in items {
        if let Some(sk) = attr(item, "gsi1sk").filter(|sk| sk.starts_with(keys::HISTORY_PREFIX)) {
            grouped.entry(message_key(sk).to_string()).or_default().push(item);
        }
    }
    grouped.iter().filter_map(|(k, v)| fold(k, v)).collect()
}

impl Store {
    /// Up to `limit` messages before the cursor `before` (a `next_before` of an earlier page), or
    /// the newest ones; oldest first.
    pub async fn history(&self, contact: &ContactId, before: Option<&str>, limit: usize) -> Result<Page, StoreError> {
        let limit = limit.clamp(1, 200);
        let upper = match before {
            Some(b) if b.starts_with(keys::HISTORY_PREFIX) => b.to_string(),
            Some(_) => return Ok(Page { messages: Vec::new(), next_before: None }),
            None => format!("{}~", keys::HISTORY_PREFIX),
        };
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(keys::GSI1)
            .key_condition_expression("gsi1pk = :pk AND gsi1sk BETWEEN :lo AND :hi")
            .expression_attribute_values(":pk", s(keys::contact_pk(contact)))
            .expression_attribute_values(":lo", s(keys::HISTORY_PREFIX))
            .expression_attribute_values(":hi", s(&upper))
            .scan_index_forward(false)
            // A message is at most two items (its record and its provider record), plus one to
            // know whether an older page exists.
            .limit((limit * 2 + 2) as i32);
        let mut order: Vec<String> = Vec::new();
        let mut items: HashMap<String, Vec<Item>> = HashMap::new();
        let mut start = None;
        let mut more = false;
        'pages: loop {
            let page = query.clone().set_exclusive_start_key(start.take()).send().await.map_err(StoreError::sdk)?;
            for item in page.items.unwrap_or_default() {
                let Some(sk) = attr(&item, "gsi1sk").map(str::to_string) else { continue };
                if sk == upper {
                    continue; // the last message of the previous page
                }
                let key = message_key(&sk).to_string();
                if !items.contains_key(&key) {
                    if order.len() == limit {
                        more = true;
                        break 'pages;
                    }
                    order.push(key.clone());
                }
                items.entry(key).or_default().push(item);
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        let next_before = if more { order.last().cloned() } else { None };
        let mut messages: Vec<Message> =
            order.iter().filter_map(|k| fold(k, &items[k].iter().collect::<Vec<_>>())).collect();
        messages.reverse();
        Ok(Page { messages, next_before })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pairs: &[(&str, &str)]) -> Item {
        pairs.iter().map(|(k, v)| (k.to_string(), AttributeValue::S(v.to_string()))).collect()
    }

    #[test]
    fn an_outbound_message_takes_its_delivery_status_from_the_provider_record() {
        let hist = Entry { kind: "text".into(), text: "Hallo".into(), author: None, template: None, media: None };
        let mut out = item(&[("sk", "OUT"), ("status", "sent"), ("hist", &hist.to_json())]);
        out.insert("at".into(), AttributeValue::N("100".into()));
        let mut pm = item(&[("sk", "PM"), ("status", "failed")]);
        pm.insert("error_code".into(), AttributeValue::N("131026".into()));
        let m = fold("H#0000000100#O#r-1", &[&pm, &out]).unwrap();
        assert_eq!((m.id.as_str(), m.status.as_str(), m.author.as_str(), m.at), ("r-1", "failed", "bot", 100));
        assert_eq!(m.error.unwrap().reason, failure_reason(Some(131026)));
        let read = item(&[("sk", "PM"), ("status", "read")]);
        assert_eq!(fold("H#0000000100#O#r-1", &[&out, &read]).unwrap().status, "read");
    }

    #[test]
    fn a_dropped_message_says_why_and_an_inbound_one_is_the_customers() {
        let hist = Entry {
            kind: "text".into(),
            text: "x".into(),
            author: Some("agent:a".into()),
            template: None,
            media: None,
        }
        .to_json();
        let dropped =
            item(&[("sk", "OUT"), ("status", "dropped"), ("detail", "no consent for this purpose"), ("hist", &hist)]);
        let m = fold("H#0000000100#O#a-1", &[&dropped]).unwrap();
        assert_eq!((m.status.as_str(), m.author.as_str()), ("failed", "agent:a"));
        assert_eq!(m.error, Some(MessageError { code: None, reason: "no consent for this purpose".into() }));
        let inbound = item(&[("sk", "IN"), ("status", "done"), ("hist", &hist)]);
        let m = fold("H#0000000100#I#abcdef", &[&inbound]).unwrap();
        assert_eq!((m.direction, m.author.as_str(), m.status.as_str()), (Direction::In, "customer", "received"));
        assert_eq!(message_key("H#1#O#x#S"), "H#1#O#x");
    }
}
