//! RFC 9457 problem details: every refusal names its precise problem and what to do about it.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use custodia_core::ledger_api::{PROBLEM_PREFIX, Problem};

/// A refusal on its way to becoming a problem+json response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    pub entry: Option<usize>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self { status, code, detail: detail.into(), entry: None }
    }

    /// Points the error at entry `index` of the request.
    pub fn at(mut self, index: usize) -> Self {
        self.entry = Some(index);
        self
    }

    pub fn malformed(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", detail)
    }

    pub fn bad_range(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad-range", detail)
    }

    pub fn forbidden(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, detail)
    }

    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, detail)
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail)
    }

    fn title(&self) -> &'static str {
        match self.code {
            "malformed" => "Malformed request",
            "too-large" => "Too large",
            "too-many-entries" => "Too many entries in one request",
            "bad-signature" => "Signature does not verify",
            "stale" => "Outside the accepted time window",
            "not-enrolled" => "Signer is not enrolled",
            "wrong-role" => "Signer's role does not allow this",
            "wrong-tag" => "Entry filed under another patient's tag",
            "already-enrolled" => "Already enrolled",
            "replayed" => "Entry already in the log",
            "duplicate-grant" => "Grant id already used",
            "unknown-grant" => "No such grant",
            "not-owner" => "Not the grant's patient",
            "already-revoked" => "Grant already revoked",
            "rate-limited" => "Too many requests",
            "unauthorized" => "Signed request required",
            "forbidden" => "Not allowed",
            "bad-range" => "Out of range",
            "not-found" => "Not found",
            "method-not-allowed" => "Method not allowed",
            "unsupported-media-type" => "Unsupported media type",
            "unwitnessed" => "Not yet covered by a witnessed checkpoint",
            _ => "Service unavailable",
        }
    }

    pub fn to_problem(&self) -> Problem {
        Problem {
            problem_type: format!("{PROBLEM_PREFIX}{}", self.code),
            title: self.title().to_owned(),
            status: self.status.as_u16(),
            detail: self.detail.clone(),
            entry: self.entry,
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::unavailable(format!("storage: {e}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        crate::ops::REFUSALS.add(self.code, 1);
        // A Problem is strings and numbers; serialising it cannot fail.
        #[allow(clippy::expect_used)]
        let body = serde_json::to_vec(&self.to_problem()).expect("a problem serialises");
        let mut response = (self.status, body).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if self.code == "rate-limited" {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}
