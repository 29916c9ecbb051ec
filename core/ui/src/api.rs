//! In-process calls into the API router, with the signed-in token: the UI has no other
//! way to the data, so it shares the API's checks, scoping and error messages.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::Value;
use tower::ServiceExt;

use crate::page::Failure;

/// What every page handler shares: the API router it is a client of.
#[derive(Clone)]
pub(crate) struct Ui {
    /// The API's router, called in-process.
    pub api: Router,
}

/// Largest API answer a page reads (the largest pages ask for at most a few hundred rows).
const MAX_ANSWER: usize = 32 << 20;

/// An API answer that was not a success: its status and the API's own message.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub status: StatusCode,
    pub message: String,
}

impl From<Refusal> for Failure {
    fn from(refusal: Refusal) -> Self {
        if refusal.status == StatusCode::UNAUTHORIZED {
            Failure::SignIn
        } else {
            Failure::Api(refusal.status, refusal.message)
        }
    }
}

/// Calls `method uri` with `token`, sending `body` (content type, bytes) if any, and reads
/// a 2xx answer's JSON (`null` when it has none).
pub(crate) async fn call(
    api: &Router,
    token: &str,
    method: Method,
    uri: &str,
    body: Option<(&str, Vec<u8>)>,
) -> Result<Value, Refusal> {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"));
    let body = match body {
        Some((content_type, bytes)) => {
            request = request.header(header::CONTENT_TYPE, content_type);
            Body::from(bytes)
        }
        None => Body::empty(),
    };
    let internal = |message: String| Refusal {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        message,
    };
    let request = request
        .body(body)
        .map_err(|e| internal(format!("cannot build the request for {uri}: {e}")))?;
    let response = api
        .clone()
        .oneshot(request)
        .await
        .map_err(|e| internal(format!("the API did not answer {uri}: {e}")))?;
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), MAX_ANSWER)
        .await
        .map_err(|e| internal(format!("cannot read the API's answer to {uri}: {e}")))?;
    if status.is_success() {
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        return serde_json::from_slice(&bytes)
            .map_err(|e| internal(format!("the API's answer to {uri} is not JSON: {e}")));
    }
    let message = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
    Err(Refusal { status, message })
}

/// A query string from pairs, empty values left out, with its leading `?` (or nothing).
pub(crate) fn query<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    let mut any = false;
    for (k, v) in pairs {
        if !v.is_empty() {
            out.append_pair(k, v);
            any = true;
        }
    }
    if any {
        format!("?{}", out.finish())
    } else {
        String::new()
    }
}

/// One path segment, percent-encoded.
pub(crate) fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_cannot_leave_their_place_in_the_path() {
        assert_eq!(segment("../v1/x?y=1#z"), "..%2Fv1%2Fx%3Fy%3D1%23z");
        assert_eq!(segment("01a2-b_c.d"), "01a2-b_c.d");
    }

    #[test]
    fn empty_values_are_left_out_of_a_query() {
        assert_eq!(query([("state", ""), ("team", "")]), "");
        assert_eq!(
            query([("state", "open"), ("service", "a b&c")]),
            "?state=open&service=a+b%26c"
        );
    }
}
