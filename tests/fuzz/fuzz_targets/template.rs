//! Templates (`${context.service}`, `${alert.monitor}`): parsing, checking against
//! an event's labels and rendering never panic, and a template that checks renders
//! every label it names from the event.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use tocsin_model::event::{Event, render};
use tocsin_model::template::{Part, Template};

fuzz_target!(|input: (&str, Vec<(String, String)>)| {
    let (text, labels) = input;
    let context: BTreeMap<String, String> = labels.into_iter().collect();
    let event: Event = serde_json::from_value(serde_json::json!({
        "alert": {"monitor": "Fuzz", "status": "unhealthy"},
        "context": context,
    }))
    .expect("any labels make an event");
    let rendered = render(text, &event);
    let Ok(template) = Template::parse(text) else {
        assert_eq!(
            rendered, text,
            "a template that does not parse renders as written"
        );
        return;
    };
    if template.check(&context).is_ok() {
        for part in template.parts() {
            if let Part::Context(label) = part {
                let value = &context[*label];
                assert!(rendered.contains(value.as_str()), "{label} is rendered");
            }
        }
    }
});
