//! Lambda entry point for the campaign queue (`ReportBatchItemFailures`): each message is one
//! paced page of a campaign's fan-out. Wiring only; the handler is
//! `parley::campaigns::handle_jobs`, which the local runtime drives too.
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    parley::observability::init("campaign-dispatcher");
    let app = Arc::new(parley::lambda_init::or_report(parley::api::App::live_from_env()).await?);
    app.now().store.warm_up().await;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let app = Arc::clone(&app);
        async move {
            let app = app.current().await;
            Ok::<SqsBatchResponse, Error>(parley::campaigns::handle_jobs(&app, event.payload).await)
        }
    }))
    .await
}
