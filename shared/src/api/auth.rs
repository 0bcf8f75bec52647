//! Who is calling the agent API. The token is verified before a handler runs — in AWS by the HTTP
//! API's JWT authorizer (Cognito), locally by the local runtime's stand-in for it — and the
//! verified claims travel in the request's extensions as [`Claims`]. The agent's identity comes
//! from there only, never from a request body.
use super::ApiError;
use bytes::Bytes;
use http::Request;

/// The verified JWT claims of the caller, as the authorizer passed them on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Claims(pub serde_json::Map<String, serde_json::Value>);

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Agent,
    Admin,
}

/// An authenticated team member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    /// What the team sees and the audit trail records: the e-mail, else the user name.
    pub id: String,
    /// The user pool's stable subject.
    pub sub: String,
    pub role: Role,
}

/// Cognito group names that grant the roles (template.yaml creates them).
pub const AGENTS_GROUP: &str = "agents";
pub const ADMINS_GROUP: &str = "admins";

/// The `/agent/` routes served without a token — the console's page and files, and the sign-in
/// settings it reads before anyone is signed in. The one list of them: template.yaml gives
/// exactly these `Auth: Authorizer: NONE` and every other `/agent/` route the JWT authorizer
/// (`.ci/check-template.sh` holds it to this list), and the local runtime's authorizer stand-in
/// lets exactly these through ([`is_public`]). `{name}` matches one path segment.
pub const PUBLIC_AGENT_ROUTES: &[(&str, &str)] =
    &[("GET", "/agent/"), ("GET", "/agent/assets/{file}"), ("GET", "/agent/config")];

/// Whether API Gateway serves `method path` (an `/agent/` path) without the JWT authorizer.
pub fn is_public(method: &http::Method, path: &str) -> bool {
    let segments = |p: &str| p.trim_end_matches('/').split('/').map(str::to_string).collect::<Vec<_>>();
    let path = segments(path);
    PUBLIC_AGENT_ROUTES.iter().any(|(m, route)| {
        let route = segments(route);
        *m == method.as_str()
            && route.len() == path.len()
            && route.iter().zip(&path).all(
                |(r, p)| {
                    if r.starts_with('{') && r.ends_with('}') {
                        !p.is_empty()
                    } else {
                        r == p
                    }
                },
            )
    })
}

impl Claims {
    fn str(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.as_str()).filter(|s| !s.is_empty())
    }

    /// `cognito:groups` is a JSON array in a raw token, and a string such as `[agents admins]`
    /// once API Gateway's JWT authorizer has flattened it.
    pub fn groups(&self) -> Vec<String> {
        match self.0.get("cognito:groups") {
            Some(serde_json::Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
            Some(serde_json::Value::String(s)) => s
                .trim_start_matches('[')
                .trim_end_matches(']')
                .split([' ', ','])
                .map(|g| g.trim().trim_matches('"'))
                .filter(|g| !g.is_empty())
                .map(str::to_string)
                .collect(),
            _ => Vec::new(),
        }
    }

    pub fn agent(&self) -> Result<Agent, ApiError> {
        let sub = self.str("sub").ok_or(ApiError::Unauthenticated)?.to_string();
        let id = self
            .str("email")
            .or_else(|| self.str("cognito:username"))
            .or_else(|| self.str("username"))
            .unwrap_or(&sub)
            .to_string();
        let groups = self.groups();
        let role = if groups.iter().any(|g| g == ADMINS_GROUP) {
            Role::Admin
        } else if groups.iter().any(|g| g == AGENTS_GROUP) {
            Role::Agent
        } else {
            return Err(ApiError::NotAllowed("this account is in neither the agents nor the admins group".into()));
        };
        Ok(Agent { id, sub, role })
    }
}

impl Agent {
    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self.role {
            Role::Admin => Ok(()),
            Role::Agent => Err(ApiError::NotAllowed("this action needs the admin role".into())),
        }
    }
}

/// The calling agent; 401 without verified claims, 403 outside the agent groups.
pub fn agent(req: &Request<Bytes>) -> Result<Agent, ApiError> {
    req.extensions().get::<Claims>().ok_or(ApiError::Unauthenticated)?.agent()
}

/// Whether the request carries an admin token (routes that also accept `x-api-key`).
pub fn is_admin(req: &Request<Bytes>) -> bool {
    agent(req).is_ok_and(|a| a.role == Role::Admin)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: serde_json::Value) -> Claims {
        Claims(v.as_object().unwrap().clone())
    }

    #[test]
    fn groups_in_both_shapes() {
        let raw = claims(json!({"sub":"s1","email":"anna@example.com","cognito:groups":["agents"]}));
        assert_eq!(raw.agent().unwrap(), Agent { id: "anna@example.com".into(), sub: "s1".into(), role: Role::Agent });
        let flat = claims(json!({"sub":"s2","cognito:username":"bob","cognito:groups":"[agents admins]"}));
        assert_eq!(flat.agent().unwrap(), Agent { id: "bob".into(), sub: "s2".into(), role: Role::Admin });
    }

    #[test]
    fn no_subject_is_unauthenticated_and_no_group_is_forbidden() {
        assert!(matches!(claims(json!({"email":"x@example.com"})).agent(), Err(ApiError::Unauthenticated)));
        assert!(matches!(claims(json!({"sub":"s","cognito:groups":["other"]})).agent(), Err(ApiError::NotAllowed(_))));
        let agent = claims(json!({"sub":"s","cognito:groups":["agents"]})).agent().unwrap();
        assert!(matches!(agent.require_admin(), Err(ApiError::NotAllowed(_))));
    }

    #[test]
    fn only_the_console_and_its_sign_in_settings_are_public() {
        use http::Method;
        for (m, p) in [
            (Method::GET, "/agent/"),
            (Method::GET, "/agent"),
            (Method::GET, "/agent/config"),
            (Method::GET, "/agent/assets/app.js"),
        ] {
            assert!(is_public(&m, p), "{m} {p}");
        }
        for (m, p) in [
            (Method::POST, "/agent/config"),
            (Method::GET, "/agent/me"),
            (Method::GET, "/agent/assets/"),
            (Method::GET, "/agent/assets/a/b.js"),
            (Method::GET, "/agent/conversations"),
            (Method::POST, "/agent/conversations/whatsapp/4915123456789/assign"),
            (Method::GET, "/agent/audit"),
            (Method::GET, "/agent/configs"),
        ] {
            assert!(!is_public(&m, p), "{m} {p}");
        }
    }

    /// The admin-only routes (`POST /agent/conversations/{c}/{a}/assign`, `GET /agent/audit`)
    /// refuse an agent with 403 through `require_admin`; tests/agent_auth.rs asserts the same over
    /// HTTP once those routes exist.
    #[test]
    fn an_agent_is_refused_admin_actions_and_an_admin_is_not() {
        let agent = claims(json!({"sub":"s","email":"a@example.com","cognito:groups":"[agents]"})).agent().unwrap();
        let err = agent.require_admin().unwrap_err();
        assert!(matches!(err, ApiError::NotAllowed(_)));
        assert_eq!(err.into_response().status(), http::StatusCode::FORBIDDEN);
        let admin = claims(json!({"sub":"s","cognito:groups":"[agents admins]"})).agent().unwrap();
        assert!(admin.require_admin().is_ok());
    }

    #[test]
    fn a_request_without_claims_is_unauthenticated() {
        let req = Request::builder().uri("/agent/me").body(Bytes::new()).unwrap();
        assert!(matches!(agent(&req), Err(ApiError::Unauthenticated)));
        assert!(!is_admin(&req));
    }
}
