//! The agent console's static files (`GET /agent/`, `GET /agent/assets/{file}`), compiled into the
//! agent-api function: one deploy unit with the API it calls, same origin (no CORS), a few KB.
//!
//! Every answer carries a strong ETag (a digest of what is served) and answers `If-None-Match`
//! with 304. The page is revalidated on every load (`no-cache`); it names its assets with
//! `?v=<version>` (a digest of all of them), so an asset fetched under the current version may be
//! cached for good, and a deploy with changed files is picked up on the next page load.
//! The content-security-policy allows the page's own origin only — plus, in AWS, the Cognito
//! domain the console exchanges its sign-in code at.
use super::agent::ConsoleAuth;
use super::ApiError;
use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

const INDEX: &str = include_str!("../../console/index.html");

/// `(file name, content type, contents)`; nothing else under `/agent/assets/` exists.
const ASSETS: &[(&str, &str, &str)] = &[
    ("console.css", "text/css; charset=utf-8", include_str!("../../console/console.css")),
    ("console.js", "text/javascript; charset=utf-8", include_str!("../../console/console.js")),
];

const VERSION_PLACEHOLDER: &str = "{{version}}";

struct Built {
    /// The page with the assets' version filled in.
    index: String,
    index_etag: String,
    /// Per asset (same order as [`ASSETS`]).
    asset_etags: Vec<String>,
    /// A digest of every asset: the `?v=` the page names them with.
    version: String,
}

fn digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p.as_bytes());
    }
    hex::encode(&h.finalize()[..12])
}

fn built() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let version = digest(&ASSETS.iter().map(|(_, _, body)| *body).collect::<Vec<_>>());
        let index = INDEX.replace(VERSION_PLACEHOLDER, &version);
        Built {
            index_etag: format!("\"{}\"", digest(&[&index])),
            asset_etags: ASSETS.iter().map(|(_, _, body)| format!("\"{}\"", digest(&[body]))).collect(),
            index,
            version,
        }
    })
}

/// Whether `If-None-Match` names `etag` (a list, `*`, or weak forms all count, as RFC 9110 §13.1.2's
/// weak comparison does for GET).
fn not_modified(req: &Request<Bytes>, etag: &str) -> bool {
    let Some(given) = req.headers().get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    given.split(',').map(str::trim).any(|tag| tag == "*" || tag.trim_start_matches("W/") == etag)
}

/// The page's policy: scripts, styles, requests only to its own origin; no frames, no plugins,
/// no `<base>` tricks, forms post only to itself.
fn content_security_policy(auth: &ConsoleAuth) -> String {
    let connect = match auth {
        ConsoleAuth::Sandbox => "'self'".to_string(),
        // The code-for-token exchange of the sign-in (PKCE) goes to the Cognito domain.
        ConsoleAuth::Cognito { domain, .. } => format!("'self' https://{domain}"),
    };
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src {connect}; \
         form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    )
}

fn respond(
    req: &Request<Bytes>,
    content_type: &str,
    cache: &str,
    etag: &str,
    csp: &str,
    body: &str,
) -> Response<String> {
    let builder = Response::builder()
        .header(header::ETAG, etag)
        .header(header::CACHE_CONTROL, cache)
        .header(header::CONTENT_SECURITY_POLICY, csp)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::REFERRER_POLICY, "no-referrer")
        .header(header::X_FRAME_OPTIONS, "DENY");
    let response = if not_modified(req, etag) {
        builder.status(StatusCode::NOT_MODIFIED).body(String::new())
    } else {
        builder.status(StatusCode::OK).header(header::CONTENT_TYPE, content_type).body(body.to_string())
    };
    response.expect("valid response")
}

/// `GET /agent/`: the console page.
pub fn index(req: &Request<Bytes>, auth: &ConsoleAuth) -> Response<String> {
    let b = built();
    respond(req, "text/html; charset=utf-8", "no-cache", &b.index_etag, &content_security_policy(auth), &b.index)
}

/// `GET /agent/assets/{file}`: a stylesheet or script of the console; anything else is 404.
pub fn asset(req: &Request<Bytes>, file: &str, auth: &ConsoleAuth) -> Result<Response<String>, ApiError> {
    let b = built();
    let (i, (_, content_type, body)) =
        ASSETS.iter().enumerate().find(|(_, (name, _, _))| *name == file).ok_or(ApiError::NotFound)?;
    // Only the version the current page names may be kept for good; any other request (an old
    // page, no `v`) revalidates.
    let current = super::query_param(req, "v").is_some_and(|v| v == b.version);
    let cache = if current { "public, max-age=31536000, immutable" } else { "no-cache" };
    Ok(respond(req, content_type, cache, &b.asset_etags[i], &content_security_policy(auth), body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(uri: &str, if_none_match: Option<&str>) -> Request<Bytes> {
        let mut b = Request::builder().uri(uri);
        if let Some(tag) = if_none_match {
            b = b.header(header::IF_NONE_MATCH, tag);
        }
        b.body(Bytes::new()).unwrap()
    }

    fn header_of<'a>(r: &'a Response<String>, name: &str) -> &'a str {
        r.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }

    #[test]
    fn the_page_is_html_under_a_self_only_policy_and_revalidated() {
        let r = index(&get("/agent/", None), &ConsoleAuth::Sandbox);
        assert_eq!(r.status(), 200);
        assert_eq!(header_of(&r, "content-type"), "text/html; charset=utf-8");
        assert_eq!(header_of(&r, "cache-control"), "no-cache");
        let csp = header_of(&r, "content-security-policy");
        for directive in ["default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self';"] {
            assert!(csp.contains(directive), "{directive} missing from {csp}");
        }
        assert!(!csp.contains("unsafe"), "{csp}");
        assert_eq!(header_of(&r, "x-content-type-options"), "nosniff");
        assert!(!r.body().contains(VERSION_PLACEHOLDER));
    }

    #[test]
    fn in_aws_the_policy_also_allows_the_cognito_token_endpoint_and_nothing_else() {
        let auth =
            ConsoleAuth::Cognito { domain: "parley.auth.eu-central-1.amazoncognito.com".into(), client_id: "c".into() };
        let r = index(&get("/agent/", None), &auth);
        assert!(header_of(&r, "content-security-policy")
            .contains("connect-src 'self' https://parley.auth.eu-central-1.amazoncognito.com;"));
    }

    #[test]
    fn a_matching_etag_is_answered_with_304_and_no_body() {
        let first = index(&get("/agent/", None), &ConsoleAuth::Sandbox);
        let etag = header_of(&first, "etag").to_string();
        assert!(etag.starts_with('"') && etag.len() > 10);
        let again = index(&get("/agent/", Some(&format!("\"other\", W/{etag}"))), &ConsoleAuth::Sandbox);
        assert_eq!(again.status(), 304);
        assert!(again.body().is_empty());
        assert_eq!(header_of(&again, "etag"), etag);
        let changed = index(&get("/agent/", Some("\"stale\"")), &ConsoleAuth::Sandbox);
        assert_eq!(changed.status(), 200);
    }

    #[test]
    fn every_asset_the_page_names_is_served_with_its_type_and_the_current_version_is_immutable() {
        let page = index(&get("/agent/", None), &ConsoleAuth::Sandbox).into_body();
        let named: Vec<&str> =
            page.split("/agent/assets/").skip(1).map(|rest| rest.split(['"', '\'']).next().unwrap()).collect();
        assert_eq!(named.len(), ASSETS.len(), "the page names {named:?}");
        for url in named {
            let (file, query) = url.split_once('?').expect("versioned asset url");
            let r = asset(&get(&format!("/agent/assets/{url}"), None), file, &ConsoleAuth::Sandbox).unwrap();
            assert_eq!(r.status(), 200, "{file}");
            let want = if file.ends_with(".js") { "text/javascript; charset=utf-8" } else { "text/css; charset=utf-8" };
            assert_eq!(header_of(&r, "content-type"), want);
            assert_eq!(header_of(&r, "cache-control"), "public, max-age=31536000, immutable", "{query}");
            let stale = asset(&get(&format!("/agent/assets/{file}?v=old"), None), file, &ConsoleAuth::Sandbox).unwrap();
            assert_eq!(header_of(&stale, "cache-control"), "no-cache");
        }
    }

    #[test]
    fn unknown_assets_and_paths_that_try_to_leave_the_folder_are_404() {
        for file in ["nope.js", "../index.html", "console.js/../../Cargo.toml", ""] {
            assert!(matches!(
                asset(&get("/agent/assets/x", None), file, &ConsoleAuth::Sandbox),
                Err(ApiError::NotFound)
            ));
        }
    }

    #[test]
    fn the_campaign_form_offers_exactly_the_parameter_fields_the_api_knows() {
        let js = ASSETS.iter().find(|(n, _, _)| *n == "console.js").unwrap().2;
        let line = js.lines().find(|l| l.starts_with("const PARAM_FIELDS")).expect("console.js lists PARAM_FIELDS");
        let mut offered: Vec<&str> = line.split('"').skip(1).step_by(2).collect();
        let mut known = crate::domain::campaign::FIELD_NAMES.to_vec();
        offered.sort_unstable();
        known.sort_unstable();
        assert_eq!(offered, known);
    }

    #[test]
    fn the_script_never_writes_html_from_data() {
        // The policy blocks inline scripts; DOM building keeps customer text out of the markup too.
        let js = ASSETS.iter().find(|(n, _, _)| *n == "console.js").unwrap().2;
        for risky in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("] {
            assert!(!js.contains(risky), "console.js uses {risky}");
        }
        // No inline handlers or styles the policy would block.
        assert!(!INDEX.contains(" style=") && !INDEX.contains(" onclick="));
    }
}
