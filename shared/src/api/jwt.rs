//! Bearer-token verification with the rules of API Gateway's HTTP API JWT authorizer — one
//! implementation for the two places a token is checked:
//!
//! - routes that accept `x-api-key` *or* an admin token (`POST /contacts/{c}/{a}/tags`) run
//!   without the authorizer in template.yaml (an `x-api-key` caller has no token), so the function
//!   verifies the token itself ([`super::App::check_admin_or_token`]), with the keys fetched from
//!   the user pool's `{issuer}/.well-known/jwks.json`;
//! - the local runtime's stand-in for the authorizer on the `/agent/` routes.
//!
//! The rules, as API Gateway documents them: the token is the `Authorization` header with or
//! without `Bearer `; RSA algorithms only; the key is the JWKS key named by `kid`; the signature;
//! `iss` equals the issuer; `aud` — or `client_id` when there is no `aud` — is one of the
//! audiences; `exp` is in the future, `nbf` and `iat` not, all without leeway. Like API Gateway it
//! does not look at `token_use`, so an access token (with `client_id`) passes too.
use super::auth::Claims;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An unknown `kid` refetches the keys (the pool rotated them) at most this often, so tokens
/// naming made-up keys cannot make every request a JWKS fetch.
pub const JWKS_REFETCH_INTERVAL: Duration = Duration::from_secs(60);

/// Why a token was refused (logged, never sent: every refusal is the same 401).
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

/// The verifier's boundary: a refused token (401) or keys that could not be fetched (503 — a good
/// token is never refused because the issuer's keys were out of reach).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token refused: {0}")]
    Rejected(#[from] Rejected),
    #[error("the issuer's keys cannot be fetched: {0}")]
    KeysUnavailable(String),
}

impl From<TokenError> for super::ApiError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Rejected(_) => super::ApiError::Unauthenticated,
            TokenError::KeysUnavailable(d) => super::ApiError::Unavailable(d),
        }
    }
}

/// The issuer's JWKS over HTTP, cached; one fetch at a time.
#[derive(Debug)]
pub struct RemoteJwks {
    url: String,
    http: reqwest::Client,
    refetch_interval: Duration,
    cache: tokio::sync::Mutex<Cached>,
}

#[derive(Debug, Default)]
struct Cached {
    keys: Option<Arc<JwkSet>>,
    fetched_at: Option<Instant>,
}

impl RemoteJwks {
    /// The keys; fetched if none are cached yet, refetched when `kid` is missing from them and
    /// the last fetch is older than [`JWKS_REFETCH_INTERVAL`].
    async fn keys_for(&self, kid: &str) -> Result<Arc<JwkSet>, TokenError> {
        let mut cache = self.cache.lock().await;
        if let Some(keys) = &cache.keys {
            let recent = cache.fetched_at.is_some_and(|at| at.elapsed() < self.refetch_interval);
            if keys.find(kid).is_some() || recent {
                return Ok(Arc::clone(keys));
            }
        }
        let keys = Arc::new(self.fetch().await?);
        cache.keys = Some(Arc::clone(&keys));
        cache.fetched_at = Some(Instant::now());
        Ok(keys)
    }

    async fn fetch(&self) -> Result<JwkSet, TokenError> {
        // The URL names only the public issuer; the cause goes to the log, the caller gets a 503.
        let unavailable = |what: String| {
            tracing::warn!(url = %self.url, error = %what, "cannot fetch the token issuer's keys");
            TokenError::KeysUnavailable(what)
        };
        let response = self.http.get(&self.url).send().await.map_err(|e| unavailable(e.to_string()))?;
        if !response.status().is_success() {
            return Err(unavailable(format!("status {}", response.status())));
        }
        let body = response.bytes().await.map_err(|e| unavailable(e.to_string()))?;
        let keys: JwkSet = serde_json::from_slice(&body).map_err(|e| unavailable(format!("not a JWKS: {e}")))?;
        tracing::info!(keys = keys.keys.len(), "fetched the token issuer's keys");
        Ok(keys)
    }
}

/// API Gateway's checks for one issuer and its audiences (app client ids), given the issuer's
/// keys: pure, so the rules are tested without a network (and the local authorizer stand-in, which
/// holds its issuer's keys, runs them as they are).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtRules {
    issuer: String,
    audience: Vec<String>,
}

impl JwtRules {
    pub fn new(issuer: impl Into<String>, audience: Vec<String>) -> Self {
        Self { issuer: issuer.into(), audience }
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Verifies the identity source (`Authorization`) at `now` (unix seconds) against `keys`;
    /// the token's own claims on success.
    pub fn verify(&self, authorization: Option<&str>, keys: &JwkSet, now: i64) -> Result<Claims, Rejected> {
        let token = bearer_token(authorization)?;
        let (alg, kid) = rsa_header(token)?;
        let jwk = keys.find(&kid).ok_or(Rejected::UnknownKey)?;
        let key = DecodingKey::from_jwk(jwk).map_err(|_| Rejected::UnknownKey)?;

        // Signature first; the time and identity claims are checked below against `now` so the
        // rules are exactly API Gateway's (no leeway, `client_id` when there is no `aud`).
        let mut validation = Validation::new(alg);
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
        Ok(Claims(claims))
    }
}

/// [`JwtRules`] with the issuer's keys fetched from `{issuer}/.well-known/jwks.json` and cached
/// for the container's life (clones share the cache).
#[derive(Debug, Clone)]
pub struct TokenVerifier {
    rules: JwtRules,
    jwks: Arc<RemoteJwks>,
}

impl TokenVerifier {
    /// Fetches the keys with `http` (a budgeted client: [`crate::budget::Budget::jwks_http`]).
    pub fn new(issuer: impl Into<String>, audience: Vec<String>, http: reqwest::Client) -> Self {
        let rules = JwtRules::new(issuer, audience);
        let url = format!("{}/.well-known/jwks.json", rules.issuer.trim_end_matches('/'));
        let cache = tokio::sync::Mutex::new(Cached::default());
        let jwks = Arc::new(RemoteJwks { url, http, refetch_interval: JWKS_REFETCH_INTERVAL, cache });
        Self { rules, jwks }
    }

    /// From `AGENT_AUTH_ISSUER` and `AGENT_AUTH_AUDIENCE`; `None` without an issuer (bearer
    /// tokens are then not accepted where this verifier would be used).
    pub fn from_settings(settings: &crate::config::AgentAuthSettings, http: reqwest::Client) -> Option<Self> {
        let issuer = settings.issuer.as_ref()?;
        Some(Self::new(issuer.clone(), settings.audience.clone(), http))
    }

    pub fn rules(&self) -> &JwtRules {
        &self.rules
    }

    /// Verifies the `Authorization` header's token now; the token's own claims on success.
    pub async fn verify(&self, authorization: Option<&str>) -> Result<Claims, TokenError> {
        self.verify_at(authorization, crate::time_util::now_unix()).await
    }

    /// Verifies the `Authorization` header's token at `now` (unix seconds).
    pub async fn verify_at(&self, authorization: Option<&str>, now: i64) -> Result<Claims, TokenError> {
        // What can be refused without the keys is refused without fetching them.
        let (_, kid) = rsa_header(bearer_token(authorization)?)?;
        let keys = self.jwks.keys_for(&kid).await?;
        Ok(self.rules.verify(authorization, &keys, now)?)
    }
}

/// The token of the identity source (`Authorization`): "the token, or the token prefixed with
/// Bearer" (API Gateway).
fn bearer_token(authorization: Option<&str>) -> Result<&str, Rejected> {
    let raw = authorization.map(str::trim).filter(|v| !v.is_empty()).ok_or(Rejected::Missing)?;
    Ok(raw.strip_prefix("Bearer ").unwrap_or(raw).trim())
}

/// The header's algorithm (RSA only, so a token "signed" with a public key as an HMAC secret is
/// never tried) and `kid` (a token without one names no key).
fn rsa_header(token: &str) -> Result<(Algorithm, String), Rejected> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| Rejected::Malformed)?;
    if !matches!(
        header.alg,
        Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 | Algorithm::PS256 | Algorithm::PS384 | Algorithm::PS512
    ) {
        return Err(Rejected::Algorithm);
    }
    Ok((header.alg, header.kid.ok_or(Rejected::UnknownKey)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::jwk::{Jwk, KeyAlgorithm, PublicKeyUse};
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    const ISSUER: &str = "https://cognito-idp.eu-central-1.amazonaws.com/eu-central-1_test";
    const CLIENT: &str = "console-client";

    /// A key pair as a user pool has one: signs tokens, publishes the public half as a JWKS.
    struct Pool {
        kid: String,
        key: EncodingKey,
        jwks: JwkSet,
    }

    impl Pool {
        fn new() -> Self {
            use aws_lc_rs::encoding::AsDer;
            let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
            let pkcs8 = pair.as_der().unwrap();
            let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", pkcs8.as_ref().to_vec()));
            let key = EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap();
            let kid = uuid::Uuid::new_v4().to_string();
            let mut jwk = Jwk::from_encoding_key(&key, Algorithm::RS256).unwrap();
            jwk.common.key_id = Some(kid.clone());
            jwk.common.public_key_use = Some(PublicKeyUse::Signature);
            jwk.common.key_algorithm = Some(KeyAlgorithm::RS256);
            Pool { kid, key, jwks: JwkSet { keys: vec![jwk] } }
        }

        fn sign_as(&self, alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
            let mut header = Header::new(alg);
            header.kid = kid.map(str::to_string);
            jsonwebtoken::encode(&header, claims, &self.key).unwrap()
        }

        fn sign(&self, claims: &Value) -> String {
            self.sign_as(Algorithm::RS256, Some(&self.kid), claims)
        }
    }

    /// A Cognito ID token's claims for an agent, issued at `now`.
    fn id_token(now: i64) -> Value {
        json!({
            "sub": "6f1c2a4e-0000-4000-8000-000000000001",
            "email": "anna@example.com",
            "cognito:groups": ["agents"],
            "iss": ISSUER,
            "aud": CLIENT,
            "token_use": "id",
            "iat": now,
            "exp": now + 3600,
        })
    }

    fn bearer(t: &str) -> String {
        format!("Bearer {t}")
    }

    #[test]
    fn a_good_token_passes_with_its_claims_as_issued() {
        let pool = Pool::new();
        let rules = JwtRules::new(ISSUER, vec!["other-client".into(), CLIENT.into()]);
        let now = crate::time_util::now_unix();
        let token = pool.sign(&id_token(now));
        let claims = rules.verify(Some(&bearer(&token)), &pool.jwks, now).unwrap();
        assert_eq!(claims.0["cognito:groups"], json!(["agents"]));
        assert_eq!(claims.0["exp"], json!(now + 3600));
        assert_eq!(claims.agent().unwrap().id, "anna@example.com");
        // The token alone, as API Gateway also takes it; an `aud` list naming the client.
        assert!(rules.verify(Some(&token), &pool.jwks, now).is_ok());
        let mut listed = id_token(now);
        listed["aud"] = json!(["someone-else", CLIENT]);
        assert!(rules.verify(Some(&pool.sign(&listed)), &pool.jwks, now).is_ok());
        // The other RSA algorithms API Gateway accepts.
        for alg in [Algorithm::RS512, Algorithm::PS256] {
            let t = pool.sign_as(alg, Some(&pool.kid), &id_token(now));
            assert!(rules.verify(Some(&t), &pool.jwks, now).is_ok(), "{alg:?}");
        }
    }

    #[test]
    fn every_documented_check_refuses() {
        let pool = Pool::new();
        let rules = JwtRules::new(ISSUER, vec![CLIENT.into()]);
        let now = crate::time_util::now_unix();
        let good = id_token(now);
        let with = |k: &str, v: Value| {
            let mut c = good.clone();
            c[k] = v;
            pool.sign(&c)
        };
        let check = |t: &str| rules.verify(Some(&bearer(t)), &pool.jwks, now);
        assert_eq!(rules.verify(None, &pool.jwks, now), Err(Rejected::Missing));
        assert_eq!(rules.verify(Some("  "), &pool.jwks, now), Err(Rejected::Missing));
        assert_eq!(check("not.a.jwt"), Err(Rejected::Malformed));
        // No leeway on any of the times.
        assert_eq!(check(&with("exp", json!(now - 1))), Err(Rejected::Expired));
        assert_eq!(check(&with("exp", json!(now))), Err(Rejected::Expired));
        let mut no_exp = good.clone();
        no_exp.as_object_mut().unwrap().remove("exp");
        assert_eq!(check(&pool.sign(&no_exp)), Err(Rejected::Malformed));
        assert_eq!(check(&with("nbf", json!(now + 1))), Err(Rejected::NotYetValid));
        assert!(check(&with("nbf", json!(now))).is_ok());
        assert_eq!(check(&with("iat", json!(now + 1))), Err(Rejected::IssuedInFuture));
        assert_eq!(check(&with("iss", json!("https://elsewhere.example"))), Err(Rejected::Issuer));
        assert_eq!(check(&with("iss", json!(format!("{ISSUER}/")))), Err(Rejected::Issuer));
        assert_eq!(check(&with("aud", json!("another-client"))), Err(Rejected::Audience));
        assert_eq!(check(&with("aud", json!(7))), Err(Rejected::Audience));
        // An access token: no aud, the client id in client_id.
        let mut access = good.clone();
        access.as_object_mut().unwrap().remove("aud");
        access["client_id"] = json!(CLIENT);
        access["token_use"] = json!("access");
        assert!(check(&pool.sign(&access)).is_ok());
        // With an aud present, client_id does not count.
        let mut both = good.clone();
        both["aud"] = json!("another-client");
        both["client_id"] = json!(CLIENT);
        assert_eq!(check(&pool.sign(&both)), Err(Rejected::Audience));
        // Another key under the real kid, an unknown kid, no kid.
        let forger = Pool::new();
        assert_eq!(check(&forger.sign_as(Algorithm::RS256, Some(&pool.kid), &good)), Err(Rejected::Signature));
        assert_eq!(check(&forger.sign(&good)), Err(Rejected::UnknownKey));
        assert_eq!(check(&pool.sign_as(Algorithm::RS256, None, &good)), Err(Rejected::UnknownKey));
        // HS256 "signed" with the public modulus (algorithm confusion) is not even tried.
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(pool.kid.clone());
        let hs = jsonwebtoken::encode(&header, &good, &EncodingKey::from_secret(b"k").unwrap()).unwrap();
        assert_eq!(check(&hs), Err(Rejected::Algorithm));
    }

    /// The keys out of reach: a good token is unavailable (503), never refused (401); what can
    /// be refused without the keys still is, without trying to fetch them.
    #[tokio::test]
    async fn unreachable_keys_are_a_503_never_a_401() {
        // A port nobody listens on: the fetch fails at once.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let issuer = format!("http://{}/pool", closed.local_addr().unwrap());
        drop(closed);
        let pool = Pool::new();
        let verifier = TokenVerifier::new(
            issuer.clone(),
            vec![CLIENT.into()],
            crate::budget::Budget::default().jwks_http().unwrap(),
        );
        assert_eq!(verifier.jwks.url, format!("{issuer}/.well-known/jwks.json"));
        let now = crate::time_util::now_unix();
        let mut claims = id_token(now);
        claims["iss"] = json!(issuer);
        let err = verifier.verify(Some(&bearer(&pool.sign(&claims)))).await.unwrap_err();
        assert!(matches!(err, TokenError::KeysUnavailable(_)), "{err:?}");
        assert_eq!(super::super::ApiError::from(err).status(), http::StatusCode::SERVICE_UNAVAILABLE);

        // Had any of these tried the keys, the failed fetch would have made it a 503.
        for (authorization, why) in [
            (None, Rejected::Missing),
            (Some("Bearer not-a-jwt".to_string()), Rejected::Malformed),
            (Some(bearer(&pool.sign_as(Algorithm::RS256, None, &claims))), Rejected::UnknownKey),
        ] {
            let err = verifier.verify(authorization.as_deref()).await.unwrap_err();
            assert_eq!(err, TokenError::Rejected(why));
            assert_eq!(super::super::ApiError::from(err).status(), http::StatusCode::UNAUTHORIZED);
        }
    }

    /// A user pool's `/.well-known/jwks.json` over real HTTP on a free port: counts the requests,
    /// serves what `keys` holds (swap it to rotate), or `status` when that is not 200.
    struct JwksRoute {
        issuer: String,
        requests: Arc<std::sync::atomic::AtomicUsize>,
        keys: Arc<std::sync::Mutex<JwkSet>>,
        status: Arc<std::sync::atomic::AtomicU16>,
    }

    impl JwksRoute {
        fn start(keys: &JwkSet) -> Self {
            use std::io::{Read, Write};
            use std::sync::atomic::Ordering;
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let route = JwksRoute {
                issuer: format!("http://{}/eu-central-1_test", listener.local_addr().unwrap()),
                requests: Default::default(),
                keys: Arc::new(std::sync::Mutex::new(keys.clone())),
                status: Arc::new(200.into()),
            };
            let (requests, keys, status) = (route.requests.clone(), route.keys.clone(), route.status.clone());
            std::thread::spawn(move || {
                for mut conn in listener.incoming().map_while(Result::ok) {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") && conn.read(&mut byte).unwrap_or(0) == 1 {
                        head.push(byte[0]);
                    }
                    let path_ok = head.starts_with(b"GET /eu-central-1_test/.well-known/jwks.json ");
                    requests.fetch_add(1, Ordering::SeqCst);
                    let code = if path_ok { status.load(Ordering::SeqCst) } else { 404 };
                    let body = serde_json::to_string(&*keys.lock().unwrap()).unwrap();
                    let _ = write!(
                        conn,
                        "HTTP/1.1 {code} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                }
            });
            route
        }

        fn requests(&self) -> usize {
            self.requests.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    fn verifier_for(route: &JwksRoute) -> TokenVerifier {
        TokenVerifier::new(
            route.issuer.clone(),
            vec![CLIENT.into()],
            crate::budget::Budget::default().jwks_http().unwrap(),
        )
    }

    fn token_for(pool: &Pool, route: &JwksRoute, now: i64) -> String {
        let mut claims = id_token(now);
        claims["iss"] = json!(route.issuer);
        bearer(&pool.sign(&claims))
    }

    #[tokio::test]
    async fn the_keys_are_fetched_once_and_kept() {
        let pool = Pool::new();
        let route = JwksRoute::start(&pool.jwks);
        let verifier = verifier_for(&route);
        let now = crate::time_util::now_unix();
        let token = token_for(&pool, &route, now);
        assert_eq!(route.requests(), 0, "nothing is fetched before a token needs the keys");
        // Many requests at once on a cold container: one fetch between them.
        let copies: Vec<TokenVerifier> = (0..8).map(|_| verifier.clone()).collect();
        let all = futures::future::join_all(copies.iter().map(|v| v.verify_at(Some(&token), now))).await;
        assert!(all.iter().all(Result::is_ok), "{all:?}");
        assert!(verifier.verify_at(Some(&token), now).await.is_ok());
        assert_eq!(route.requests(), 1);
        // A kid the keys lack, within the minute after the fetch: refused without a fetch.
        let mut claims = id_token(now);
        claims["iss"] = json!(route.issuer);
        let stranger = bearer(&Pool::new().sign(&claims));
        let err = verifier.verify_at(Some(&stranger), now).await.unwrap_err();
        assert_eq!(err, TokenError::Rejected(Rejected::UnknownKey));
        assert_eq!(route.requests(), 1);
    }

    #[tokio::test]
    async fn an_unknown_kid_refetches_the_keys_so_a_rotation_is_picked_up() {
        let (old, new) = (Pool::new(), Pool::new());
        let route = JwksRoute::start(&old.jwks);
        let mut verifier = verifier_for(&route);
        // The minute has always passed.
        Arc::get_mut(&mut verifier.jwks).unwrap().refetch_interval = Duration::ZERO;
        let now = crate::time_util::now_unix();
        assert!(verifier.verify_at(Some(&token_for(&old, &route, now)), now).await.is_ok());
        assert_eq!(route.requests(), 1);
        // The pool rotates to a new key: its tokens pass after one refetch.
        *route.keys.lock().unwrap() = new.jwks.clone();
        assert!(verifier.verify_at(Some(&token_for(&new, &route, now)), now).await.is_ok());
        assert_eq!(route.requests(), 2);
        assert!(verifier.verify_at(Some(&token_for(&new, &route, now)), now).await.is_ok());
        assert_eq!(route.requests(), 2, "a known kid needs no fetch");
        // The retired key's tokens: refetched, still unknown, refused.
        let err = verifier.verify_at(Some(&token_for(&old, &route, now)), now).await.unwrap_err();
        assert_eq!(err, TokenError::Rejected(Rejected::UnknownKey));
        assert_eq!(route.requests(), 3);
    }

    #[tokio::test]
    async fn an_issuer_answering_an_error_is_a_503() {
        let pool = Pool::new();
        let route = JwksRoute::start(&pool.jwks);
        route.status.store(500, std::sync::atomic::Ordering::SeqCst);
        let verifier = verifier_for(&route);
        let now = crate::time_util::now_unix();
        let err = verifier.verify_at(Some(&token_for(&pool, &route, now)), now).await.unwrap_err();
        assert!(matches!(err, TokenError::KeysUnavailable(_)), "{err:?}");
        // Nothing bad was cached: once the issuer answers, the same token passes.
        route.status.store(200, std::sync::atomic::Ordering::SeqCst);
        assert!(verifier.verify_at(Some(&token_for(&pool, &route, now)), now).await.is_ok());
        assert_eq!(route.requests(), 2);
    }
}
