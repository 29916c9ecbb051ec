//! Suppression drafts (JSON, the blueprint's shape): validation and target regexes never
//! panic; a valid draft's matcher matches an alert carrying its first target's exact
//! labels, and never an alert without labels.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use tocsin_model::suppression::{Draft, Policy};

fuzz_target!(|data: &[u8]| {
    let Ok(draft) = serde_json::from_slice::<Draft>(data) else {
        return;
    };
    let Ok(matcher) = draft.validate(&Policy::default()) else {
        return;
    };
    assert!(
        !matcher.matches("any", &BTreeMap::new()),
        "an empty label set is never matched"
    );
    let target = &draft.targets[0];
    if target.values().all(|v| !v.starts_with('~')) {
        let monitor = target.get("monitor").cloned().unwrap_or_default();
        assert!(
            matcher.matches(&monitor, target),
            "a target matches its own labels"
        );
    }
    let json = serde_json::to_vec(&draft).expect("a draft serializes");
    let back: Draft = serde_json::from_slice(&json).expect("a draft reads back");
    back.validate(&Policy::default())
        .expect("and is still valid");
});
