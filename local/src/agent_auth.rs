//! Agent sign-in in the local world, on the same bearer-token path as in AWS:
//!
//! - [`Issuer`] stands in for the Cognito user pool: it signs RS256 ID tokens shaped like
//!   Cognito's (`POST /sandbox/agent-token`) with a key pair made at start-up, and publishes the
//!   public key at its `/.well-known/jwks.json`.
//! - [`JwtAuthorizer`] stands in for the HTTP API's JWT authorizer: before an `/agent/` route that
//!   needs a token runs, it checks what API Gateway documents it checks (token from the
//!   `Authorization` header with or without `Bearer `, signature with the JWKS key named by `kid`,
//!   RSA only, `iss`, `aud` — or `client_id` when there is no `aud` —, `exp`, `nbf`, `iat`), answers
//!   a failure with API Gateway's `401 {"message":"Unauthorized"}` and passes the claims on
//!   flattened to strings as API Gateway does (`["agents","admins"]` → `"[agents admins]"`).
//!   Like API Gateway it does not look at `token_use`, so an access token (with `client_id`)
//!   passes too. The checks themselves are `parley::api::jwt::JwtRules`, which the functions
//!   also use where they verify a token themselves (routes taking `x-api-key` or an admin token).
//!
//! Never deployed: in AWS, Cognito and API Gateway do both jobs (template.yaml).
/// The issuer's published keys (`/.well-known/jwks.json`).
pub use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::jwk::{Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use parley::api::auth::{Claims, Role, ADMINS_GROUP, AGENTS_GROUP};
use parley::api::jwt::JwtRules;
use serde_json::{json, Map, Value};

/// The console's app client id locally (the `aud` of local tokens, the authorizer's audience).
pub const LOCAL_CLIENT_ID: &str = "parley-local-console";
/// Where the issuer lives on the local server (`{base_url}{ISSUER_PATH}`).
pub const ISSUER_PATH: &str = "/sandbox/cognito";
/// Cognito's default ID token lifetime.
pub const TOKEN_LIFETIME_SECS: i64 = 3600;

/// A token issuer with its own RSA key pair (the local stand-in for the user pool).
pub struct Issuer {
    url: String,
    kid: String,
    key: EncodingKey,
    jwks: JwkSet,
    /// How often `/.well-known/jwks.json` was asked for (tests hold the functions' key cache to it).
    jwks_requests: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issuer").field("url", &self.url).field("kid", &self.kid).finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IssuerError {
    #[error("cannot make the signing key: {0}")]
    Key(String),
}

impl Issuer {
    /// A fresh key pair for the issuer at `url` (its `iss`).
    pub fn generate(url: impl Into<String>) -> Result<Self, IssuerError> {
        use aws_lc_rs::encoding::AsDer;
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
            .map_err(|e| IssuerError::Key(e.to_string()))?;
        let pkcs8 = pair.as_der().map_err(|e| IssuerError::Key(e.to_string()))?;
        let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", pkcs8.as_ref().to_vec()));
        let key = EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| IssuerError::Key(e.to_string()))?;
        let kid = uuid::Uuid::new_v4().to_string();
        let mut jwk = Jwk::from_encoding_key(&key, Algorithm::RS256).map_err(|e| IssuerError::Key(e.to_string()))?;
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        jwk.common.key_algorithm = Some(KeyAlgorithm::RS256);
        Ok(Self { url: url.into(), kid, key, jwks: JwkSet { keys: vec![jwk] }, jwks_requests: Default::default() })
    }

    /// The `iss` of its tokens.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The `kid` its tokens carry.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// What it serves at `{url}/.well-known/jwks.json`.
    pub fn jwks(&self) -> &JwkSet {
        &self.jwks
    }

    /// How many times its JWKS was fetched over HTTP so far.
    pub fn jwks_requests(&self) -> u64 {
        self.jwks_requests.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The claims of a Cognito ID token for `agent` (an e-mail) in `role`'s group, issued at `now`
    /// for the console's app client.
    pub fn id_token_claims(&self, agent: &str, role: Role, now: i64) -> Value {
        let sub = subject(agent);
        let group = match role {
            Role::Agent => AGENTS_GROUP,
            Role::Admin => ADMINS_GROUP,
        };
        json!({
            "sub": sub,
            "email": agent,
            "email_verified": true,
            // With e-mail sign-in Cognito's user name is the subject.
            "cognito:username": sub,
            "cognito:groups": [group],
            "iss": self.url,
            "aud": LOCAL_CLIENT_ID,
            "token_use": "id",
            "auth_time": now,
            "iat": now,
            "exp": now + TOKEN_LIFETIME_SECS,
            "jti": uuid::Uuid::new_v4().to_string(),
            "origin_jti": uuid::Uuid::new_v4().to_string(),
        })
    }

    /// An ID token for `agent` as Cognito would issue it after sign-in.
    pub fn id_token(&self, agent: &str, role: Role) -> String {
        self.sign(&self.id_token_claims(agent, role, parley::time_util::now_unix()))
    }

    /// Signs any claims with this issuer's key and `kid` (tests build the tokens the authorizer
    /// must refuse this way: expired, for another audience, …).
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_as(&self.kid, claims)
    }

    /// Signs with this issuer's key but names `kid` in the header (a forged token naming the real
    /// issuer's key).
    pub fn sign_as(&self, kid: &str, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.to_string());
        jsonwebtoken::encode(&header, claims, &self.key).expect("RS256 signing with a valid key cannot fail")
    }
}

/// A stable subject per agent (Cognito's `sub` is a UUID that never changes for a user): the
/// same e-mail gets the same subject across restarts.
fn subject(agent: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("parley-local-agent:{}", agent.to_lowercase()).as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Uuid::new_v8(bytes).to_string()
}

pub use parley::api::jwt::Rejected;

/// The HTTP API's JWT authorizer: issuer, audience and the issuer's keys. The checks are
/// [`JwtRules`] — the same code the functions verify tokens with where no authorizer runs — and
/// this adds what API Gateway does around them: the claims passed on flattened.
#[derive(Debug, Clone)]
pub struct JwtAuthorizer {
    rules: JwtRules,
    jwks: JwkSet,
}

impl JwtAuthorizer {
    pub fn new(issuer: impl Into<String>, audience: Vec<String>, jwks: JwkSet) -> Self {
        Self { rules: JwtRules::new(issuer, audience), jwks }
    }

    /// Verifies the identity source (`Authorization`) at `now` and returns the claims as API
    /// Gateway hands them to the function.
    pub fn authorize(&self, authorization: Option<&str>, now: i64) -> Result<Claims, Rejected> {
        self.rules.verify(authorization, &self.jwks, now).map(|claims| flatten(claims.0))
    }
}

/// The claims as API Gateway passes them in `requestContext.authorizer.jwt.claims`: every value
/// a string; arrays as `[a b]`.
pub fn flatten(claims: Map<String, Value>) -> Claims {
    fn text(v: &Value) -> String {
        match v {
            Value::String(s) => s.clone(),
            Value::Array(items) => format!("[{}]", items.iter().map(text).collect::<Vec<_>>().join(" ")),
            other => other.to_string(),
        }
    }
    Claims(claims.iter().map(|(k, v)| (k.clone(), Value::String(text(v)))).collect())
}

/// API Gateway's answer when its JWT authorizer refuses a request.
pub fn unauthorized() -> http::Response<String> {
    http::Response::builder()
        .status(http::StatusCode::UNAUTHORIZED)
        .header("content-type", "application/json")
        .body(r#"{"message":"Unauthorized"}"#.to_string())
        .expect("valid response")
}

/// The sandbox's sign-in routes (nested under `/sandbox`):
/// `POST /agent-token` `{"agent":"anna@example.com","role":"agent|admin"}` → `{"token"}`, and the
/// issuer's discovery document and keys under `/cognito/.well-known/`.
pub fn router(issuer: std::sync::Arc<Issuer>) -> axum::Router {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/agent-token", post(agent_token))
        .route("/cognito/.well-known/jwks.json", get(jwks))
        .route("/cognito/.well-known/openid-configuration", get(openid_configuration))
        .with_state(issuer)
}

type IssuerState = axum::extract::State<std::sync::Arc<Issuer>>;

async fn agent_token(axum::extract::State(issuer): IssuerState, body: axum::body::Bytes) -> axum::response::Response {
    use axum::response::IntoResponse;
    #[derive(serde::Deserialize)]
    struct Ask {
        agent: String,
        #[serde(default)]
        role: Option<String>,
    }
    let refuse = |status: http::StatusCode, error: &str, message: &str| {
        (status, axum::Json(json!({"error": error, "message": message}))).into_response()
    };
    let Ok(ask) = serde_json::from_slice::<Ask>(&body) else {
        return refuse(
            http::StatusCode::BAD_REQUEST,
            "bad_request",
            r#"expected {"agent":"<e-mail>","role":"agent|admin"}"#,
        );
    };
    let role = match ask.role.as_deref().unwrap_or("agent") {
        "agent" => Role::Agent,
        "admin" => Role::Admin,
        _ => return refuse(http::StatusCode::UNPROCESSABLE_ENTITY, "invalid_role", "role must be agent or admin"),
    };
    if !is_email(&ask.agent) {
        return refuse(http::StatusCode::UNPROCESSABLE_ENTITY, "invalid_agent", "agent must be an e-mail address");
    }
    axum::Json(json!({ "token": issuer.id_token(&ask.agent, role) })).into_response()
}

/// Cognito signs users in by e-mail (template.yaml: `UsernameAttributes: [email]`).
fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else { return false };
    s.len() <= 254
        && !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        && !domain.contains('@')
}

async fn jwks(axum::extract::State(issuer): IssuerState) -> axum::Json<JwkSet> {
    issuer.jwks_requests.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    axum::Json(issuer.jwks().clone())
}

async fn openid_configuration(axum::extract::State(issuer): IssuerState) -> axum::Json<Value> {
    axum::Json(json!({
        "issuer": issuer.url(),
        "jwks_uri": format!("{}/.well-known/jwks.json", issuer.url()),
        "id_token_signing_alg_values_supported": ["RS256"],
        "subject_types_supported": ["public"],
        "response_types_supported": ["code"],
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (Issuer, JwtAuthorizer) {
        let issuer = Issuer::generate("http://127.0.0.1:1/sandbox/cognito").unwrap();
        let authorizer = JwtAuthorizer::new(issuer.url(), vec![LOCAL_CLIENT_ID.into()], issuer.jwks().clone());
        (issuer, authorizer)
    }

    fn bearer(t: &str) -> String {
        format!("Bearer {t}")
    }

    #[test]
    fn a_minted_token_passes_with_its_claims_flattened_like_api_gateway() {
        let (issuer, authz) = setup();
        let now = parley::time_util::now_unix();
        let token = issuer.sign(&issuer.id_token_claims("anna@example.com", Role::Admin, now));
        let claims = authz.authorize(Some(&bearer(&token)), now).unwrap();
        assert_eq!(claims.0["cognito:groups"], "[admins]");
        assert_eq!(claims.0["email"], "anna@example.com");
        assert_eq!(claims.0["exp"], Value::String((now + TOKEN_LIFETIME_SECS).to_string()));
        assert_eq!(claims.0["email_verified"], "true");
        let agent = claims.agent().unwrap();
        assert_eq!((agent.id.as_str(), agent.role), ("anna@example.com", Role::Admin));
        // Without the Bearer prefix too, as API Gateway accepts it.
        assert!(authz.authorize(Some(&token), now).is_ok());
        // The subject is the same for the same agent, different for another.
        let again = issuer.id_token_claims("Anna@example.com", Role::Agent, now);
        assert_eq!(again["sub"], issuer.id_token_claims("anna@example.com", Role::Agent, now)["sub"]);
        assert_ne!(again["sub"], issuer.id_token_claims("ben@example.com", Role::Agent, now)["sub"]);
    }

    #[test]
    fn flattening_matches_api_gateways_shapes() {
        let c = flatten(json!({"g": ["agents", "admins"], "n": 5, "b": false, "s": "x"}).as_object().unwrap().clone());
        assert_eq!(Value::Object(c.0), json!({"g": "[agents admins]", "n": "5", "b": "false", "s": "x"}));
    }
}
