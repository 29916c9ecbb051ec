//! Filter plugins: one call per plugin for a batch, failing open.

use super::*;

/// A plugin runtime whose filters are plain functions: `drop-eu` drops events of region
/// eu, `shout` replaces the message, `broken` fails. Records the batches it saw.
#[derive(Default)]
struct FakeFilters {
    calls: std::sync::Mutex<Vec<(String, usize)>>,
}

impl tocsin_model::plugin::Filter for FakeFilters {
    fn filter(
        &self,
        team: &str,
        name: &str,
        batch: &[tocsin_model::plugin::FilterInput<'_>],
        _config: &str,
    ) -> Result<Vec<tocsin_model::plugin::Verdict>, tocsin_model::plugin::PluginError> {
        use tocsin_model::plugin::{Failure, PluginError, Verdict};
        assert_eq!(team, "ops");
        self.calls
            .lock()
            .expect("lock")
            .push((name.to_owned(), batch.len()));
        batch
            .iter()
            .map(|input| match name {
                "drop-eu"
                    if input.event.context.get("region").map(String::as_str) == Some("eu") =>
                {
                    Ok(Verdict::Drop("eu is decommissioned".into()))
                }
                "drop-eu" => Ok(Verdict::Keep),
                "shout" => {
                    let mut event = input.event.clone();
                    event.alert.message = Some("LOUD".into());
                    Ok(Verdict::Replace(Box::new(event)))
                }
                _ => Err(PluginError::Failed {
                    plugin: name.to_owned(),
                    failure: Failure::Timeout(50),
                }),
            })
            .collect()
    }
}

fn with_plugins(event: serde_json::Value, plugins: &[&str]) -> serde_json::Value {
    let mut event = event;
    event["filters"] = plugins
        .iter()
        .map(|name| json!({"type": "plugin", "params": {"name": name}}))
        .collect();
    event
}

#[test]
fn filter_plugins_judge_a_batch_in_one_call_per_plugin_in_order() {
    let fake = Arc::new(FakeFilters::default());
    let mut b = Bench::new();
    b.engine.set_plugins(fake.clone());
    let mut eu = alert("Health", "unhealthy", "i-1");
    eu["context"]["region"] = json!("eu");
    let outcome = b.batch(
        0,
        vec![
            with_plugins(eu, &["shout", "drop-eu"]),
            with_plugins(alert("Health", "unhealthy", "i-2"), &["shout", "drop-eu"]),
            with_plugins(alert("Disk", "unhealthy", "i-3"), &["shout", "drop-eu"]),
        ],
    );
    b.absorb(outcome);
    assert_eq!(
        *fake.calls.lock().expect("lock"),
        vec![("shout".to_owned(), 3), ("drop-eu".to_owned(), 3)],
        "one call per plugin for the whole batch, in the order listed"
    );
    let reasons = b.reasons();
    assert!(
        reasons.contains(&"dropped plugin:drop-eu: eu is decommissioned".to_owned()),
        "{reasons:?}"
    );
    let passed: Vec<&HistoryRow> = b.history.iter().filter(|h| h.outcome == "passed").collect();
    assert_eq!(passed.len(), 2, "{reasons:?}");
    assert!(
        passed.iter().all(|h| h.event.contains("LOUD")),
        "replacements pass on"
    );
}

#[test]
fn a_failing_filter_plugin_fails_open_and_never_drops_a_recovery() {
    let fake = Arc::new(FakeFilters::default());
    let mut b = Bench::new();
    b.engine.set_plugins(fake);
    let in_eu = |status: &str, instance: &str| {
        let mut event = alert("Health", status, instance);
        event["context"]["region"] = json!("eu");
        event
    };
    b.send(0, with_plugins(in_eu("unhealthy", "i-1"), &["broken"]));
    assert_eq!(b.open().len(), 1, "the event passed: {:?}", b.reasons());
    assert!(
        b.history[0]
            .reason
            .contains("plugin:broken failed open: plugin \"broken\" timed out after 50 ms"),
        "{:?}",
        b.reasons()
    );
    // drop-eu drops a new failure in eu, but not the recovery of the open alert.
    b.send(MIN, with_plugins(in_eu("unhealthy", "i-2"), &["drop-eu"]));
    assert_eq!(
        b.history.last().expect("history").outcome,
        "dropped",
        "{:?}",
        b.reasons()
    );
    b.send(2 * MIN, with_plugins(in_eu("healthy", "i-1"), &["drop-eu"]));
    let last = b.history.last().expect("history");
    assert_eq!(last.outcome, "passed", "{:?}", b.reasons());
    assert!(
        last.reason
            .contains("recoveries of unhealthy alerts always pass"),
        "{:?}",
        b.reasons()
    );
}
