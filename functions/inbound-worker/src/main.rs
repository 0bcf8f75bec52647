//! Lambda entry point for the inbound FIFO queue (`ReportBatchItemFailures`): the events of big
//! Meta deliveries, handed over by channel-webhook. Wiring only; the handler is
//! `parley::inbound::handle`, which the local runtime drives too.
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    parley::observability::init("inbound-worker");
    let app = Arc::new(parley::lambda_init::or_report(parley::api::App::live_from_env()).await?);
    app.now().store.warm_up().await;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let app = Arc::clone(&app);
        async move {
            let app = app.current().await;
            Ok::<SqsBatchResponse, Error>(parley::inbound::handle(&app, event.payload).await)
        }
    }))
    .await
}
