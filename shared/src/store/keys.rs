//! Key builders: the only place that knows how items are addressed.
use crate::domain::{Channel, ContactId, InboundMessageId, OutboundId, ProviderMessageId};

pub const PROFILE: &str = "PROFILE";
/// pk and sk of the item `Store::ping` reads; never written.
pub const PING: &str = "PING";

pub fn contact_pk(c: &ContactId) -> String {
    format!("C#{}", c.key())
}

/// An inbound claim is keyed by a hash of the message id: a WhatsApp `wamid` encodes the
/// sender's number, and the claim must keep deduplicating after that person is erased (so a
/// late re-delivery does not bring them back) without naming them.
pub fn inbound_pk(channel: Channel, id: &InboundMessageId) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(id.as_str().as_bytes());
    format!("IN#{channel}#{}", &hex::encode(digest)[..40])
}

/// A reference from a contact's partition to an item of theirs that lives elsewhere and cannot
/// be listed in `gsi1` (its `gsi1` slot is taken, e.g. a checkout in the reminder index).
/// Erase and export follow it; the referenced key is in `ref_pk` / `ref_sk`.
pub fn ref_sk(target_pk: &str) -> String {
    format!("REF#{target_pk}")
}
pub const REF_PREFIX: &str = "REF#";

pub fn outbound_pk(id: &OutboundId) -> String {
    format!("OUT#{id}")
}

pub fn provider_pk(id: &ProviderMessageId) -> String {
    format!("PM#{id}")
}

/// Where erased contacts' consent proof is kept, under a keyed hash of the address.
pub fn pseudonym_pk(pseudonym: &str) -> String {
    format!("P#{pseudonym}")
}

/// GSI `gsi1`: a contact's message records (`gsi1pk` = the contact's pk), so an erase or an
/// export finds them without a scan.
pub const GSI1: &str = "gsi1";

/// A shop webhook delivery (dedupe), by platform, shop and delivery id.
pub fn shop_delivery_pk(platform: &str, shop: &str, delivery_id: &str) -> String {
    format!("DLV#{platform}#{shop}#{delivery_id}")
}

/// Notification state of one shop order.
pub fn order_pk(platform: &str, shop: &str, order_id: u64) -> String {
    format!("O#{platform}#{shop}#{order_id}")
}

/// The reconciler's watermark for one shop.
pub fn reconcile_pk(platform: &str, shop: &str) -> String {
    format!("RECON#{platform}#{shop}")
}

/// History entries sort by time in a contact's `gsi1` partition (`gsi1sk` begins with `H#`).
pub const HISTORY_PREFIX: &str = "H#";

/// An inbound message's history key: time, then a short hash of its id (never the id itself).
/// Times are milliseconds. The channel stamps a customer's message in whole seconds, so within its
/// second it sorts by when Parley took it (`received_ms`): two messages of one second keep the
/// order they arrived in, and the replies (stamped when enqueued, later) come after them.
pub fn history_in_sk(ts: i64, received_ms: i64, channel: Channel, id: &InboundMessageId) -> String {
    let pk = inbound_pk(channel, id);
    let hash = pk.rsplit('#').next().unwrap_or_default();
    let second = ts.max(0) * 1000;
    let ms = second + (received_ms - second).clamp(0, 999);
    format!("H#{ms:013}#I#{}", &hash[..hash.len().min(16)])
}

/// An outbound message's history key (its record), by when it was enqueued (milliseconds).
pub fn history_out_sk(created_ms: i64, id: &OutboundId) -> String {
    format!("H#{:013}#O#{id}", created_ms.max(0))
}

/// The provider record of an outbound message: sorts right after the message's own record.
pub fn history_status_sk(created_ms: i64, id: &OutboundId) -> String {
    format!("{}#S", history_out_sk(created_ms, id))
}

/// The team inbox (sparse, in `gsi1`): a contact profile is listed under its conversation state
/// once a person was involved, sorted by when it started waiting (waiting) or last changed.
pub fn inbox_pk(state: crate::domain::inbox::State) -> String {
    format!("INBOX#{}", state.as_str())
}

pub fn inbox_sk(ts: i64, contact: &ContactId) -> String {
    format!("{:010}#{}", ts.max(0), contact.key())
}

/// A tracked link (`GET /r/{token}`), by its token; sk [`LINK`]. Listed under its recipient in
/// `gsi1` (gsi1sk [`link_gsi1sk`]), so export and erase find it.
pub fn link_pk(token: &crate::domain::links::LinkToken) -> String {
    format!("LINK#{token}")
}
pub const LINK: &str = "LINK";
pub fn link_gsi1sk(token: &crate::domain::links::LinkToken) -> String {
    format!("LINK#{token}")
}

/// A campaign's items live under `CAMP#{id}`; its counters (clicks, …) on sk [`CAMPAIGN_STATS`].
pub fn campaign_pk(campaign_id: &str) -> String {
    format!("CAMP#{campaign_id}")
}
pub const CAMPAIGN_STATS: &str = "STATS";
