//! Lambda entry point for the outbound SQS queue (`ReportBatchItemFailures`): wiring only; the
//! handler is `parley::sender::Sender`, which the local runtime drives too.
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    parley::observability::init("outbound-sender");
    let sender = Arc::new(parley::lambda_init::or_report(parley::sender::Sender::live_from_env()).await?);
    sender.now().store().warm_up().await;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let sender = Arc::clone(&sender);
        async move {
            let sender = sender.current().await;
            Ok::<SqsBatchResponse, Error>(sender.handle(event.payload).await)
        }
    }))
    .await
}
