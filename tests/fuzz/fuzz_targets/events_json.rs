//! `POST /v1/events` with a JSON body: any bytes are refused as a whole or item by item,
//! never a panic, and what is accepted reads back from the journal unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tocsin_ingest::{BodyError, Format, read};

fuzz_target!(|data: &[u8]| {
    match read(data, Format::Json, &tocsin_fuzz::caller(), "api") {
        Ok(batch) => {
            let items = batch.ids.len();
            tocsin_fuzz::check(&batch, items);
        }
        Err(BodyError::Malformed(why)) => assert!(!why.is_empty()),
        Err(_) => {}
    }
});
