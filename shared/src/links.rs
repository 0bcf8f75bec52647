//! Tracked links as a service: campaign texts and URL-button parameters get short links
//! (`{PARLEY_PUBLIC_BASE_URL}/r/{token}`), and a click on one is counted and answered with the
//! original URL (with its utm parameters). The rules are in [`crate::domain::links`], the items
//! in [`crate::store::links`].
//!
//! Tracking is idempotent: a link's token is derived from (campaign, recipient, URL), so a retried
//! or redriven fan-out finds its links stored already and sends the same short links again.
use crate::config::{ConfigError, LinkSettings};
use crate::domain::links::{find_urls, replace_ranges, LinkToken, TrackableUrl, Untrackable};
use crate::domain::ContactId;
use crate::observability::count;
use crate::store::links::NewLink;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Not a URL that may be tracked (the reason, never the URL).
    #[error("this URL is not tracked: {0}")]
    Untrackable(#[from] Untrackable),
}

/// The campaign a link belongs to: its id (where its clicks are counted) and its `utm_campaign`
/// value (e.g. [`crate::domain::links::utm_slug`] of its name).
#[derive(Debug, Clone, Copy)]
pub struct LinkCampaign<'a> {
    pub id: &'a str,
    pub utm_campaign: &'a str,
}

/// A link made for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackedLink {
    pub token: LinkToken,
    /// What the recipient gets: `{base}/r/{token}`.
    pub short_url: String,
    /// Where it leads: the original URL with its utm parameters.
    pub url: String,
}

/// Mints tracked links (needs the link key and the public base URL).
#[derive(Debug, Clone, Copy)]
pub struct Links<'a> {
    store: &'a Store,
    key: &'a str,
    base_url: &'a str,
}

impl<'a> Links<'a> {
    pub fn new(store: &'a Store, settings: &'a LinkSettings) -> Result<Self, ConfigError> {
        let (key, base_url) = settings.require()?;
        Ok(Self { store, key, base_url: base_url.trim_end_matches('/') })
    }

    /// The public base URL the short links start with (no trailing `/`).
    pub fn base_url(&self) -> &str {
        self.base_url
    }

    pub fn short_url(&self, token: &LinkToken) -> String {
        format!("{}/r/{token}", self.base_url)
    }

    /// One of our own short links: tracking a text twice must not wrap them again.
    fn is_short_link(&self, url: &str) -> bool {
        url.get(..self.base_url.len() + 3)
            .is_some_and(|head| head.eq_ignore_ascii_case(&format!("{}/r/", self.base_url)))
    }

    fn mint(&self, campaign: LinkCampaign<'_>, recipient: &ContactId, url: &str) -> Result<TrackedLink, Untrackable> {
        let original = TrackableUrl::parse(url)?;
        let target = original.with_utm(campaign.utm_campaign)?;
        let token = LinkToken::derive(self.key.as_bytes(), campaign.id, &recipient.key(), original.as_str());
        Ok(TrackedLink { short_url: self.short_url(&token), url: target.to_string(), token })
    }

    async fn store(
        &self,
        campaign: LinkCampaign<'_>,
        recipient: &ContactId,
        link: &TrackedLink,
        now: i64,
    ) -> Result<(), StoreError> {
        let new = NewLink { token: &link.token, url: &link.url, campaign: campaign.id, recipient, created: now };
        if self.store.put_link(&new).await? {
            count("LinksCreated", 1);
        }
        Ok(())
    }

    /// A tracked link for one URL (a URL button's parameter): stored, and its short URL returned.
    /// A URL that may not be tracked is refused ([`LinkError::Untrackable`]); nothing is stored.
    pub async fn track_url(
        &self,
        campaign: LinkCampaign<'_>,
        recipient: &ContactId,
        url: &str,
        now: i64,
    ) -> Result<TrackedLink, LinkError> {
        let link = self.mint(campaign, recipient, url)?;
        self.store(campaign, recipient, &link, now).await?;
        Ok(link)
    }

    /// `text` with every trackable URL in it replaced by its short link for this recipient; other
    /// URLs (and our own short links) are left as they are. The links are stored before the text
    /// is returned, so a message never carries a link that does not answer.
    pub async fn track(
        &self,
        campaign: LinkCampaign<'_>,
        recipient: &ContactId,
        text: &str,
        now: i64,
    ) -> Result<String, StoreError> {
        let mut replacements = Vec::new();
        let mut links: Vec<TrackedLink> = Vec::new();
        for range in find_urls(text) {
            let found = &text[range.clone()];
            if self.is_short_link(found) {
                continue;
            }
            let Ok(link) = self.mint(campaign, recipient, found) else { continue };
            replacements.push((range, link.short_url.clone()));
            if !links.iter().any(|l| l.token == link.token) {
                links.push(link);
            }
        }
        futures::future::try_join_all(links.iter().map(|l| self.store(campaign, recipient, l, now))).await?;
        Ok(replace_ranges(text, &replacements))
    }
}

/// How a short link is being followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visit {
    /// A person's click: counted.
    Click,
    /// A `HEAD` or a link-preview fetcher: answered the same, counted nowhere.
    Preview,
}

/// Where the short link `token` leads, counting the visit if it is a click; `None` for a
/// malformed, unknown or erased token. The answer is only ever the URL stored with the token
/// (checked again to be a trackable URL): nothing in the request can change where it goes.
pub async fn follow(store: &Store, token: &str, visit: Visit, now: i64) -> Result<Option<String>, StoreError> {
    let Some(token) = LinkToken::parse(token) else {
        count("LinkUnknown", 1);
        return Ok(None);
    };
    let link = match visit {
        Visit::Preview => store.get_link(&token).await?,
        Visit::Click => match store.click_link(&token, now).await? {
            Some(click) => {
                count("LinkClicks", 1);
                // The click is on the link already; a lost campaign counter must not cost the
                // person their page.
                if let Err(e) =
                    crate::campaigns::record_click(store, &click.link.campaign, &click.link.recipient, click.first, now)
                        .await
                {
                    tracing::warn!(error = %e, campaign = %click.link.campaign, "link click: campaign counter not updated");
                }
                Some(click.link)
            }
            None => None,
        },
    };
    let Some(link) = link else {
        count("LinkUnknown", 1);
        return Ok(None);
    };
    match TrackableUrl::parse(&link.url) {
        Ok(url) => Ok(Some(url.to_string())),
        Err(why) => {
            // Only a manual edit of the table gets here; the URL itself stays out of the log.
            tracing::error!(reason = %why, campaign = %link.campaign, "tracked link holds a URL that is never redirected to");
            Ok(None)
        }
    }
}
