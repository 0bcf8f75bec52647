//! The approved WhatsApp message templates Parley may send outside the 24-hour window.
//! The catalog mirrors what the brand had approved in WhatsApp Manager; it lets Parley check
//! the parameter count before sending and render the text for the local sandbox.
use super::message::{OutboundBody, TemplateRef};
use crate::config::ConfigError;
use serde::Deserialize;
use std::collections::HashSet;

const EMBEDDED: &str = include_str!("../../../config/templates.toml");
const FILE: &str = "config/templates.toml";

/// Meta's limits for template bodies and quick-reply buttons.
pub const MAX_BODY: usize = 1024;
pub const MAX_QUICK_REPLIES: usize = 10;
pub const MAX_QUICK_REPLY_TITLE: usize = 25;

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
    /// Quick-reply button titles.
    #[serde(default)]
    pub buttons: Vec<String>,
}

impl TemplateDef {
    /// How many body parameters a send must carry.
    pub fn param_count(&self) -> usize {
        placeholders(&self.body).ok().and_then(|p| p.into_iter().max()).unwrap_or(0)
    }

    /// The body with `{{n}}` replaced by `params[n-1]`; None unless exactly `param_count` are given.
    pub fn render(&self, params: &[String]) -> Option<String> {
        if params.len() != self.param_count() {
            return None;
        }
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

    pub fn render(&self, name: &str, language: &str, params: &[String]) -> Option<String> {
        self.get(name, language)?.render(params)
    }

    /// A template message to send; None when the template is unknown or the parameter count
    /// differs from the approved body (Meta would reject the send with #132000).
    pub fn body(&self, name: &str, language: &str, params: &[String]) -> Option<OutboundBody> {
        let def = self.get(name, language)?;
        if params.len() != def.param_count() {
            return None;
        }
        Some(OutboundBody::Template {
            template: TemplateRef {
                name: def.name.clone(),
                language: def.language.clone(),
                params: params.iter().map(|p| clean_param(p)).collect(),
                payloads: Vec::new(),
            },
        })
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
    Ok(())
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
        ];
        for (src, needle) in cases {
            let r = reason(src);
            assert!(r.contains(needle), "error '{r}' should mention '{needle}'");
        }
    }
}
