//! `POST /api/v2/alerts` (what Prometheus sends): refused as a whole or alert by alert.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tocsin_ingest::adapt::alertmanager::alerts;

fuzz_target!(|data: &[u8]| {
    if let Ok(items) = alerts(data, time::OffsetDateTime::now_utc()) {
        tocsin_fuzz::accept(items);
    }
});
