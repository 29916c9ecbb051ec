//! Reading a settings body (services, suppressions): JSON or YAML, bounded, each error
//! naming the field.

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use tocsin_ingest::Format;

/// Largest settings body: a service with thousands of retired instances fits.
pub const MAX_SETTINGS_BYTES: usize = 1024 * 1024;

/// Reads a JSON (the default) or YAML object into `T`; a 400 names the field at fault,
/// or says that the body is not an object.
pub async fn read<T: DeserializeOwned>(headers: &HeaderMap, body: Body) -> Result<T, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    let format = Format::from_content_type(content_type).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("unsupported content type \"{content_type}\": send application/json or application/yaml"),
        )
    })?;
    let bytes = match Limited::new(body, MAX_SETTINGS_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body over {MAX_SETTINGS_BYTES} bytes (1 MiB)"),
            ));
        }
        Err(e) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("could not read the request body: {e}"),
            ));
        }
    };
    let bad = |message: String| ApiError::new(StatusCode::BAD_REQUEST, message);
    let value: serde_json::Value = match format {
        Format::Json => {
            serde_json::from_slice(&bytes).map_err(|e| bad(format!("malformed JSON: {e}")))?
        }
        Format::Yaml => tocsin_model::yaml::from_slice(&bytes)
            .map_err(|e| bad(format!("malformed YAML: {e}")))?,
    };
    // Serde reads a struct from a sequence too: `[]` would be a body of all defaults.
    let kind = match &value {
        serde_json::Value::Object(_) => None,
        serde_json::Value::Array(_) => Some("an array"),
        serde_json::Value::String(_) => Some("a string"),
        serde_json::Value::Number(_) => Some("a number"),
        serde_json::Value::Bool(_) => Some("a boolean"),
        serde_json::Value::Null => Some("null"),
    };
    if let Some(kind) = kind {
        return Err(bad(format!(
            "the body must be an object of fields, got {kind}"
        )));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            bad(e.inner().to_string())
        } else {
            bad(format!("{path}: {}", e.inner()))
        }
    })
}

/// Reads a raw body of at most `max` bytes: a larger one is a 413 before it is read
/// when its length is announced, and as soon as the limit is crossed when it is not.
pub async fn bytes(
    headers: &HeaderMap,
    body: Body,
    max: usize,
    advice: &str,
) -> Result<bytes::Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body over {max} bytes {advice}"),
        )
    };
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if announced.is_some_and(|len| len > max) {
        return Err(too_large());
    }
    match Limited::new(body, max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(too_large()),
        Err(e) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("could not read the request body: {e}"),
        )),
    }
}

/// Reads an optional `limit` query value within `1..=max`.
pub fn limit(value: &str, max: u32) -> Result<u32, ApiError> {
    value
        .parse()
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("invalid limit \"{value}\": use 1-{max}"),
            )
        })
}
