//! W3C Trace Context (`docs/alerting.md#trace-ids`): every request has a trace id, taken
//! from its `traceparent` header or made anew. The answer's `traceparent` names it, the
//! request's log span records it, and every event the request brings carries it to the
//! history, to the incident it opens and to each notification about that incident.

use axum::extract::{FromRequestParts, Request};
use axum::http::HeaderValue;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;

/// The trace id of the request being served: 32 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace(pub String);

/// Reads (or makes) the request's trace id and names it on the answer.
pub(super) async fn layer(mut request: Request, next: Next) -> Response {
    let header = request
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let trace = header
        .as_deref()
        .and_then(parse)
        .unwrap_or_else(|| hex(rand::random::<u128>().max(1), 32));
    if let Some(parent) = header.as_deref().and_then(parent_span) {
        request.extensions_mut().insert(SenderSpan(parent));
    }
    request.extensions_mut().insert(Trace(trace.clone()));
    let mut response = next.run(request).await;
    // Tocsin's own span within the trace is the parent of whatever follows the answer.
    let span = hex(u128::from(rand::random::<u64>().max(1)), 16);
    if let Ok(value) = HeaderValue::from_str(&format!("00-{trace}-{span}-01")) {
        response.headers_mut().insert("traceparent", value);
    }
    response
}

impl<S: Send + Sync> FromRequestParts<S> for Trace {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Self>()
            .cloned()
            .unwrap_or_else(|| Self(hex(rand::random::<u128>().max(1), 32))))
    }
}

/// The sender's span (16 hex digits) from its valid `traceparent`: the parent of the
/// request's span in an exported trace.
#[derive(Debug, Clone)]
pub(crate) struct SenderSpan(pub(crate) String);

/// The parent span id of a valid `traceparent`.
fn parent_span(header: &str) -> Option<String> {
    parse(header)?;
    header.trim().split('-').nth(2).map(str::to_owned)
}

/// The trace id of a valid `traceparent` (`version-traceid-parentid-flags`), or `None`:
/// an invalid header starts a new trace, as the specification asks.
pub fn parse(header: &str) -> Option<String> {
    let mut fields = header.trim().split('-');
    let (version, trace, parent, flags) = (
        fields.next()?,
        fields.next()?,
        fields.next()?,
        fields.next()?,
    );
    let is_hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let zero = |s: &str| s.bytes().all(|b| b == b'0');
    let valid = is_hex(version, 2)
        && version != "ff"
        && is_hex(trace, 32)
        && !zero(trace)
        && is_hex(parent, 16)
        && !zero(parent)
        && is_hex(flags, 2)
        // Version 00 has exactly four fields; later versions may append more.
        && (version != "00" || fields.next().is_none());
    valid.then(|| trace.to_owned())
}

fn hex(value: u128, digits: usize) -> String {
    let full = format!("{value:032x}");
    full[32 - digits..].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_traceparent_gives_its_trace_id_and_anything_else_none() {
        let id = "4bf92f3577b34da6a3ce929d0e0e4736";
        assert_eq!(
            parse(&format!("00-{id}-00f067aa0ba902b7-01")).as_deref(),
            Some(id)
        );
        assert_eq!(
            parse(&format!("01-{id}-00f067aa0ba902b7-00-extra")).as_deref(),
            Some(id),
            "a later version may carry more fields"
        );
        for bad in [
            "",
            "garbage",
            &format!("00-{id}-00f067aa0ba902b7-01-extra"),
            &format!("ff-{id}-00f067aa0ba902b7-01"),
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            &format!("00-{id}-0000000000000000-01"),
            &format!("00-{}-00f067aa0ba902b7-01", id.to_uppercase()),
            &format!("00-{id}-00f067aa0ba902b7"),
            &format!("00-{id}x-00f067aa0ba902b7-01"),
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn made_ids_have_the_lengths_w3c_asks() {
        assert_eq!(hex(u128::MAX, 32).len(), 32);
        assert_eq!(hex(1, 16), "0000000000000001");
    }
}
