//! Every failure leaves the server as a `metav1.Status` with the right HTTP code.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use podium_api::status::ApiError;
use podium_store::StoreError;

/// The handlers' error: an [`ApiError`] that renders itself as a response.
#[derive(Debug)]
pub struct Failure(pub ApiError);

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Failure(e)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.0.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if code.is_server_error() {
            tracing::error!(message = %self.0.message, "request failed");
        }
        let mut response = (code, self.0.to_body()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

/// Map a store failure that the registry did not translate itself.
pub fn store_failure(e: StoreError) -> ApiError {
    match e {
        StoreError::Compacted {
            requested,
            compacted,
        } => ApiError::gone(format!(
            "too old resource version: {requested} ({compacted})"
        )),
        other => ApiError::internal(format!("storage error: {other}")),
    }
}

pub type ApiResult<T> = Result<T, Failure>;
