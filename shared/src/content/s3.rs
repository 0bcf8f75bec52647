//! The few S3 calls content needs, signed with SigV4 over the HTTP client the functions already
//! have: the functions make exactly one (a conditional GetObject), and aws-sdk-s3 would add far
//! more to every function's binary than this (README "Brand content" has the numbers). The CLI
//! and the local runtime use the writes (PutObject, and CreateBucket/PutBucketVersioning for
//! the local stand-in of the template's bucket).
//!
//! Addressing: virtual-hosted on AWS (`https://<bucket>.s3.<region>.amazonaws.com/<key>`),
//! path-style against a custom endpoint (`AWS_ENDPOINT_URL_S3`, e.g. the local moto server).
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use bytes::Bytes;
use std::sync::Arc;
use std::time::SystemTime;

/// One call, in IAM terms, for whoever watches (the local runtime records them for the IAM check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Call {
    /// e.g. `s3:GetObject`
    pub action: &'static str,
    pub bucket: String,
    /// The object key; `None` for a bucket call.
    pub key: Option<String>,
}

pub type Observer = Arc<dyn Fn(&S3Call) + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// No credentials (the chain found none) or they could not be used to sign.
    #[error("cannot sign the S3 request: {0}")]
    Signing(String),
    /// Connection refused, timeout: worth trying again.
    #[error("S3 unreachable: {0}")]
    Unreachable(String),
    /// S3 answered with an error status; the code is S3's (`AccessDenied`, `NoSuchBucket`…).
    #[error("S3 answered {status} {code}")]
    Status { status: u16, code: String },
    #[error("invalid S3 name: {0}")]
    Invalid(String),
}

impl S3Error {
    pub fn retryable(&self) -> bool {
        match self {
            S3Error::Unreachable(_) => true,
            S3Error::Status { status, .. } => *status >= 500 || *status == 429,
            S3Error::Signing(_) | S3Error::Invalid(_) => false,
        }
    }
}

/// A GetObject's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Got {
    Object {
        etag: Option<String>,
        body: Bytes,
    },
    /// 304: the object still has the ETag given as `If-None-Match`.
    NotModified,
    /// 404: no such key (or bucket).
    Missing,
}

/// A PutObject's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Put {
    pub etag: Option<String>,
    /// S3's version id when the bucket is versioned.
    pub version_id: Option<String>,
}

#[derive(Clone)]
pub struct S3 {
    http: reqwest::Client,
    /// `None`: AWS's own endpoint for the region.
    endpoint: Option<String>,
    region: String,
    credentials: Option<SharedCredentialsProvider>,
    observer: Option<Observer>,
}

impl std::fmt::Debug for S3 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3").field("endpoint", &self.endpoint).field("region", &self.region).finish_non_exhaustive()
    }
}

impl S3 {
    pub fn from_parts(
        http: reqwest::Client,
        endpoint: Option<String>,
        region: String,
        credentials: Option<SharedCredentialsProvider>,
    ) -> S3 {
        S3 { http, endpoint, region, credentials, observer: None }
    }

    pub fn with_endpoint(mut self, endpoint: Option<String>) -> Self {
        if endpoint.is_some() {
            self.endpoint = endpoint;
        }
        self
    }

    pub fn with_observer(mut self, observer: Observer) -> Self {
        self.observer = Some(observer);
        self
    }

    fn url(&self, bucket: &str, key: Option<&str>, query: &str) -> Result<String, S3Error> {
        // Bucket names are DNS labels; keys here are Parley's own fixed names. Anything else is
        // refused rather than escaped, so the signed path is exactly what is sent.
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !bucket_ok {
            return Err(S3Error::Invalid(format!("bucket '{bucket}'")));
        }
        let key = key.unwrap_or("");
        if !key.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b)) || key.starts_with('/') {
            return Err(S3Error::Invalid(format!("key '{key}'")));
        }
        let base = match &self.endpoint {
            Some(e) => format!("{}/{bucket}/{key}", e.trim_end_matches('/')),
            None => format!("https://{bucket}.s3.{}.amazonaws.com/{key}", self.region),
        };
        Ok(if query.is_empty() { base } else { format!("{base}?{query}") })
    }

    async fn send(
        &self,
        call: S3Call,
        method: &str,
        query: &str,
        headers: &[(&str, String)],
        body: Bytes,
    ) -> Result<reqwest::Response, S3Error> {
        let url = self.url(&call.bucket, call.key.as_deref(), query)?;
        if let Some(observe) = &self.observer {
            observe(&call);
        }
        let provider =
            self.credentials.as_ref().ok_or_else(|| S3Error::Signing("no AWS credentials configured".into()))?;
        let creds = provider.provide_credentials().await.map_err(|e| S3Error::Signing(e.to_string()))?;
        let identity = creds.into();
        let mut settings = SigningSettings::default();
        // S3 signs the payload hash as a header and its paths are neither normalised nor
        // double-encoded (unlike the other services).
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        let params = aws_sigv4::sign::v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("s3")
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| S3Error::Signing(e.to_string()))?
            .into();
        let signable = SignableRequest::new(
            method,
            url.as_str(),
            headers.iter().map(|(k, v)| (*k, v.as_str())),
            SignableBody::Bytes(&body),
        )
        .map_err(|e| S3Error::Signing(e.to_string()))?;
        let (instructions, _) = sign(signable, &params).map_err(|e| S3Error::Signing(e.to_string()))?.into_parts();
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| S3Error::Invalid(e.to_string()))?;
        let mut req = self.http.request(method, &url);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        for (k, v) in instructions.headers() {
            req = req.header(k, v);
        }
        req.body(body).send().await.map_err(|e| S3Error::Unreachable(without_url(e)))
    }

    /// GetObject; with `if_none_match`, an unchanged object costs one 304 and no body.
    pub async fn get_object(&self, bucket: &str, key: &str, if_none_match: Option<&str>) -> Result<Got, S3Error> {
        let headers: Vec<(&str, String)> =
            if_none_match.map(|e| ("if-none-match", e.to_string())).into_iter().collect();
        let call = S3Call { action: "s3:GetObject", bucket: bucket.into(), key: Some(key.into()) };
        let resp = self.send(call, "GET", "", &headers, Bytes::new()).await?;
        match resp.status().as_u16() {
            304 => Ok(Got::NotModified),
            404 => Ok(Got::Missing),
            s if (200..300).contains(&s) => {
                let etag = header(&resp, "etag");
                let body = resp.bytes().await.map_err(|e| S3Error::Unreachable(without_url(e)))?;
                Ok(Got::Object { etag, body })
            }
            _ => Err(status_error(resp).await),
        }
    }

    pub async fn put_object(&self, bucket: &str, key: &str, content_type: &str, body: Bytes) -> Result<Put, S3Error> {
        let call = S3Call { action: "s3:PutObject", bucket: bucket.into(), key: Some(key.into()) };
        let resp = self.send(call, "PUT", "", &[("content-type", content_type.to_string())], body).await?;
        if !resp.status().is_success() {
            return Err(status_error(resp).await);
        }
        Ok(Put { etag: header(&resp, "etag"), version_id: header(&resp, "x-amz-version-id") })
    }

    /// CreateBucket (us-east-1 form: no location constraint); an existing bucket of ours is fine.
    pub async fn create_bucket(&self, bucket: &str) -> Result<(), S3Error> {
        let call = S3Call { action: "s3:CreateBucket", bucket: bucket.into(), key: None };
        let resp = self.send(call, "PUT", "", &[], Bytes::new()).await?;
        if resp.status().is_success() {
            return Ok(());
        }
        match status_error(resp).await {
            S3Error::Status { code, .. } if code == "BucketAlreadyOwnedByYou" => Ok(()),
            e => Err(e),
        }
    }

    pub async fn enable_versioning(&self, bucket: &str) -> Result<(), S3Error> {
        let body = Bytes::from_static(
            b"<VersioningConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Status>Enabled</Status></VersioningConfiguration>",
        );
        let call = S3Call { action: "s3:PutBucketVersioning", bucket: bucket.into(), key: None };
        let resp = self.send(call, "PUT", "versioning=", &[], body).await?;
        if !resp.status().is_success() {
            return Err(status_error(resp).await);
        }
        Ok(())
    }
}

fn header(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

/// S3's error code from the XML body (`<Code>AccessDenied</Code>`); never the body itself.
async fn status_error(resp: reqwest::Response) -> S3Error {
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    let code = body
        .split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map(|(code, _)| code.chars().filter(char::is_ascii_alphanumeric).take(64).collect())
        .unwrap_or_default();
    S3Error::Status { status, code }
}

/// reqwest's errors carry the URL; ours has no secret in it, but keep messages short and stable.
fn without_url(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    format!("{kind}: {}", e.without_url())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::Credentials;

    fn s3(endpoint: Option<&str>) -> S3 {
        S3 {
            http: reqwest::Client::new(),
            endpoint: endpoint.map(str::to_string),
            region: "eu-central-1".into(),
            credentials: Some(SharedCredentialsProvider::new(Credentials::for_tests())),
            observer: None,
        }
    }

    #[test]
    fn aws_is_virtual_hosted_a_custom_endpoint_path_style() {
        assert_eq!(
            s3(None).url("brand-content", Some("content/current.json"), "").unwrap(),
            "https://brand-content.s3.eu-central-1.amazonaws.com/content/current.json"
        );
        assert_eq!(
            s3(Some("http://127.0.0.1:5000/")).url("b-c", None, "versioning=").unwrap(),
            "http://127.0.0.1:5000/b-c/?versioning="
        );
    }

    #[test]
    fn names_that_would_need_escaping_are_refused() {
        assert!(s3(None).url("Bad_Bucket", Some("k"), "").is_err());
        assert!(s3(None).url("bucket", Some("a key"), "").is_err());
        assert!(s3(None).url("bucket", Some("a?b"), "").is_err());
    }
}
