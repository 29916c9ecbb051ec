//! Every error answer: its status, its JSON body, and the one place where domain and
//! store errors become HTTP.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tracing::error;

use tocsin_ingest::Rejected;
use tocsin_model::suppression::lifecycle::SuppressionError;
use tocsin_store::{Outage, StoreError};

/// The body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong and what to do about it.
    pub error: String,
    /// For event batches: why each item was refused.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rejected: Vec<Rejected>,
}

/// An error answer: a status and a message a human can act on. Internal failures carry
/// a generic message; the real error goes to the log.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
    /// Seconds for a `Retry-After` header.
    retry_after: Option<u64>,
}

impl ApiError {
    /// An error with this status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody {
                error: message.into(),
                rejected: Vec::new(),
            },
            retry_after: None,
        }
    }

    /// A 503 with `Retry-After`: the pipeline is behind its bound, nothing was stored.
    pub fn busy(busy: crate::state::Busy) -> Self {
        Self {
            retry_after: Some(busy.retry_after),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{}; nothing was accepted, retry later", busy.reason),
            )
        }
    }

    /// A `503` for a write the database could not take through no fault of the
    /// request (its disk is full, it cannot be reached): nothing was stored, and the
    /// same request succeeds once the outage ends.
    pub fn outage(outage: Outage) -> Self {
        Self {
            retry_after: Some(OUTAGE_RETRY_SECONDS),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "{}: nothing was accepted; retry later (the server log has the details)",
                    outage.message()
                ),
            )
        }
    }

    /// Seconds the client should wait before retrying, if it should.
    pub(crate) fn retry_after(&self) -> Option<u64> {
        self.retry_after
    }

    /// A 400 listing every refused item.
    pub fn rejected(message: impl Into<String>, rejected: Vec<Rejected>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            body: ErrorBody {
                error: message.into(),
                rejected,
            },
            retry_after: None,
        }
    }

    /// A 500 that logs `cause` and tells the client only that it was not their fault.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error: the server log has the details",
        )
    }

    /// Its status and body, for an API that answers errors in another shape
    /// (Alertmanager's bare strings).
    pub(crate) fn into_parts(self) -> (StatusCode, ErrorBody) {
        (self.status, self.body)
    }
}

/// How long a client is asked to wait after a refusal for an outage of the database.
const OUTAGE_RETRY_SECONDS: u64 = 5;

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if let Some(outage) = e.outage() {
            error!(error = %e, "{}", outage.message());
            return Self::outage(outage);
        }
        Self::internal(&e)
    }
}

impl From<SuppressionError> for ApiError {
    fn from(e: SuppressionError) -> Self {
        let status = match &e {
            SuppressionError::Invalid(_) | SuppressionError::TooBroad(_) => StatusCode::BAD_REQUEST,
            SuppressionError::ForceNeedsAdmin | SuppressionError::AdminOnly(_) => {
                StatusCode::FORBIDDEN
            }
            SuppressionError::Ended(_) => StatusCode::CONFLICT,
        };
        Self::new(status, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = self.retry_after;
        let mut response = (self.status, Json(self.body)).into_response();
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
