//! Campaigns as an application service: create (validated against the approved templates),
//! preview a segment's size, start/pause/resume/cancel, the paced fan-out, the delivery and
//! order hooks, and the report.
//!
//! The fan-out reads top-down as named steps, per page of one audience shard:
//! load the campaign → take send slots from the number's bucket → read a page of the audience →
//! load the contacts → decide each recipient → record them → enqueue the messages → move the
//! cursor → queue the next page.
//!
//! Pace: a DynamoDB token bucket per sending number (`store::campaigns::take_send_slots`). The
//! outbound queue is FIFO, where SQS has no per-message delay, and concurrent chains (one per
//! audience shard, and other campaigns on the same number) must share one pace: one bucket item
//! every chain draws from does both, and a chain that gets no slots comes back after the time
//! the bucket says (a delayed message on the standard campaign queue).
use crate::config::Accounts;
use crate::domain::campaign::{
    check_parameters, decide_recipient, resolve_parameters, timezone_for_country, transition, Action, Decision, Fields,
    FrequencyCap, QuietHours, State, DEFAULT_DAILY_CAP, DEFAULT_RATE, MAX_RATE,
};
use crate::domain::consent::ConsentPurpose;
use crate::domain::segment::{Facts, Segment, Skip};
use crate::domain::templates::{TemplateCategory, Templates};
use crate::domain::{Channel, ContactId, OutboundId, Purpose};
use crate::queue::standard::MAX_DELAY_SECS;
use crate::queue::{Envelope, Producer, QueueError};
use crate::store::campaigns::{CampaignRecord, RecipientRecord, AUDIENCE_SHARDS};
use crate::store::contacts::ContactRecord;
use crate::store::{Store, StoreError};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::{BTreeMap, HashMap};

/// Recipients one page handles at most (one BatchGetItem; a second's worth at 80/s).
pub const PAGE: u32 = 50;
const DONE: &str = "done";

/// Where a campaign's reading of its audience stands.
impl CampaignRecord {
    fn shard_done(&self, shard: u8) -> bool {
        self.cursors.get(&shard.to_string()).map(String::as_str) == Some(DONE)
    }

    /// Every audience shard is read.
    fn all_shards_done(&self) -> bool {
        (0..AUDIENCE_SHARDS).all(|s| self.shard_done(s))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    #[error("no campaign with this id")]
    NotFound,
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    BadTransition(#[from] crate::domain::campaign::BadTransition),
    #[error("the campaign changed at the same time; try again")]
    Contended,
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Queue(#[from] QueueError),
}

impl CampaignError {
    /// What went wrong, for logs and the DLQ: without the stored data a corrupt item's decoding
    /// error may quote (a name, a phone number).
    pub fn reason(&self) -> String {
        match self {
            CampaignError::Store(StoreError::Corrupt(what)) => {
                format!("stored item is corrupt: {}", what.split(':').next().unwrap_or_default())
            }
            other => other.to_string(),
        }
    }

    /// Whether a dispatcher job that failed with it should be retried soon (SQS), or can never
    /// succeed as it is (it goes to the DLQ with its reason).
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            CampaignError::Store(StoreError::Unavailable(_)) | CampaignError::Queue(_) | CampaignError::Contended
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateSpec {
    pub name: String,
    pub language: String,
    #[serde(default)]
    pub parameters: Vec<String>,
}

/// A campaign as created through the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub name: String,
    pub template: TemplateSpec,
    #[serde(default)]
    pub segment: Segment,
    #[serde(default = "default_rate")]
    pub rate_per_second: u32,
    #[serde(default = "default_daily_cap")]
    pub daily_cap: u32,
    #[serde(default)]
    pub start_at: Option<i64>,
    #[serde(default)]
    pub quiet_hours: Option<QuietHoursSpec>,
    #[serde(default)]
    pub frequency_cap: Option<FrequencyCap>,
    #[serde(default = "default_attribution_days")]
    pub attribution_days: u32,
    /// The WhatsApp phone number id it is sent from (default: the first configured).
    #[serde(default)]
    pub account: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuietHoursSpec {
    pub start: String,
    pub end: String,
    #[serde(default)]
    pub sundays: bool,
}

fn default_rate() -> u32 {
    DEFAULT_RATE
}
fn default_daily_cap() -> u32 {
    DEFAULT_DAILY_CAP
}
fn default_attribution_days() -> u32 {
    5
}

impl Spec {
    fn quiet(&self) -> QuietHours {
        self.quiet_hours.as_ref().and_then(|q| QuietHours::parse(&q.start, &q.end, q.sundays).ok()).unwrap_or_default()
    }

    fn cap(&self) -> FrequencyCap {
        self.frequency_cap.unwrap_or_default()
    }
}

/// The campaign service's ports.
pub struct Campaigns<'a> {
    pub store: &'a Store,
    pub outbound: &'a Producer,
    /// The campaign queue (standard SQS) the paced page jobs travel on.
    pub jobs: &'a JobQueue,
    pub templates: &'a Templates,
    pub accounts: &'a Accounts,
    /// Where a recipient whose phone has no known country is (`CAMPAIGN_DEFAULT_TIMEZONE`).
    pub default_tz: &'a jiff::tz::TimeZone,
    /// Mints the recipients' tracked links; `None` (no `PARLEY_LINK_KEY` or public URL): URLs
    /// go out as they are.
    pub links: Option<crate::links::Links<'a>>,
    /// A page's per-recipient writes in flight at most (`CAMPAIGN_PAGE_CONCURRENCY`): each
    /// recipient's writes are its own, so a page of 50 takes a few round trips, not 100.
    pub concurrency: usize,
}

/// A page job on the campaign queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub campaign: String,
    /// An audience shard, or `None` for the pass over recipients waiting for their quiet hours.
    pub shard: Option<u8>,
}

/// The campaign queue: standard SQS, so a job can be delayed (up to 15 minutes).
#[derive(Debug, Clone)]
pub struct JobQueue {
    queue: crate::queue::StandardQueue,
    /// Its dead-letter queue (`PARLEY_CAMPAIGN_DLQ_URL`).
    dlq: Option<String>,
}

/// The message attribute a dead-lettered page job carries its reason in.
pub const DLQ_REASON_ATTRIBUTE: &str = "reason";

impl JobQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        Self { queue: crate::queue::StandardQueue::new(client, url), dlq: None }
    }

    pub fn with_dlq(mut self, dlq: Option<String>) -> Self {
        self.dlq = dlq;
        self
    }

    /// Moves a job that can never succeed to the DLQ at once, its reason in the message
    /// attribute [`DLQ_REASON_ATTRIBUTE`] (ops' DLQ listing shows it). `false`: not moved (no
    /// DLQ configured, or SQS refused); the caller leaves it to the queue's own retries, which
    /// move it there after `maxReceiveCount` receives.
    pub async fn dead_letter(&self, body: &str, reason: &str) -> bool {
        let Some(dlq) = &self.dlq else { return false };
        let attribute = aws_sdk_sqs::types::MessageAttributeValue::builder()
            .data_type("String")
            .string_value(reason)
            .build()
            .expect("data type is set");
        let sent = self
            .client()
            .send_message()
            .queue_url(dlq)
            .message_body(body)
            .message_attributes(DLQ_REASON_ATTRIBUTE, attribute)
            .send()
            .await;
        match sent {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error = %aws_sdk_sqs::error::DisplayErrorContext(&e), "could not move a campaign job to the DLQ");
                false
            }
        }
    }

    pub fn url(&self) -> &str {
        self.queue.url()
    }

    pub fn client(&self) -> &aws_sdk_sqs::Client {
        self.queue.client()
    }

    /// Brings failed jobs back after their own delay (`(message id, receipt handle, seconds)`).
    pub async fn retry_later(&self, delays: Vec<(String, String, u64)>) {
        crate::queue::set_retry_delays(self.client(), self.url(), delays).await;
    }

    pub async fn send(&self, job: &Job, delay_secs: i64) -> Result<(), QueueError> {
        self.queue.send_delayed(&serde_json::to_string(job).expect("job serialises"), delay_secs).await
    }
}

fn spec_of(rec: &CampaignRecord) -> Result<Spec, CampaignError> {
    serde_json::from_str(&rec.spec)
        .map_err(|e| CampaignError::Store(StoreError::Corrupt(format!("campaign spec: {e}"))))
}

/// A contact's phone country (ISO alpha-2), when the phone is known.
fn phone_country(phone: Option<&str>) -> Option<String> {
    let number = phonenumber::parse(None, phone?).ok()?;
    number.country().id().map(|id| format!("{id:?}"))
}

/// The message id of a campaign and a contact: the same on every retry, so it is sent once.
fn message_id(campaign: &str, contact: &ContactId) -> OutboundId {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(contact.key().as_bytes());
    OutboundId::parse(format!("c-{campaign}-{}", &hex::encode(digest)[..16])).expect("a valid id")
}

fn skip_counter(skip: Skip) -> String {
    format!("skipped_{}", skip.as_str())
}

impl Campaigns<'_> {
    /// Validates and stores a draft.
    pub async fn create(&self, spec: Spec, now: i64) -> Result<CampaignRecord, CampaignError> {
        let spec = self.validate(spec)?;
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
        let rec = CampaignRecord {
            id,
            spec: serde_json::to_string(&spec).expect("spec serialises"),
            state: State::Draft,
            version: 0,
            created_at: now,
            started_at: None,
            finished_at: None,
            cursors: Default::default(),
        };
        self.store.create_campaign(&rec).await?;
        Ok(rec)
    }

    fn validate(&self, mut spec: Spec) -> Result<Spec, CampaignError> {
        let bad = |m: String| Err(CampaignError::Invalid(m));
        spec.name = spec.name.trim().to_string();
        if spec.name.is_empty() || spec.name.chars().count() > 200 {
            return bad("name must be 1 to 200 characters".into());
        }
        let Some(def) = self.templates.get(&spec.template.name, &spec.template.language) else {
            return bad("no approved template has this name and language".into());
        };
        if def.category != TemplateCategory::Marketing {
            return bad("campaigns send MARKETING templates only".into());
        }
        if spec.template.parameters.len() != def.param_count() {
            return bad(format!(
                "this template takes {} parameter(s) (body first, then the URL button's), {} given",
                def.param_count(),
                spec.template.parameters.len()
            ));
        }
        check_parameters(&spec.template.parameters).map_err(|e| CampaignError::Invalid(e.to_string()))?;
        // A tracked button's parameter is the page it leads to: it must be a URL we track, or
        // the button would open a short link that answers 404.
        for i in self.tracked_button_params(def) {
            let p = &spec.template.parameters[i];
            if crate::domain::links::TrackableUrl::parse(p).is_err() {
                return bad(format!("parameter {}: this URL button is tracked, so it takes an http(s) URL", i + 1));
            }
        }
        spec.segment = spec.segment.validated().map_err(|e| CampaignError::Invalid(e.to_string()))?;
        if !(1..=MAX_RATE).contains(&spec.rate_per_second) {
            return bad(format!("rate_per_second must be 1 to {MAX_RATE}"));
        }
        if spec.daily_cap == 0 {
            return bad("daily_cap must be at least 1".into());
        }
        if let Some(q) = &spec.quiet_hours {
            QuietHours::parse(&q.start, &q.end, q.sundays).map_err(CampaignError::Invalid)?;
        }
        if spec.frequency_cap.is_some_and(|c| c.max == 0 || c.days == 0 || c.days > 30) {
            return bad("frequency_cap needs max ≥ 1 and 1 to 30 days".into());
        }
        if !(1..=30).contains(&spec.attribution_days) {
            return bad("attribution_days must be 1 to 30".into());
        }
        let account = match &spec.account {
            Some(a) => self.accounts.get(Channel::WhatsApp, a),
            None => self.accounts.iter().find(|a| a.channel == Channel::WhatsApp),
        };
        let Some(account) = account else {
            return bad("no WhatsApp number is configured to send from".into());
        };
        spec.account = Some(account.id.as_str().to_string());
        Ok(spec)
    }

    /// The positions (in the positional parameters) of URL-button parameters that are tracked:
    /// those of buttons whose URL is exactly `{PARLEY_PUBLIC_BASE_URL}/r/{{1}}`.
    fn tracked_button_params(&self, def: &crate::domain::templates::TemplateDef) -> Vec<usize> {
        let Some(links) = &self.links else { return Vec::new() };
        let tracked = format!("{}/r/{{{{1}}}}", links.base_url());
        let dynamic = def.url_buttons.iter().filter(|b| b.is_dynamic());
        (def.body_param_count()..)
            .zip(dynamic)
            .filter(|(_, b)| b.url.eq_ignore_ascii_case(&tracked))
            .map(|(at, _)| at)
            .collect()
    }

    /// One recipient's resolved parameters with their links tracked: URLs in body parameters
    /// become short links; a tracked URL button's parameter (its target URL) becomes the token
    /// of its short link; other button parameters go out as they are (the template fixes where
    /// such a button leads, so it cannot be pointed at a short link).
    async fn track_parameters(
        &self,
        campaign: &str,
        spec: &Spec,
        contact: &ContactId,
        mut params: Vec<String>,
        now: i64,
    ) -> Result<Vec<String>, CampaignError> {
        let (Some(links), Some(def)) = (&self.links, self.templates.get(&spec.template.name, &spec.template.language))
        else {
            return Ok(params);
        };
        let slug = crate::domain::links::utm_slug(&spec.name);
        let lc = crate::links::LinkCampaign { id: campaign, utm_campaign: &slug };
        let body = def.body_param_count().min(params.len());
        for p in &mut params[..body] {
            *p = links.track(lc, contact, p, now).await?;
        }
        for i in self.tracked_button_params(def) {
            let Some(p) = params.get_mut(i) else { continue };
            match links.track_url(lc, contact, p, now).await {
                Ok(link) => *p = link.token.as_str().to_string(),
                Err(crate::links::LinkError::Store(e)) => return Err(e.into()),
                // Checked when the campaign was created; kept as is if it ever gets here.
                Err(crate::links::LinkError::Untrackable(_)) => {}
            }
        }
        Ok(params)
    }

    pub async fn get(&self, id: &str) -> Result<CampaignRecord, CampaignError> {
        self.store.get_campaign(id).await?.ok_or(CampaignError::NotFound)
    }

    /// Start, pause, resume or cancel; a start or resume queues one page job per shard.
    pub async fn act(&self, id: &str, action: Action, now: i64) -> Result<State, CampaignError> {
        for _ in 0..5 {
            let rec = self.get(id).await?;
            let spec = spec_of(&rec)?;
            let later = spec.start_at.is_some_and(|t| t > now);
            let to = transition(rec.state, action, later)?;
            if to == rec.state {
                return Ok(to);
            }
            if !self.store.set_campaign_state(id, rec.version, to, now).await? {
                continue;
            }
            if matches!(to, State::Running | State::Scheduled) {
                let delay = spec.start_at.map(|t| t - now).unwrap_or(0).max(0);
                for shard in 0..AUDIENCE_SHARDS {
                    if !rec.shard_done(shard) {
                        self.jobs.send(&Job { campaign: id.to_string(), shard: Some(shard) }, delay).await?;
                    }
                }
                self.jobs.send(&Job { campaign: id.to_string(), shard: None }, delay.max(1)).await?;
            }
            return Ok(to);
        }
        Err(CampaignError::Contended)
    }

    /// How many contacts the segment reaches now, and why the others are left out.
    pub async fn preview(&self, segment: Segment) -> Result<serde_json::Value, CampaignError> {
        let segment = segment.validated().map_err(|e| CampaignError::Invalid(e.to_string()))?;
        let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
        let mut total = 0u64;
        for shard in 0..AUDIENCE_SHARDS {
            let mut after: Option<String> = None;
            loop {
                let (contacts, more) = self.store.audience_page(shard, after.as_deref(), 100).await?;
                total += contacts.len() as u64;
                let profiles = self.store.contacts_batch(&contacts).await?;
                for (_, facts) in self.facts(&segment, &contacts, &profiles).await? {
                    let key = match segment.check(&facts) {
                        Ok(()) => "matched",
                        Err(s) => s.as_str(),
                    };
                    *counts.entry(key).or_default() += 1;
                }
                after = contacts.last().map(|c| c.key());
                if !more || after.is_none() {
                    break;
                }
            }
        }
        Ok(json!({ "matched": counts.get("matched").copied().unwrap_or(0), "audience": total,
                   "excluded": counts.iter().filter(|(k, _)| **k != "matched").map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>() }))
    }

    /// The facts a segment needs for each contact with a profile (orders and cart only when
    /// asked for).
    async fn facts(
        &self,
        segment: &Segment,
        contacts: &[ContactId],
        profiles: &HashMap<String, ContactRecord>,
    ) -> Result<Vec<(ContactId, Facts)>, CampaignError> {
        // Orders and carts are a request per contact when the segment asks for them: a bounded
        // number at a time.
        let with_profiles = contacts.iter().filter_map(|c| Some((c, profiles.get(&c.key())?)));
        let each: Vec<_> = with_profiles
            .map(|(c, p)| async move {
                let orders = if segment.needs_orders() {
                    self.store
                        .contact_orders(c)
                        .await?
                        .iter()
                        .filter_map(|o| o.order.as_ref())
                        .map(|o| (o.created_at.unwrap_or_default(), o.total.minor))
                        .collect()
                } else {
                    Vec::new()
                };
                let cart =
                    if segment.needs_cart() { self.store.get_cart(c).await?.map(|s| s.cart.status) } else { None };
                let facts = Facts {
                    channel: Some(c.channel),
                    marketing: p.consent.get(ConsentPurpose::Marketing).state,
                    locale: p.locale.clone(),
                    country: phone_country(p.phone.as_deref()),
                    tags: p.tags.clone(),
                    last_inbound_at: p.last_inbound_at,
                    orders,
                    cart,
                };
                Ok::<_, CampaignError>((c.clone(), facts))
            })
            .collect();
        futures::stream::iter(each).buffered(self.concurrency.max(1)).try_collect().await
    }

    /// One page job: the fan-out's named steps (module docs). Returns when the job is done; an
    /// error is retried by SQS. `attempt_of` names the job's message (the same on every receive
    /// of it), so its retry can tell its own cursor move from a duplicate's.
    pub async fn dispatch(&self, job: &Job, attempt_of: &str, now_ms: i64) -> Result<(), CampaignError> {
        let now = now_ms / 1000;
        // Load the campaign.
        let Some(mut rec) = self.store.get_campaign(&job.campaign).await? else { return Ok(()) };
        let spec = spec_of(&rec)?;
        if rec.state == State::Scheduled {
            match spec.start_at {
                Some(t) if t > now => return Ok(self.jobs.send(job, t - now).await?),
                _ => {
                    if self.store.set_campaign_state(&rec.id, rec.version, State::Running, now).await? {
                        rec.version += 1;
                    }
                    rec.state = State::Running;
                }
            }
        }
        if rec.state != State::Running {
            return Ok(()); // paused or ended: resume queues fresh jobs
        }
        let Some(shard) = job.shard else { return self.waiting_pass(&rec, &spec, job, now_ms).await };
        if rec.shard_done(shard) {
            // The record was read for this job: current enough to end the campaign on.
            return self.finish_if_complete(&rec, now).await.map(|_| ());
        }
        let cursor = rec.cursors.get(&shard.to_string()).cloned();
        // Take send slots from the number's bucket.
        let number = spec.account.clone().unwrap_or_default();
        let want = spec.rate_per_second.min(PAGE);
        let (granted, wait_ms) =
            self.store.take_send_slots(&number, spec.rate_per_second, spec.daily_cap, want, now_ms).await?;
        if granted == 0 {
            return Ok(self.jobs.send(job, (wait_ms + 999) / 1000).await?);
        }
        // Read a page of the audience and decide each recipient.
        let page = async {
            let (contacts, more) = self.store.audience_page(shard, cursor.as_deref(), granted as usize).await?;
            let counts = self.handle_recipients(&rec.id, &spec, &contacts, now_ms, false).await?;
            Ok::<_, CampaignError>((contacts, more, counts))
        };
        // Slots the page did not use (its retry takes them again) go back to the daily cap.
        let (contacts, more, counts) = match page.await {
            Ok(page) => page,
            Err(e) => {
                self.store.return_send_slots(&number, granted, now_ms).await;
                return Err(e);
            }
        };
        self.store.return_send_slots(&number, granted.saturating_sub(contacts.len() as u32), now_ms).await;
        // Move the cursor (a duplicate job that lost the race stops here) and queue the next page.
        let next = match contacts.last() {
            Some(last) if more => last.key(),
            _ => DONE.to_string(),
        };
        if !self.store.set_cursor(&rec.id, shard, cursor.as_deref(), &next, attempt_of, &counts).await? {
            return Ok(());
        }
        if next == DONE {
            // Read again: other shards may have finished since this job read the record.
            let rec = self.get(&rec.id).await?;
            self.finish_if_complete(&rec, now).await.map(|_| ())
        } else {
            Ok(self.jobs.send(job, 0).await?)
        }
    }

    /// Decides, records and enqueues a page of recipients; a shard page's counts are returned,
    /// for its cursor move to add.
    ///
    /// Safe to run again after a failure at any step: a recipient is recorded (and counted)
    /// once; one an earlier attempt recorded as queued is enqueued again with the same message
    /// id (the outbound queue's deduplication and the sender's claim send it once), so a
    /// failure between recording and enqueueing loses nobody.
    async fn handle_recipients(
        &self,
        campaign: &str,
        spec: &Spec,
        contacts: &[ContactId],
        now_ms: i64,
        were_waiting: bool,
    ) -> Result<Vec<(String, i64)>, CampaignError> {
        let now = now_ms / 1000;
        let (cap, quiet) = (spec.cap(), spec.quiet());
        // One BatchGetItem for the page: the segment's facts, the fields and the send marks.
        let profiles = self.store.contacts_batch(contacts).await?;
        let facts = self.facts(&spec.segment, contacts, &profiles).await?;
        // This attempt's key: on its recipient records and its counts, so the SDK's repeat of a
        // write that landed all the same (after a timeout) is known as this attempt's own.
        let key = uuid::Uuid::new_v4().simple().to_string();
        // Decide each recipient (pure), then record them all, a bounded number at a time.
        let mut decided: Vec<(ContactId, Decision, Fields, OutboundId, RecipientRecord)> = Vec::new();
        for (contact, facts) in facts {
            let profile = profiles.get(&contact.key());
            // One send per other campaign (a campaign's retried page may have marked twice).
            let mut recent: BTreeMap<String, i64> = BTreeMap::new();
            let marks = profile
                .map(|p| crate::store::campaigns::sends_since(p, now - i64::from(cap.days) * 86_400))
                .unwrap_or_default();
            for (at, c) in marks {
                if c != campaign {
                    let first = recent.entry(c).or_insert(at);
                    *first = (*first).min(at);
                }
            }
            let recent: Vec<i64> = recent.into_values().collect();
            let fields = Fields {
                name: profile.and_then(|p| p.name.clone()),
                locale: profile.and_then(|p| p.locale.clone()),
                country: facts.country.clone(),
                last_order: None,
            };
            let tz = timezone_for_country(facts.country.as_deref(), self.default_tz);
            let decision = decide_recipient(
                &spec.segment,
                &facts,
                &cap,
                &recent,
                &spec.template.parameters,
                &fields,
                &quiet,
                &tz,
                now,
            );
            let (status, reason, due) = match &decision {
                Decision::Send { .. } => ("queued", None, None),
                Decision::Skip(Skip::NotInSegment) => continue, // not a recipient at all
                Decision::Skip(s) => ("skipped", Some(s.as_str().to_string()), None),
                Decision::Wait { until } => ("waiting", None, Some(*until)),
            };
            let id = message_id(campaign, &contact);
            let rec = RecipientRecord {
                contact: contact.key(),
                status: status.to_string(),
                reason,
                error_code: None,
                message_id: matches!(decision, Decision::Send { .. }).then(|| id.as_str().to_string()),
                due_at: due,
                at: now,
                clicks: 0,
                orders: 0,
                w: Some(key.clone()),
                waited: were_waiting,
            };
            decided.push((contact, decision, fields, id, rec));
        }
        // The futures are collected first: a stream over a borrowing closure would not be `Send`
        // for every lifetime (a known limit of the compiler).
        let puts: Vec<_> =
            decided.iter().map(|(contact, _, _, _, rec)| self.store.put_recipient(campaign, contact, rec)).collect();
        let puts: Vec<_> = futures::stream::iter(puts).buffered(self.concurrency.max(1)).collect().await;
        let mut sends: Vec<(ContactId, Vec<String>, OutboundId)> = Vec::new();
        let mut counts: BTreeMap<String, i64> = BTreeMap::new();
        // A failed put fails the page once the others are decided: its retry finds them recorded
        // (a shard page counts them with its cursor move; the waiting pass counted them here).
        let mut failed: Option<StoreError> = None;
        let mut unsure: Vec<ContactId> = Vec::new();
        for ((contact, decision, fields, id, _), put) in decided.into_iter().zip(puts) {
            match put {
                Err(e) => {
                    failed.get_or_insert(e);
                    // It may have landed all the same (a timeout): the waiting pass puts it back.
                    unsure.push(contact);
                    continue;
                }
                // This attempt's own write, repeated by the SDK after a timeout: new.
                Ok(Some(earlier)) if earlier.w.as_deref() == Some(key.as_str()) => {}
                Ok(Some(earlier)) => {
                    // Recorded by an earlier attempt of this page: finish its enqueue (its
                    // decision stands). A shard page counts it now, as it was decided then: its
                    // counts go in with the cursor move, which no earlier attempt made (a page
                    // whose cursor moved is never read again). The waiting pass counted it then.
                    // One the pass has handled since was decided `waiting` by this page: the pass
                    // moved it out of `waiting` in the counters, so it counts in there.
                    if !were_waiting {
                        *counts.entry("recipients".into()).or_default() += 1;
                        let counter = match (earlier.waited, earlier.status.as_str(), earlier.reason.as_deref()) {
                            (true, _, _) | (false, "waiting", _) => "waiting".to_string(),
                            (false, "skipped", Some(reason)) => format!("skipped_{reason}"),
                            _ => "queued".to_string(),
                        };
                        *counts.entry(counter).or_default() += 1;
                    }
                    if earlier.status == "queued" && earlier.message_id.as_deref() == Some(id.as_str()) {
                        if let Some(parameters) = resolve_parameters(&spec.template.parameters, &fields) {
                            sends.push((contact, parameters, id));
                        }
                    }
                    continue;
                }
                Ok(None) => {}
            }
            if !were_waiting {
                *counts.entry("recipients".into()).or_default() += 1;
            } else {
                *counts.entry("waiting".into()).or_default() -= 1;
            }
            match decision {
                Decision::Send { parameters } => {
                    sends.push((contact, parameters, id));
                    *counts.entry("queued".into()).or_default() += 1;
                }
                Decision::Skip(s) => *counts.entry(skip_counter(s)).or_default() += 1,
                Decision::Wait { .. } => *counts.entry("waiting".into()).or_default() += 1,
            }
        }
        let counts: Vec<(String, i64)> = counts.into_iter().collect();
        // A shard page's counts go in with its cursor move (the caller's), once per page. The
        // waiting pass counts as soon as it recorded (a retry finds these recipients queued and
        // counts them no more); the SDK's own repeat of this write is recognised by its key.
        let counted = if were_waiting {
            self.store.add_campaign_counts_once(campaign, "counted_waiting", &key, &counts).await.map(|_| ())
        } else {
            Ok(())
        };
        let was_counted = counted.is_ok();
        let result = match (counted, failed) {
            (Err(e), _) | (Ok(()), Some(e)) => Err(e.into()),
            (Ok(()), None) => self.enqueue(campaign, spec, &sends, &profiles, now_ms).await.map(|()| counts),
        };
        // A page's retry finds its recipients queued and enqueues them; the waiting pass looks
        // for waiting ones only, so its recipients go back to waiting.
        if result.is_err() && were_waiting {
            let contacts: Vec<&ContactId> = sends.iter().map(|(c, _, _)| c).collect();
            self.requeue_lost(campaign, &contacts, now, was_counted).await;
            // Not counted as queued: back to waiting without moving the counters.
            self.requeue_lost(campaign, &unsure.iter().collect::<Vec<_>>(), now, false).await;
        }
        result
    }

    /// Tracks the links of, marks and enqueues a page's messages.
    async fn enqueue(
        &self,
        campaign: &str,
        spec: &Spec,
        sends: &[(ContactId, Vec<String>, OutboundId)],
        profiles: &HashMap<String, ContactRecord>,
        now_ms: i64,
    ) -> Result<(), CampaignError> {
        let now = now_ms / 1000;
        let account = crate::domain::AccountId::parse(spec.account.clone().unwrap_or_default())
            .map_err(|e| CampaignError::Invalid(e.to_string()))?;
        // Each recipient's links and send mark are its own writes: a bounded number at a time,
        // in page order. The first failure fails the page (its retry does them all again: the
        // links and the message ids are the same, the marks are a set).
        let each: Vec<_> = sends
            .iter()
            .map(|(contact, parameters, id)| {
                let account = &account;
                async move {
                    let parameters = self.track_parameters(campaign, spec, contact, parameters.clone(), now).await?;
                    let Some(body) = self.templates.body(&spec.template.name, &spec.template.language, &parameters)
                    else {
                        return Ok(None);
                    };
                    self.store.mark_marketing_send(contact, profiles.get(&contact.key()), campaign, now_ms).await?;
                    Ok::<_, CampaignError>(Some(Envelope {
                        v: crate::queue::ENVELOPE_VERSION,
                        id: id.clone(),
                        account: account.clone(),
                        contact: contact.clone(),
                        purpose: Purpose::Marketing,
                        body,
                        fallback: None,
                        withheld: None,
                        in_reply_to: None,
                        created_at: now,
                        created_ms: Some(now_ms),
                        campaign: Some(campaign.to_string()),
                        author: None,
                    }))
                }
            })
            .collect();
        let envelopes: Vec<Option<Envelope>> =
            futures::stream::iter(each).buffered(self.concurrency.max(1)).try_collect().await?;
        let envelopes: Vec<Envelope> = envelopes.into_iter().flatten().collect();
        if !envelopes.is_empty() {
            self.outbound.send(&envelopes).await?;
        }
        Ok(())
    }

    /// The recipients of a waiting pass that failed after they were recorded as queued go back
    /// to waiting (due now), so the pass picks them up again; once counted as queued, they
    /// count as waiting again.
    async fn requeue_lost(&self, campaign: &str, contacts: &[&ContactId], now: i64, counted: bool) {
        let mut back = 0i64;
        for contact in contacts {
            let rec = RecipientRecord {
                contact: contact.key(),
                status: "waiting".into(),
                reason: None,
                error_code: None,
                message_id: None,
                due_at: Some(now),
                at: now,
                clicks: 0,
                orders: 0,
                w: None,
                waited: true,
            };
            // Overwrites the queued record (not conditional: it is ours).
            match self.store.put_recipient_unconditional(campaign, contact, &rec).await {
                Ok(()) => back += 1,
                Err(e) => tracing::warn!(error = %e, "a recipient of a failed page could not be put back to waiting"),
            }
        }
        if counted && back > 0 {
            let counts = [("queued".to_string(), -back), ("waiting".to_string(), back)];
            if let Err(e) = self.store.add_campaign_counts(campaign, &counts).await {
                tracing::warn!(error = %e, "the counts of a failed page could not be corrected");
            }
        }
    }

    /// Recipients waiting for their quiet hours: decided again once due.
    ///
    /// The pass reads the campaign's due-time index (`gsi2`, keys only, sorted by due time): the
    /// recipients due now and the next one's due time — never the whole campaign, however many
    /// wait. Nobody waiting is one empty Query every 30 s.
    async fn waiting_pass(
        &self,
        rec: &CampaignRecord,
        spec: &Spec,
        job: &Job,
        now_ms: i64,
    ) -> Result<(), CampaignError> {
        let now = now_ms / 1000;
        let shards_done = rec.all_shards_done();
        let waiting = self.store.due_recipients(&rec.id, now, PAGE as usize).await?;
        crate::observability::count("CampaignWaitingChecked", waiting.read);
        let due: Vec<ContactId> = waiting
            .due
            .iter()
            .filter_map(|key| {
                key.split_once('#').and_then(|(channel, address)| ContactId::from_path(channel, address).ok())
            })
            .collect();
        if !due.is_empty() {
            let number = spec.account.clone().unwrap_or_default();
            let (granted, wait_ms) = self
                .store
                .take_send_slots(&number, spec.rate_per_second, spec.daily_cap, due.len() as u32, now_ms)
                .await?;
            if granted == 0 {
                return Ok(self.jobs.send(job, (wait_ms + 999) / 1000).await?);
            }
            let taken = (granted as usize).min(due.len());
            if let Err(e) = self.handle_recipients(&rec.id, spec, &due[..taken], now_ms, true).await {
                self.store.return_send_slots(&number, granted, now_ms).await;
                return Err(e);
            }
            if waiting.more || taken < due.len() {
                // More are due: come back at once (the bucket paces).
                return Ok(self.jobs.send(job, 0).await?);
            }
            // Everyone due is decided: what follows is as if none had been.
        }
        if waiting.next_due.is_none() && shards_done {
            if self.finish_if_complete(rec, now).await? {
                return Ok(());
            }
            // The counters still see someone waiting whom the index does not show (yet: it is
            // eventually consistent, and a shard's last page may have just recorded them):
            // look again, or nobody would.
            return Ok(self.jobs.send(job, 30).await?);
        }
        let delay = waiting.next_due.map(|d| d - now).unwrap_or(60).clamp(1, MAX_DELAY_SECS);
        Ok(self.jobs.send(job, if shards_done { delay } else { delay.min(30) }).await?)
    }

    /// Done once every shard is read and nobody waits any more. `false` while the campaign
    /// runs on: a shard is still read, or the counters see someone waiting. `rec` is the
    /// caller's current read of the campaign (the state change is conditional on its version:
    /// a stale one changes nothing, and the next job decides again).
    async fn finish_if_complete(&self, rec: &CampaignRecord, now: i64) -> Result<bool, CampaignError> {
        if rec.state != State::Running {
            return Ok(true); // ended, or paused (resume queues fresh jobs)
        }
        if !rec.all_shards_done() {
            return Ok(false);
        }
        let waiting = self.store.campaign_counts(&rec.id).await?.get("waiting").copied().unwrap_or(0);
        if waiting <= 0 {
            self.store.set_campaign_state(&rec.id, rec.version, State::Done, now).await?;
            return Ok(true);
        }
        Ok(false)
    }

    /// The newest campaigns with their progress: one Query for the list, one BatchGetItem for
    /// their counters.
    pub async fn list(&self, limit: usize) -> Result<Vec<serde_json::Value>, CampaignError> {
        let recs = self.store.list_campaigns(limit).await?;
        let ids: Vec<&str> = recs.iter().map(|r| r.id.as_str()).collect();
        let counts = self.store.campaigns_counts(&ids).await?;
        let none = Default::default();
        Ok(recs
            .iter()
            .map(|rec| {
                let spec = spec_of(rec).ok();
                let c = counts.get(&rec.id).unwrap_or(&none);
                let get = |k: &str| c.get(k).copied().unwrap_or(0).max(0);
                let skipped: i64 = c.iter().filter(|(k, _)| k.starts_with("skipped_")).map(|(_, v)| (*v).max(0)).sum();
                json!({
                    "id": rec.id, "name": spec.as_ref().map(|s| s.name.as_str()).unwrap_or_default(),
                    "state": rec.state, "template": spec.as_ref().map(|s| s.template.name.as_str()),
                    "created_at": rec.created_at, "start_at": spec.as_ref().and_then(|s| s.start_at),
                    "started_at": rec.started_at, "finished_at": rec.finished_at,
                    "recipients": get("recipients"), "queued": get("queued"), "sent": get("sent"),
                    "delivered": get("delivered"), "read": get("read"), "failed": get("failed"),
                    "skipped": skipped, "quiet_hours_pending": get("waiting"),
                })
            })
            .collect())
    }

    /// The report (CONTRACT.md `GET /campaigns/{id}`), with rates and failure reasons.
    pub async fn report(&self, id: &str) -> Result<serde_json::Value, CampaignError> {
        let rec = self.get(id).await?;
        let spec = spec_of(&rec)?;
        let c = self.store.campaign_counts(id).await?;
        let get = |k: &str| c.get(k).copied().unwrap_or(0).max(0);
        let recipients = get("recipients");
        let skipped: BTreeMap<String, i64> = c
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix("skipped_")?.to_string(), *v)))
            .chain(std::iter::once(("quiet_hours_pending".to_string(), get("waiting"))))
            .collect();
        let failed_by_code: Vec<serde_json::Value> = c
            .iter()
            .filter_map(|(k, v)| {
                let code: i64 = k.strip_prefix("failed_code_")?.parse().ok()?;
                Some(json!({ "code": code, "count": v, "reason": crate::domain::failure::failure_reason(Some(code)) }))
            })
            .collect();
        let revenue: BTreeMap<String, i64> =
            c.iter().filter_map(|(k, v)| Some((k.strip_prefix("revenue_")?.to_string(), *v))).collect();
        let sent = get("sent");
        let per_recipient: BTreeMap<String, i64> =
            revenue.iter().map(|(cur, v)| (cur.clone(), if sent > 0 { v / sent } else { 0 })).collect();
        let rate = |x: i64| if sent > 0 { (x as f64 / sent as f64 * 10_000.0).round() / 10_000.0 } else { 0.0 };
        Ok(json!({
            "id": rec.id, "name": spec.name, "state": rec.state, "template": spec.template.name,
            "language": spec.template.language, "segment": spec.segment, "start_at": spec.start_at,
            "created_at": rec.created_at, "started_at": rec.started_at, "finished_at": rec.finished_at,
            "recipients": recipients, "queued": get("queued"), "sent": sent, "delivered": get("delivered"),
            "read": get("read"), "failed": get("failed"), "failed_by_code": failed_by_code, "skipped": skipped,
            "clicks_total": get("clicks_total"), "clicks_unique": get("clicks_unique"),
            "click_rate": rate(get("clicks_unique")), "replies": get("replies"), "opt_outs": get("opt_outs"),
            "orders": get("orders"), "conversion_rate": rate(get("orders")), "revenue": revenue,
            "revenue_per_recipient": per_recipient,
        }))
    }
}

/// Delivery hooks: the sender and the status webhooks report a campaign message's progress.
pub async fn record_delivery(store: &Store, env: &Envelope, status: &str, code: Option<i64>) -> Result<(), StoreError> {
    let Some(campaign) = env.campaign.as_deref() else { return Ok(()) };
    let rank = match status {
        "sent" => 1,
        "delivered" => 2,
        "read" => 3,
        "failed" => 4,
        _ => return Ok(()),
    };
    let Some(old) = store.advance_recipient(campaign, &env.contact, status, rank, code).await? else { return Ok(()) };
    let mut counts = Vec::new();
    let metric = match rank {
        1 => "CampaignSent",
        2 => "CampaignDelivered",
        3 => "CampaignRead",
        _ => "CampaignFailed",
    };
    crate::observability::count_campaign(campaign, metric, 1);
    if rank == 4 {
        counts.push(("failed".to_string(), 1));
        if let Some(c) = code {
            counts.push((format!("failed_code_{c}"), 1));
        }
    } else {
        for (level, name) in [(1, "sent"), (2, "delivered"), (3, "read")] {
            if old < level && rank >= level {
                counts.push((name.to_string(), 1));
            }
        }
    }
    store.add_campaign_counts(campaign, &counts).await
}

/// A campaign message the sender dropped (the customer said STOP while it waited): the
/// recipient counts as skipped for that reason.
pub async fn record_skip(store: &Store, env: &Envelope, skip: Skip) -> Result<(), StoreError> {
    let Some(campaign) = env.campaign.as_deref() else { return Ok(()) };
    if store.advance_recipient(campaign, &env.contact, "skipped", 5, None).await?.is_some() {
        store.add_campaign_counts(campaign, &[(skip_counter(skip), 1), ("queued".to_string(), -1)]).await?;
    }
    Ok(())
}

/// An order by a contact who got a campaign message within its attribution window (last touch)
/// counts for that campaign, once. Orders that came from a chat cart are the cart's.
pub async fn attribute_order(
    store: &Store,
    contact: &ContactId,
    order_key: &str,
    total: &crate::domain::Money,
    now: i64,
) -> Result<Option<String>, StoreError> {
    let sends = store.marketing_sends(contact, now - 30 * 86_400).await?;
    let Some((at, campaign)) = sends.into_iter().next() else { return Ok(None) };
    let Some(rec) = store.get_campaign(&campaign).await? else { return Ok(None) };
    let days = spec_of(&rec).map(|s| s.attribution_days).unwrap_or(5);
    if now - at > i64::from(days) * 86_400 {
        return Ok(None);
    }
    if !store.claim_campaign_order(&campaign, order_key).await? {
        return Ok(Some(campaign));
    }
    let counts = vec![("orders".to_string(), 1), (format!("revenue_{}", total.currency.as_str()), total.minor)];
    store.add_campaign_counts(&campaign, &counts).await?;
    store.bump_recipient(&campaign, contact, "orders").await?;
    crate::observability::count_campaign(&campaign, "CampaignOrders", 1);
    Ok(Some(campaign))
}

/// The campaign whose attribution window is open for a send at `at` (unix seconds), if any.
async fn within_window(store: &Store, campaign: &str, at: i64, now: i64) -> Result<bool, StoreError> {
    let Some(rec) = store.get_campaign(campaign).await? else { return Ok(false) };
    let days = spec_of(&rec).map(|s| s.attribution_days).unwrap_or(5);
    Ok(at <= now && now - at <= i64::from(days) * 86_400)
}

/// A click on a campaign's tracked link: counted on the recipient (`clicks`), and on the
/// campaign (`clicks_total`, and `clicks_unique` for the recipient's first click on any of the
/// campaign's links — marked on the recipient item in the same write). A link minted outside a
/// fan-out has no recipient item: its own first click stands in (`link_first`).
pub async fn record_click(
    store: &Store,
    campaign: &str,
    recipient: &ContactId,
    link_first: bool,
    now: i64,
) -> Result<(), StoreError> {
    let first = store.mark_recipient(campaign, recipient, "first_click_at", Some("clicks"), now).await?;
    store.count_campaign_click(campaign, first.unwrap_or(link_first)).await?;
    crate::observability::count_campaign(campaign, "CampaignClicks", 1);
    Ok(())
}

/// An inbound message from a contact whose profile names their latest campaign: a reply to it
/// within the attribution window counts once per recipient (`replies`).
///
/// Why here: the inbound path's contact touch returns the profile anyway, and the fan-out
/// writes `last_campaign`/`last_campaign_at` on it with the send mark — so a contact who got
/// no campaign costs nothing extra, and one who did costs a campaign read and one conditional
/// write. (Counting lazily at report time would read every recipient's profile per report.)
pub async fn record_reply(store: &Store, profile: &ContactRecord, now: i64) -> Result<bool, StoreError> {
    let (Some(campaign), Some(at)) = (profile.last_campaign.as_deref(), profile.last_campaign_at) else {
        return Ok(false);
    };
    if now - at > 30 * 86_400 || !within_window(store, campaign, at, now).await? {
        return Ok(false);
    }
    let contact = ContactId::new(profile.channel, profile.address.clone());
    if store.mark_recipient(campaign, &contact, "replied_at", None, now).await? != Some(true) {
        return Ok(false);
    }
    store.add_campaign_counts(campaign, &[("replies".to_string(), 1)]).await?;
    crate::observability::count_campaign(campaign, "CampaignReplies", 1);
    Ok(true)
}

/// Marketing consent was just revoked: if the contact's newest campaign send is within its
/// attribution window, it counts as an opt-out of that campaign (once per recipient). Runs only
/// where consent changes are written, which is rare, so the send-mark query costs nothing on
/// the hot path.
pub async fn record_opt_out(store: &Store, contact: &ContactId, now: i64) -> Result<bool, StoreError> {
    let sends = store.marketing_sends(contact, now - 30 * 86_400).await?;
    let Some((at, campaign)) = sends.into_iter().next() else { return Ok(false) };
    if !within_window(store, &campaign, at, now).await? {
        return Ok(false);
    }
    if store.mark_recipient(&campaign, contact, "opted_out_at", None, now).await? != Some(true) {
        return Ok(false);
    }
    store.add_campaign_counts(&campaign, &[("opt_outs".to_string(), 1)]).await?;
    crate::observability::count_campaign(&campaign, "CampaignOptOuts", 1);
    Ok(true)
}

/// Whether a consent change's audit events revoke marketing (STOP, a preferences stop, 131050).
pub fn revokes_marketing(events: &[crate::store::consent::ConsentAuditEvent]) -> bool {
    events
        .iter()
        .any(|e| e.purpose == ConsentPurpose::Marketing && e.to == crate::domain::consent::ConsentState::Revoked)
}

/// The campaign dispatcher's SQS handler: each record is a page job. A job whose step failed
/// for a passing reason is reported as a batch item failure (SQS retries it after its delay);
/// one that can never succeed as it is (unreadable, a corrupt campaign) goes to the DLQ at once
/// with its reason, to be redriven once the cause is fixed — or, if that move fails, is retried
/// until the queue moves it there itself. Never dropped: each page job is its shard's chain.
pub async fn handle_jobs(
    app: &crate::api::App,
    event: aws_lambda_events::event::sqs::SqsEvent,
) -> aws_lambda_events::event::sqs::SqsBatchResponse {
    let mut response = aws_lambda_events::event::sqs::SqsBatchResponse::default();
    let campaigns = match app.campaigns() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "campaign dispatcher without its queue");
            for rec in &event.records {
                if let Some(id) = &rec.message_id {
                    response.add_failure(id.clone());
                }
            }
            return response;
        }
    };
    let campaigns = &campaigns;
    let results = futures::future::join_all(event.records.iter().map(|rec| async move {
        let job: Job = match rec.body.as_deref().map(serde_json::from_str::<Job>) {
            Some(Ok(j)) => j,
            Some(Err(e)) => {
                crate::observability::count("CampaignJobRejected", 1);
                let reason = format!("unreadable job: {}", crate::privacy::describe_json_error(&e));
                return (rec, Err(Failed::Permanent(reason)));
            }
            None => {
                crate::observability::count("CampaignJobRejected", 1);
                return (rec, Err(Failed::Permanent("unreadable job: no body".into())));
            }
        };
        let attempt_of = rec.message_id.as_deref().unwrap_or_default();
        let result = campaigns.dispatch(&job, attempt_of, crate::time_util::now_millis()).await;
        (
            rec,
            result.map_err(|e| if e.retryable() { Failed::Passing(e.reason()) } else { Failed::Permanent(e.reason()) }),
        )
    }))
    .await;
    let mut delays = Vec::new();
    for (rec, result) in results {
        let (delay, reason) = match result {
            Ok(()) => continue,
            Err(Failed::Passing(reason)) => (retry_delay(rec), reason),
            Err(Failed::Permanent(reason)) => {
                crate::observability::count("CampaignJobFailed", 1);
                tracing::error!(message_id = ?rec.message_id, reason, "campaign page job can never succeed as it is");
                if campaigns.jobs.dead_letter(rec.body.as_deref().unwrap_or_default(), &reason).await {
                    crate::observability::count("CampaignJobDeadLettered", 1);
                    continue;
                }
                // Not moved: the queue's own retries move it there (template.yaml).
                (MAX_RETRY_DELAY_SECS, reason)
            }
        };
        tracing::warn!(reason, delay, "campaign page failed; it comes back after the delay");
        crate::observability::count("CampaignJobRetried", 1);
        if let Some(id) = &rec.message_id {
            response.add_failure(id.clone());
            if let Some(handle) = &rec.receipt_handle {
                delays.push((id.clone(), handle.clone(), delay));
            }
        }
    }
    // The job is its shard's whole chain: a passing throttle must cost it seconds, not the
    // queue's visibility timeout (minutes).
    campaigns.jobs.retry_later(delays).await;
    crate::observability::flush();
    response
}

/// How a page job failed (with its [`CampaignError::reason`]).
enum Failed {
    /// Retried after its delay.
    Passing(String),
    /// Can never succeed as it is: to the DLQ.
    Permanent(String),
}

/// The first retry of a failed page job after 1 s, then 2, 4 … up to [`MAX_RETRY_DELAY_SECS`]
/// (the n-th receive waits 2^(n-1) s). The campaign queue's own receive count (template.yaml)
/// then gives about half an hour of outage before a job moves to the DLQ.
fn retry_delay(rec: &aws_lambda_events::event::sqs::SqsMessage) -> u64 {
    let n: u32 = rec.attributes.get("ApproximateReceiveCount").and_then(|v| v.parse().ok()).unwrap_or(1);
    2u64.saturating_pow(n.saturating_sub(1).min(16)).min(MAX_RETRY_DELAY_SECS)
}

/// The longest retry delay of a page job: the queue's visibility timeout (template.yaml).
const MAX_RETRY_DELAY_SECS: u64 = 180;

#[cfg(test)]
mod tests {
    use super::*;

    fn received(n: u32) -> aws_lambda_events::event::sqs::SqsMessage {
        let mut m = aws_lambda_events::event::sqs::SqsMessage::default();
        m.attributes.insert("ApproximateReceiveCount".into(), n.to_string());
        m
    }

    #[test]
    fn a_failed_page_job_comes_back_within_seconds_then_backs_off_to_the_visibility_timeout() {
        let delays: Vec<u64> = (1..=10).map(|n| retry_delay(&received(n))).collect();
        assert_eq!(delays, vec![1, 2, 4, 8, 16, 32, 64, 128, 180, 180]);
        assert_eq!(retry_delay(&aws_lambda_events::event::sqs::SqsMessage::default()), 1, "no count: the first");
        assert_eq!(retry_delay(&received(u32::MAX)), MAX_RETRY_DELAY_SECS);
    }
}
