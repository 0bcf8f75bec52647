//! The agent API (`/agent/…`): the team inbox over HTTP. Handlers decode the request, take the
//! agent's identity from the verified token ([`super::auth`]) and call the inbox service; only
//! this module maps its errors to HTTP.
use super::auth::{self, Agent};
use super::{json_response, ApiError, App};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};

/// How the console signs agents in, as `GET /agent/config` tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsoleAuth {
    /// `make dev`: tokens from `POST /sandbox/agent-token`.
    Sandbox,
    /// AWS: the Cognito hosted UI (authorization code flow with PKCE).
    Cognito { domain: String, client_id: String },
}

impl ConsoleAuth {
    /// `AGENT_AUTH_DOMAIN` + `AGENT_AUTH_CLIENT_ID` (set by template.yaml) select Cognito.
    pub fn from_env() -> Self {
        match (crate::config::env_opt("AGENT_AUTH_DOMAIN"), crate::config::env_opt("AGENT_AUTH_CLIENT_ID")) {
            (Some(domain), Some(client_id)) => ConsoleAuth::Cognito { domain, client_id },
            _ => ConsoleAuth::Sandbox,
        }
    }

    fn to_json(&self) -> serde_json::Value {
        match self {
            ConsoleAuth::Sandbox => serde_json::json!({ "auth": "sandbox", "cognito": null }),
            ConsoleAuth::Cognito { domain, client_id } => {
                serde_json::json!({ "auth": "cognito", "cognito": { "domain": domain, "client_id": client_id } })
            }
        }
    }
}

pub async fn route(app: &App, req: Request<Bytes>, path: &str) -> Result<Response<String>, ApiError> {
    let method = req.method().clone();
    let rest = path.strip_prefix("/agent").unwrap_or(path);
    match (method, rest) {
        (Method::GET, "/config") => Ok(json_response(StatusCode::OK, &ConsoleAuth::from_env().to_json())),
        (_, "/config") => Err(ApiError::MethodNotAllowed { allow: "GET" }),
        (Method::GET, "/me") => me(&auth::agent(&req)?),
        (_, "/me") => Err(ApiError::MethodNotAllowed { allow: "GET" }),
        // The console's static files (no token: the page signs the agent in).
        (Method::GET, "") => Ok(super::console::index(&req, &ConsoleAuth::from_env())),
        (Method::GET, p) if p.starts_with("/assets/") => {
            super::console::asset(&req, &p["/assets/".len()..], &ConsoleAuth::from_env())
        }
        _ => {
            let _ = app;
            Err(ApiError::NotFound)
        }
    }
}

fn me(agent: &Agent) -> Result<Response<String>, ApiError> {
    Ok(json_response(StatusCode::OK, &serde_json::json!({ "id": agent.id, "role": agent.role })))
}
