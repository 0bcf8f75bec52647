//! Lambda entry point for the bridge queue (`ReportBatchItemFailures`): conversation events
//! posted to the brand's inbox, signed per Standard Webhooks. Wiring only; the handler is
//! `parley::bridge::Deliverer`, which the local runtime drives too.
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    parley::observability::init("event-bridge");
    let deliverer = Arc::new(parley::lambda_init::or_report(parley::bridge::Deliverer::from_env()).await?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let deliverer = Arc::clone(&deliverer);
        async move { Ok::<SqsBatchResponse, Error>(deliverer.handle(event.payload).await) }
    }))
    .await
}
