//! The HTTP boundary's errors, mapped to a status in exactly one place. Internal details are
//! logged, never sent: a 5xx body carries only a reference to the log line.
use crate::channels::signature::SignatureError;
use http::StatusCode;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("unauthorized: {0}")]
    BadSignature(#[from] SignatureError),
    #[error("missing or wrong API key")]
    BadApiKey,
    #[error("verify token does not match")]
    Forbidden,
    /// No valid bearer token (the agent API): 401.
    #[error("a valid bearer token is required")]
    Unauthenticated,
    /// A valid token whose holder may not do this: 403.
    #[error("{0}")]
    NotAllowed(String),
    /// The request conflicts with the resource's state (e.g. the 24-hour window is closed):
    /// 409 with its own error code and extra fields for the caller.
    #[error("{message}")]
    Conflict { code: &'static str, message: String, extra: serde_json::Value },
    #[error("body of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("not found")]
    NotFound,
    /// 404 saying what does not exist (never naming it).
    #[error("{0}")]
    Missing(&'static str),
    #[error("method not allowed")]
    MethodNotAllowed { allow: &'static str },
    /// A dependency (DynamoDB, SQS) failed: the caller should retry.
    #[error("temporarily unavailable: {0}")]
    Unavailable(String),
    /// Another invocation holds a live claim on this delivery: not done yet, so not a 200 —
    /// the platform retries after `retry_after` seconds and then finds it done or takes it over.
    #[error("this delivery is being processed; retry in {retry_after} s")]
    InFlight { retry_after: u64 },
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadSignature(_) | ApiError::BadApiKey => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden | ApiError::NotAllowed(_) => StatusCode::FORBIDDEN,
            ApiError::Unauthenticated => StatusCode::UNAUTHORIZED,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::NotFound | ApiError::Missing(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unavailable(_) | ApiError::InFlight { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::BadSignature(_) => "bad_signature",
            ApiError::BadApiKey => "bad_api_key",
            ApiError::Forbidden | ApiError::NotAllowed(_) => "forbidden",
            ApiError::Unauthenticated => "unauthorized",
            ApiError::Conflict { code, .. } => code,
            ApiError::TooLarge { .. } => "payload_too_large",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::Unprocessable(_) => "unprocessable",
            ApiError::NotFound | ApiError::Missing(_) => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::InFlight { .. } => "in_flight",
            ApiError::Internal(_) => "internal",
        }
    }

    pub fn into_response(self) -> http::Response<String> {
        let status = self.status();
        let message = if let ApiError::InFlight { .. } = self {
            // Expected under concurrency, and it says nothing internal.
            tracing::info!(error = %self, "delivery still in flight");
            self.to_string()
        } else if status.is_server_error() {
            let reference = uuid::Uuid::new_v4().to_string();
            tracing::error!(error = %self, reference = %reference, "request failed");
            format!("the request could not be processed right now; reference {reference}")
        } else {
            tracing::info!(error = %self, status = status.as_u16(), "request rejected");
            self.to_string()
        };
        let mut body = serde_json::json!({ "error": self.code(), "message": message });
        if let (ApiError::Conflict { extra: serde_json::Value::Object(extra), .. }, Some(b)) =
            (&self, body.as_object_mut())
        {
            b.extend(extra.clone());
        }
        let body = body.to_string();
        let mut builder = http::Response::builder().status(status).header("content-type", "application/json");
        match self {
            ApiError::MethodNotAllowed { allow } => builder = builder.header("allow", allow),
            ApiError::InFlight { retry_after } => builder = builder.header("retry-after", retry_after),
            ApiError::Unauthenticated => builder = builder.header("www-authenticate", "Bearer"),
            _ => {}
        }
        builder.body(body).expect("valid response")
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::Unavailable(d) => ApiError::Unavailable(d),
            crate::store::StoreError::Corrupt(d) => ApiError::Internal(d),
        }
    }
}

impl From<crate::queue::QueueError> for ApiError {
    fn from(e: crate::queue::QueueError) -> Self {
        ApiError::Unavailable(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_do_not_leak_details() {
        let r = ApiError::Internal("dynamodb table parley-prod arn:aws:... exploded".into()).into_response();
        assert_eq!(r.status(), 500);
        assert!(!r.body().contains("arn:aws"), "{}", r.body());
        let r = ApiError::Unavailable("secret detail".into()).into_response();
        assert_eq!(r.status(), 503);
        assert!(!r.body().contains("secret detail"));
    }

    #[test]
    fn client_errors_say_what_is_wrong() {
        let r = ApiError::TooLarge { size: 10, limit: 5 }.into_response();
        assert_eq!(r.status(), 413);
        assert!(r.body().contains("exceeds the limit of 5 bytes"));
        let r = ApiError::BadSignature(SignatureError::Missing).into_response();
        assert_eq!(r.status(), 401);
        let r = ApiError::MethodNotAllowed { allow: "GET, POST" }.into_response();
        assert_eq!(r.headers()["allow"], "GET, POST");
        let r = ApiError::InFlight { retry_after: 7 }.into_response();
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()["retry-after"], "7");
    }
}
