//! What a filter plugin returns: one verdict per event, bounded reasons, replacements
//! the pipeline validates before using them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tocsin_fuzz::PluginVerdict;
use tocsin_host::output::{MAX_REASON, filter_output};
use tocsin_model::plugin::Verdict;

fuzz_target!(|input: (u8, Vec<PluginVerdict>)| {
    let (batch_len, verdicts) = input;
    let given = verdicts.len();
    let Ok(verdicts) = filter_output(
        verdicts.into_iter().map(Into::into).collect(),
        batch_len.into(),
    ) else {
        return;
    };
    assert_eq!(given, usize::from(batch_len));
    for verdict in verdicts {
        match verdict {
            Verdict::Keep => {}
            Verdict::Drop(reason) => assert!(reason.len() <= MAX_REASON),
            Verdict::Replace(event) => {
                if event.validate().is_ok() {
                    tocsin_fuzz::accept(vec![Ok(*event)]);
                }
            }
        }
    }
});
