//! Campaigns: a marketing template sent to a segment, paced, within quiet hours, under a
//! frequency cap. Pure: the campaign, a recipient's facts and the clock in, a decision out.
//!
//! Rules, and where they are enforced:
//! 1. A campaign moves draft → running (or scheduled, with a future `start_at`) → done;
//!    running/scheduled ⇄ paused; anything not finished → cancelled. Nothing leaves done or
//!    cancelled — [`transition`].
//! 2. A recipient gets the message only with confirmed marketing consent and inside the segment
//!    ([`super::segment::Segment::check`]), under the frequency cap across campaigns
//!    ([`FrequencyCap::allows`]), with every template parameter resolved ([`resolve_parameters`]),
//!    and only inside quiet hours in their local time — outside them they wait
//!    ([`QuietHours::next_allowed`]) — all in [`decide_recipient`].
//! 3. The pace per sending number is a token bucket holding at most one second of sends
//!    ([`Bucket::take`]); its state lives in one item, so concurrent dispatchers share it.
use super::segment::{Facts, Segment, Skip};
use serde::{Deserialize, Serialize};

/// Meta's default throughput per number; the upgrade goes to 1000.
pub const DEFAULT_RATE: u32 = 80;
pub const MAX_RATE: u32 = 1000;
/// Messages a number may start per 24 h at Meta's first tier.
pub const DEFAULT_DAILY_CAP: u32 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum State {
    #[default]
    Draft,
    Scheduled,
    Running,
    Paused,
    Cancelled,
    Done,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Draft => "draft",
            State::Scheduled => "scheduled",
            State::Running => "running",
            State::Paused => "paused",
            State::Cancelled => "cancelled",
            State::Done => "done",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Start,
    Pause,
    Resume,
    Cancel,
    /// The dispatcher reached every recipient.
    Finish,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a {from} campaign cannot {action}")]
pub struct BadTransition {
    pub from: &'static str,
    pub action: &'static str,
}

/// Rule 1. `starts_later`: the campaign's `start_at` is in the future.
pub fn transition(from: State, action: Action, starts_later: bool) -> Result<State, BadTransition> {
    use State::*;
    let to = match (from, action) {
        (Draft, Action::Start) | (Paused, Action::Resume) => {
            if starts_later {
                Scheduled
            } else {
                Running
            }
        }
        (Running | Scheduled, Action::Pause) => Paused,
        (Draft | Scheduled | Running | Paused, Action::Cancel) => Cancelled,
        (Running, Action::Finish) => Done,
        // Repeating what already holds is not an error (a retried request).
        (Running | Scheduled, Action::Start | Action::Resume) => from,
        (Paused, Action::Pause) | (Cancelled, Action::Cancel) => from,
        _ => {
            let action = match action {
                Action::Start => "start",
                Action::Pause => "pause",
                Action::Resume => "resume",
                Action::Cancel => "cancel",
                Action::Finish => "finish",
            };
            return Err(BadTransition { from: from.as_str(), action });
        }
    };
    Ok(to)
}

/// Local hours in which marketing may arrive, `[start, end)` in minutes after midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuietHours {
    pub start_minute: u16,
    pub end_minute: u16,
    /// Whether Sundays are allowed.
    #[serde(default)]
    pub sundays: bool,
}

impl Default for QuietHours {
    fn default() -> Self {
        QuietHours { start_minute: 9 * 60, end_minute: 20 * 60, sundays: false }
    }
}

impl QuietHours {
    /// `None` when `now` (unix seconds) is inside the allowed hours in `tz`, else the unix time
    /// when they next begin.
    pub fn next_allowed(&self, now: i64, tz: &jiff::tz::TimeZone) -> Option<i64> {
        let ts = jiff::Timestamp::from_second(now).ok()?;
        let local = ts.to_zoned_datetime(tz.clone());
        let minute = local.hour() as u16 * 60 + local.minute() as u16;
        let allowed_day = |z: &jiff::ZonedDateTime| self.sundays || z.weekday() != jiff::civil::Weekday::Sunday;
        if allowed_day(&local) && minute >= self.start_minute && minute < self.end_minute {
            return None;
        }
        // The next day (today if still before the start) whose start is allowed.
        let mut day = local.date();
        if minute >= self.start_minute {
            day = day.tomorrow().ok()?;
        }
        for _ in 0..8 {
            let start = day
                .at((self.start_minute / 60) as i8, (self.start_minute % 60) as i8, 0, 0)
                .to_zoned_datetime(tz.clone())
                .ok()?;
            if allowed_day(&start) {
                return Some(start.timestamp().as_second());
            }
            day = day.tomorrow().ok()?;
        }
        None
    }

    /// `end` may be `24:00` (the end of the day): `00:00`–`24:00` with Sundays allows every hour.
    pub fn parse(start: &str, end: &str, sundays: bool) -> Result<QuietHours, String> {
        let minutes = |s: &str| -> Result<u16, String> {
            let (h, m) = s.trim().split_once(':').ok_or("times are HH:MM")?;
            let (h, m): (u16, u16) =
                (h.parse().map_err(|_| "times are HH:MM")?, m.parse().map_err(|_| "times are HH:MM")?);
            if h > 23 || m > 59 {
                return Err("times are HH:MM between 00:00 and 23:59 (the end may be 24:00)".into());
            }
            Ok(h * 60 + m)
        };
        let end_minute = if end.trim() == "24:00" { 24 * 60 } else { minutes(end)? };
        let start_minute = minutes(start)?;
        if start_minute >= end_minute {
            return Err("quiet hours: the start must be before the end".into());
        }
        Ok(QuietHours { start_minute, end_minute, sundays })
    }
}

/// At most `max` marketing messages per contact in `days` days, across campaigns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrequencyCap {
    pub max: u32,
    pub days: u32,
}

impl Default for FrequencyCap {
    fn default() -> Self {
        FrequencyCap { max: 2, days: 7 }
    }
}

impl FrequencyCap {
    /// `recent`: unix seconds of the contact's earlier marketing messages.
    pub fn allows(&self, recent: &[i64], now: i64) -> bool {
        let since = now - i64::from(self.days) * 86_400;
        (recent.iter().filter(|t| **t > since).count() as u32) < self.max
    }
}

/// A token bucket per sending number: refills `rate` tokens a second, holds at most `rate`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    pub tokens: f64,
    pub at_ms: i64,
}

impl Bucket {
    /// Takes up to `want` tokens at `now_ms`: how many were granted and the bucket after.
    pub fn take(self, rate: u32, want: u32, now_ms: i64) -> (u32, Bucket) {
        let rate = f64::from(rate.max(1));
        let elapsed = (now_ms - self.at_ms).max(0) as f64 / 1000.0;
        let tokens = (self.tokens + elapsed * rate).min(rate);
        let granted = (tokens.floor() as u32).min(want);
        (granted, Bucket { tokens: tokens - f64::from(granted), at_ms: now_ms })
    }

    /// A full bucket (a number nobody has sent from yet).
    pub fn full(rate: u32, now_ms: i64) -> Bucket {
        Bucket { tokens: f64::from(rate.max(1)), at_ms: now_ms }
    }

    /// Milliseconds until `n` tokens are there.
    pub fn wait_ms(&self, rate: u32, n: u32) -> i64 {
        let missing = (f64::from(n) - self.tokens).max(0.0);
        (missing / f64::from(rate.max(1)) * 1000.0).ceil() as i64
    }
}

/// The fields a template parameter may name (`{{contact.name}}`, `{{contact.first_name}}`, …).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields {
    pub name: Option<String>,
    pub locale: Option<String>,
    pub country: Option<String>,
    pub last_order: Option<String>,
}

pub const FIELD_NAMES: &[&str] =
    &["contact.name", "contact.first_name", "contact.locale", "contact.country", "order.last_name"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parameter {index}: {reason}")]
pub struct ParamError {
    pub index: usize,
    pub reason: String,
}

/// Checks the campaign's parameters when it is created: literals, or `{{field}}` /
/// `{{field|fallback}}` references to known fields.
pub fn check_parameters(params: &[String]) -> Result<(), ParamError> {
    for (i, p) in params.iter().enumerate() {
        if let Some(inner) = reference(p) {
            let field = inner.split('|').next().unwrap_or_default().trim();
            if !FIELD_NAMES.contains(&field) {
                return Err(ParamError {
                    index: i + 1,
                    reason: format!("unknown field; use one of {}", FIELD_NAMES.join(", ")),
                });
            }
        } else if p.trim().is_empty() {
            return Err(ParamError { index: i + 1, reason: "empty".into() });
        }
    }
    Ok(())
}

fn reference(p: &str) -> Option<&str> {
    p.trim().strip_prefix("{{")?.strip_suffix("}}")
}

/// The parameters for one recipient; a reference without a value and without a fallback skips
/// the recipient (never sends a blank).
pub fn resolve_parameters(params: &[String], f: &Fields) -> Option<Vec<String>> {
    params
        .iter()
        .map(|p| match reference(p) {
            None => Some(p.clone()),
            Some(inner) => {
                let (field, fallback) = match inner.split_once('|') {
                    Some((f, d)) => (f.trim(), Some(d.trim().to_string())),
                    None => (inner.trim(), None),
                };
                let value = match field {
                    "contact.name" => f.name.clone(),
                    "contact.first_name" => {
                        f.name.as_deref().and_then(|n| n.split_whitespace().next()).map(str::to_string)
                    }
                    "contact.locale" => f.locale.clone(),
                    "contact.country" => f.country.clone(),
                    "order.last_name" => f.last_order.clone(),
                    _ => None,
                };
                value.filter(|v| !v.trim().is_empty()).or(fallback)
            }
        })
        .collect()
}

/// What happens to one recipient now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Send {
        parameters: Vec<String>,
    },
    Skip(Skip),
    /// Outside quiet hours: try again at this unix time.
    Wait {
        until: i64,
    },
}

/// Rule 2, in this order: consent and segment, frequency cap, parameters, quiet hours.
#[allow(clippy::too_many_arguments)]
pub fn decide_recipient(
    segment: &Segment,
    facts: &Facts,
    cap: &FrequencyCap,
    recent_sends: &[i64],
    params: &[String],
    fields: &Fields,
    quiet: &QuietHours,
    tz: &jiff::tz::TimeZone,
    now: i64,
) -> Decision {
    if let Err(skip) = segment.check(facts) {
        return Decision::Skip(skip);
    }
    if !cap.allows(recent_sends, now) {
        return Decision::Skip(Skip::FrequencyCap);
    }
    let Some(parameters) = resolve_parameters(params, fields) else {
        return Decision::Skip(Skip::MissingParameter);
    };
    match quiet.next_allowed(now, tz) {
        Some(until) => Decision::Wait { until },
        None => Decision::Send { parameters },
    }
}

/// The time zone for a phone's country: the zone most of its people live in (a country with
/// several is approximated by its largest); unknown countries get `fallback`.
pub fn timezone_for_country(country: Option<&str>, fallback: &jiff::tz::TimeZone) -> jiff::tz::TimeZone {
    let name = country.and_then(|c| COUNTRY_ZONES.iter().find(|(cc, _)| cc.eq_ignore_ascii_case(c)).map(|(_, z)| *z));
    name.and_then(|n| jiff::tz::TimeZone::get(n).ok()).unwrap_or_else(|| fallback.clone())
}

const COUNTRY_ZONES: &[(&str, &str)] = &[
    ("DE", "Europe/Berlin"),
    ("AT", "Europe/Vienna"),
    ("CH", "Europe/Zurich"),
    ("NL", "Europe/Amsterdam"),
    ("BE", "Europe/Brussels"),
    ("LU", "Europe/Luxembourg"),
    ("FR", "Europe/Paris"),
    ("IT", "Europe/Rome"),
    ("ES", "Europe/Madrid"),
    ("PT", "Europe/Lisbon"),
    ("GB", "Europe/London"),
    ("IE", "Europe/Dublin"),
    ("DK", "Europe/Copenhagen"),
    ("SE", "Europe/Stockholm"),
    ("NO", "Europe/Oslo"),
    ("FI", "Europe/Helsinki"),
    ("PL", "Europe/Warsaw"),
    ("CZ", "Europe/Prague"),
    ("SK", "Europe/Bratislava"),
    ("HU", "Europe/Budapest"),
    ("SI", "Europe/Ljubljana"),
    ("HR", "Europe/Zagreb"),
    ("RO", "Europe/Bucharest"),
    ("BG", "Europe/Sofia"),
    ("GR", "Europe/Athens"),
    ("TR", "Europe/Istanbul"),
    ("UA", "Europe/Kyiv"),
    ("RU", "Europe/Moscow"),
    ("EE", "Europe/Tallinn"),
    ("LV", "Europe/Riga"),
    ("LT", "Europe/Vilnius"),
    ("US", "America/New_York"),
    ("CA", "America/Toronto"),
    ("MX", "America/Mexico_City"),
    ("BR", "America/Sao_Paulo"),
    ("AR", "America/Argentina/Buenos_Aires"),
    ("CL", "America/Santiago"),
    ("CO", "America/Bogota"),
    ("PE", "America/Lima"),
    ("IN", "Asia/Kolkata"),
    ("ID", "Asia/Jakarta"),
    ("PH", "Asia/Manila"),
    ("SG", "Asia/Singapore"),
    ("MY", "Asia/Kuala_Lumpur"),
    ("TH", "Asia/Bangkok"),
    ("VN", "Asia/Ho_Chi_Minh"),
    ("CN", "Asia/Shanghai"),
    ("HK", "Asia/Hong_Kong"),
    ("JP", "Asia/Tokyo"),
    ("KR", "Asia/Seoul"),
    ("AE", "Asia/Dubai"),
    ("SA", "Asia/Riyadh"),
    ("IL", "Asia/Jerusalem"),
    ("EG", "Africa/Cairo"),
    ("ZA", "Africa/Johannesburg"),
    ("NG", "Africa/Lagos"),
    ("KE", "Africa/Nairobi"),
    ("MA", "Africa/Casablanca"),
    ("AU", "Australia/Sydney"),
    ("NZ", "Pacific/Auckland"),
    ("PK", "Asia/Karachi"),
    ("BD", "Asia/Dhaka"),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::consent::ConsentState;

    fn berlin() -> jiff::tz::TimeZone {
        jiff::tz::TimeZone::get("Europe/Berlin").unwrap()
    }

    /// 2026-12-02 (a Wednesday) at `h:m` in Berlin (UTC+1 in winter), as unix seconds.
    fn wed(h: i64, m: i64) -> i64 {
        1_796_166_000 + h * 3600 + m * 60
    }

    #[test]
    fn the_state_machine_only_moves_forward() {
        assert_eq!(transition(State::Draft, Action::Start, false), Ok(State::Running));
        assert_eq!(transition(State::Draft, Action::Start, true), Ok(State::Scheduled));
        assert_eq!(transition(State::Running, Action::Pause, false), Ok(State::Paused));
        assert_eq!(transition(State::Paused, Action::Resume, false), Ok(State::Running));
        assert_eq!(transition(State::Paused, Action::Cancel, false), Ok(State::Cancelled));
        assert_eq!(transition(State::Running, Action::Finish, false), Ok(State::Done));
        assert!(transition(State::Done, Action::Start, false).is_err());
        assert!(transition(State::Cancelled, Action::Resume, false).is_err());
        assert!(transition(State::Draft, Action::Pause, false).is_err());
        assert_eq!(transition(State::Running, Action::Start, false), Ok(State::Running), "a retried start");
    }

    #[test]
    fn quiet_hours_are_local_and_skip_sundays() {
        let q = QuietHours::default();
        assert_eq!(wed(0, 0) % 86_400, 82_800, "the fixture is Berlin midnight");
        assert_eq!(q.next_allowed(wed(10, 0), &berlin()), None);
        assert_eq!(q.next_allowed(wed(7, 30), &berlin()), Some(wed(9, 0)));
        assert_eq!(q.next_allowed(wed(20, 0), &berlin()), Some(wed(24 + 9, 0)));
        // Saturday 21:00 → Monday 09:00 (Sunday is not allowed by default).
        let sat = wed(3 * 24 + 21, 0);
        assert_eq!(q.next_allowed(sat, &berlin()), Some(wed(5 * 24 + 9, 0)));
        let sundays = QuietHours { sundays: true, ..q };
        assert_eq!(sundays.next_allowed(sat, &berlin()), Some(wed(4 * 24 + 9, 0)));
        // 10:00 in Berlin is 21:00 in Auckland (UTC+13 in December): they wait.
        let auckland = timezone_for_country(Some("NZ"), &berlin());
        assert!(q.next_allowed(wed(10, 0), &auckland).is_some());
        assert_eq!(QuietHours::parse("09:00", "20:00", false), Ok(q));
        assert!(QuietHours::parse("20:00", "09:00", false).is_err());
        assert!(QuietHours::parse("9", "20:00", false).is_err());
        assert!(QuietHours::parse("24:00", "24:00", false).is_err(), "24:00 ends a day, it does not start one");
    }

    #[test]
    fn quiet_hours_until_24_00_with_sundays_allow_every_minute() {
        let all = QuietHours::parse("00:00", "24:00", true).unwrap();
        for minute in [0, 9 * 60, 23 * 60 + 59, 4 * 24 * 60 + 23 * 60 + 59] {
            assert_eq!(all.next_allowed(wed(0, minute), &berlin()), None, "minute {minute}");
        }
        // Until midnight on weekdays only: Sunday 23:59 waits for Monday 00:00.
        let weekdays = QuietHours::parse("00:00", "24:00", false).unwrap();
        assert_eq!(weekdays.next_allowed(wed(4 * 24 + 23, 59), &berlin()), Some(wed(5 * 24, 0)));
        assert_eq!(weekdays.next_allowed(wed(3 * 24 + 23, 59), &berlin()), None, "Saturday 23:59");
    }

    #[test]
    fn the_frequency_cap_counts_the_window_only() {
        let cap = FrequencyCap::default();
        let now = 10 * 86_400;
        assert!(cap.allows(&[now - 86_400], now));
        assert!(!cap.allows(&[now - 86_400, now - 2 * 86_400], now));
        assert!(cap.allows(&[now - 86_400, now - 8 * 86_400], now), "older than 7 days");
    }

    #[test]
    fn the_bucket_never_sends_faster_than_its_rate() {
        let b = Bucket::full(80, 0);
        let (granted, b) = b.take(80, 500, 0);
        assert_eq!(granted, 80, "a second's worth at once");
        let (granted, b) = b.take(80, 500, 100);
        assert_eq!(granted, 8, "then 80 per second");
        let (granted, b) = b.take(80, 500, 100);
        assert_eq!(granted, 0);
        assert_eq!(b.wait_ms(80, 40), 500);
        let (granted, _) = b.take(80, 500, 60_000);
        assert_eq!(granted, 80, "never more than a second's worth stored");
    }

    #[test]
    fn parameters_resolve_per_recipient_with_fallbacks() {
        let params = vec!["{{contact.first_name|du}}".to_string(), "sale".to_string()];
        check_parameters(&params).unwrap();
        let f = Fields { name: Some("Erika Muster".into()), ..Fields::default() };
        assert_eq!(resolve_parameters(&params, &f), Some(vec!["Erika".into(), "sale".into()]));
        assert_eq!(resolve_parameters(&params, &Fields::default()), Some(vec!["du".into(), "sale".into()]));
        assert_eq!(resolve_parameters(&["{{contact.name}}".to_string()], &Fields::default()), None);
        assert!(check_parameters(&["{{contact.phone}}".to_string()]).is_err());
        assert!(check_parameters(&[" ".to_string()]).is_err());
    }

    #[test]
    fn a_recipient_is_checked_in_order() {
        let facts = Facts { marketing: ConsentState::Confirmed, ..Facts::default() };
        let (seg, cap, q) = (Segment::default(), FrequencyCap::default(), QuietHours::default());
        let decide = |facts: &Facts, recent: &[i64], now| {
            decide_recipient(&seg, facts, &cap, recent, &[], &Fields::default(), &q, &berlin(), now)
        };
        assert_eq!(decide(&facts, &[], wed(10, 0)), Decision::Send { parameters: vec![] });
        assert_eq!(decide(&Facts::default(), &[], wed(10, 0)), Decision::Skip(Skip::NoConsent));
        assert_eq!(decide(&facts, &[wed(9, 0), wed(9, 30)], wed(10, 0)), Decision::Skip(Skip::FrequencyCap));
        assert_eq!(decide(&facts, &[], wed(22, 0)), Decision::Wait { until: wed(33, 0) });
    }
}
