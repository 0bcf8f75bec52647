//! The approved WhatsApp message templates Parley may send outside the 24-hour window.
//! The catalog mirrors what the brand had approved in WhatsApp Manager; it lets Parley check
//! the parameter count before sending, split the positional parameters into the Graph request's
//! components, and render the text for the history and the local sandbox.
//!
//! Parameters are positional: the body's `{{1}}`, `{{2}}`… in order, then one per URL button
//! whose URL ends in `{{1}}` (in button order).
use super::message::{OutboundBody, TemplateRef};
use crate::config::ConfigError;
use serde::Deserialize;
use std::collections::HashSet;

pub(crate) const EMBEDDED: &str = include_str!("../../../config/templates.toml");
const FILE: &str = "config/templates.toml";

/// Meta's limits for template bodies and buttons.
pub const MAX_BODY: usize = 1024;
pub const MAX_QUICK_REPLIES: usize = 10;
pub const MAX_QUICK_REPLY_TITLE: usize = 25;
/// All buttons of a template together.
pub const MAX_BUTTONS: usize = 10;
pub const MAX_URL_BUTTONS: usize = 2;
pub const MAX_URL_BUTTON_TEXT: usize = 25;
pub const MAX_URL: usize = 2000;
/// The one placeholder a URL button may have, at the very end of its URL.
const URL_PLACEHOLDER: &str = "{{1}}";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TemplateCategory {
    Utility,
    Marketing,
    Authentication,
}

impl TemplateCategory {
    pub fn as_str(self) -> &'static str {
        match self {
            TemplateCategory::Utility => "utility",
            TemplateCategory::Marketing => "marketing",
            TemplateCategory::Authentication => "authentication",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateDef {
    pub name: String,
    /// As approved, e.g. `de` or `en_US`.
    pub language: String,
    pub category: TemplateCategory,
    /// Text with `{{1}}`, `{{2}}`… placeholders.
    pub body: String,
    /// Quick-reply button titles. They come first: button indices 0, 1, …
    #[serde(default)]
    pub buttons: Vec<String>,
    /// Call-to-action URL buttons, after the quick replies (their button index continues the
    /// count).
    #[serde(default)]
    pub url_buttons: Vec<UrlButton>,
    /// The template has an IMAGE header; this is the image sent unless a message names another
    /// (an `https://` link, or the id of media uploaded to WhatsApp).
    #[serde(default)]
    pub header_image: Option<String>,
}

/// A URL button: `url` may end in `{{1}}`, which each message fills in (its URL parameter).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UrlButton {
    /// The button's label.
    pub text: String,
    pub url: String,
}

impl UrlButton {
    /// Whether each message supplies the URL's end (a parameter).
    pub fn is_dynamic(&self) -> bool {
        self.url.ends_with(URL_PLACEHOLDER)
    }

    /// The URL a tap opens, with the message's parameter in place of `{{1}}`.
    pub fn resolve(&self, param: Option<&str>) -> String {
        match (self.url.strip_suffix(URL_PLACEHOLDER), param) {
            (Some(base), Some(p)) => format!("{base}{p}"),
            _ => self.url.clone(),
        }
    }
}

/// A send's positional parameters, split the way the Graph request carries them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitParams<'a> {
    /// The body's `{{1}}`, `{{2}}`…
    pub body: &'a [String],
    /// (button index, parameter) of each dynamic URL button, in button order.
    pub url_buttons: Vec<(usize, &'a str)>,
}

impl TemplateDef {
    /// How many parameters the body takes.
    pub fn body_param_count(&self) -> usize {
        placeholders(&self.body).ok().and_then(|p| p.into_iter().max()).unwrap_or(0)
    }

    /// How many positional parameters a send must carry: the body's, then one per URL button
    /// whose URL ends in `{{1}}`.
    pub fn param_count(&self) -> usize {
        self.body_param_count() + self.url_buttons.iter().filter(|b| b.is_dynamic()).count()
    }

    /// The Graph button index of the n-th URL button (quick replies come first).
    pub fn url_button_index(&self, n: usize) -> usize {
        self.buttons.len() + n
    }

    /// The positional parameters split into body and URL-button parameters; None unless exactly
    /// `param_count` are given.
    pub fn split<'a>(&self, params: &'a [String]) -> Option<SplitParams<'a>> {
        if params.len() != self.param_count() {
            return None;
        }
        let (body, mut rest) = params.split_at(self.body_param_count());
        let mut url_buttons = Vec::new();
        for (n, b) in self.url_buttons.iter().enumerate() {
            if b.is_dynamic() {
                let (first, tail) = rest.split_first()?;
                url_buttons.push((self.url_button_index(n), first.as_str()));
                rest = tail;
            }
        }
        Some(SplitParams { body, url_buttons })
    }

    /// Each URL button as (label, the URL a tap opens); None unless exactly `param_count`
    /// parameters are given.
    pub fn links(&self, params: &[String]) -> Option<Vec<(String, String)>> {
        let split = self.split(params)?;
        let mut dynamic = split.url_buttons.iter().map(|(_, p)| *p);
        Some(
            self.url_buttons
                .iter()
                .map(|b| {
                    let param = if b.is_dynamic() { dynamic.next() } else { None };
                    (b.text.clone(), b.resolve(param))
                })
                .collect(),
        )
    }

    /// What the customer sees: the rendered body, then a `[label] url` line per URL button.
    pub fn render_with_buttons(&self, params: &[String]) -> Option<String> {
        let mut out = self.render(params)?;
        for (text, url) in self.links(params)? {
            out.push_str(&format!("\n[{text}] {url}"));
        }
        Some(out)
    }

    /// The body and its URL buttons with the placeholders as a sender numbers them: a URL
    /// button's `{{1}}` shows as its positional number (the body's `{{1}}`… come first).
    pub fn preview(&self) -> String {
        let mut out = self.body.clone();
        let mut next = self.body_param_count();
        for b in &self.url_buttons {
            let url = match b.url.strip_suffix(URL_PLACEHOLDER) {
                Some(base) => {
                    next += 1;
                    format!("{base}{{{{{next}}}}}")
                }
                None => b.url.clone(),
            };
            out.push_str(&format!("\n[{}] {url}", b.text));
        }
        out
    }

    /// The body with `{{n}}` replaced by the n-th parameter; `params` is the full positional
    /// list (body, then URL buttons): None unless exactly `param_count` are given.
    pub fn render(&self, params: &[String]) -> Option<String> {
        let params = self.split(params)?.body;
        let mut out = String::with_capacity(self.body.len());
        let mut rest = self.body.as_str();
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find("}}")?;
            let n: usize = after[..end].parse().ok()?;
            out.push_str(&clean_param(params.get(n.checked_sub(1)?)?));
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        Some(out)
    }
}

/// Meta rejects parameters with newlines, tabs or more than four spaces in a row (#132018).
fn clean_param(p: &str) -> String {
    p.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The placeholder numbers in order of appearance, or why the body is malformed.
fn placeholders(body: &str) -> Result<Vec<usize>, String> {
    let mut found = Vec::new();
    let mut rest = body;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| "has '{{' without a closing '}}'".to_string())?;
        let inner = &after[..end];
        match inner.parse::<usize>() {
            Ok(n) if n >= 1 && inner.bytes().all(|b| b.is_ascii_digit()) => found.push(n),
            _ => return Err(format!("placeholder '{{{{{inner}}}}}' must be a number from 1, like {{{{1}}}}")),
        }
        rest = &after[end + 2..];
    }
    if rest.contains("}}") {
        return Err("has '}}' without an opening '{{'".into());
    }
    Ok(found)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default, rename = "template")]
    templates: Vec<TemplateDef>,
}

#[derive(Debug, Clone, Default)]
pub struct Templates {
    defs: Vec<TemplateDef>,
}

impl Templates {
    pub fn embedded() -> Result<Templates, ConfigError> {
        Self::from_toml(EMBEDDED)
    }

    pub fn from_toml(src: &str) -> Result<Templates, ConfigError> {
        let err = |reason: String| ConfigError::Invalid { name: FILE, reason };
        let raw: RawFile = toml::from_str(src).map_err(|e| err(e.to_string().trim_end().to_string()))?;
        let mut errors = Vec::new();
        let mut seen = HashSet::new();
        for t in &raw.templates {
            let ctx = format!("template '{}' ({})", t.name, t.language);
            if let Err(e) = validate(t) {
                errors.push(format!("{ctx}: {e}"));
            }
            if !seen.insert((t.name.clone(), lang_key(&t.language))) {
                errors.push(format!("{ctx}: is defined twice"));
            }
        }
        if errors.is_empty() {
            Ok(Templates { defs: raw.templates })
        } else {
            Err(err(errors.join("; ")))
        }
    }

    /// The template in that language: an exact match first, else the same base language
    /// (`de` finds `de_DE` and `de_DE` finds `de`).
    pub fn get(&self, name: &str, language: &str) -> Option<&TemplateDef> {
        let want = lang_key(language);
        let base = |l: &str| l.split('_').next().unwrap_or_default().to_string();
        let named = || self.defs.iter().filter(move |t| t.name == name);
        named()
            .find(|t| lang_key(&t.language) == want)
            .or_else(|| named().find(|t| base(&lang_key(&t.language)) == base(&want)))
    }

    /// What the customer sees of a send (body, then a `[label] url` line per URL button).
    pub fn render(&self, name: &str, language: &str, params: &[String]) -> Option<String> {
        self.get(name, language)?.render_with_buttons(params)
    }

    /// A template message to send from the full positional list (body parameters, then the URL
    /// buttons'); None when the template is unknown or the count differs from the approved
    /// template (Meta would reject the send with #132000).
    pub fn body(&self, name: &str, language: &str, params: &[String]) -> Option<OutboundBody> {
        let def = self.get(name, language)?;
        if params.len() != def.param_count() {
            return None;
        }
        let body_params = def.body_param_count();
        // Body text loses what Meta refuses in it (#132018); a URL part only its outer spaces.
        let params = params
            .iter()
            .enumerate()
            .map(|(i, p)| if i < body_params { clean_param(p) } else { p.trim().to_string() })
            .collect();
        Some(OutboundBody::Template { template: TemplateRef::new(&def.name, &def.language, params) })
    }

    pub fn iter(&self) -> impl Iterator<Item = &TemplateDef> {
        self.defs.iter()
    }
}

fn lang_key(l: &str) -> String {
    l.trim().replace('-', "_").to_ascii_lowercase()
}

fn validate(t: &TemplateDef) -> Result<(), String> {
    if t.name.is_empty()
        || t.name.len() > 512
        || !t.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err("name must be lowercase letters, digits and '_' (Meta's rule)".into());
    }
    let lang_ok = match t.language.split_once('_') {
        Some((l, r)) => {
            l.len() == 2
                && l.bytes().all(|b| b.is_ascii_lowercase())
                && r.len() == 2
                && r.bytes().all(|b| b.is_ascii_uppercase())
        }
        None => t.language.len() == 2 && t.language.bytes().all(|b| b.is_ascii_lowercase()),
    };
    if !lang_ok {
        return Err(format!("language '{}' must be a code like 'de' or 'en_US'", t.language));
    }
    let body = t.body.trim();
    let n = body.chars().count();
    if body.is_empty() || n > MAX_BODY {
        return Err(format!("body must be 1 to {MAX_BODY} characters, it has {n}"));
    }
    let found = placeholders(body)?;
    let max = found.iter().copied().max().unwrap_or(0);
    if let Some(missing) = (1..=max).find(|i| !found.contains(i)) {
        return Err(format!("placeholders must be numbered 1, 2, 3… without gaps; {{{{{missing}}}}} is missing"));
    }
    if body.starts_with("{{") || body.ends_with("}}") {
        return Err("body must not start or end with a placeholder (Meta rejects it)".into());
    }
    if t.buttons.len() > MAX_QUICK_REPLIES {
        return Err(format!("has {} buttons, at most {MAX_QUICK_REPLIES} are allowed", t.buttons.len()));
    }
    for b in &t.buttons {
        let n = b.chars().count();
        if b.trim().is_empty() || n > MAX_QUICK_REPLY_TITLE {
            return Err(format!("button '{b}' must be 1 to {MAX_QUICK_REPLY_TITLE} characters, it has {n}"));
        }
    }
    if t.url_buttons.len() > MAX_URL_BUTTONS {
        return Err(format!("has {} URL buttons, at most {MAX_URL_BUTTONS} are allowed", t.url_buttons.len()));
    }
    let all = t.buttons.len() + t.url_buttons.len();
    if all > MAX_BUTTONS {
        return Err(format!("has {all} buttons in all, at most {MAX_BUTTONS} are allowed"));
    }
    for b in &t.url_buttons {
        let n = b.text.chars().count();
        if b.text.trim().is_empty() || n > MAX_URL_BUTTON_TEXT {
            return Err(format!("URL button '{}' must be 1 to {MAX_URL_BUTTON_TEXT} characters, it has {n}", b.text));
        }
        validate_url(&b.url).map_err(|e| format!("URL button '{}': {e}", b.text))?;
    }
    if let Some(image) = &t.header_image {
        let media_id = !image.is_empty() && image.bytes().all(|b| b.is_ascii_digit());
        if !media_id {
            let checked = match image.contains("{{") {
                true => Err("it must not have a placeholder".to_string()),
                false => validate_url(image),
            };
            checked.map_err(|e| format!("header_image must be an https:// link or a media id: {e}"))?;
        }
    }
    Ok(())
}

/// A button URL (or header link): http(s), a host, at most one `{{1}}` and only at the end.
fn validate_url(url: &str) -> Result<(), String> {
    let n = url.chars().count();
    if n > MAX_URL {
        return Err(format!("URL must be at most {MAX_URL} characters, it has {n}"));
    }
    let Some(rest) = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://")) else {
        return Err("URL must start with https:// (or http://)".into());
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || host.contains(['{', '}', '@']) || url.chars().any(char::is_whitespace) {
        return Err("URL must name a host, without spaces, user info or a placeholder in the host".into());
    }
    let found = placeholders(url)?;
    match found.as_slice() {
        [] => Ok(()),
        [1] if url.ends_with(URL_PLACEHOLDER) => Ok(()),
        _ => Err("URL may only end in one {{1}} placeholder (Meta's rule), nowhere else".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn reason(src: &str) -> String {
        match Templates::from_toml(src) {
            Err(ConfigError::Invalid { reason, .. }) => reason,
            Err(other) => panic!("unexpected error kind: {other}"),
            Ok(_) => panic!("accepted a bad catalog:\n{src}"),
        }
    }

    fn one(body: &str, extra: &str) -> String {
        format!("[[template]]\nname = \"t\"\nlanguage = \"de\"\ncategory = \"utility\"\nbody = \"{body}\"\n{extra}")
    }

    #[test]
    fn embedded_catalog_loads_with_the_required_templates() {
        let t = Templates::embedded().expect("embedded templates are valid");
        for name in ["service_followup", "order_confirmation", "order_shipped", "consent_confirmation"] {
            for lang in ["de", "en"] {
                let def = t.get(name, lang).unwrap_or_else(|| panic!("{name} {lang} missing"));
                assert_eq!(def.category, TemplateCategory::Utility, "{name}");
            }
        }
        let followup = t.get("service_followup", "de").unwrap();
        assert_eq!(followup.buttons.len(), 1);
        assert_eq!(followup.param_count(), 0);
    }

    #[test]
    fn language_matches_by_base_language() {
        let t = Templates::embedded().unwrap();
        assert_eq!(t.get("service_followup", "de_DE").unwrap().language, "de");
        assert_eq!(t.get("service_followup", "en-US").unwrap().language, "en");
        assert!(t.get("service_followup", "fr").is_none());
        assert!(t.get("no_such_template", "de").is_none());
        let regional = Templates::from_toml(&one("Hallo", "").replace("\"de\"", "\"de_DE\"")).unwrap();
        assert_eq!(regional.get("t", "de").unwrap().language, "de_DE");
    }

    #[test]
    fn render_substitutes_params_and_checks_their_count() {
        let t = Templates::embedded().unwrap();
        let shipped = t.get("order_shipped", "en").unwrap();
        assert_eq!(shipped.param_count(), 3);
        let text = t.render("order_shipped", "en", &p(&["#1042", "DHL", "https://example.com/t/1"])).unwrap();
        assert!(text.contains("#1042") && text.contains("DHL") && text.contains("https://example.com/t/1"), "{text}");
        assert!(!text.contains("{{"), "{text}");
        assert!(t.render("order_shipped", "en", &p(&["#1042", "DHL"])).is_none());
        assert!(t.render("order_shipped", "en", &p(&["a", "b", "c", "d"])).is_none());
    }

    #[test]
    fn render_repeats_placeholders_and_flattens_whitespace() {
        let t = Templates::from_toml(&one("Hi {{1}}, {{2}} for {{1}}.", "")).unwrap();
        assert_eq!(t.render("t", "de", &p(&["Ann", "a\n\tgift"])).unwrap(), "Hi Ann, a gift for Ann.");
    }

    #[test]
    fn body_builds_a_template_ref_with_the_approved_language() {
        let t = Templates::embedded().unwrap();
        let b = t.body("order_confirmation", "de_DE", &p(&["#1042", "89,90 €"])).unwrap();
        let OutboundBody::Template { template } = b else { panic!("not a template") };
        assert_eq!(template.name, "order_confirmation");
        assert_eq!(template.language, "de");
        assert_eq!(template.params, p(&["#1042", "89,90 €"]));
        assert!(t.body("order_confirmation", "de", &p(&["#1042"])).is_none());
        assert!(t.body("service_followup", "en", &[]).is_some());
        assert!(t.body("nope", "en", &[]).is_none());
    }

    fn url_buttons(urls: &[&str]) -> String {
        let list: Vec<String> =
            urls.iter().enumerate().map(|(i, u)| format!("{{ text = \"B{i}\", url = \"{u}\" }}")).collect();
        format!("url_buttons = [{}]", list.join(", "))
    }

    #[test]
    fn the_newsletter_takes_its_body_parameter_then_its_url_buttons() {
        let t = Templates::embedded().unwrap();
        for (lang, label) in [("de", "Jetzt ansehen"), ("en", "Shop now")] {
            let def = t.get("newsletter", lang).unwrap();
            assert_eq!(def.category, TemplateCategory::Marketing);
            assert_eq!((def.body_param_count(), def.param_count()), (1, 2));
            assert_eq!(def.url_buttons.len(), 1);
            let params = p(&["Erika", "spring"]);
            let split = def.split(&params).unwrap();
            assert_eq!(split.body, &params[..1]);
            assert_eq!(split.url_buttons, vec![(0, "spring")]);
            let text = t.render("newsletter", lang, &params).unwrap();
            let (body, button) = text.split_once('\n').unwrap();
            assert!(body.contains("Erika") && !body.contains("{{"), "{body}");
            assert_eq!(button, format!("[{label}] https://parley-demo.myshopify.com/collections/spring"));
            assert_eq!(def.render(&params).as_deref(), Some(body));
            assert!(def.split(&params[..1]).is_none() && def.render(&params[..1]).is_none());
            assert!(def
                .preview()
                .ends_with(&format!("[{label}] https://parley-demo.myshopify.com/collections/{{{{2}}}}")));
        }
    }

    #[test]
    fn url_buttons_follow_the_quick_replies_and_only_dynamic_ones_take_a_parameter() {
        let src = one(
            "Hi {{1}}, {{2}}.",
            "buttons = [\"STOP\", \"Mehr\"]\nurl_buttons = [{ text = \"Fix\", url = \"https://a.example/all\" }, { text = \"Dein Link\", url = \"https://a.example/c?id={{1}}\" }]\nheader_image = \"https://cdn.example/a.jpg\"",
        );
        let t = Templates::from_toml(&src).unwrap();
        let def = t.get("t", "de").unwrap();
        assert_eq!((def.body_param_count(), def.param_count()), (2, 3));
        let params = p(&["Ann", "a\n\tgift", "42"]);
        // The static button is index 2, the dynamic one index 3.
        assert_eq!(def.split(&params).unwrap().url_buttons, vec![(3, "42")]);
        assert_eq!(
            def.links(&params).unwrap(),
            vec![
                ("Fix".to_string(), "https://a.example/all".to_string()),
                ("Dein Link".to_string(), "https://a.example/c?id=42".to_string())
            ]
        );
        assert_eq!(
            t.render("t", "de", &params).unwrap(),
            "Hi Ann, a gift.\n[Fix] https://a.example/all\n[Dein Link] https://a.example/c?id=42"
        );
        assert_eq!(def.header_image.as_deref(), Some("https://cdn.example/a.jpg"));
        // A media id is a header image too.
        assert!(Templates::from_toml(&one("Hallo", "header_image = \"1043219\"")).is_ok());
    }

    #[test]
    fn body_takes_the_full_positional_list_and_cleans_only_the_body_text() {
        let t = Templates::embedded().unwrap();
        let b = t.body("newsletter", "en_GB", &p(&["Erika\n Mustermann", "  spring-26 "])).unwrap();
        let OutboundBody::Template { template } = b else { panic!("not a template") };
        assert_eq!((template.name.as_str(), template.language.as_str()), ("newsletter", "en"));
        assert_eq!(template.params, p(&["Erika Mustermann", "spring-26"]));
        assert_eq!(template.header_image, None);
        assert!(t.body("newsletter", "de", &p(&["Erika"])).is_none());
        assert!(t.body("newsletter", "de", &p(&["Erika", "spring", "x"])).is_none());
    }

    #[test]
    fn rejects_bad_templates() {
        let cases: &[(String, &str)] = &[
            (one("Hallo {{1}} und {{3}}.", ""), "{{2}} is missing"),
            (one("Hallo {{name}}.", ""), "{{name}}"),
            (one("Hallo {{1.", ""), "without a closing"),
            (one("{{1}}, hallo.", ""), "start or end"),
            (one("Hallo {{1}}", ""), "start or end"),
            (one("", ""), "body must be"),
            (one("Hallo", "buttons = [\"Ein viel zu langer Buttontext\"]"), "1 to 25 characters"),
            (one("Hallo", "").replace("\"t\"", "\"Bad-Name\""), "lowercase"),
            (one("Hallo", "").replace("\"de\"", "\"deutsch\""), "language 'deutsch'"),
            (one("Hallo", "").replace("utility", "promo"), "promo"),
            (one("Hallo", "foo = 1"), "foo"),
            (format!("{}\n{}", one("A", ""), one("B", "")), "defined twice"),
            (one("Hallo", &url_buttons(&["https://a.example/{{1}}"; 3])), "at most 2 are allowed"),
            (one("Hallo", &url_buttons(&["https://a.example/{{1}}/x"])), "only end in one {{1}}"),
            (one("Hallo", &url_buttons(&["https://a.example/{{1}}{{1}}"])), "only end in one {{1}}"),
            (one("Hallo", &url_buttons(&["https://a.example/{{2}}"])), "only end in one {{1}}"),
            (one("Hallo", &url_buttons(&["https://a.example/?q={{id}}"])), "{{id}}"),
            (one("Hallo", &url_buttons(&["https://{{1}}"])), "must name a host"),
            (one("Hallo", &url_buttons(&["https://a.example/x y"])), "without spaces"),
            (one("Hallo", &url_buttons(&["ftp://a.example/{{1}}"])), "must start with https://"),
            (one("Hallo", &url_buttons(&["https://user@a.example/"])), "user info"),
            (one("Hallo", &url_buttons(&[&format!("https://a.example/{}", "x".repeat(2000))])), "at most 2000"),
            (
                one(
                    "Hallo",
                    "url_buttons = [{ text = \"Ein viel zu langer Buttontext\", url = \"https://a.example\" }]",
                ),
                "URL button 'Ein viel zu langer Buttontext' must be 1 to 25",
            ),
            (one("Hallo", "url_buttons = [{ text = \"Go\", link = \"https://a.example\" }]"), "link"),
            (
                one(
                    "Hallo",
                    &format!("buttons = [{}]\n{}", ["\"A\""; 9].join(", "), url_buttons(&["https://a.example"; 2])),
                ),
                "has 11 buttons in all, at most 10",
            ),
            (one("Hallo", "header_image = \"spring.jpg\""), "header_image must be an https:// link or a media id"),
            (one("Hallo", "header_image = \"https://cdn.example/{{1}}.jpg\""), "must not have a placeholder"),
        ];
        for (src, needle) in cases {
            let r = reason(src);
            assert!(r.contains(needle), "error '{r}' should mention '{needle}'");
        }
    }
}
