//! Lambda glue for the HTTP functions: API Gateway (HTTP API, payload v2) events in, the shared
//! handler, the response out. The App is built once per container; its brand content is
//! re-checked on an invocation when due (`crate::content`).
use super::{App, Handler, HttpFunction};
use lambda_http::{service_fn, Body, Error, Request};
use std::sync::Arc;

/// Runs `function` with its own `handler` (`super::handlers::…`): its binary links only its routes.
pub async fn serve(function: HttpFunction, handler: Handler) -> Result<(), Error> {
    crate::observability::init(function.name());
    let app = crate::lambda_init::or_report(async {
        let app = App::live_from_env().await?;
        if function == HttpFunction::ChannelWebhook {
            // Without them every webhook would be refused; better to fail the deployment loudly.
            app.now().meta.require_webhook_secrets()?;
        }
        if function == HttpFunction::CampaignApi {
            // It mints tracked links for campaigns: without the key or the public URL it could not.
            app.now().links.require()?;
        }
        Ok::<_, crate::config::ConfigError>(app)
    })
    .await?;
    let app = Arc::new(app);
    // Open the DynamoDB connection during init, not on the first request.
    app.now().store.warm_up().await;
    lambda_http::run(service_fn(move |req: Request| {
        let app = Arc::clone(&app);
        async move {
            // The content set in force (re-checked when due), the same for the whole request.
            let app = app.current().await;
            Ok::<_, Error>(handler(&app, to_http(req)).await.map(Body::from))
        }
    }))
    .await
}

/// The API Gateway request as the shared handlers take it: the exact body bytes (lambda_http has
/// already base64-decoded a binary body), headers, path and query unchanged, and the claims the
/// HTTP API's JWT authorizer verified (the agent routes) as [`super::auth::Claims`].
pub fn to_http(req: Request) -> http::Request<bytes::Bytes> {
    let claims = jwt_claims(&req);
    let (parts, body) = req.into_parts();
    let mut out = http::Request::from_parts(parts, bytes::Bytes::copy_from_slice(body.as_ref()));
    if let Some(claims) = claims {
        out.extensions_mut().insert(claims);
    }
    out
}

/// The authorizer's claims; API Gateway passes every claim as a string.
fn jwt_claims(req: &Request) -> Option<super::auth::Claims> {
    use lambda_http::request::RequestContext;
    use lambda_http::RequestExt;
    let RequestContext::ApiGatewayV2(ctx) = req.request_context_ref()? else {
        return None;
    };
    let jwt = ctx.authorizer.as_ref()?.jwt.as_ref()?;
    if jwt.claims.is_empty() {
        return None;
    }
    let map = jwt.claims.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect();
    Some(super::auth::Claims(map))
}
