//! Debounces status changes: a change that comes less than `interval-ms` (default
//! 60000) after the same alert's previous change is dropped. The time of each alert's
//! last change is kept in the plugin's key/value state, so the debounce holds across
//! batches, plugin versions and restarts.
//!
//! Recoveries are never dropped (an incident must be able to resolve): only a failure
//! that follows a change too closely is.

use tocsin_plugin::{Batch, Config, Filter, Verdict, state};

struct Debounce;

impl Filter for Debounce {
    fn filter(batch: &Batch, config: &Config) -> Result<Vec<Verdict>, String> {
        let interval: i64 = config.get("interval-ms")?.unwrap_or(60_000);
        let mut verdicts = Vec::with_capacity(batch.len());
        for event in batch.events() {
            let key = event.identity();
            let now = event.received_at();
            let last = state::get_str(&key).and_then(|t| t.parse::<i64>().ok());
            state::set(&key, now.to_string().as_bytes())?;
            verdicts.push(match last {
                Some(last) if event.is_unhealthy() && now - last < interval => Verdict::Drop(format!(
                    "debounced: changed {} ms after its previous change (interval {interval} ms)",
                    now - last
                )),
                _ => Verdict::Keep,
            });
        }
        Ok(verdicts)
    }
}

tocsin_plugin::export_filter!(Debounce);
