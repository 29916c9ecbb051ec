//! Spans in the event's trace: each stage puts the span of its work on an event or an
//! incident into the W3C trace the event came with (`docs/operations.md#traces`), so
//! that an OTLP backend shows one trace from the request to each notification attempt.
//! Without an OTLP exporter installed, this does nothing.

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// Puts `span` (not yet entered) into the trace `trace_id` (32 hex digits), under the
/// span `parent` (16 hex digits: the sender's, from its `traceparent`) or, when there is
/// none, under the trace's root: the span every stage after the journal hangs under,
/// since the journal keeps the trace id and not the span that wrote it. A malformed or
/// missing id leaves the span where it is.
pub fn follow(span: &tracing::Span, trace_id: Option<&str>, parent: Option<&str>) {
    let Some(trace) = trace_id.and_then(|t| TraceId::from_hex(t).ok()) else {
        return;
    };
    if trace == TraceId::INVALID {
        return;
    }
    let parent = parent
        .and_then(|p| SpanId::from_hex(p).ok())
        .filter(|p| *p != SpanId::INVALID)
        .unwrap_or_else(|| root(trace));
    let context = SpanContext::new(
        trace,
        parent,
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(context));
}

/// The span id standing for the trace's root: derived from the trace id, so that every
/// process names the same one.
pub fn root(trace: TraceId) -> SpanId {
    let bytes = trace.to_bytes();
    let mut id = [0u8; 8];
    for (i, b) in id.iter_mut().enumerate() {
        *b = bytes[i] ^ bytes[i + 8];
    }
    if id == [0; 8] {
        id[7] = 1;
    }
    SpanId::from_bytes(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_is_the_same_for_a_trace_and_never_invalid() {
        let trace = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").expect("hex");
        assert_eq!(root(trace), root(trace));
        assert_ne!(root(trace), SpanId::INVALID);
        // Equal halves would give zero.
        let halves = TraceId::from_hex("00000000000000010000000000000001").expect("hex");
        assert_ne!(root(halves), SpanId::INVALID);
    }
}
