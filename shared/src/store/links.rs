//! Tracked links and their clicks. One item per link (`LINK#{token}` / `LINK`): the URL it
//! redirects to (already with its utm parameters), the campaign, the recipient, when it was made,
//! and its clicks. It is listed under the recipient in `gsi1`, so export and erase find it (an
//! erased recipient's links answer 404 from then on), and expires with the history retention.
//!
//! A click is one conditional `UpdateItem` on the link: it counts the click, sets the first-click
//! time only if there is none yet, and returns the item as it was — so the request learns the
//! URL, and whether this was the recipient's first click on it, from one atomic write (two
//! clicks at once cannot both be the first). An unknown or erased token fails the condition and
//! creates nothing. The campaign's counters (`CAMP#{id}` / `STATS`: `clicks_total`,
//! `clicks_unique`) are then added to with `ADD`.
use super::{applied, keys, n, s, Store, StoreError};
use crate::domain::links::LinkToken;
use crate::domain::{Address, Channel, ContactId};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use std::collections::HashMap;

type Item = HashMap<String, AttributeValue>;

/// A link to store.
#[derive(Debug, Clone)]
pub struct NewLink<'a> {
    pub token: &'a LinkToken,
    /// Where it redirects: the original URL with its utm parameters.
    pub url: &'a str,
    pub campaign: &'a str,
    pub recipient: &'a ContactId,
    pub created: i64,
}

/// A stored link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLink {
    pub token: LinkToken,
    pub url: String,
    pub campaign: String,
    pub recipient: ContactId,
    pub created: i64,
    /// Clicks so far (every one, the same person's repeated clicks too).
    pub clicks: u64,
    /// When the recipient first clicked it; `None`: never.
    pub first_click_at: Option<i64>,
}

/// What one click did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Click {
    /// The link as it was before this click.
    pub link: StoredLink,
    /// The recipient's first click on this link (it counts as unique).
    pub first: bool,
}

/// A campaign's click counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CampaignClicks {
    pub total: u64,
    /// Clicks that were a recipient's first on a link.
    pub unique: u64,
}

fn attr<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name).and_then(|v| v.as_s().ok()).map(String::as_str)
}

fn number(item: &Item, name: &str) -> Option<i64> {
    item.get(name).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok())
}

/// The recipient from its key (`{channel}#{address}`, [`ContactId::key`]).
fn recipient(key: &str) -> Option<ContactId> {
    let (channel, address) = key.split_once('#')?;
    let channel: Channel = channel.parse().ok()?;
    Some(ContactId::new(channel, Address::parse(address).ok()?))
}

fn stored_link(token: &LinkToken, item: &Item) -> Result<StoredLink, StoreError> {
    // Never the item itself in the error: it holds the URL and the recipient.
    let corrupt = |what: &str| StoreError::Corrupt(format!("tracked link: {what}"));
    Ok(StoredLink {
        token: token.clone(),
        url: attr(item, "url").ok_or_else(|| corrupt("no url"))?.to_string(),
        campaign: attr(item, "campaign").ok_or_else(|| corrupt("no campaign"))?.to_string(),
        recipient: attr(item, "recipient").and_then(recipient).ok_or_else(|| corrupt("bad recipient"))?,
        created: number(item, "created").unwrap_or_default(),
        clicks: number(item, "clicks").unwrap_or_default().max(0) as u64,
        first_click_at: number(item, "first_click_at"),
    })
}

impl Store {
    /// Stores a link unless its token is stored already (the same campaign, recipient and URL
    /// give the same token): a retried fan-out leaves the existing link and its clicks alone.
    /// `true` when it was created now.
    pub async fn put_link(&self, link: &NewLink<'_>) -> Result<bool, StoreError> {
        let ttl = link.created + self.retention.as_secs() as i64;
        let put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(keys::link_pk(link.token)))
            .item("sk", s(keys::LINK))
            .item("url", s(link.url))
            .item("campaign", s(link.campaign))
            .item("recipient", s(link.recipient.key()))
            .item("created", n(link.created))
            .item("gsi1pk", s(keys::contact_pk(link.recipient)))
            .item("gsi1sk", s(keys::link_gsi1sk(link.token)))
            .item("ttl", n(ttl))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        Ok(applied(put)?.is_some())
    }

    /// A link without counting anything (`HEAD`, link-preview fetchers).
    pub async fn get_link(&self, token: &LinkToken) -> Result<Option<StoredLink>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(keys::link_pk(token)))
            .key("sk", s(keys::LINK))
            .send()
            .await
            .map_err(StoreError::sdk)?;
        out.item.as_ref().map(|item| stored_link(token, item)).transpose()
    }

    /// Counts a click on the link (see the module's notes); `None`: no such link.
    pub async fn click_link(&self, token: &LinkToken, now: i64) -> Result<Option<Click>, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(keys::link_pk(token)))
            .key("sk", s(keys::LINK))
            .update_expression(
                "ADD clicks :one SET first_click_at = if_not_exists(first_click_at, :now), last_click_at = :now",
            )
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":now", n(now))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        let Some(out) = applied(out)? else { return Ok(None) };
        let link = stored_link(token, &out.attributes.unwrap_or_default())?;
        Ok(Some(Click { first: link.first_click_at.is_none(), link }))
    }

    /// Adds one click (and one unique click when it was the recipient's first) to the campaign's
    /// counters.
    pub async fn count_campaign_click(&self, campaign: &str, first: bool) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(keys::campaign_pk(campaign)))
            .key("sk", s(keys::CAMPAIGN_STATS))
            .update_expression("ADD clicks_total :one, clicks_unique :first")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":first", n(u8::from(first)))
            .send()
            .await
            .map_err(StoreError::sdk)?;
        Ok(())
    }

    /// The campaign's click counters (zero before the first click).
    pub async fn campaign_clicks(&self, campaign: &str) -> Result<CampaignClicks, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(keys::campaign_pk(campaign)))
            .key("sk", s(keys::CAMPAIGN_STATS))
            .projection_expression("clicks_total, clicks_unique")
            .consistent_read(true)
            .send()
            .await
            .map_err(StoreError::sdk)?;
        let item = out.item.unwrap_or_default();
        let count = |k| number(&item, k).unwrap_or_default().max(0) as u64;
        Ok(CampaignClicks { total: count("clicks_total"), unique: count("clicks_unique") })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_are_read_back_from_their_key() {
        let c = ContactId::from_path("whatsapp", "4915123456789").unwrap();
        assert_eq!(recipient(&c.key()), Some(c));
        let m = ContactId::new(Channel::Messenger, Address::parse("2400000000000001").unwrap());
        assert_eq!(recipient(&m.key()), Some(m));
        assert_eq!(recipient("nochannel"), None);
        assert_eq!(recipient("fax#123"), None);
    }

    #[test]
    fn a_corrupt_item_is_reported_without_its_contents() {
        let token = LinkToken::derive(b"k", "c", "r", "u");
        let item = Item::from([
            ("url".to_string(), s("https://shop.example/?key=s3cr3t")),
            ("recipient".to_string(), s("whatsapp#4915123456789")),
        ]);
        let e = stored_link(&token, &item).unwrap_err().to_string();
        assert!(e.contains("no campaign"), "{e}");
        assert!(!e.contains("s3cr3t") && !e.contains("4915123456789"), "{e}");
    }
}
