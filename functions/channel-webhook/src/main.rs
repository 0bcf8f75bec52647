//! Lambda entry point for `GET/POST /webhooks/meta` and `GET /health`: wiring only; the handler
//! is `parley::api::channel_webhook`, which the local runtime serves too.
use lambda_http::{service_fn, Body, Error, Request};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    parley::observability::init_logging();
    let app = Arc::new(parley::api::App::from_env().await?);
    // Open the DynamoDB connection during init, not on the first webhook.
    app.store.warm_up().await;
    lambda_http::run(service_fn(move |req: Request| {
        let app = Arc::clone(&app);
        async move {
            let (parts, body) = req.into_parts();
            let req = http::Request::from_parts(parts, bytes::Bytes::copy_from_slice(body.as_ref()));
            let response = parley::api::channel_webhook(&app, req).await;
            Ok::<_, Error>(response.map(Body::from))
        }
    }))
    .await
}
