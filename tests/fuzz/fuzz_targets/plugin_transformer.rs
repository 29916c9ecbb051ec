//! What a transformer plugin returns: the host's checks then ingest's validation,
//! whatever the plugin made up.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tocsin_fuzz::PluginEvent;
use tocsin_host::output::transformer_output;

fuzz_target!(|events: Vec<PluginEvent>| {
    let events = events.into_iter().map(Into::into).collect();
    if let Ok(events) = transformer_output(events, 64) {
        tocsin_fuzz::accept(events.into_iter().map(Ok).collect());
    }
});
