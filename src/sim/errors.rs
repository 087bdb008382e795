//! Desk's error bodies: `{"errorCode": "...", "message": "..."}` with the status each code travels with.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// One Desk API error as the client sees it.
#[derive(Debug, Clone)]
pub struct DeskError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// `errors[]` of an INVALID_DATA answer.
    pub errors: Option<Box<Value>>,
    pub headers: Vec<(&'static str, String)>,
}

impl DeskError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), errors: None, headers: Vec::new() }
    }

    pub fn invalid_oauth() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "INVALID_OAUTH", "The OAuth Token you provided is invalid.")
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "You are not authorized to perform this operation.",
        )
    }

    pub fn scope_mismatch() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "SCOPE_MISMATCH",
            "The OAuth Token does not contain the scope to perform this operation.",
        )
    }

    pub fn org_mismatch() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "OAUTH_ORG_MISMATCH",
            "The OAuth Token does not belong to the organization given in the orgId.",
        )
    }

    pub fn license_limited() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "LICENSE_ACCESS_LIMITED",
            "Your Zoho Desk Edition does not support this feature/operation.",
        )
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "URL_NOT_FOUND", "The URL you requested could not be found.")
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            "The HTTP method you used is not allowed for this URL.",
        )
    }

    pub fn unprocessable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "UNPROCESSABLE_ENTITY", message)
    }

    pub fn extra_param(name: &str) -> Self {
        Self::unprocessable(format!("Extra query parameter '{name}' is present in the input."))
    }

    pub fn invalid_param(name: &str) -> Self {
        Self::unprocessable(format!("The value passed for the '{name}' query parameter is invalid."))
    }

    pub fn from_range() -> Self {
        Self::unprocessable("The value passed for field 'from' exceeds the range of '0-4999'")
    }

    pub fn search_iterable() -> Self {
        Self::unprocessable("Max search result iterable is 5000")
    }

    /// INVALID_DATA with one `errors[]` entry per offending field (`fieldName` is a JSON pointer).
    pub fn invalid_data(fields: &[(&str, &str, &str)]) -> Self {
        let errors: Vec<Value> = fields
            .iter()
            .map(|(field, kind, msg)| json!({"fieldName": field, "errorType": kind, "errorMessage": msg}))
            .collect();
        let mut err = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "INVALID_DATA",
            "The data does not comply to the validation restrictions defined.",
        );
        err.errors = Some(Box::new(Value::Array(errors)));
        err
    }

    pub fn empty_payload() -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "EMPTY_PAYLOAD", "The payload is empty.")
    }

    pub fn unsupported_media() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "The media type of the request is not supported.",
        )
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_SERVER_ERROR",
            "An internal server error occurred while performing this operation.",
        )
    }

    pub fn too_many_concurrent() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TOO_MANY_REQUESTS",
            "The maximum number of Concurrent API Calls that can be made has been exceeded.",
        )
    }

    pub fn too_many_per_minute(retry_after_s: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TOO_MANY_REQUESTS",
            "The maximum number of API calls that can be made per minute has been exceeded.",
        )
        .with_header("retry-after", &retry_after_s.to_string())
    }

    pub fn threshold_exceeded(retry_after_s: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "THRESHOLD_EXCEEDED",
            "The API credits allotted to your organization for the day have been exhausted.",
        )
        .with_header("retry-after", &retry_after_s.to_string())
    }

    pub fn with_header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.retain(|(n, _)| *n != name);
        self.headers.push((name, value.to_owned()));
        self
    }

    pub fn body(&self) -> Value {
        let mut body = json!({"errorCode": self.code, "message": self.message});
        if let (Some(errors), Some(obj)) = (&self.errors, body.as_object_mut()) {
            obj.insert("errors".to_owned(), (**errors).clone());
        }
        body
    }
}

impl IntoResponse for DeskError {
    fn into_response(self) -> Response {
        let body = self.body();
        let mut resp = (self.status, axum::Json(body)).into_response();
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                resp.headers_mut().insert(name, v);
            }
        }
        resp
    }
}
