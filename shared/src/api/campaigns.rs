//! The campaign API (`/campaigns…`, `/segments/preview`): the admin `x-api-key` or an admin's
//! token. Handlers decode, call the campaign service ([`crate::campaigns`]) and map its errors.
use super::agent::cached;
use super::{json_response, query_param, ApiError, App};
use crate::campaigns::{CampaignError, Campaigns, Spec};
use crate::domain::campaign::Action;
use crate::domain::segment::Segment;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use serde_json::json;

impl From<CampaignError> for ApiError {
    fn from(e: CampaignError) -> Self {
        match e {
            CampaignError::NotFound => ApiError::Missing("no campaign with this id"),
            CampaignError::Invalid(m) => ApiError::Unprocessable(m),
            CampaignError::BadTransition(t) => {
                ApiError::Conflict { code: "invalid_state", message: t.to_string(), extra: json!({ "state": t.from }) }
            }
            CampaignError::Contended => ApiError::Conflict {
                code: "changed_concurrently",
                message: "the campaign changed at the same time; try again".into(),
                extra: json!({}),
            },
            CampaignError::Store(s) => s.into(),
            CampaignError::Queue(q) => q.into(),
        }
    }
}

impl App {
    /// The campaign service, when this function has the campaign queue.
    pub fn campaigns(&self) -> Result<Campaigns<'_>, ApiError> {
        let jobs =
            self.campaign_jobs.as_ref().ok_or_else(|| ApiError::Internal("no campaign queue configured".into()))?;
        Ok(Campaigns {
            store: &self.store,
            outbound: &self.producer,
            jobs,
            templates: &self.templates,
            accounts: &self.accounts,
            default_tz: &self.campaign_tz,
            links: self.links().ok(),
            concurrency: self.settings.campaign_page_concurrency,
        })
    }
}

/// Campaigns `GET /campaigns` lists, newest first.
const LIST_LIMIT: usize = 50;

fn body<'a, T: serde::Deserialize<'a>>(req: &'a Request<Bytes>) -> Result<T, ApiError> {
    crate::privacy::from_json_slice(req.body()).map_err(ApiError::BadRequest)
}

/// `/campaigns…` and `/segments/preview`; `None` when the path is not theirs.
pub async fn route(app: &App, req: &Request<Bytes>, path: &str) -> Option<Result<Response<String>, ApiError>> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = req.method().clone();
    if !matches!(parts.first(), Some(&"campaigns") | Some(&"segments")) {
        return None;
    }
    Some(
        async {
            app.check_admin_or_token(req).await?;
            let now = crate::time_util::now_unix();
            let campaigns = app.campaigns()?;
            match (method, parts.as_slice()) {
                (Method::POST, ["campaigns"]) => {
                    let spec: Spec = body(req)?;
                    let rec = campaigns.create(spec, now).await?;
                    Ok(json_response(StatusCode::CREATED, &json!({ "id": rec.id, "state": rec.state })))
                }
                // The console polls these while its Campaigns view is open: an ETag over the
                // answer, so an unchanged one is a bodiless 304 (as the inbox's).
                (Method::GET, ["campaigns"]) => {
                    Ok(cached(req, json!({ "campaigns": campaigns.list(LIST_LIMIT).await? })))
                }
                (_, ["campaigns"]) => Err(ApiError::MethodNotAllowed { allow: "GET, POST" }),
                (Method::GET, ["campaigns", id]) => Ok(cached(req, campaigns.report(id).await?)),
                (_, ["campaigns", _]) => Err(ApiError::MethodNotAllowed { allow: "GET" }),
                (Method::GET, ["campaigns", id, "recipients"]) => {
                    let limit =
                        query_param(req, "limit").and_then(|l| l.parse().ok()).unwrap_or(100usize).clamp(1, 500);
                    let after = query_param(req, "after");
                    let status = query_param(req, "status");
                    campaigns.get(id).await?;
                    let (page, next) =
                        app.store.recipients_page(id, after.as_deref(), limit, status.as_deref()).await?;
                    let recipients: Vec<_> = page
                        .iter()
                        .map(|r| {
                            // The console lists recipients masked, as it lists conversations.
                            let (channel, masked) = match r.contact.split_once('#') {
                                Some((ch, addr)) => {
                                    (Some(ch), crate::domain::Address::parse(addr).ok().map(|a| a.redacted()))
                                }
                                None => (None, None),
                            };
                            json!({
                                "contact": r.contact, "channel": channel, "address_masked": masked,
                                "status": r.status, "reason": r.reason, "error_code": r.error_code,
                                "error_reason": r.error_code.map(|c| crate::domain::failure::failure_reason(Some(c))),
                                "message_id": r.message_id, "due_at": r.due_at, "clicks": r.clicks, "orders": r.orders,
                            })
                        })
                        .collect();
                    Ok(cached(req, json!({ "recipients": recipients, "next": next })))
                }
                (Method::POST, ["campaigns", id, action]) => {
                    let action = match *action {
                        "start" => Action::Start,
                        "pause" => Action::Pause,
                        "resume" => Action::Resume,
                        "cancel" => Action::Cancel,
                        _ => return Err(ApiError::NotFound),
                    };
                    let state = campaigns.act(id, action, now).await?;
                    Ok(json_response(StatusCode::OK, &json!({ "state": state })))
                }
                (Method::POST, ["segments", "preview"]) => {
                    let segment: Segment = body(req)?;
                    Ok(json_response(StatusCode::OK, &campaigns.preview(segment).await?))
                }
                (_, ["segments", "preview"]) => Err(ApiError::MethodNotAllowed { allow: "POST" }),
                _ => Err(ApiError::NotFound),
            }
        }
        .await,
    )
}
