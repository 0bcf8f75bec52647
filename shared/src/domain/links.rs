//! Tracked links, the pure part: which URLs may be tracked, the utm parameters a tracked URL gets,
//! where the URLs in a message text are, and the tokens of the short links (`GET /r/{token}`).
//!
//! Only plain web addresses are ever tracked: `http`/`https` with a host and without user-info
//! (`https://user:pass@…` is how phishing links hide their real host). Anything else — `mailto:`,
//! `tel:`, `javascript:`, `data:` — is left in the text as it is and never becomes a redirect.
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::ops::Range;

/// `utm_source` of every tracked link.
pub const UTM_SOURCE: &str = "whatsapp";
/// `utm_medium` of every tracked link.
pub const UTM_MEDIUM: &str = "chat";
/// The longest URL (with its utm parameters) that is tracked. Browsers, CDNs and API Gateway's
/// header limits all cope with it; a longer one stays in the text untracked.
pub const MAX_URL_LEN: usize = 2048;

/// Why a URL is not tracked. Never carries the URL: it may hold a key or a customer's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Untrackable {
    #[error("not a URL")]
    NotAUrl,
    #[error("only http and https URLs are tracked")]
    Scheme,
    #[error("the URL has no host")]
    NoHost,
    #[error("URLs with a user name or password are never tracked")]
    UserInfo,
    #[error("the URL is longer than {MAX_URL_LEN} characters")]
    TooLong,
}

/// A URL that may be tracked: parsed once, http(s), a host, no user-info. Its text is the URL
/// in its normal form (lower-case scheme and host, IDN hosts in punycode, the path and query
/// percent-encoded as browsers send them), so it is ASCII and fit for a `Location` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackableUrl(url::Url);

impl TrackableUrl {
    pub fn parse(s: &str) -> Result<Self, Untrackable> {
        if s.len() > MAX_URL_LEN * 2 {
            // Not worth parsing: even percent-decoded it could not fit.
            return Err(Untrackable::TooLong);
        }
        let url = url::Url::parse(s.trim()).map_err(|_| Untrackable::NotAUrl)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Untrackable::Scheme);
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(Untrackable::NoHost);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Untrackable::UserInfo);
        }
        if url.as_str().len() > MAX_URL_LEN {
            return Err(Untrackable::TooLong);
        }
        Ok(Self(url))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The URL with `utm_source=whatsapp&utm_medium=chat&utm_campaign={campaign}` added to its
    /// query: the existing query is kept byte for byte, a utm key already present (in any case)
    /// keeps its value and is not added again, the fragment stays at the end.
    pub fn with_utm(&self, campaign: &str) -> Result<TrackableUrl, Untrackable> {
        let mut url = self.0.clone();
        let present: Vec<String> = url.query_pairs().map(|(k, _)| k.to_ascii_lowercase()).collect();
        let missing: Vec<(&str, &str)> =
            [("utm_source", UTM_SOURCE), ("utm_medium", UTM_MEDIUM), ("utm_campaign", campaign)]
                .into_iter()
                .filter(|(k, _)| !present.iter().any(|p| p == k))
                .collect();
        if !missing.is_empty() {
            // Appends `&k=v` (form-encoded) after what is there; nothing existing is re-encoded.
            url.query_pairs_mut().extend_pairs(missing);
        }
        if url.as_str().len() > MAX_URL_LEN {
            return Err(Untrackable::TooLong);
        }
        Ok(TrackableUrl(url))
    }
}

impl std::fmt::Display for TrackableUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A campaign's name as a `utm_campaign` value: lower-case ASCII letters and digits, every other
/// run of characters one `-` (`Sommer-Sale 2026!` → `sommer-sale-2026`), at most 64 characters;
/// `campaign` when nothing is left.
pub fn utm_slug(name: &str) -> String {
    const MAX: usize = 64;
    let mut out = String::new();
    let mut gap = false;
    for c in name.chars().flat_map(char::to_lowercase) {
        let mut buf = [0u8; 4];
        let piece = match c {
            'ä' => "ae",
            'ö' => "oe",
            'ü' => "ue",
            'ß' => "ss",
            c if c.is_ascii_alphanumeric() => c.encode_utf8(&mut buf),
            _ => {
                gap = true;
                continue;
            }
        };
        if gap && !out.is_empty() {
            out.push('-');
        }
        gap = false;
        out.push_str(piece);
        if out.len() >= MAX {
            break;
        }
    }
    // ASCII only, so any length is a character boundary.
    out.truncate(MAX);
    let slug = out.trim_end_matches('-');
    if slug.is_empty() {
        "campaign".into()
    } else {
        slug.to_string()
    }
}

/// Where the web addresses in a message text are (byte ranges, in order). WhatsApp texts have
/// no markup: an address starts with `http://` or `https://` (any case) not glued to a word
/// before it, and runs to the next white space or `<`, `>`, `"`. Punctuation that ends the
/// sentence around it (`.`, `,`, `;`, `:`, `!`, `?`, quotes, WhatsApp's `*bold*`/`~strike~`/
/// `_italic_` markers, and a closing bracket without its opening one inside the address) is not
/// part of it: `(see https://x.example/a_(b))!` → `https://x.example/a_(b)`.
pub fn find_urls(text: &str) -> Vec<Range<usize>> {
    let lower = text.to_ascii_lowercase();
    let mut found = Vec::new();
    let mut from = 0;
    while from < text.len() {
        let next = ["http://", "https://"].iter().filter_map(|p| lower[from..].find(p).map(|i| from + i)).min();
        let Some(start) = next else { break };
        let before = text[..start].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || matches!(c, ':' | '/' | '@' | '.')) {
            // `xhttps://…` or `javascript:https://…` is part of something else, not an address.
            from = start + 1;
            continue;
        }
        let end = text[start..]
            .char_indices()
            .find(|(_, c)| c.is_whitespace() || matches!(c, '<' | '>' | '"'))
            .map_or(text.len(), |(i, _)| start + i);
        let end = start + trim_trailing(&text[start..end], before);
        let scheme_len = if lower[start..].starts_with("https://") { 8 } else { 7 };
        if end > start + scheme_len {
            found.push(start..end);
        }
        from = end.max(start + scheme_len);
    }
    found
}

/// How much of a candidate address is the address: its length after trailing punctuation.
fn trim_trailing(candidate: &str, before: Option<char>) -> usize {
    let mut s = candidate;
    loop {
        let Some(last) = s.chars().next_back() else { return 0 };
        let drop = match last {
            '.' | ',' | ';' | ':' | '!' | '?' | '\'' | '*' | '~' | '«' | '»' | '“' | '”' | '‘' | '’' => true,
            // `_https://x.example_` is WhatsApp italics; a `_` ending an address otherwise stays.
            '_' => before == Some('_'),
            ')' => s.matches('(').count() < s.matches(')').count(),
            ']' => s.matches('[').count() < s.matches(']').count(),
            '}' => s.matches('{').count() < s.matches('}').count(),
            _ => false,
        };
        if !drop {
            return s.len();
        }
        s = &s[..s.len() - last.len_utf8()];
    }
}

/// `text` with the given ranges (in order, not overlapping) replaced.
pub fn replace_ranges(text: &str, replacements: &[(Range<usize>, String)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (range, with) in replacements {
        out.push_str(&text[at..range.start]);
        out.push_str(with);
        at = range.end;
    }
    out.push_str(&text[at..]);
    out
}

/// The token of a short link: 128 bits, base64url without padding (22 characters).
///
/// Derived, not drawn: an HMAC-SHA256 under the deployment's link key (`PARLEY_LINK_KEY`) of the
/// campaign, the recipient and the URL, cut to 128 bits. The same three always give the same
/// token, so a retried or redriven fan-out reuses its links instead of minting new ones; without
/// the key a token can be neither guessed nor tied to anyone, and it holds nothing of the inputs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LinkToken(String);

pub const TOKEN_BYTES: usize = 16;
pub const TOKEN_CHARS: usize = 22;

impl LinkToken {
    pub fn derive(key: &[u8], campaign: &str, recipient: &str, url: &str) -> Self {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
        // Length-prefixed, so no two different triples feed the MAC the same bytes.
        for part in ["parley-link-v1", campaign, recipient, url] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part.as_bytes());
        }
        let digest = mac.finalize().into_bytes();
        Self::from_bytes(&digest[..TOKEN_BYTES])
    }

    fn from_bytes(bytes: &[u8]) -> Self {
        use base64::Engine;
        Self(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
    }

    /// A token as a request names it: exactly the canonical encoding of 16 bytes, else `None`
    /// (a malformed token is answered like an unknown one, without a lookup).
    pub fn parse(s: &str) -> Option<Self> {
        use base64::Engine;
        if s.len() != TOKEN_CHARS {
            return None;
        }
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).ok()?;
        (bytes.len() == TOKEN_BYTES).then(|| Self::from_bytes(&bytes)).filter(|t| t.0 == s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for LinkToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether a request comes from a link-preview fetcher rather than a person: chat apps and social
/// networks fetch a link to draw its preview card, and counting that would count a click nobody
/// made. Such a request is still redirected, just not counted.
pub fn is_preview_fetcher(user_agent: &str) -> bool {
    const FETCHERS: [&str; 10] = [
        "whatsapp/",
        "facebookexternalhit",
        "facebot",
        "meta-externalagent",
        "telegrambot",
        "twitterbot",
        "slackbot",
        "discordbot",
        "linkedinbot",
        "skypeuripreview",
    ];
    let ua = user_agent.to_ascii_lowercase();
    FETCHERS.iter().any(|f| ua.contains(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utm(url: &str, campaign: &str) -> String {
        TrackableUrl::parse(url).unwrap().with_utm(campaign).unwrap().to_string()
    }

    fn urls(text: &str) -> Vec<&str> {
        find_urls(text).into_iter().map(|r| &text[r]).collect()
    }

    #[test]
    fn only_plain_web_addresses_are_trackable() {
        for ok in [
            "https://shop.example/p/1",
            "http://shop.example",
            "HTTPS://Shop.Example/Path?Q=1",
            "https://127.0.0.1:8443/x",
            "https://[2001:db8::1]/x",
            "https://bücher.example/straße",
        ] {
            assert!(TrackableUrl::parse(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("javascript:alert(1)", Untrackable::Scheme),
            ("JavaScript:alert(document.cookie)//https://x.example", Untrackable::Scheme),
            ("data:text/html,<script>alert(1)</script>", Untrackable::Scheme),
            ("mailto:info@shop.example", Untrackable::Scheme),
            ("tel:+4915123456789", Untrackable::Scheme),
            ("ftp://files.example/a", Untrackable::Scheme),
            ("file:///etc/passwd", Untrackable::Scheme),
            ("https://user:pass@evil.example/", Untrackable::UserInfo),
            ("https://shop.example@evil.example/", Untrackable::UserInfo),
            ("https://:pw@evil.example/", Untrackable::UserInfo),
            ("www.shop.example", Untrackable::NotAUrl),
            ("/relative/path", Untrackable::NotAUrl),
            ("https://", Untrackable::NotAUrl),
            ("", Untrackable::NotAUrl),
        ] {
            assert_eq!(TrackableUrl::parse(bad), Err(why), "{bad}");
        }
    }

    #[test]
    fn idn_hosts_become_punycode_and_paths_percent_encoded() {
        let u = TrackableUrl::parse("https://bücher.example/straße?q=ä b#Über").unwrap();
        assert_eq!(u.as_str(), "https://xn--bcher-kva.example/stra%C3%9Fe?q=%C3%A4%20b#%C3%9Cber");
        assert!(u.as_str().is_ascii());
        assert_eq!(
            utm("https://bücher.example/straße", "sommer"),
            "https://xn--bcher-kva.example/stra%C3%9Fe?utm_source=whatsapp&utm_medium=chat&utm_campaign=sommer"
        );
    }

    #[test]
    fn utm_parameters_are_appended_after_the_query_and_before_the_fragment() {
        assert_eq!(
            utm("https://shop.example/p/1", "spring"),
            "https://shop.example/p/1?utm_source=whatsapp&utm_medium=chat&utm_campaign=spring"
        );
        assert_eq!(
            utm("https://shop.example", "spring"),
            "https://shop.example/?utm_source=whatsapp&utm_medium=chat&utm_campaign=spring"
        );
        // The existing query is kept byte for byte (`%20` and `+` stay as they were).
        assert_eq!(
            utm("https://shop.example/s?q=a%20b&c=d+e&flag", "spring"),
            "https://shop.example/s?q=a%20b&c=d+e&flag&utm_source=whatsapp&utm_medium=chat&utm_campaign=spring"
        );
        assert_eq!(
            utm("https://shop.example/p#reviews", "spring"),
            "https://shop.example/p?utm_source=whatsapp&utm_medium=chat&utm_campaign=spring#reviews"
        );
        assert_eq!(
            utm("https://shop.example/p?x=1#a?b=c", "spring"),
            "https://shop.example/p?x=1&utm_source=whatsapp&utm_medium=chat&utm_campaign=spring#a?b=c"
        );
        // An empty query (`?`) gets the parameters without a stray `&`.
        assert_eq!(
            utm("https://shop.example/p?", "spring"),
            "https://shop.example/p?utm_source=whatsapp&utm_medium=chat&utm_campaign=spring"
        );
    }

    #[test]
    fn utm_keys_already_present_keep_their_value_and_are_not_duplicated() {
        assert_eq!(
            utm("https://shop.example/p?utm_source=newsletter&a=1", "spring"),
            "https://shop.example/p?utm_source=newsletter&a=1&utm_medium=chat&utm_campaign=spring"
        );
        assert_eq!(
            utm("https://shop.example/p?UTM_CAMPAIGN=x&utm_medium=sms&utm_source=y", "spring"),
            "https://shop.example/p?UTM_CAMPAIGN=x&utm_medium=sms&utm_source=y"
        );
        // Twice through is the same as once.
        let once = utm("https://shop.example/p?a=1", "spring");
        assert_eq!(utm(&once, "spring"), once);
        let url = url::Url::parse(&once).unwrap();
        let keys: Vec<_> = url.query_pairs().map(|(k, _)| k.into_owned()).collect();
        assert_eq!(keys, ["a", "utm_source", "utm_medium", "utm_campaign"]);
    }

    #[test]
    fn the_campaign_value_is_form_encoded() {
        let out = utm("https://shop.example/p", "Sommer & Sale=50%");
        assert!(out.ends_with("utm_campaign=Sommer+%26+Sale%3D50%25"), "{out}");
        let url = url::Url::parse(&out).unwrap();
        assert!(url.query_pairs().any(|(k, v)| k == "utm_campaign" && v == "Sommer & Sale=50%"));
        assert_eq!(utm_slug("Sommer-Sale 2026!"), "sommer-sale-2026");
        assert_eq!(utm_slug("  Grüße für Öko-Fans  "), "gruesse-fuer-oeko-fans");
        assert_eq!(utm_slug("★★★"), "campaign");
        assert!(utm_slug(&"a b ".repeat(50)).len() <= 64);
        assert_eq!(utm_slug(&"x".repeat(100)).len(), 64);
        assert!(!utm_slug(&format!("{}-x", "a".repeat(63))).ends_with('-'));
    }

    #[test]
    fn very_long_urls_are_not_tracked() {
        let long = format!("https://shop.example/{}", "a".repeat(MAX_URL_LEN));
        assert_eq!(TrackableUrl::parse(&long), Err(Untrackable::TooLong));
        let huge = format!("https://shop.example/{}", "a".repeat(100_000));
        assert_eq!(TrackableUrl::parse(&huge), Err(Untrackable::TooLong));
        // Fits alone, but not with its utm parameters.
        let edge = format!("https://shop.example/{}", "a".repeat(MAX_URL_LEN - 40));
        let u = TrackableUrl::parse(&edge).unwrap();
        assert_eq!(u.with_utm("spring"), Err(Untrackable::TooLong));
        // Percent-encoding counts: 700 umlauts are 4200 characters once encoded.
        let wide = format!("https://shop.example/{}", "ä".repeat(700));
        assert_eq!(TrackableUrl::parse(&wide), Err(Untrackable::TooLong));
    }

    #[test]
    fn urls_end_at_white_space_and_leave_trailing_punctuation_out() {
        assert_eq!(urls("Neu: https://shop.example/p/1. Viel Spaß!"), ["https://shop.example/p/1"]);
        assert_eq!(
            urls("https://a.example, https://b.example; https://c.example!"),
            ["https://a.example", "https://b.example", "https://c.example"]
        );
        assert_eq!(urls("Hier (https://shop.example/sale) klicken"), ["https://shop.example/sale"]);
        assert_eq!(urls("Wiki: https://de.example/wiki/A_(B)."), ["https://de.example/wiki/A_(B)"]);
        assert_eq!(urls("(see https://x.example/a_(b))!"), ["https://x.example/a_(b)"]);
        assert_eq!(urls("Fragen? https://shop.example/faq?"), ["https://shop.example/faq"]);
        assert_eq!(urls("»https://shop.example/q?a=1&b=2«"), ["https://shop.example/q?a=1&b=2"]);
        assert_eq!(urls("„https://shop.example/neu“"), ["https://shop.example/neu"]);
        assert_eq!(
            urls("\"https://shop.example/x\" und <https://shop.example/y>"),
            ["https://shop.example/x", "https://shop.example/y"]
        );
        assert_eq!(
            urls("*https://shop.example/bold* _https://shop.example/it_ ~https://s.example/del~"),
            ["https://shop.example/bold", "https://shop.example/it", "https://s.example/del"]
        );
        assert_eq!(urls("https://shop.example/snake_case_"), ["https://shop.example/snake_case_"]);
        assert_eq!(
            urls("Zeile1\nhttps://shop.example/a\thttps://shop.example/b\u{a0}ok"),
            ["https://shop.example/a", "https://shop.example/b"]
        );
        assert_eq!(urls("HTTP://SHOP.EXAMPLE/UP"), ["HTTP://SHOP.EXAMPLE/UP"]);
        assert_eq!(urls("https://ü.example/ä?ö=1 ok"), ["https://ü.example/ä?ö=1"]);
    }

    #[test]
    fn only_web_addresses_are_found() {
        assert!(urls("Schreib an mailto:info@shop.example oder ruf an: tel:+4930123").is_empty());
        assert!(urls("javascript:alert('https')").is_empty());
        assert!(urls("www.shop.example ohne Schema").is_empty());
        assert!(urls("nur https:// und http://").is_empty());
        assert!(urls("xhttps://glued.example").is_empty());
        assert!(urls("").is_empty());
        assert!(urls("javascript:https://x.example").is_empty());
    }

    #[test]
    fn ranges_are_replaced_in_place() {
        let text = "A https://a.example. B https://b.example/x?y=1!";
        let found = find_urls(text);
        let out = replace_ranges(text, &[(found[0].clone(), "[1]".into()), (found[1].clone(), "[2]".into())]);
        assert_eq!(out, "A [1]. B [2]!");
        assert_eq!(replace_ranges(text, &[]), text);
    }

    #[test]
    fn tokens_are_deterministic_unguessable_and_carry_nothing_of_their_inputs() {
        let key = b"a-link-key-of-sufficient-length";
        let url = "https://shop.example/p?utm_source=whatsapp";
        let t = LinkToken::derive(key, "c-42", "whatsapp#4915123456789", url);
        assert_eq!(t, LinkToken::derive(key, "c-42", "whatsapp#4915123456789", url));
        assert_eq!(t.as_str().len(), TOKEN_CHARS);
        assert!(t.as_str().bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{t}");
        // Any input changes it; so does the key.
        for other in [
            LinkToken::derive(key, "c-43", "whatsapp#4915123456789", url),
            LinkToken::derive(key, "c-42", "whatsapp#4915123456780", url),
            LinkToken::derive(key, "c-42", "whatsapp#4915123456789", "https://shop.example/q"),
            LinkToken::derive(b"another-link-key-entirely-here", "c-42", "whatsapp#4915123456789", url),
            // Moving a boundary between the parts is a different input, not the same bytes.
            LinkToken::derive(key, "c-4", "2whatsapp#4915123456789", url),
        ] {
            assert_ne!(t, other);
        }
        // Nothing of the number, the campaign or the URL is in it, in any encoding.
        let s = t.as_str().to_ascii_lowercase();
        for part in ["4915", "123456", "c-42", "shop", "whatsapp"] {
            assert!(!s.contains(part), "{t} holds {part}");
        }
        use base64::Engine;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(t.as_str()).unwrap();
        assert_eq!(bytes.len(), TOKEN_BYTES);
        assert!(!String::from_utf8_lossy(&bytes).contains("4915"));
    }

    #[test]
    fn only_canonical_tokens_parse() {
        let t = LinkToken::derive(b"k", "c", "r", "u");
        assert_eq!(LinkToken::parse(t.as_str()), Some(t.clone()));
        let s = t.as_str();
        for bad in [
            "",
            "short",
            &s[..21],
            &format!("{s}A"),
            &format!("{}=", &s[..21]),
            &s.replace(|c: char| c.is_ascii_alphanumeric(), "+"),
            "../../../../etc/passwd00",
            "AAAAAAAAAAAAAAAAAAAAA/",
            "AAAAAAAAAAAAAAAAAAAAAB", // the last character carries bits a 16-byte token does not have
        ] {
            assert_eq!(LinkToken::parse(bad), None, "{bad}");
        }
        assert!(LinkToken::parse("AAAAAAAAAAAAAAAAAAAAAA").is_some());
    }

    #[test]
    fn preview_fetchers_are_recognised() {
        for bot in [
            "WhatsApp/2.23.20.0 A",
            "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
            "TelegramBot (like TwitterBot)",
            "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
        ] {
            assert!(is_preview_fetcher(bot), "{bot}");
        }
        for person in [
            "",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 Safari/604.1",
            "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/126.0 Mobile Safari/537.36",
        ] {
            assert!(!is_preview_fetcher(person), "{person}");
        }
    }
}
