//! The agent API's sign-in, black-box over HTTP: tokens from the sandbox's stand-in for Cognito,
//! checked before the function runs as API Gateway's JWT authorizer checks them (template.yaml).
//! Refusals by the authorizer carry API Gateway's body `{"message":"Unauthorized"}`; the function's
//! own refusals carry `{"error":…}` — so the body tells who refused.
use base64::Engine;
use parley_local::agent_auth::{Issuer, LOCAL_CLIENT_ID, TOKEN_LIFETIME_SECS};
use parley_tests::*;
use serde_json::{json, Value};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

fn payload(token: &str) -> Value {
    let part = token.split('.').nth(1).expect("a JWT has three parts");
    serde_json::from_slice(&B64.decode(part).unwrap()).unwrap()
}

fn header(token: &str) -> Value {
    serde_json::from_slice(&B64.decode(token.split('.').next().unwrap()).unwrap()).unwrap()
}

/// The agent-api function's AWS calls so far (a run of the function on these routes reads the
/// table at most; a refused request must not run it at all).
fn agent_api_calls(sys: &System) -> usize {
    sys.running.aws_operations().iter().filter(|o| o.function == "agent-api").count()
}

async fn assert_refused_by_authorizer(r: reqwest::Response, case: &str) {
    assert_eq!(r.status(), 401, "{case}");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body, json!({"message": "Unauthorized"}), "{case}: API Gateway's body, not the function's");
}

#[tokio::test]
async fn every_bad_token_is_refused_before_the_function_runs() {
    let sys = System::start().await;
    let issuer = &sys.running.agent_tokens;
    let now = now();
    let good = issuer.id_token_claims("anna@example.com", parley::api::auth::Role::Agent, now);
    let with = |changes: Value| {
        let mut c = good.clone();
        for (k, v) in changes.as_object().unwrap() {
            c[k] = v.clone();
        }
        issuer.sign(&c)
    };
    // A second key pair: the same claims and the real issuer's kid, but not the issuer's key.
    let forger = Issuer::generate(issuer.url()).unwrap();
    let valid = issuer.sign(&good);
    let mut tampered_parts: Vec<String> = valid.split('.').map(str::to_string).collect();
    let mut boss = payload(&valid);
    boss["email"] = json!("boss@example.com");
    boss["cognito:groups"] = json!(["admins"]);
    tampered_parts[1] = B64.encode(boss.to_string());
    let unsigned = format!(
        "{}.{}.",
        B64.encode(json!({"alg": "none", "kid": issuer.kid()}).to_string()),
        B64.encode(good.to_string())
    );

    let cases: Vec<(&str, Option<String>)> = vec![
        ("no token", None),
        ("not a JWT", Some("Bearer not-a-jwt".into())),
        ("empty bearer", Some("Bearer ".into())),
        ("basic auth", Some("Basic YW5uYTpzZWNyZXQ=".into())),
        ("another key under the issuer's kid", Some(format!("Bearer {}", forger.sign_as(issuer.kid(), &good)))),
        ("a kid the issuer does not have", Some(format!("Bearer {}", forger.sign(&good)))),
        ("claims changed after signing", Some(format!("Bearer {}", tampered_parts.join(".")))),
        ("alg none", Some(format!("Bearer {unsigned}"))),
        ("expired", Some(format!("Bearer {}", with(json!({"iat": now - 7200, "exp": now - 60}))))),
        ("not yet valid", Some(format!("Bearer {}", with(json!({"nbf": now + 600}))))),
        ("issued in the future", Some(format!("Bearer {}", with(json!({"iat": now + 600}))))),
        (
            "wrong issuer",
            Some(format!(
                "Bearer {}",
                with(json!({"iss": "https://cognito-idp.eu-central-1.amazonaws.com/eu-central-1_other"}))
            )),
        ),
        ("wrong audience", Some(format!("Bearer {}", with(json!({"aud": "another-app-client"}))))),
    ];
    let calls_before = agent_api_calls(&sys);
    for (case, authorization) in &cases {
        for (method, path) in [
            (reqwest::Method::GET, "/agent/me"),
            (reqwest::Method::GET, "/agent/conversations?state=waiting"),
            (reqwest::Method::POST, "/agent/conversations/whatsapp/4915123456789/claim"),
        ] {
            let mut req = sys.http.request(method.clone(), sys.url(path));
            if let Some(a) = authorization {
                req = req.header("authorization", a);
            }
            if method == reqwest::Method::POST {
                req = req.json(&json!({"agent": "boss@example.com"}));
            }
            assert_refused_by_authorizer(req.send().await.unwrap(), &format!("{case}: {method} {path}")).await;
        }
    }
    assert_eq!(agent_api_calls(&sys), calls_before, "a refused request ran the function");

    // The same token unchanged passes, with or without the Bearer prefix (as API Gateway takes it).
    let r = sys.agent_get(&valid, "/agent/me").await;
    assert_eq!(r.status(), 200);
    let r = sys.http.get(sys.url("/agent/me")).header("authorization", &valid).send().await.unwrap();
    assert_eq!(r.status(), 200);
    sys.stop().await;
}

#[tokio::test]
async fn the_caller_is_who_the_token_says_never_what_the_request_claims() {
    let sys = System::start().await;
    let anna = sys.agent_token("anna@example.com", "agent").await;
    let r = sys.agent_get(&anna, "/agent/me").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"id": "anna@example.com", "role": "agent"}));

    let boss = sys.agent_token("boss@example.com", "admin").await;
    let r = sys.agent_get(&boss, "/agent/me").await;
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"id": "boss@example.com", "role": "admin"}));

    // A body, query and headers naming someone else change nothing.
    let r = sys
        .http
        .get(sys.url("/agent/me?agent=boss@example.com&role=admin"))
        .bearer_auth(&anna)
        .header("x-agent", "boss@example.com")
        .header("content-type", "application/json")
        .body(json!({"id": "boss@example.com", "agent": "boss@example.com", "role": "admin"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"id": "anna@example.com", "role": "agent"}));
    sys.stop().await;
}

#[tokio::test]
async fn a_valid_token_outside_the_agent_groups_is_forbidden_by_the_function() {
    let sys = System::start().await;
    let issuer = &sys.running.agent_tokens;
    let mut claims = issuer.id_token_claims("visitor@example.com", parley::api::auth::Role::Agent, now());
    claims["cognito:groups"] = json!(["customers"]);
    let r = sys.agent_get(&issuer.sign(&claims), "/agent/me").await;
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "forbidden");
    claims.as_object_mut().unwrap().remove("cognito:groups");
    let r = sys.agent_get(&issuer.sign(&claims), "/agent/me").await;
    assert_eq!(r.status(), 403);
    sys.stop().await;
}

/// `POST /agent/conversations/{c}/{a}/assign` and `GET /agent/audit` are admin-only (issue 9
/// design): an agent's token gets 403 from the function, an admin's does not. The routes come
/// with the agent API (issue 9 item 2); until they are on this branch, the rule itself is pinned
/// by `parley::api::auth::tests::an_agent_is_refused_admin_actions_and_an_admin_is_not`.
#[tokio::test]
async fn an_agent_on_an_admin_only_route_is_forbidden() {
    let sys = System::start().await;
    let customer = customer();
    sys.say("whatsapp", &customer, "Hilfe").await;
    let anna = sys.agent_token("anna@example.com", "agent").await;
    let boss = sys.agent_token("boss@example.com", "admin").await;
    let assign = format!("/agent/conversations/whatsapp/{customer}/assign");

    let r = sys.agent_post(&anna, &assign, json!({"assignee": "anna@example.com"})).await;
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "forbidden");
    let r = sys.agent_get(&anna, &format!("/agent/audit?channel=whatsapp&address={customer}")).await;
    assert_eq!(r.status(), 403);

    let r = sys.agent_post(&boss, &assign, json!({"assignee": "anna@example.com"})).await;
    assert_eq!(r.status(), 200);
    let r = sys.agent_get(&boss, &format!("/agent/audit?channel=whatsapp&address={customer}")).await;
    assert_eq!(r.status(), 200);
    sys.stop().await;
}

#[tokio::test]
async fn the_console_settings_need_no_token_and_the_sandbox_issues_cognito_shaped_tokens() {
    let sys = System::start().await;
    // What the console reads before anyone signs in (template.yaml: Auth NONE).
    let r = sys.http.get(sys.url("/agent/config")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"auth": "sandbox", "cognito": null, "shop_currency": {"code": "EUR", "exponent": 2}})
    );

    let token = sys.agent_token("anna@example.com", "admin").await;
    let (h, p) = (header(&token), payload(&token));
    assert_eq!(h["alg"], "RS256");
    assert_eq!(p["email"], "anna@example.com");
    assert_eq!(p["cognito:groups"], json!(["admins"]));
    assert_eq!(p["token_use"], "id");
    assert_eq!(p["aud"], LOCAL_CLIENT_ID);
    assert_eq!(p["iss"], format!("{}/sandbox/cognito", sys.base));
    assert_eq!(p["exp"].as_i64().unwrap() - p["iat"].as_i64().unwrap(), TOKEN_LIFETIME_SECS);
    // The subject stays the agent's across tokens; another agent has another.
    let again = payload(&sys.agent_token("anna@example.com", "agent").await);
    assert_eq!(again["sub"], p["sub"]);
    assert_eq!(again["cognito:groups"], json!(["agents"]));
    assert_ne!(payload(&sys.agent_token("ben@example.com", "agent").await)["sub"], p["sub"]);

    // The keys are published where the issuer says, and they verify the token.
    let iss = p["iss"].as_str().unwrap();
    let config: Value =
        sys.http.get(format!("{iss}/.well-known/openid-configuration")).send().await.unwrap().json().await.unwrap();
    assert_eq!(config["issuer"], iss);
    let jwks: parley_local::agent_auth::JwkSet =
        sys.http.get(config["jwks_uri"].as_str().unwrap()).send().await.unwrap().json().await.unwrap();
    assert!(jwks.find(h["kid"].as_str().unwrap()).is_some(), "the token's kid is in the JWKS");
    let authorizer = parley_local::agent_auth::JwtAuthorizer::new(iss, vec![LOCAL_CLIENT_ID.into()], jwks);
    assert!(authorizer.authorize(Some(&format!("Bearer {token}")), now()).is_ok());

    // Bad requests for a token say what is wrong without echoing the input.
    let r = sys
        .http
        .post(sys.url("/sandbox/agent-token"))
        .json(&json!({"agent": "anna@example.com", "role": "root"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let r = sys
        .http
        .post(sys.url("/sandbox/agent-token"))
        .json(&json!({"agent": "not-an-email", "role": "agent"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert!(!r.text().await.unwrap().contains("not-an-email"));
    let r = sys.http.post(sys.url("/sandbox/agent-token")).body("{").send().await.unwrap();
    assert_eq!(r.status(), 400);
    sys.stop().await;
}

/// `POST /contacts/{c}/{a}/tags` takes the admin `x-api-key` or an admin's token. No authorizer
/// runs on it (template.yaml: `Authorizer: NONE`, so an `x-api-key` caller needs no token): the
/// consent-api function verifies the token itself, by the same rules, with the issuer's keys
/// fetched from its JWKS once and kept.
#[tokio::test]
async fn the_tags_route_takes_the_admin_key_or_an_admin_token_verified_by_the_function() {
    let sys = System::start().await;
    let issuer = &sys.running.agent_tokens;
    let to = customer();
    sys.say("whatsapp", &to, "Hallo").await;
    sys.wait_for_messages(&to, 1).await;
    let path = format!("/contacts/whatsapp/{to}/tags");
    let tags = |authorization: Option<String>, key: Option<&str>, body: Value| {
        let mut r = sys.http.post(sys.url(&path)).json(&body);
        if let Some(a) = authorization {
            r = r.header("authorization", a);
        }
        if let Some(k) = key {
            r = r.header("x-api-key", k);
        }
        async move {
            let r = r.send().await.unwrap();
            let www = r.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_string());
            (r.status().as_u16(), r.json::<Value>().await.unwrap(), www)
        }
    };
    let jwks_before = issuer.jwks_requests();
    let boss = sys.agent_token("boss@example.com", "admin").await;
    let anna = sys.agent_token("anna@example.com", "agent").await;

    // An admin's token, with or without the Bearer prefix.
    let (status, v, _) = tags(Some(format!("Bearer {boss}")), None, json!({"add": ["vip"]})).await;
    assert_eq!((status, v), (200, json!({"tags": ["vip"]})));
    let (status, v, _) = tags(Some(boss.clone()), None, json!({"add": ["shirts"]})).await;
    assert_eq!((status, v), (200, json!({"tags": ["shirts", "vip"]})));
    // The admin key, as before; a good key is enough whatever the token.
    let (status, v, _) = tags(None, Some(ADMIN_KEY), json!({"remove": ["shirts"]})).await;
    assert_eq!((status, v), (200, json!({"tags": ["vip"]})));
    let (status, _, _) = tags(Some(format!("Bearer {anna}")), Some(ADMIN_KEY), json!({"add": ["b"]})).await;
    assert_eq!(status, 200);
    // An agent's token: known, but not allowed.
    let (status, v, _) = tags(Some(format!("Bearer {anna}")), None, json!({"add": ["x"]})).await;
    assert_eq!((status, v["error"].clone()), (403, json!("forbidden")));
    // A wrong key does not spoil a good admin token, nor an agent's token become enough with it.
    let (status, _, _) = tags(Some(format!("Bearer {boss}")), Some("wrong-key"), json!({"add": ["c"]})).await;
    assert_eq!(status, 200);
    let (status, _, _) = tags(Some(format!("Bearer {anna}")), Some("wrong-key"), json!({"add": ["x"]})).await;
    assert_eq!(status, 403);

    // Refused tokens: 401 from the function, as the agent routes' authorizer would refuse them.
    let now = now();
    let admin = issuer.id_token_claims("boss@example.com", parley::api::auth::Role::Admin, now);
    let with = |changes: Value| {
        let mut c = admin.clone();
        for (k, v) in changes.as_object().unwrap() {
            c[k] = v.clone();
        }
        issuer.sign(&c)
    };
    let forger = Issuer::generate(issuer.url()).unwrap();
    let mut tampered: Vec<String> = anna.split('.').map(str::to_string).collect();
    let mut promoted = payload(&anna);
    promoted["cognito:groups"] = json!(["admins"]);
    tampered[1] = B64.encode(promoted.to_string());
    for (case, token) in [
        ("another key under the issuer's kid", forger.sign_as(issuer.kid(), &admin)),
        ("an agent's token promoted after signing", tampered.join(".")),
        ("expired", with(json!({"iat": now - 7200, "exp": now - 60}))),
        ("not yet valid", with(json!({"nbf": now + 600}))),
        ("wrong issuer", with(json!({"iss": "https://cognito-idp.eu-central-1.amazonaws.com/eu-central-1_other"}))),
        ("wrong audience", with(json!({"aud": "another-app-client"}))),
        ("not a JWT", "not-a-jwt".to_string()),
    ] {
        let (status, v, www) = tags(Some(format!("Bearer {token}")), None, json!({"add": ["x"]})).await;
        assert_eq!((status, v["error"].clone()), (401, json!("unauthorized")), "{case}");
        assert_eq!(www.as_deref(), Some("Bearer"), "{case}");
    }
    // Nothing, or only a wrong key: 401 as for every x-api-key route.
    let (status, v, _) = tags(None, None, json!({"add": ["x"]})).await;
    assert_eq!((status, v["error"].clone()), (401, json!("bad_api_key")));
    let (status, _, _) = tags(None, Some("wrong-key"), json!({"add": ["x"]})).await;
    assert_eq!(status, 401);
    // None of the refused calls changed anything.
    let (_, v, _) = tags(None, Some(ADMIN_KEY), json!({})).await;
    assert_eq!(v, json!({"tags": ["b", "c", "vip"]}));

    // Many verifications, one fetch of the keys.
    assert_eq!(issuer.jwks_requests() - jwks_before, 1, "the keys are fetched once and kept");
    // A kid the keys lack may mean the pool rotated them, but not a minute after they were
    // fetched: refused without another fetch (parley::api::jwt's tests cover the refetch).
    for stranger in [forger, Issuer::generate(issuer.url()).unwrap()] {
        let (status, _, _) = tags(Some(format!("Bearer {}", stranger.sign(&admin))), None, json!({"add": ["x"]})).await;
        assert_eq!(status, 401);
    }
    let (status, _, _) = tags(Some(format!("Bearer {boss}")), None, json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(issuer.jwks_requests() - jwks_before, 1, "tokens naming made-up keys cause no fetches");
    sys.stop().await;
}
