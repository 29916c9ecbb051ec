//! Loggly's alert webhook: the first line is the webhook URL's query, the rest the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tocsin_ingest::adapt::loggly::{Options, adapt};

fuzz_target!(|data: &[u8]| {
    let (query, body) = tocsin_fuzz::query_and_body(data);
    let Ok(options) = Options::from_query(&query) else {
        return;
    };
    if let Ok(events) = adapt(body, &options, time::OffsetDateTime::now_utc()) {
        tocsin_fuzz::accept(events.into_iter().map(Ok).collect());
    }
});
