//! `POST /api/v2/silences` (amtool, Grafana): a silence becomes a suppression draft,
//! validated like any other, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tocsin_ingest::adapt::alertmanager::{PostableSilence, draft};
use tocsin_model::suppression::Policy;

fuzz_target!(|data: &[u8]| {
    let Ok(silence) = serde_json::from_slice::<PostableSilence>(data) else {
        return;
    };
    if let Ok(draft) = draft(&silence) {
        let _ = draft.validate(&Policy::default());
    }
});
