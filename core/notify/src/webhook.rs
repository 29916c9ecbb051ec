//! A generic webhook: the notice as JSON, signed with HMAC-SHA256 so the receiver can
//! check it came from Tocsin and was not replayed.
//!
//! Headers: `X-Tocsin-Timestamp` (Unix seconds) and `X-Tocsin-Signature:
//! sha256=<hex>`, the HMAC of `<timestamp>.<body>` under the shared secret. A receiver
//! recomputes it, compares in constant time, and refuses old timestamps.

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::Notice;

/// Header carrying the signature.
pub const SIGNATURE_HEADER: &str = "x-tocsin-signature";
/// Header carrying the signed timestamp.
pub const TIMESTAMP_HEADER: &str = "x-tocsin-timestamp";

/// The JSON body: the action, the incident with its alerts, the facts and the link.
pub fn body(notice: &Notice<'_>) -> Value {
    json!({
        "action": notice.action,
        "summary": notice.summary(),
        "incident": notice.incident,
        "facts": notice.facts().into_iter().map(|(name, text)| json!({ "name": name, "text": text })).collect::<Vec<_>>(),
        "link": notice.link,
        "traceId": notice.trace_id,
    })
}

/// The signature header's value for `body` sent at `timestamp`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Checks a signature as a receiver would, in constant time.
pub fn verify(secret: &[u8], timestamp: i64, body: &[u8], signature: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    let expected = sign(secret, timestamp, body);
    expected.len() == signature.len() && bool::from(expected.as_bytes().ct_eq(signature.as_bytes()))
}
