//! Durations (`90s`, `1h30m`, `7d`): never a panic, and every duration accepted fits in
//! signed milliseconds, the form the pipeline and the stores keep it in.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tocsin_model::event::parse_duration;

fuzz_target!(|text: &str| {
    if let Ok(d) = parse_duration(text) {
        assert!(i64::try_from(d.as_millis()).is_ok(), "{text:?} is {d:?}");
        assert_eq!(parse_duration(&format!("{}ms", d.as_millis())), Ok(d));
    }
});
