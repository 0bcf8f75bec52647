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
//!   passes too.
//!
//! Never deployed: in AWS, Cognito and API Gateway do both jobs (template.yaml).
/// The issuer's published keys (`/.well-known/jwks.json`).
pub use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::jwk::{Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use parley::api::auth::{Claims, Role, ADMINS_GROUP, AGENTS_GROUP};
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
        Ok(Self { url: url.into(), kid, key, jwks: JwkSet { keys: vec![jwk] } })
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

/// Why the authorizer refused a token (logged, never sent: API Gateway answers every refusal
/// with the same body).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("no Authorization header")]
    Missing,
    #[error("the token cannot be decoded")]
    Malformed,
    #[error("the token's algorithm is not RSA")]
    Algorithm,
    #[error("the token's kid names no key of the issuer")]
    UnknownKey,
    #[error("the signature does not verify")]
    Signature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    #[error("the token was issued in the future (iat)")]
    IssuedInFuture,
    #[error("the issuer does not match")]
    Issuer,
    #[error("neither aud nor client_id matches the audience")]
    Audience,
}

/// The HTTP API's JWT authorizer: issuer, audience and the issuer's keys.
#[derive(Debug, Clone)]
pub struct JwtAuthorizer {
    issuer: String,
    audience: Vec<String>,
    jwks: JwkSet,
}

impl JwtAuthorizer {
    pub fn new(issuer: impl Into<String>, audience: Vec<String>, jwks: JwkSet) -> Self {
        Self { issuer: issuer.into(), audience, jwks }
    }

    /// Verifies the identity source (`Authorization`) at `now` and returns the claims as API
    /// Gateway hands them to the function.
    pub fn authorize(&self, authorization: Option<&str>, now: i64) -> Result<Claims, Rejected> {
        let raw = authorization.map(str::trim).filter(|v| !v.is_empty()).ok_or(Rejected::Missing)?;
        // "The identitySource can include only the token, or the token prefixed with Bearer."
        let token = raw.strip_prefix("Bearer ").unwrap_or(raw).trim();
        let header = jsonwebtoken::decode_header(token).map_err(|_| Rejected::Malformed)?;
        if !matches!(
            header.alg,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
        ) {
            return Err(Rejected::Algorithm);
        }
        let jwk = header.kid.as_deref().and_then(|kid| self.jwks.find(kid)).ok_or(Rejected::UnknownKey)?;
        let key = DecodingKey::from_jwk(jwk).map_err(|_| Rejected::UnknownKey)?;

        // Signature first; the time and identity claims are checked below against `now` so the
        // rules are exactly API Gateway's (no leeway, `client_id` when there is no `aud`).
        let mut validation = Validation::new(header.alg);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let data =
            jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation).map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => Rejected::Signature,
                _ => Rejected::Malformed,
            })?;
        let claims = data.claims;
        let number = |k: &str| claims.get(k).and_then(Value::as_i64);
        match number("exp") {
            Some(exp) if exp > now => {}
            Some(_) => return Err(Rejected::Expired),
            None => return Err(Rejected::Malformed),
        }
        if number("nbf").is_some_and(|nbf| nbf > now) {
            return Err(Rejected::NotYetValid);
        }
        if number("iat").is_some_and(|iat| iat > now) {
            return Err(Rejected::IssuedInFuture);
        }
        if claims.get("iss").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return Err(Rejected::Issuer);
        }
        // "API Gateway validates client_id only if aud is not present."
        let audiences: Vec<&str> = match (claims.get("aud"), claims.get("client_id")) {
            (Some(Value::String(a)), _) => vec![a.as_str()],
            (Some(Value::Array(a)), _) => a.iter().filter_map(Value::as_str).collect(),
            (Some(_), _) => vec![],
            (None, Some(Value::String(c))) => vec![c.as_str()],
            (None, _) => vec![],
        };
        if !audiences.iter().any(|a| self.audience.iter().any(|want| want == a)) {
            return Err(Rejected::Audience);
        }
        Ok(flatten(claims))
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

    #[test]
    fn every_documented_check_refuses() {
        let (issuer, authz) = setup();
        let now = parley::time_util::now_unix();
        let good = issuer.id_token_claims("anna@example.com", Role::Agent, now);
        let with = |k: &str, v: Value| {
            let mut c = good.clone();
            c[k] = v;
            issuer.sign(&c)
        };
        let check = |t: &str| authz.authorize(Some(&bearer(t)), now);
        assert_eq!(authz.authorize(None, now), Err(Rejected::Missing));
        assert_eq!(check("not.a.jwt"), Err(Rejected::Malformed));
        assert_eq!(check(&with("exp", json!(now - 1))), Err(Rejected::Expired));
        assert_eq!(check(&with("exp", json!(now))), Err(Rejected::Expired));
        assert_eq!(check(&with("nbf", json!(now + 60))), Err(Rejected::NotYetValid));
        assert_eq!(check(&with("iat", json!(now + 60))), Err(Rejected::IssuedInFuture));
        assert_eq!(check(&with("iss", json!("https://elsewhere.example"))), Err(Rejected::Issuer));
        assert_eq!(check(&with("aud", json!("another-client"))), Err(Rejected::Audience));
        // An access token: no aud, the client id in client_id.
        let mut access = good.clone();
        access.as_object_mut().unwrap().remove("aud");
        access["client_id"] = json!(LOCAL_CLIENT_ID);
        access["token_use"] = json!("access");
        assert!(check(&issuer.sign(&access)).is_ok());
        // With an aud present, client_id does not count.
        let mut both = good.clone();
        both["aud"] = json!("another-client");
        both["client_id"] = json!(LOCAL_CLIENT_ID);
        assert_eq!(check(&issuer.sign(&both)), Err(Rejected::Audience));
        // Another key under the real kid, and an unknown kid.
        let forger = Issuer::generate(issuer.url()).unwrap();
        assert_eq!(check(&forger.sign_as(issuer.kid(), &good)), Err(Rejected::Signature));
        assert_eq!(check(&forger.sign(&good)), Err(Rejected::UnknownKey));
        // HS256 "signed" with the public modulus (algorithm confusion) is not even tried.
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(issuer.kid().to_string());
        let hs = jsonwebtoken::encode(&header, &good, &EncodingKey::from_secret(b"k").unwrap()).unwrap();
        assert_eq!(check(&hs), Err(Rejected::Algorithm));
    }
}
