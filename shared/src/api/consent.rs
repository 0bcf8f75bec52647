//! The consent API: web double opt-in, consent status with its proof, export and erase.
use super::{json_response, ApiError, App};
use crate::consent::{change_consent, AuditContext};
use crate::domain::consent::{ConsentEvent, ConsentPurpose, ConsentState, Via, PAYLOAD_NO, PAYLOAD_YES};
use crate::domain::phone::normalize_phone;
use crate::domain::{Address, Channel, ContactId, OutboundBody, OutboundId, Purpose};
use crate::queue::Envelope;
use crate::store::consent::ProfileSeed;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use secrecy::ExposeSecret;
use serde::Deserialize;

/// The template that asks a web opt-in to confirm (the person has not written, so the
/// customer-service window is closed and only a template may go out).
pub const CONFIRMATION_TEMPLATE: &str = "consent_confirmation";
const MAX_SOURCE_CHARS: usize = 200;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OptInRequest {
    channel: String,
    address: String,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    locale: Option<String>,
    #[serde(default)]
    purposes: Option<Vec<String>>,
    /// Which WhatsApp number sends the confirmation (default: the first configured).
    #[serde(default)]
    account: Option<String>,
}

/// Parses the contact a person typed into a form: a WhatsApp number in any common format, a
/// national one read in `DEFAULT_PHONE_REGION` (paths use [`super::path_contact`] instead).
fn typed_contact(app: &App, channel: &str, address: &str) -> Result<ContactId, ApiError> {
    let channel: Channel =
        channel.parse().map_err(|e: crate::domain::IdError| ApiError::Unprocessable(format!("channel: {e}")))?;
    let address = match channel {
        Channel::WhatsApp => {
            let phone = normalize_phone(address, &app.consent.default_phone_region)
                .map_err(|e| ApiError::Unprocessable(format!("address {e}")))?;
            Address::parse(phone.digits()).map_err(|e| ApiError::Unprocessable(e.to_string()))?
        }
        _ => Address::parse(address).map_err(|e| ApiError::Unprocessable(e.to_string()))?,
    };
    Ok(ContactId::new(channel, address))
}

fn parse_purposes(raw: Option<Vec<String>>) -> Result<Vec<ConsentPurpose>, ApiError> {
    let Some(raw) = raw else { return Ok(ConsentPurpose::ALL.to_vec()) };
    if raw.is_empty() {
        return Err(ApiError::Unprocessable("purposes must name at least one of order_updates, marketing".into()));
    }
    let mut out = Vec::new();
    for (i, p) in raw.into_iter().enumerate() {
        let purpose: ConsentPurpose = serde_json::from_value(serde_json::Value::String(p)).map_err(|_| {
            ApiError::Unprocessable(format!(
                "purposes[{i}] is an unknown purpose (expected order_updates or marketing)"
            ))
        })?;
        if !out.contains(&purpose) {
            out.push(purpose);
        }
    }
    Ok(out)
}

fn client_ip(req: &Request<Bytes>) -> Option<String> {
    let xff = req.headers().get("x-forwarded-for")?.to_str().ok()?;
    xff.split(',').next().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// `POST /consent/optin`: records a pending double opt-in and sends the confirmation template.
/// Always answers 202 `{"state":"pending"}` for a valid request, so the endpoint tells nobody
/// whether a number was known or already subscribed.
pub async fn opt_in(app: &App, req: &Request<Bytes>) -> Result<Response<String>, ApiError> {
    let body: OptInRequest = crate::privacy::from_json_slice(req.body()).map_err(|e| {
        ApiError::BadRequest(format!(
            "expected JSON {{\"channel\",\"address\",\"source\",\"locale\",\"purposes\"}}: {e}"
        ))
    })?;
    let contact = typed_contact(app, &body.channel, &body.address)?;
    if contact.channel != Channel::WhatsApp {
        return Err(ApiError::Unprocessable(format!(
            "web opt-in is only possible on whatsapp: {} ids are only known once the person writes (they can send START)",
            contact.channel
        )));
    }
    let purposes = parse_purposes(body.purposes)?;
    let account = match &body.account {
        Some(id) => app
            .accounts
            .get(Channel::WhatsApp, id)
            .ok_or_else(|| ApiError::Unprocessable("account is not a WhatsApp number of this deployment".into()))?,
        None => app.sending_account()?,
    };
    let locale = match body.locale.as_deref().map(str::trim) {
        None | Some("") => account.locale.clone(),
        Some(l) if matches!(l.to_ascii_lowercase().as_str(), "de" | "en") => l.to_ascii_lowercase(),
        Some(_) => return Err(ApiError::Unprocessable("locale is not supported (expected de or en)".into())),
    };
    let source = body.source.unwrap_or_else(|| "web".into());
    if source.chars().count() > MAX_SOURCE_CHARS {
        return Err(ApiError::Unprocessable(format!("source is longer than {MAX_SOURCE_CHARS} characters")));
    }
    // Fail before recording anything if the catalog lacks the template.
    confirmation_envelope(app, account, &contact, &locale)?;
    let ctx = AuditContext {
        source: "web",
        detail: Some(source),
        ip_hash: client_ip(req).map(|ip| crate::privacy::ip_pseudonym(app.consent.pseudonym_key.expose_secret(), &ip)),
        ..Default::default()
    };
    let seed = ProfileSeed {
        account: Some(account.id.as_str().to_string()),
        locale: Some(locale.clone()),
        phone: crate::domain::E164Phone::from_digits(contact.address.as_str()),
    };
    let now = crate::time_util::now_unix();
    let event = ConsentEvent::RequestOptIn { purposes, via: Via::Web };
    let (decision, _) = change_consent(&app.store, &contact, &event, now, &ctx, &app.consent.policy(), &seed).await?;
    if decision.send_request {
        let envelope = confirmation_envelope(app, account, &contact, &locale)?;
        app.producer.send(std::slice::from_ref(&envelope)).await?;
        crate::observability::count("ConsentRequestsSent", 1);
    } else {
        crate::observability::count("ConsentRequestsRateLimited", 1);
    }
    tracing::info!(contact = %contact.redacted(), sent = decision.send_request, "web opt-in requested");
    Ok(json_response(StatusCode::ACCEPTED, &serde_json::json!({ "state": "pending" })))
}

/// The confirmation template with its Ja/Nein payloads (the window is closed: only a template).
pub fn confirmation_envelope(
    app: &App,
    account: &crate::config::Account,
    contact: &ContactId,
    locale: &str,
) -> Result<Envelope, ApiError> {
    let Some(OutboundBody::Template { mut template }) = app.templates.body(CONFIRMATION_TEMPLATE, locale, &[]) else {
        return Err(ApiError::Internal(format!("template {CONFIRMATION_TEMPLATE} ({locale}) is not in the catalog")));
    };
    template.payloads = vec![PAYLOAD_YES.to_string(), PAYLOAD_NO.to_string()];
    Ok(Envelope {
        v: crate::queue::ENVELOPE_VERSION,
        id: OutboundId::parse(format!("c-{}", uuid::Uuid::new_v4().simple())).expect("valid id"),
        account: account.id.clone(),
        contact: contact.clone(),
        purpose: Purpose::ConsentRequest,
        body: OutboundBody::Template { template },
        fallback: None,
        withheld: None,
        in_reply_to: None,
        created_at: crate::time_util::now_unix(),
        created_ms: Some(crate::time_util::now_millis()),
        campaign: None,
        author: None,
    })
}

fn state_str(s: ConsentState) -> serde_json::Value {
    serde_json::to_value(s).unwrap_or_default()
}

/// `GET /consent/{channel}/{address}`: the state per purpose and the audit trail, newest first.
pub async fn status(app: &App, contact: &ContactId) -> Result<Response<String>, ApiError> {
    let (record, events) = futures::join!(app.store.get_contact(contact), app.store.consent_events(contact));
    let consent = record?.map(|r| r.consent).unwrap_or_default();
    let purposes: serde_json::Map<String, serde_json::Value> = ConsentPurpose::ALL
        .iter()
        .map(|p| {
            (
                serde_json::to_value(p).unwrap().as_str().unwrap_or_default().to_string(),
                state_str(consent.get(*p).state),
            )
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "state": state_str(consent.overall()), "purposes": purposes, "events": events? }),
    ))
}

/// The consent API's routes; `None` when the path is not one of them.
pub async fn route(app: &App, req: &Request<Bytes>, path: &str) -> Option<Result<Response<String>, ApiError>> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let result = match parts.as_slice() {
        ["consent", "optin"] => match *req.method() {
            Method::POST => opt_in(app, req).await,
            _ => Err(ApiError::MethodNotAllowed { allow: "POST" }),
        },
        ["consent", channel, address] => match *req.method() {
            Method::GET => {
                async {
                    app.check_admin(req)?;
                    status(app, &super::path_contact(channel, address)?).await
                }
                .await
            }
            _ => Err(ApiError::MethodNotAllowed { allow: "GET" }),
        },
        ["contacts", channel, address] => match *req.method() {
            Method::DELETE => {
                async {
                    app.check_admin(req)?;
                    let contact = super::path_contact(channel, address)?;
                    erase(app, &contact).await
                }
                .await
            }
            _ => Err(ApiError::MethodNotAllowed { allow: "DELETE" }),
        },
        ["contacts", channel, address, "tags"] => match *req.method() {
            Method::POST => {
                async {
                    // The admin key, or an admin's token (verified here: no authorizer on this route).
                    app.check_admin_or_token(req).await?;
                    let contact = super::path_contact(channel, address)?;
                    let b: super::agent::TagsBody =
                        crate::privacy::from_json_slice(req.body()).map_err(ApiError::BadRequest)?;
                    let tags = crate::inbox::change_tags(&app.store, &contact, &b.add, &b.remove).await?;
                    Ok(json_response(StatusCode::OK, &serde_json::json!({ "tags": tags })))
                }
                .await
            }
            _ => Err(ApiError::MethodNotAllowed { allow: "POST" }),
        },
        ["contacts", channel, address, "export"] => match *req.method() {
            Method::GET => {
                async {
                    app.check_admin(req)?;
                    let contact = super::path_contact(channel, address)?;
                    let export = app.store.export_contact(&contact).await?;
                    Ok(json_response(StatusCode::OK, &serde_json::to_value(export).unwrap_or_default()))
                }
                .await
            }
            _ => Err(ApiError::MethodNotAllowed { allow: "GET" }),
        },
        _ => return None,
    };
    Some(result)
}

/// `DELETE /contacts/{channel}/{address}` (and Shopify `customers/redact`): erases the person;
/// consent proof stays only pseudonymised. Idempotent.
pub async fn erase(app: &App, contact: &ContactId) -> Result<Response<String>, ApiError> {
    erase_contact(app, contact).await?;
    Ok(Response::builder().status(StatusCode::NO_CONTENT).body(String::new()).expect("valid response"))
}

/// Erases a person (admin API or the shop's redact request).
pub async fn erase_contact(app: &App, contact: &ContactId) -> Result<crate::store::erase::EraseReport, ApiError> {
    let key = app.consent.require_pseudonym_key().map_err(|e| ApiError::Internal(e.to_string()))?;
    let report = app.store.erase_contact(contact, key).await?;
    crate::observability::count("ContactsErased", 1);
    tracing::info!(contact = %contact.redacted(), deleted = report.deleted, kept = report.consent_events_pseudonymised, "contact erased");
    Ok(report)
}
