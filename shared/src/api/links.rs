//! `GET /r/{token}`: a tracked link. Public (no authorizer: recipients open it from the chat).
//! A click is counted and answered `302` to the URL stored with the token — never anywhere a
//! request names, so the route is no open redirect — with `cache-control: no-store` (every click
//! reaches us, no browser or proxy replays the redirect) and `referrer-policy: no-referrer` (the
//! shop does not learn the short link). A malformed, unknown or erased token → `404` with a small
//! page. `HEAD` and link-preview fetchers get the same answer without a count.
use super::{ApiError, App};
use crate::domain::links::is_preview_fetcher;
use crate::links::{follow, Visit};
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};

const NOT_FOUND_PAGE: &str = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>Link not found</title></head>\
<body><p>This link is not valid or no longer available.</p></body></html>\n";

pub async fn route(app: &App, req: &Request<Bytes>, path: &str) -> Result<Response<String>, ApiError> {
    let user_agent = req.headers().get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("");
    let visit = match *req.method() {
        Method::GET if is_preview_fetcher(user_agent) => Visit::Preview,
        Method::GET => Visit::Click,
        Method::HEAD => Visit::Preview,
        _ => return Err(ApiError::MethodNotAllowed { allow: "GET, HEAD" }),
    };
    // The query (`?next=…`) and everything else in the request is ignored: only the token counts.
    let token = path.strip_prefix("/r/").unwrap_or_default();
    let target = follow(&app.store, token, visit, crate::time_util::now_unix()).await?;
    let head = req.method() == Method::HEAD;
    let builder =
        Response::builder().header(header::CACHE_CONTROL, "no-store").header(header::REFERRER_POLICY, "no-referrer");
    let response = match target {
        Some(url) => builder.status(StatusCode::FOUND).header(header::LOCATION, url).body(String::new()),
        None => builder
            .status(StatusCode::NOT_FOUND)
            .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
            .body(if head { String::new() } else { NOT_FOUND_PAGE.to_string() }),
    };
    // A stored URL is ASCII by construction (TrackableUrl); an invalid header would be a bug.
    response.map_err(|_| ApiError::Internal("tracked link: the stored URL is no valid Location header".into()))
}
