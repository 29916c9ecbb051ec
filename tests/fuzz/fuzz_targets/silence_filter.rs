//! `GET /api/v2/silences?filter=…` matchers: parsing never panics, and a regex filter
//! stays anchored at both ends, whatever the pattern tries.
#![no_main]

use libfuzzer_sys::fuzz_target;
use time::OffsetDateTime;
use tocsin_ingest::adapt::alertmanager::{Filter, GettableSilence, Matcher, SilenceStatus};

fn silence(name: &str, value: &str) -> GettableSilence {
    GettableSilence {
        id: "s".into(),
        status: SilenceStatus { state: "active" },
        updated_at: OffsetDateTime::UNIX_EPOCH,
        matchers: vec![Matcher {
            name: name.into(),
            value: value.into(),
            is_regex: false,
            is_equal: true,
        }],
        starts_at: OffsetDateTime::UNIX_EPOCH,
        ends_at: OffsetDateTime::UNIX_EPOCH,
        created_by: String::new(),
        comment: String::new(),
    }
}

fuzz_target!(|input: (&str, &str)| {
    let (filter, value) = input;
    let Ok(parsed) = Filter::parse(filter) else {
        return;
    };
    let at = filter
        .find(['=', '!'])
        .expect("a parsed filter has an operator");
    let name = filter[..at].trim();
    let keeps = parsed.keeps(&silence(name, value));
    if filter[at..].starts_with("=~") && keeps {
        // Anchored: what follows the value must be matched by the pattern too, so a
        // value with an extra NUL byte (which no pattern here accounts for unless it
        // says so) is kept only by patterns that can match anything after it.
        let pattern = filter.split_once("=~").map_or("", |(_, p)| p);
        if !pattern.contains(['.', '\\', '[', '^', '\0']) && !pattern.contains("(?") {
            assert!(
                !parsed.keeps(&silence(name, &format!("{value}\u{0}"))),
                "{filter:?} matched {value:?} followed by a NUL"
            );
        }
    }
});
