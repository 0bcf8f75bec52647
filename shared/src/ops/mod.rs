//! Operator tasks behind the `parley` CLI (cli/): queue and DLQ inspection and redrive, contact
//! lookup, and replaying a saved webhook delivery. The CLI only parses arguments and prints.
pub mod contact_state;
pub mod contacts;
pub mod content;
pub mod queues;
pub mod replay;

/// What an operator task can fail with. Messages name resources and codes, never a person.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// A setting the task needs is missing (the env var or flag is named).
    #[error("not configured: {0}")]
    NotConfigured(String),
    /// The arguments or the input file cannot be used.
    #[error("{0}")]
    Invalid(String),
    /// The contact (or other record) does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// AWS (or the local endpoints) could not be reached or refused a call: try again.
    #[error("{operation} failed: {detail}")]
    Aws { operation: &'static str, detail: String },
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Queue(#[from] crate::queue::QueueError),
    /// The webhook answered, but not with success.
    #[error("the webhook answered {status}")]
    Rejected { status: u16 },
    /// The webhook could not be reached.
    #[error("could not reach the webhook: {0}")]
    Unreachable(String),
}

impl OpsError {
    /// Worth running again unchanged (a transient AWS or network failure).
    pub fn retryable(&self) -> bool {
        match self {
            OpsError::Aws { .. } | OpsError::Unreachable(_) => true,
            OpsError::Store(e) => matches!(e, crate::store::StoreError::Unavailable(_)),
            OpsError::Queue(e) => !matches!(e, crate::queue::QueueError::TooLarge { .. }),
            OpsError::Rejected { status } => *status >= 500,
            OpsError::NotConfigured(_) | OpsError::Invalid(_) | OpsError::NotFound(_) => false,
        }
    }

    pub(crate) fn aws<E, R>(operation: &'static str, e: aws_sdk_sqs::error::SdkError<E, R>) -> Self
    where
        E: std::error::Error + 'static,
        R: std::fmt::Debug,
    {
        OpsError::Aws { operation, detail: aws_sdk_sqs::error::DisplayErrorContext(&e).to_string() }
    }
}
