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
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"auth": "sandbox", "cognito": null}));

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
