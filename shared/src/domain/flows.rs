//! Brand-editable keyword and button flows: one TOML file per flow set and locale
//! (`<set>.<locale>.toml`), validated against the channel limits when loaded so that a bad
//! edit fails at start-up instead of at send time.
use super::consent::{self, ConsentReply};
use super::message::{Button, ListRow, ListSection, OutboundBody};
use crate::config::ConfigError;
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// Words other parts of Parley answer before any flow: the consent words (`consent::*_WORDS`)
/// and the cart commands. A flow or handover keyword equal to one of them would shadow or be
/// shadowed by them.
pub const RESERVED_KEYWORDS: &[&str] = &[
    "start",
    "anmelden",
    "stop",
    "stopp",
    "abmelden",
    "unsubscribe",
    "abbestellen",
    "yes",
    "no",
    "ja",
    "nein",
    "add",
    "cart",
    "warenkorb",
    "remove",
    "clear",
    "checkout",
    "kasse",
];

/// Used when a file has no `handover.keywords`.
pub const DEFAULT_HANDOVER_KEYWORDS: &[&str] =
    &["help", "agent", "human", "support", "hilfe", "mensch", "mitarbeiter", "mitarbeiterin"];

/// WhatsApp limits (Cloud API reply-button and list message pages).
pub const MAX_BUTTONS: usize = 3;
pub const MAX_BUTTON_TITLE: usize = 20;
pub const MAX_BUTTON_ID: usize = 256;
pub const MAX_LIST_BUTTON: usize = 20;
pub const MAX_LIST_SECTIONS: usize = 10;
pub const MAX_SECTION_TITLE: usize = 24;
pub const MAX_LIST_ROWS: usize = 10;
pub const MAX_ROW_ID: usize = 200;
pub const MAX_ROW_TITLE: usize = 24;
pub const MAX_ROW_DESCRIPTION: usize = 72;
pub const MAX_TEXT: usize = 4096;
/// Interactive bodies: the list page says 4096, the OpenAPI spec 1024; the smaller one is safe.
pub const MAX_INTERACTIVE_TEXT: usize = 1024;

pub(crate) const EMBEDDED: &[(&str, &str, &str)] = &[
    ("default", "de", include_str!("../../../config/flows/default.de.toml")),
    ("default", "en", include_str!("../../../config/flows/default.en.toml")),
];

/// Lowercases and strips punctuation, symbols and emoji, so that `"Lieferzeit?? 🚚"` and
/// `"lieferzeit"` compare equal. Words are separated by single spaces.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut gap = false;
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            if gap && !out.is_empty() {
                out.push(' ');
            }
            gap = false;
            out.push(c);
        } else if is_combining_mark(c) {
            // Decomposed input (e.g. macOS "u" + U+0308) must match the composed keyword "ü".
            if !gap {
                if let Some(base) = out.pop() {
                    out.push(compose(base, c).unwrap_or(base));
                }
            }
        } else if !matches!(c, '\'' | '’' | '`' | '´') {
            // Apostrophes join ("geht's" → "gehts"); everything else separates words.
            gap = true;
        }
    }
    out
}

fn is_combining_mark(c: char) -> bool {
    matches!(c, '\u{0300}'..='\u{036F}')
}

fn compose(base: char, mark: char) -> Option<char> {
    let table: &[(char, &str)] = &[
        ('\u{0308}', "aäeëiïoöuüyÿ"),
        ('\u{0301}', "aáeéiíoóuúyý"),
        ('\u{0300}', "aàeèiìoòuù"),
        ('\u{0302}', "aâeêiîoôuû"),
        ('\u{0303}', "aãnñoõ"),
        ('\u{0327}', "cç"),
    ];
    let (_, pairs) = table.iter().find(|(m, _)| *m == mark)?;
    let chars: Vec<char> = pairs.chars().collect();
    chars.chunks(2).find(|p| p[0] == base).map(|p| p[1])
}

/// A keyword or phrase, as normalised words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phrase(Vec<String>);

impl Phrase {
    fn new(raw: &str) -> Self {
        Self(normalize(raw).split(' ').filter(|w| !w.is_empty()).map(str::to_string).collect())
    }
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The normalised text is exactly this phrase.
    pub fn equals(&self, words: &[&str]) -> bool {
        self.0.len() == words.len() && self.0.iter().zip(words).all(|(a, b)| a == b)
    }
    /// The phrase occurs in the text as whole words.
    pub fn occurs_in(&self, words: &[&str]) -> bool {
        !self.0.is_empty() && words.windows(self.0.len()).any(|w| self.equals(w))
    }
    pub fn as_string(&self) -> String {
        self.0.join(" ")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Flow {
    pub id: String,
    pub keywords: Vec<Phrase>,
    pub payloads: Vec<String>,
    pub reply: OutboundBody,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Handover {
    pub keywords: Vec<Phrase>,
    /// Button or list row ids that hand the chat over, e.g. a "talk to a person" button.
    pub payloads: Vec<String>,
    pub reply: OutboundBody,
    /// Sent when an agent hands the chat back to the bot.
    pub released: OutboundBody,
}

/// One validated flows file. Fields are private so every `FlowSet` has passed validation,
/// which is what lets the engine send its replies without re-checking channel limits.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowSet {
    set: String,
    locale: String,
    flows: Vec<Flow>,
    fallback: OutboundBody,
    handover: Handover,
    media: OutboundBody,
    location: OutboundBody,
    unsupported: OutboundBody,
    order_received: OutboundBody,
    consent: ConsentTexts,
}

/// The `[consent]` section: what the double opt-in says, and extra words that start it.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsentTexts {
    question: OutboundBody,
    welcome: OutboundBody,
    declined: OutboundBody,
    stop_ack: OutboundBody,
    already_confirmed: OutboundBody,
    expired: OutboundBody,
    start_keywords: Vec<String>,
}

impl ConsentTexts {
    /// The message for a consent decision's reply. `Question` is always the YES/NO buttons
    /// message (`consent::PAYLOAD_YES` / `PAYLOAD_NO`), checked at load.
    pub fn reply(&self, r: ConsentReply) -> &OutboundBody {
        match r {
            ConsentReply::Question => &self.question,
            ConsentReply::Welcome => &self.welcome,
            ConsentReply::Declined => &self.declined,
            ConsentReply::StopAck => &self.stop_ack,
            ConsentReply::AlreadyConfirmed => &self.already_confirmed,
            ConsentReply::Expired => &self.expired,
        }
    }

    /// Extra opt-in words besides START/ANMELDEN, normalised (for `consent::classify`).
    pub fn start_keywords(&self) -> &[String] {
        &self.start_keywords
    }
}

impl FlowSet {
    /// Parses and validates one file. Every broken rule is reported, not just the first.
    pub fn parse(set: &str, locale: &str, src: &str) -> Result<FlowSet, ConfigError> {
        let file = format!("{set}.{locale}.toml");
        let err = |reason: String| ConfigError::Flows { file: file.clone(), reason };
        let set = check_name(set).map_err(|r| err(format!("set name {r}")))?;
        let locale = canonical_locale(locale)
            .ok_or_else(|| err(format!("locale '{locale}' is not a language code like 'de', 'en' or 'pt_br'")))?;
        let raw: RawFile = toml::from_str(src).map_err(|e| err(e.to_string().trim_end().to_string()))?;
        let mut v = Validator::default();
        let flows_set = v.build(set, locale, raw);
        if v.errors.is_empty() {
            Ok(flows_set)
        } else {
            Err(err(v.errors.join("; ")))
        }
    }

    pub fn set(&self) -> &str {
        &self.set
    }
    pub fn locale(&self) -> &str {
        &self.locale
    }
    /// In file order, which is matching order.
    pub fn flows(&self) -> &[Flow] {
        &self.flows
    }
    pub fn flow(&self, id: &str) -> Option<&Flow> {
        self.flows.iter().find(|f| f.id == id)
    }
    /// For text no flow understands.
    pub fn fallback(&self) -> &OutboundBody {
        &self.fallback
    }
    pub fn handover(&self) -> &Handover {
        &self.handover
    }
    pub fn media(&self) -> &OutboundBody {
        &self.media
    }
    pub fn location(&self) -> &OutboundBody {
        &self.location
    }
    pub fn unsupported(&self) -> &OutboundBody {
        &self.unsupported
    }
    /// For a WhatsApp catalog cart, until carts are handled in the chat.
    pub fn order_received(&self) -> &OutboundBody {
        &self.order_received
    }
    pub fn consent(&self) -> &ConsentTexts {
        &self.consent
    }
}

/// Every loaded flow set, found by set name and locale.
#[derive(Debug, Clone)]
pub struct Flows {
    // Never empty, so `for_locale` always has an answer.
    sets: Vec<FlowSet>,
}

impl Flows {
    /// The files shipped in `config/flows/`, compiled into the binary.
    pub fn embedded() -> Result<Flows, ConfigError> {
        let sets = EMBEDDED
            .iter()
            .map(|(set, locale, src)| FlowSet::parse(set, locale, src))
            .collect::<Result<Vec<_>, _>>()?;
        Self::from_sets(sets)
    }

    pub fn from_toml(set: &str, locale: &str, src: &str) -> Result<Flows, ConfigError> {
        Self::from_sets(vec![FlowSet::parse(set, locale, src)?])
    }

    pub fn from_sets(sets: Vec<FlowSet>) -> Result<Flows, ConfigError> {
        let mut seen = HashSet::new();
        for s in &sets {
            if !seen.insert((s.set.clone(), s.locale.clone())) {
                return Err(ConfigError::Flows {
                    file: format!("{}.{}.toml", s.set, s.locale),
                    reason: "the same set and locale is loaded twice".into(),
                });
            }
        }
        if sets.is_empty() {
            return Err(ConfigError::Flows { file: "(none)".into(), reason: "no flow sets".into() });
        }
        Ok(Flows { sets })
    }

    /// Reads every `<set>.<locale>.toml` in `dir` (other extensions are ignored).
    pub fn load_dir(dir: impl AsRef<Path>) -> Result<Flows, ConfigError> {
        let dir = dir.as_ref();
        let io_err = |file: &Path, e: std::io::Error| ConfigError::Flows {
            file: file.display().to_string(),
            reason: e.to_string(),
        };
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
            let path = entry.map_err(|e| io_err(dir, e))?.path();
            if path.is_file() && path.extension().is_some_and(|e| e == "toml") {
                paths.push(path);
            }
        }
        // Directory order is arbitrary; keep loading (and thus "any" fallback) deterministic.
        paths.sort();
        let mut sets = Vec::new();
        for path in &paths {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let stem = name.strip_suffix(".toml").unwrap_or(&name);
            let Some((set, locale)) = stem.rsplit_once('.') else {
                return Err(ConfigError::Flows {
                    file: path.display().to_string(),
                    reason: "file name must be <set>.<locale>.toml, e.g. default.de.toml".into(),
                });
            };
            let src = std::fs::read_to_string(path).map_err(|e| io_err(path, e))?;
            sets.push(FlowSet::parse(set, locale, &src).map_err(|e| match e {
                ConfigError::Flows { reason, .. } => ConfigError::Flows { file: path.display().to_string(), reason },
                other => other,
            })?);
        }
        if sets.is_empty() {
            return Err(ConfigError::Flows {
                file: dir.display().to_string(),
                reason: "no <set>.<locale>.toml files in this directory".into(),
            });
        }
        Self::from_sets(sets)
    }

    /// The set for a contact's locale. `de_DE` finds `de`; a missing locale falls back to `de`,
    /// then to any locale of the set; a missing set falls back to `default`, then to any set.
    pub fn for_locale(&self, set: &str, locale: &str) -> &FlowSet {
        let wanted = canonical_locale(locale).unwrap_or_default();
        let primary = wanted.split('_').next().unwrap_or_default().to_string();
        let find = |set: &str| {
            let in_set = || self.sets.iter().filter(move |s| s.set == set);
            in_set()
                .find(|s| s.locale == wanted)
                .or_else(|| in_set().find(|s| s.locale == primary))
                .or_else(|| in_set().find(|s| s.locale == "de"))
                .or_else(|| in_set().next())
        };
        find(set).or_else(|| find("default")).unwrap_or(&self.sets[0])
    }

    pub fn sets(&self) -> &[FlowSet] {
        &self.sets
    }
}

/// The text of any non-template body.
fn body_text(body: &OutboundBody) -> &str {
    match body {
        OutboundBody::Text { text } | OutboundBody::Buttons { text, .. } | OutboundBody::List { text, .. } => text,
        OutboundBody::Template { .. } => "",
    }
}

/// The text contains one of the (normalised) phrases as whole words.
fn mentions<'a>(text: &str, phrases: impl IntoIterator<Item = &'a str>) -> bool {
    let normalized = normalize(text);
    let words: Vec<&str> = normalized.split(' ').filter(|w| !w.is_empty()).collect();
    phrases.into_iter().any(|p| Phrase::new(p).occurs_in(&words))
}

fn check_name(s: &str) -> Result<String, String> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-') {
        Ok(s.to_string())
    } else {
        Err(format!("'{s}' must be lowercase letters, digits, '_' or '-'"))
    }
}

/// `de`, `de_DE`, `de-de` → `de` / `de_de`; None when it does not look like a language code.
fn canonical_locale(s: &str) -> Option<String> {
    let s = s.trim().to_ascii_lowercase().replace('-', "_");
    let (lang, region) = match s.split_once('_') {
        Some((l, r)) => (l, Some(r)),
        None => (s.as_str(), None),
    };
    let letters =
        |p: &str, n: std::ops::RangeInclusive<usize>| n.contains(&p.len()) && p.bytes().all(|b| b.is_ascii_lowercase());
    let ok = letters(lang, 2..=3) && region.is_none_or(|r| letters(r, 2..=2));
    ok.then_some(s)
}

// ---- file format ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    fallback: RawReply,
    handover: RawHandover,
    replies: RawReplies,
    consent: RawConsent,
    #[serde(default, rename = "flow")]
    flows: Vec<RawFlow>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHandover {
    #[serde(default = "default_handover_keywords")]
    keywords: Vec<String>,
    #[serde(default)]
    payloads: Vec<String>,
    reply: RawReply,
    released: RawReply,
}

fn default_handover_keywords() -> Vec<String> {
    DEFAULT_HANDOVER_KEYWORDS.iter().map(|s| (*s).to_string()).collect()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReplies {
    media: RawReply,
    location: RawReply,
    unsupported: RawReply,
    order_received: RawReply,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConsent {
    #[serde(default)]
    start_keywords: Vec<String>,
    question: RawReply,
    welcome: RawReply,
    declined: RawReply,
    stop_ack: RawReply,
    already_confirmed: RawReply,
    expired: RawReply,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReply {
    text: String,
    #[serde(default)]
    buttons: Vec<RawButton>,
    list: Option<RawList>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFlow {
    id: String,
    #[serde(default)]
    keywords: Vec<String>,
    #[serde(default)]
    payloads: Vec<String>,
    text: String,
    #[serde(default)]
    buttons: Vec<RawButton>,
    list: Option<RawList>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawButton {
    id: String,
    title: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawList {
    button: String,
    sections: Vec<RawSection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSection {
    title: String,
    rows: Vec<RawRow>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRow {
    id: String,
    title: String,
    description: Option<String>,
}

// ---- validation ----

#[derive(Default)]
struct Validator {
    errors: Vec<String>,
    /// Button and row ids, with where they were used; each must lead somewhere.
    targets: Vec<(String, String)>,
}

impl Validator {
    fn fail(&mut self, msg: String) {
        self.errors.push(msg);
    }

    fn max_len(&mut self, ctx: &str, what: &str, value: &str, max: usize) {
        let n = value.chars().count();
        if value.trim().is_empty() {
            self.fail(format!("{ctx}: {what} is empty"));
        } else if n > max {
            self.fail(format!("{ctx}: {what} '{value}' is {n} characters, at most {max} are allowed"));
        }
    }

    fn build(&mut self, set: String, locale: String, raw: RawFile) -> FlowSet {
        let mut keyword_owner: HashMap<String, String> = HashMap::new();
        let mut payload_owner: HashMap<String, String> = HashMap::new();

        let handover_keywords = self.keywords("handover", &raw.handover.keywords, &mut keyword_owner);
        self.payloads("handover", &raw.handover.payloads, &mut payload_owner);
        let handover = Handover {
            keywords: handover_keywords,
            payloads: raw.handover.payloads,
            reply: self.reply("handover.reply", raw.handover.reply),
            released: self.reply("handover.released", raw.handover.released),
        };

        let mut ids = HashSet::new();
        let mut flows = Vec::with_capacity(raw.flows.len());
        for f in raw.flows {
            let ctx = format!("flow '{}'", f.id);
            if check_name(&f.id).is_err() {
                self.fail(format!("{ctx}: id must be lowercase letters, digits, '_' or '-'"));
            }
            if !ids.insert(f.id.clone()) {
                self.fail(format!("{ctx}: id is used by an earlier flow"));
            }
            if f.keywords.is_empty() && f.payloads.is_empty() {
                self.fail(format!("{ctx}: has neither keywords nor payloads, so nothing can reach it"));
            }
            let keywords = self.keywords(&ctx, &f.keywords, &mut keyword_owner);
            self.payloads(&ctx, &f.payloads, &mut payload_owner);
            let reply = self.reply(&ctx, RawReply { text: f.text, buttons: f.buttons, list: f.list });
            flows.push(Flow { id: f.id, keywords, payloads: f.payloads, reply });
        }

        let fallback = self.reply("fallback", raw.fallback);
        let media = self.reply("replies.media", raw.replies.media);
        let location = self.reply("replies.location", raw.replies.location);
        let unsupported = self.reply("replies.unsupported", raw.replies.unsupported);
        let order_received = self.reply("replies.order_received", raw.replies.order_received);
        let consent = self.consent(raw.consent, &mut keyword_owner);

        for (ctx, id) in std::mem::take(&mut self.targets) {
            // Consent buttons are answered before any flow, so they need none.
            if !payload_owner.contains_key(&id) && consent::classify_payload(&id).is_none() {
                self.fail(format!("{ctx}: '{id}' leads nowhere: no flow or handover has it in its payloads"));
            }
        }

        FlowSet { set, locale, flows, fallback, handover, media, location, unsupported, order_received, consent }
    }

    fn consent(&mut self, raw: RawConsent, keyword_owner: &mut HashMap<String, String>) -> ConsentTexts {
        let start_keywords = self
            .keywords("consent.start_keywords", &raw.start_keywords, keyword_owner)
            .iter()
            .map(Phrase::as_string)
            .collect::<Vec<_>>();

        let question = self.reply("consent.question", raw.question);
        let yes_no = [consent::PAYLOAD_YES, consent::PAYLOAD_NO];
        match &question {
            OutboundBody::Buttons { text, buttons }
                if buttons.len() == 2 && yes_no.iter().all(|id| buttons.iter().any(|b| b.id == *id)) =>
            {
                // The customer must learn how to leave before agreeing.
                if !mentions(text, consent::STOP_WORDS.iter().copied()) {
                    self.fail("consent.question: text must say that STOP ends it (mention STOP or STOPP)".into());
                }
            }
            _ => self.fail(format!(
                "consent.question: needs exactly two buttons, with ids '{}' and '{}'",
                consent::PAYLOAD_YES,
                consent::PAYLOAD_NO
            )),
        }

        let stop_ack = self.reply("consent.stop_ack", raw.stop_ack);
        let starts = consent::START_WORDS.iter().copied().chain(start_keywords.iter().map(String::as_str));
        if !mentions(body_text(&stop_ack), starts) {
            self.fail("consent.stop_ack: text must say how to opt in again (mention START or ANMELDEN)".into());
        }

        ConsentTexts {
            question,
            welcome: self.reply("consent.welcome", raw.welcome),
            declined: self.reply("consent.declined", raw.declined),
            stop_ack,
            already_confirmed: self.reply("consent.already_confirmed", raw.already_confirmed),
            expired: self.reply("consent.expired", raw.expired),
            start_keywords,
        }
    }

    fn keywords(&mut self, ctx: &str, raw: &[String], owner: &mut HashMap<String, String>) -> Vec<Phrase> {
        let mut out = Vec::with_capacity(raw.len());
        for k in raw {
            let p = Phrase::new(k);
            let key = p.as_string();
            if p.is_empty() {
                self.fail(format!("{ctx}: keyword '{k}' has no letters or digits"));
                continue;
            }
            if RESERVED_KEYWORDS.contains(&key.as_str()) {
                self.fail(format!("{ctx}: keyword '{k}' is reserved for consent or cart commands"));
                continue;
            }
            match owner.get(&key) {
                Some(prev) if prev == ctx => self.fail(format!("{ctx}: keyword '{k}' is listed twice")),
                Some(prev) => self.fail(format!("{ctx}: keyword '{k}' is already used by {prev}")),
                None => {
                    owner.insert(key, ctx.to_string());
                    out.push(p);
                }
            }
        }
        out
    }

    fn payloads(&mut self, ctx: &str, raw: &[String], owner: &mut HashMap<String, String>) {
        for p in raw {
            if p.trim().is_empty() || p.chars().count() > MAX_BUTTON_ID {
                self.fail(format!("{ctx}: payload '{p}' must be 1 to {MAX_BUTTON_ID} characters"));
            }
            if consent::classify_payload(p).is_some() {
                self.fail(format!("{ctx}: payload '{p}' is reserved for consent"));
            }
            match owner.get(p) {
                Some(prev) if prev == ctx => self.fail(format!("{ctx}: payload '{p}' is listed twice")),
                Some(prev) => self.fail(format!("{ctx}: payload '{p}' is already used by {prev}")),
                None => {
                    owner.insert(p.clone(), ctx.to_string());
                }
            }
        }
    }

    fn reply(&mut self, ctx: &str, raw: RawReply) -> OutboundBody {
        let interactive = !raw.buttons.is_empty() || raw.list.is_some();
        let max_text = if interactive { MAX_INTERACTIVE_TEXT } else { MAX_TEXT };
        let n = raw.text.chars().count();
        if raw.text.trim().is_empty() {
            self.fail(format!("{ctx}: text is empty"));
        } else if n > max_text {
            self.fail(format!("{ctx}: text is {n} characters, at most {max_text} are allowed"));
        }
        match (raw.buttons.is_empty(), raw.list) {
            (true, None) => OutboundBody::Text { text: raw.text },
            (false, Some(_)) => {
                self.fail(format!("{ctx}: has both buttons and a list; a message can carry only one"));
                OutboundBody::Text { text: raw.text }
            }
            (false, None) => OutboundBody::Buttons { text: raw.text, buttons: self.buttons(ctx, raw.buttons) },
            (true, Some(list)) => self.list(ctx, raw.text, list),
        }
    }

    fn buttons(&mut self, ctx: &str, raw: Vec<RawButton>) -> Vec<Button> {
        if raw.len() > MAX_BUTTONS {
            self.fail(format!("{ctx}: has {} buttons, at most {MAX_BUTTONS} are allowed", raw.len()));
        }
        let (mut titles, mut ids) = (HashSet::new(), HashSet::new());
        for b in &raw {
            self.max_len(ctx, "button title", &b.title, MAX_BUTTON_TITLE);
            self.max_len(ctx, "button id", &b.id, MAX_BUTTON_ID);
            if !titles.insert(b.title.trim().to_lowercase()) {
                self.fail(format!("{ctx}: button title '{}' is used twice in one message", b.title));
            }
            if !ids.insert(b.id.clone()) {
                self.fail(format!("{ctx}: button id '{}' is used twice in one message", b.id));
            }
            self.targets.push((format!("{ctx}: button '{}'", b.title), b.id.clone()));
        }
        raw.into_iter().map(|b| Button { id: b.id, title: b.title }).collect()
    }

    fn list(&mut self, ctx: &str, text: String, raw: RawList) -> OutboundBody {
        self.max_len(ctx, "list button", &raw.button, MAX_LIST_BUTTON);
        if raw.sections.is_empty() || raw.sections.len() > MAX_LIST_SECTIONS {
            self.fail(format!("{ctx}: list has {} sections, 1 to {MAX_LIST_SECTIONS} are allowed", raw.sections.len()));
        }
        let total: usize = raw.sections.iter().map(|s| s.rows.len()).sum();
        if total > MAX_LIST_ROWS {
            self.fail(format!("{ctx}: list has {total} rows, at most {MAX_LIST_ROWS} are allowed over all sections"));
        }
        let mut ids = HashSet::new();
        let mut sections = Vec::with_capacity(raw.sections.len());
        for s in raw.sections {
            self.max_len(ctx, "section title", &s.title, MAX_SECTION_TITLE);
            if s.rows.is_empty() {
                self.fail(format!("{ctx}: list section '{}' has no rows", s.title));
            }
            let mut rows = Vec::with_capacity(s.rows.len());
            for r in s.rows {
                self.max_len(ctx, "row id", &r.id, MAX_ROW_ID);
                self.max_len(ctx, "row title", &r.title, MAX_ROW_TITLE);
                if let Some(d) = &r.description {
                    self.max_len(ctx, "row description", d, MAX_ROW_DESCRIPTION);
                }
                if !ids.insert(r.id.clone()) {
                    self.fail(format!("{ctx}: row id '{}' is used twice in one list", r.id));
                }
                self.targets.push((format!("{ctx}: list row '{}'", r.title), r.id.clone()));
                rows.push(ListRow { id: r.id, title: r.title, description: r.description });
            }
            sections.push(ListSection { title: s.title, rows });
        }
        OutboundBody::List { text, button: raw.button, sections }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal valid file; tests splice one broken piece into it.
    pub(crate) const BASE: &str = r#"
[fallback]
text = "Sorry?"
[handover]
keywords = ["agent"]
payloads = ["agent"]
reply.text = "A person will answer."
released.text = "The bot is back."
[replies]
media.text = "Text only, please."
location.text = "Thanks for the location."
unsupported.text = "I cannot read that."
order_received.text = "Cart received."
[consent]
welcome.text = "Welcome."
declined.text = "Okay."
stop_ack.text = "Bye. Send START to come back."
already_confirmed.text = "Already in."
expired.text = "Too late, send START."
[consent.question]
text = "Updates and offers? STOP ends it."
buttons = [{ id = "consent:yes", title = "Yes" }, { id = "consent:no", title = "No" }]
"#;

    fn with(extra: &str) -> Result<Flows, ConfigError> {
        Flows::from_toml("default", "en", &format!("{BASE}\n{extra}"))
    }

    fn reason(extra: &str) -> String {
        match with(extra) {
            Err(ConfigError::Flows { reason, .. }) => reason,
            Err(other) => panic!("unexpected error kind: {other}"),
            Ok(_) => panic!("accepted a bad file:\n{extra}"),
        }
    }

    fn assert_rejects(extra: &str, needles: &[&str]) {
        let r = reason(extra);
        for n in needles {
            assert!(r.contains(n), "error '{r}' should mention '{n}'");
        }
    }

    #[test]
    fn embedded_files_load_and_validate() {
        let flows = Flows::embedded().expect("embedded flows are valid");
        for locale in ["de", "en"] {
            let set = flows.for_locale("default", locale);
            assert_eq!(set.locale, locale);
            assert!(set.flows.len() >= 5, "{locale}: a useful shop needs several flows");
            for id in ["menu", "delivery", "returns", "sizes", "hours", "order_status"] {
                assert!(set.flow(id).is_some(), "{locale}: flow '{id}' missing");
            }
            assert!(matches!(set.flow("sizes").unwrap().reply, OutboundBody::List { .. }));
            assert!(!set.handover.keywords.is_empty());
        }
    }

    #[test]
    fn embedded_consent_texts() {
        let flows = Flows::embedded().unwrap();
        for (locale, yes, no) in [("de", "Ja", "Nein"), ("en", "Yes", "No")] {
            let c = flows.for_locale("default", locale).consent();
            let OutboundBody::Buttons { text, buttons } = c.reply(ConsentReply::Question) else {
                panic!("{locale}: the question must be a buttons message")
            };
            let titles: Vec<_> = buttons.iter().map(|b| (b.id.as_str(), b.title.as_str())).collect();
            assert_eq!(titles, [(consent::PAYLOAD_YES, yes), (consent::PAYLOAD_NO, no)], "{locale}");
            assert!(text.contains("STOP"), "{locale}: {text}");
            let stop_ack = body_text(c.reply(ConsentReply::StopAck));
            assert!(stop_ack.contains("START") || stop_ack.contains("ANMELDEN"), "{locale}: {stop_ack}");
            for r in
                [ConsentReply::Welcome, ConsentReply::Declined, ConsentReply::AlreadyConfirmed, ConsentReply::Expired]
            {
                assert!(!body_text(c.reply(r)).is_empty(), "{locale}: {r:?}");
            }
            assert!(!c.start_keywords().is_empty());
            for k in c.start_keywords() {
                assert_eq!(consent::classify(k, c.start_keywords()), Some(consent::ConsentCommand::Start));
            }
        }
        let de = flows.for_locale("default", "de").consent();
        assert!(body_text(de.reply(ConsentReply::Question)).contains("Bestell-Updates"));
        assert_eq!(de.start_keywords(), ["newsletter", "abonnieren"]);
    }

    #[test]
    fn consent_words_are_reserved() {
        let words = [consent::START_WORDS, consent::YES_WORDS, consent::NO_WORDS, consent::STOP_WORDS];
        for w in words.concat() {
            assert!(RESERVED_KEYWORDS.contains(&w), "'{w}' is a consent word but not reserved");
        }
    }

    #[test]
    fn rejects_a_missing_or_malformed_consent_section() {
        let start = BASE.find("[consent]").unwrap();
        let Err(ConfigError::Flows { reason, .. }) = Flows::from_toml("default", "en", &BASE[..start]) else {
            panic!("missing consent accepted")
        };
        assert!(reason.contains("consent"), "{reason}");

        let swap = |from: &str, to: &str| {
            assert!(BASE.contains(from), "{from}");
            match Flows::from_toml("default", "en", &BASE.replace(from, to)) {
                Err(ConfigError::Flows { reason, .. }) => reason,
                other => panic!("accepted {to}: {other:?}"),
            }
        };
        let ids = "needs exactly two buttons, with ids 'consent:yes' and 'consent:no'";
        assert!(swap(r#"id = "consent:no""#, r#"id = "consent:yes""#).contains(ids));
        assert!(swap(r#", { id = "consent:no", title = "No" }"#, "").contains(ids));
        assert!(swap("buttons = [{ id = \"consent:yes\"", "# buttons = [{ id = \"consent:yes\"").contains(ids));
        assert!(swap("Updates and offers? STOP ends it.", "Updates and offers?").contains("consent.question"));
        assert!(swap("Bye. Send START to come back.", "Bye.").contains("consent.stop_ack"));
        assert!(swap("welcome.text = \"Welcome.\"", "welcome.text = \" \"").contains("consent.welcome: text is empty"));
        assert!(swap("expired.text", "expird.text").contains("expird"));
    }

    #[test]
    fn consent_start_keywords_are_checked_like_flow_keywords() {
        let kw = |words: &str| BASE.replace("[consent]\n", &format!("[consent]\nstart_keywords = [{words}]\n"));
        let set = Flows::from_toml("default", "en", &kw(r#""Newsletter!", "sign me up""#)).unwrap();
        let c = set.for_locale("default", "en").consent();
        assert_eq!(c.start_keywords(), ["newsletter", "sign me up"]);
        // A start keyword counts as the opt-in word stop_ack has to mention.
        let mentions_keyword = kw(r#""newsletter""#).replace("Send START to come back", "Send NEWSLETTER to come back");
        Flows::from_toml("default", "en", &mentions_keyword).unwrap();

        let rejects = |src: String, needles: &[&str]| match Flows::from_toml("default", "en", &src) {
            Err(ConfigError::Flows { reason, .. }) => {
                for n in needles {
                    assert!(reason.contains(n), "'{reason}' should mention '{n}'");
                }
            }
            other => panic!("accepted: {other:?}"),
        };
        rejects(kw(r#""Stopp""#), &["consent.start_keywords", "reserved"]);
        rejects(kw(r#""👋""#), &["consent.start_keywords", "no letters or digits"]);
        rejects(kw(r#""agent""#), &["consent.start_keywords", "already used by handover"]);
        rejects(
            format!("{}\n[[flow]]\nid = \"news\"\nkeywords = [\"news letter\"]\ntext = \"a\"", kw(r#""News-Letter""#)),
            &["consent.start_keywords", "already used by flow 'news'"],
        );
    }

    #[test]
    fn consent_buttons_need_no_flow_and_no_flow_may_take_them() {
        // A flow can offer the opt-in as a button.
        with("[[flow]]\nid = \"news\"\nkeywords = [\"offers\"]\ntext = \"Want offers?\"\nbuttons = [{ id = \"consent:start\", title = \"Sign up\" }]")
            .unwrap();
        assert_rejects(
            "[[flow]]\nid = \"x\"\npayloads = [\"consent:yes\"]\ntext = \"a\"",
            &["flow 'x'", "'consent:yes' is reserved for consent"],
        );
        // Other ids in the consent texts must still lead somewhere.
        let r = BASE.replace(
            "welcome.text = \"Welcome.\"",
            "welcome = { text = \"Hi\", buttons = [{ id = \"nowhere\", title = \"Go\" }] }",
        );
        let Err(ConfigError::Flows { reason, .. }) = Flows::from_toml("default", "en", &r) else { panic!() };
        assert!(reason.contains("consent.welcome") && reason.contains("'nowhere' leads nowhere"), "{reason}");
    }

    #[test]
    fn base_file_is_valid() {
        with("").unwrap();
    }

    #[test]
    fn normalize_strips_case_punctuation_and_emoji() {
        assert_eq!(normalize("  Lieferzeit?? 🚚 "), "lieferzeit");
        assert_eq!(normalize("WIE   lange,dauert's?!"), "wie lange dauerts");
        assert_eq!(normalize("GRÖSSE"), "grösse");
        assert_eq!(normalize("Gr\u{0308}o\u{0308}ße"), "größe");
        assert_eq!(normalize("T-Shirt 👕❤️‍🔥"), "t shirt");
        assert_eq!(normalize("🙂🙂"), "");
    }

    #[test]
    fn for_locale_falls_back_to_de_then_any() {
        let flows = Flows::embedded().unwrap();
        assert_eq!(flows.for_locale("default", "en_GB").locale, "en");
        assert_eq!(flows.for_locale("default", "DE-at").locale, "de");
        assert_eq!(flows.for_locale("default", "fr").locale, "de");
        assert_eq!(flows.for_locale("default", "").locale, "de");
        assert_eq!(flows.for_locale("summer-sale", "en").set, "default");
        let only_en = Flows::from_toml("x", "en", BASE).unwrap();
        assert_eq!(only_en.for_locale("x", "fr").locale, "en");
    }

    #[test]
    fn rejects_toml_syntax_and_unknown_fields_and_missing_sections() {
        assert_rejects("[[flow]]\nid = \"a\"\nkeywords = [\"x\"\ntext = \"t\"", &["line"]);
        assert_rejects("[[flow]]\nid = \"a\"\nkeywords = [\"x\"]\ntext = \"t\"\nbutons = []", &["butons"]);
        let no_fallback = BASE.replace("[fallback]\ntext = \"Sorry?\"", "");
        let Err(ConfigError::Flows { reason, .. }) = Flows::from_toml("default", "en", &no_fallback) else {
            panic!("missing fallback accepted")
        };
        assert!(reason.contains("fallback"), "{reason}");
    }

    #[test]
    fn rejects_too_many_buttons() {
        let r = r#"[[flow]]
id = "menu"
payloads = ["menu"]
text = "Pick one"
buttons = [{ id = "menu", title = "A" }, { id = "agent", title = "B" }, { id = "menu2", title = "C" }, { id = "menu3", title = "D" }]"#;
        assert_rejects(r, &["flow 'menu'", "4 buttons", "at most 3"]);
    }

    #[test]
    fn rejects_long_button_title_and_id() {
        let long_title = r#"[[flow]]
id = "menu"
payloads = ["menu"]
text = "Pick"
buttons = [{ id = "menu", title = "This title is far too long" }]"#;
        assert_rejects(long_title, &["flow 'menu'", "button title", "at most 20"]);
        let long_id = format!(
            "[[flow]]\nid = \"menu\"\npayloads = [\"{0}\"]\ntext = \"Pick\"\nbuttons = [{{ id = \"{0}\", title = \"Go\" }}]",
            "x".repeat(257)
        );
        assert_rejects(&long_id, &["flow 'menu'", "button id", "at most 256"]);
    }

    #[test]
    fn rejects_duplicate_button_titles() {
        let r = r#"[[flow]]
id = "menu"
payloads = ["menu"]
text = "Pick"
buttons = [{ id = "menu", title = "Go" }, { id = "agent", title = "go" }]"#;
        assert_rejects(r, &["flow 'menu'", "'go' is used twice"]);
    }

    #[test]
    fn rejects_buttons_and_list_together() {
        let r = r#"[[flow]]
id = "menu"
payloads = ["menu"]
text = "Pick"
buttons = [{ id = "menu", title = "Go" }]
list = { button = "Open", sections = [{ title = "S", rows = [{ id = "menu", title = "R" }] }] }"#;
        assert_rejects(r, &["flow 'menu'", "both buttons and a list"]);
    }

    fn list_flow(button: &str, section: &str, rows: &str) -> String {
        format!(
            "[[flow]]\nid = \"menu\"\npayloads = [\"menu\"]\ntext = \"Pick\"\n[flow.list]\nbutton = \"{button}\"\n[[flow.list.sections]]\ntitle = \"{section}\"\nrows = [{rows}]"
        )
    }

    #[test]
    fn rejects_list_limits() {
        let row = r#"{ id = "menu", title = "Row" }"#;
        assert_rejects(
            &list_flow("A much too long list label", "S", row),
            &["flow 'menu'", "list button", "at most 20"],
        );
        assert_rejects(
            &list_flow("Open", "A section title over 24 chars", row),
            &["flow 'menu'", "section title", "at most 24"],
        );
        assert_rejects(
            &list_flow("Open", "S", r#"{ id = "menu", title = "A row title longer than 24" }"#),
            &["flow 'menu'", "row title", "at most 24"],
        );
        let long_desc = format!(r#"{{ id = "menu", title = "R", description = "{}" }}"#, "d".repeat(73));
        assert_rejects(&list_flow("Open", "S", &long_desc), &["flow 'menu'", "row description", "at most 72"]);
        let long_id = format!(r#"{{ id = "{}", title = "R" }}"#, "i".repeat(201));
        assert_rejects(&list_flow("Open", "S", &long_id), &["flow 'menu'", "row id", "at most 200"]);
        assert_rejects(&list_flow("Open", "S", ""), &["flow 'menu'", "has no rows"]);
    }

    #[test]
    fn rejects_more_than_ten_rows_over_all_sections() {
        let rows = |from: usize| {
            (from..from + 6).map(|i| format!(r#"{{ id = "menu", title = "R{i}" }}"#)).collect::<Vec<_>>().join(", ")
        };
        let src = format!(
            "{}\n[[flow.list.sections]]\ntitle = \"T\"\nrows = [{}]",
            list_flow("Open", "S", &rows(0)),
            rows(6)
        );
        assert_rejects(&src, &["flow 'menu'", "12 rows", "at most 10"]);
    }

    #[test]
    fn rejects_duplicate_keywords_and_payloads_across_flows() {
        let r = r#"[[flow]]
id = "delivery"
keywords = ["Shipping"]
text = "a"
[[flow]]
id = "returns"
keywords = ["shipping!"]
text = "b""#;
        assert_rejects(r, &["flow 'returns'", "'shipping!'", "already used by flow 'delivery'"]);
        let p = r#"[[flow]]
id = "delivery"
payloads = ["d"]
text = "a"
[[flow]]
id = "returns"
payloads = ["d"]
text = "b""#;
        assert_rejects(p, &["flow 'returns'", "payload 'd'", "already used by flow 'delivery'"]);
        let h = "[[flow]]\nid = \"x\"\nkeywords = [\"Agent\"]\ntext = \"a\"";
        assert_rejects(h, &["flow 'x'", "already used by handover"]);
    }

    #[test]
    fn rejects_reserved_and_empty_keywords() {
        assert_rejects(
            "[[flow]]\nid = \"x\"\nkeywords = [\"Stopp\"]\ntext = \"a\"",
            &["flow 'x'", "'Stopp'", "reserved"],
        );
        assert_rejects("[[flow]]\nid = \"x\"\nkeywords = [\"Warenkorb\"]\ntext = \"a\"", &["reserved"]);
        assert_rejects(
            "[[flow]]\nid = \"x\"\nkeywords = [\"🚚\"]\ntext = \"a\"",
            &["flow 'x'", "no letters or digits"],
        );
        let h = BASE.replace("keywords = [\"agent\"]", "keywords = [\"ja\"]");
        let Err(ConfigError::Flows { reason, .. }) = Flows::from_toml("default", "en", &h) else { panic!() };
        assert!(reason.contains("handover") && reason.contains("reserved"), "{reason}");
    }

    #[test]
    fn rejects_unreachable_flows_bad_ids_and_dangling_buttons() {
        assert_rejects("[[flow]]\nid = \"x\"\ntext = \"a\"", &["flow 'x'", "neither keywords nor payloads"]);
        assert_rejects("[[flow]]\nid = \"Bad Id\"\nkeywords = [\"k\"]\ntext = \"a\"", &["flow 'Bad Id'", "lowercase"]);
        assert_rejects(
            "[[flow]]\nid = \"x\"\nkeywords = [\"k\"]\ntext = \"a\"\n[[flow]]\nid = \"x\"\nkeywords = [\"j\"]\ntext = \"b\"",
            &["flow 'x'", "used by an earlier flow"],
        );
        assert_rejects(
            "[[flow]]\nid = \"x\"\nkeywords = [\"k\"]\ntext = \"a\"\nbuttons = [{ id = \"nowhere\", title = \"Go\" }]",
            &["flow 'x'", "'nowhere' leads nowhere"],
        );
    }

    #[test]
    fn rejects_empty_and_oversized_text() {
        assert_rejects("[[flow]]\nid = \"x\"\nkeywords = [\"k\"]\ntext = \"  \"", &["flow 'x'", "text is empty"]);
        let long = format!("[[flow]]\nid = \"x\"\nkeywords = [\"k\"]\ntext = \"{}\"", "a".repeat(4097));
        assert_rejects(&long, &["flow 'x'", "4097 characters", "at most 4096"]);
        let long_interactive = format!(
            "[[flow]]\nid = \"x\"\nkeywords = [\"k\"]\npayloads = [\"x\"]\ntext = \"{}\"\nbuttons = [{{ id = \"x\", title = \"Go\" }}]",
            "a".repeat(1025)
        );
        assert_rejects(&long_interactive, &["flow 'x'", "at most 1024"]);
    }

    #[test]
    fn reports_every_problem_at_once() {
        let r = reason("[[flow]]\nid = \"x\"\nkeywords = [\"stop\"]\ntext = \"\"\n[[flow]]\nid = \"y\"\ntext = \"b\"");
        assert!(r.contains("reserved") && r.contains("text is empty") && r.contains("flow 'y'"), "{r}");
    }

    #[test]
    fn rejects_bad_set_and_locale_names() {
        assert!(
            matches!(Flows::from_toml("default", "german", BASE), Err(ConfigError::Flows { reason, .. }) if reason.contains("locale"))
        );
        assert!(
            matches!(Flows::from_toml("De Fault", "de", BASE), Err(ConfigError::Flows { reason, .. }) if reason.contains("set name"))
        );
    }

    #[test]
    fn load_dir_reads_set_and_locale_from_file_names() {
        let dir =
            std::env::temp_dir().join(format!("parley-flows-{}-{:?}", std::process::id(), std::thread::current().id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("shop.en.toml"), BASE).unwrap();
        std::fs::write(dir.join("shop.de.toml"), BASE).unwrap();
        std::fs::write(dir.join("README.md"), "ignored").unwrap();
        let flows = Flows::load_dir(&dir).unwrap();
        assert_eq!(flows.sets().len(), 2);
        assert_eq!(flows.for_locale("shop", "en").locale, "en");

        std::fs::write(dir.join("broken.en.toml"), format!("{BASE}\n[[flow]]\nid = \"x\"\ntext = \"a\"")).unwrap();
        match Flows::load_dir(&dir) {
            Err(ConfigError::Flows { file, reason }) => {
                assert!(file.ends_with("broken.en.toml"), "{file}");
                assert!(reason.contains("flow 'x'"), "{reason}");
            }
            other => panic!("broken file accepted: {other:?}"),
        }
        std::fs::remove_file(dir.join("broken.en.toml")).unwrap();
        std::fs::write(dir.join("nolocale.toml"), BASE).unwrap();
        assert!(
            matches!(Flows::load_dir(&dir), Err(ConfigError::Flows { reason, .. }) if reason.contains("<set>.<locale>.toml"))
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(Flows::load_dir(&dir).is_err());
    }
}
