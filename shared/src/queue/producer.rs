//! Sends to an SQS FIFO queue in as few `SendMessageBatch` calls as possible, several at once,
//! without ever letting a message group's messages overtake each other.
//!
//! Rules (and where `plan()` enforces them):
//! 1. A batch holds at most 10 entries and at most [`MAX_BATCH_BYTES`] of bodies (SQS limits).
//! 2. A message group lives in exactly one batch when it fits, so batches of different groups
//!    may be sent concurrently: SQS orders a group only within one call or across calls that
//!    follow each other.
//! 3. A group too big for one batch becomes a chain of batches sent one after another.
//! 4. Batches are filled in the order groups first appear, so the request count stays at
//!    `ceil(n / 10)` for the common case of small groups.
use super::Envelope;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use futures::stream::{self, StreamExt, TryStreamExt};

/// SQS limits a batch to 10 entries and 256 KiB in total (bodies and attributes); keep headroom.
pub const MAX_BATCH_ENTRIES: usize = 10;
pub const MAX_BATCH_BYTES: usize = 240 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// SQS could not be reached or refused the call; the caller answers 5xx so the source retries.
    #[error("queue unavailable: {0}")]
    Unavailable(String),
    #[error("queue rejected {failed} of {total} messages: {detail}")]
    Rejected { failed: usize, total: usize, detail: String },
    /// One message alone is larger than SQS accepts: retrying cannot help.
    #[error("a message of {size} bytes exceeds the queue's limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
}

/// One message for a FIFO queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FifoMessage {
    pub group: String,
    pub dedupe_id: String,
    pub body: String,
}

impl From<&Envelope> for FifoMessage {
    fn from(e: &Envelope) -> Self {
        // MessageDeduplicationId = our message id: a re-run within SQS's 5-minute window is
        // dropped by SQS, later ones by the sender's record.
        Self { group: e.group_id(), dedupe_id: e.id.as_str().to_string(), body: e.to_json() }
    }
}

/// What to send: independent units, each a chain of batches sent in order.
fn plan(messages: &[FifoMessage]) -> Result<Vec<Vec<Vec<&FifoMessage>>>, QueueError> {
    if let Some(m) = messages.iter().find(|m| m.body.len() > MAX_BATCH_BYTES) {
        return Err(QueueError::TooLarge { size: m.body.len(), limit: MAX_BATCH_BYTES });
    }
    // Groups in order of first appearance, each with its messages in order.
    let mut groups: Vec<(&str, Vec<&FifoMessage>)> = Vec::new();
    let mut index = std::collections::HashMap::new();
    for m in messages {
        let i = *index.entry(m.group.as_str()).or_insert_with(|| {
            groups.push((m.group.as_str(), Vec::new()));
            groups.len() - 1
        });
        groups[i].1.push(m);
    }
    let fits = |batch: &[&FifoMessage], extra: &[&FifoMessage]| {
        batch.len() + extra.len() <= MAX_BATCH_ENTRIES
            && batch.iter().chain(extra).map(|m| m.body.len()).sum::<usize>() <= MAX_BATCH_BYTES
    };
    let mut units: Vec<Vec<Vec<&FifoMessage>>> = Vec::new();
    let mut open: Vec<&FifoMessage> = Vec::new();
    for (_, msgs) in groups {
        if fits(&[], &msgs) {
            if !fits(&open, &msgs) {
                units.push(vec![std::mem::take(&mut open)]);
            }
            open.extend(msgs);
        } else {
            // Rule 3: a chain of its own.
            let mut chain: Vec<Vec<&FifoMessage>> = vec![Vec::new()];
            for m in msgs {
                if !fits(chain.last().expect("non-empty"), &[m]) {
                    chain.push(Vec::new());
                }
                chain.last_mut().expect("non-empty").push(m);
            }
            units.push(chain);
        }
    }
    if !open.is_empty() {
        units.push(vec![open]);
    }
    Ok(units)
}

/// Sends to one SQS FIFO queue.
#[derive(Clone, Debug)]
pub struct Producer {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    /// How many `SendMessageBatch` calls may be in flight at once.
    concurrency: usize,
}

impl Producer {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        Self { client, queue_url: queue_url.into(), concurrency: 16 }
    }

    pub fn with_concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency.max(1);
        self
    }

    pub fn client(&self) -> &aws_sdk_sqs::Client {
        &self.client
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    /// Enqueues outbound envelopes, each contact's in the given order.
    pub async fn send(&self, envelopes: &[Envelope]) -> Result<(), QueueError> {
        let messages: Vec<FifoMessage> = envelopes.iter().map(FifoMessage::from).collect();
        self.send_messages(&messages).await
    }

    /// Enqueues messages: every group's in the given order, different groups concurrently.
    /// Either all were accepted, or an error says the caller must treat all as not sent.
    pub async fn send_messages(&self, messages: &[FifoMessage]) -> Result<(), QueueError> {
        // Built up front: a lazily mapped stream of borrowing closures trips the compiler's
        // higher-ranked lifetime inference when callers need the future to be `Send`.
        let chains: Vec<_> = plan(messages)?.into_iter().map(|chain| self.send_chain(chain)).collect();
        stream::iter(chains).buffer_unordered(self.concurrency).try_collect::<Vec<()>>().await.map(|_| ())
    }

    async fn send_chain(&self, chain: Vec<Vec<&FifoMessage>>) -> Result<(), QueueError> {
        for batch in chain {
            self.send_batch(&batch).await?;
        }
        Ok(())
    }

    async fn send_batch(&self, batch: &[&FifoMessage]) -> Result<(), QueueError> {
        let entries = batch
            .iter()
            .enumerate()
            .map(|(i, m)| {
                SendMessageBatchRequestEntry::builder()
                    .id(format!("m{i}"))
                    .message_body(m.body.as_str())
                    .message_group_id(m.group.as_str())
                    .message_deduplication_id(m.dedupe_id.as_str())
                    .build()
                    .map_err(|err| QueueError::Unavailable(err.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        send_entries(&self.client, &self.queue_url, entries).await
    }
}

/// One `SendMessageBatch` (FIFO or standard): every entry accepted, or an error naming the
/// failed entries' codes (only the codes: SQS's messages may quote a body).
pub(crate) async fn send_entries(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
    entries: Vec<SendMessageBatchRequestEntry>,
) -> Result<(), QueueError> {
    let total = entries.len();
    let out = client
        .send_message_batch()
        .queue_url(queue_url)
        .set_entries(Some(entries))
        .send()
        .await
        .map_err(|e| QueueError::Unavailable(aws_sdk_sqs::error::DisplayErrorContext(&e).to_string()))?;
    if !out.failed().is_empty() {
        let detail = out.failed().iter().map(|f| f.code().to_string()).collect::<Vec<_>>().join(", ");
        return Err(QueueError::Rejected { failed: out.failed().len(), total, detail });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn msg(group: &str, n: usize, size: usize) -> FifoMessage {
        FifoMessage { group: group.into(), dedupe_id: format!("{group}-{n}"), body: "x".repeat(size) }
    }

    #[test]
    fn small_groups_share_batches() {
        let msgs: Vec<_> = (0..25).map(|i| msg(&format!("g{i}"), 0, 10)).collect();
        let units = plan(&msgs).unwrap();
        assert_eq!(units.len(), 3);
        assert!(units.iter().all(|u| u.len() == 1));
        assert_eq!(units.iter().map(|u| u[0].len()).collect::<Vec<_>>(), vec![10, 10, 5]);
    }

    #[test]
    fn a_group_is_never_split_when_it_fits() {
        // 9 + 3: the group of 3 does not fit behind the 9, so it opens the next batch whole.
        let mut msgs: Vec<_> = (0..9).map(|i| msg("a", i, 10)).collect();
        msgs.extend((0..3).map(|i| msg("b", i, 10)));
        let units = plan(&msgs).unwrap();
        assert_eq!(units.len(), 2);
        assert!(units[1][0].iter().all(|m| m.group == "b"));
    }

    #[test]
    fn a_big_group_is_a_chain_in_order() {
        let msgs: Vec<_> = (0..23).map(|i| msg("a", i, 10)).collect();
        let units = plan(&msgs).unwrap();
        assert_eq!(units.len(), 1);
        assert_eq!(units[0].iter().map(Vec::len).collect::<Vec<_>>(), vec![10, 10, 3]);
        let order: Vec<&str> = units[0].iter().flatten().map(|m| m.dedupe_id.as_str()).collect();
        assert_eq!(order, msgs.iter().map(|m| m.dedupe_id.as_str()).collect::<Vec<_>>());
    }

    #[test]
    fn batches_respect_the_byte_limit_and_oversize_is_refused() {
        let msgs: Vec<_> = (0..4).map(|i| msg(&format!("g{i}"), 0, 100 * 1024)).collect();
        let units = plan(&msgs).unwrap();
        assert!(units.iter().flatten().all(|b| b.iter().map(|m| m.body.len()).sum::<usize>() <= MAX_BATCH_BYTES));
        assert_eq!(units.len(), 2);
        assert!(matches!(plan(&[msg("a", 0, MAX_BATCH_BYTES + 1)]), Err(QueueError::TooLarge { .. })));
    }

    proptest! {
        /// Whatever the mix: every message is planned once, batches obey the limits, and a group
        /// appears in only one unit (so concurrent units can never reorder it), in input order.
        #[test]
        fn plans_keep_every_group_in_one_ordered_unit(spec in prop::collection::vec((0usize..12, 1usize..30_000), 0..120)) {
            let msgs: Vec<_> = spec.iter().enumerate().map(|(i, (g, size))| msg(&format!("g{g}"), i, *size)).collect();
            let units = plan(&msgs).unwrap();
            let planned: Vec<&FifoMessage> = units.iter().flatten().flatten().copied().collect();
            prop_assert_eq!(planned.len(), msgs.len());
            for batch in units.iter().flatten() {
                prop_assert!(!batch.is_empty() && batch.len() <= MAX_BATCH_ENTRIES);
                prop_assert!(batch.iter().map(|m| m.body.len()).sum::<usize>() <= MAX_BATCH_BYTES);
            }
            for g in 0..12 {
                let group = format!("g{g}");
                let holders = units.iter().filter(|u| u.iter().flatten().any(|m| m.group == group)).count();
                prop_assert!(holders <= 1);
                let order: Vec<&str> = units.iter().flatten().flatten().filter(|m| m.group == group).map(|m| m.dedupe_id.as_str()).collect();
                let want: Vec<&str> = msgs.iter().filter(|m| m.group == group).map(|m| m.dedupe_id.as_str()).collect();
                prop_assert_eq!(order, want);
            }
        }
    }
}
