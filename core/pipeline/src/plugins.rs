//! Filter plugins as the static pre-filter calls them: every event of a batch through
//! its team's plugins, one call per plugin rather than per event, failing open.

use std::collections::BTreeMap;
use std::sync::Arc;

use tocsin_model::event::{Event, FilterSpec};
use tocsin_model::plugin::{Filter, FilterInput, PluginError, Verdict};

/// What the filter plugins decided about one event.
#[derive(Debug, Default)]
pub(crate) struct PluginOutcome {
    /// Dropped by this plugin, for this reason.
    pub(crate) dropped: Option<(String, String)>,
    /// Replaced by a plugin (the last replacement wins).
    pub(crate) replaced: Option<Box<Event>>,
    /// Annotations: plugins that failed open.
    pub(crate) notes: Vec<String>,
}

/// An event on its way through its plugins.
pub(crate) struct Judged {
    pub(crate) id: String,
    pub(crate) team: String,
    pub(crate) event: Event,
    pub(crate) received_at: i64,
    /// (plugin name, params as JSON) in order.
    pub(crate) plugins: Vec<(String, String)>,
    pub(crate) outcome: PluginOutcome,
}

/// One plugin call: (team, plugin name, params as JSON).
type Call = (String, String, String);

/// The `plugin` entries of a filter list: (name, params as JSON text).
pub(crate) fn plugin_filters(filters: &[FilterSpec]) -> Vec<(String, String)> {
    filters
        .iter()
        .filter(|f| f.kind == "plugin")
        .filter_map(|f| {
            let name = f.params.get("name")?.as_str()?.to_owned();
            Some((
                name,
                serde_json::Value::Object(f.params.clone()).to_string(),
            ))
        })
        .collect()
}

/// The plugin runtime the pre-filter calls.
#[derive(Clone)]
pub(crate) struct Runner(pub(crate) Arc<dyn Filter>);

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Runner")
    }
}

impl Runner {
    /// Runs each event's plugins in order: every event's first plugin, grouped into one
    /// call per (team, plugin, params), then every survivor's second, and so on. A
    /// failed call fails open: its events go on unchanged, annotated with the error.
    pub(crate) fn judge(&self, mut items: Vec<Judged>) -> Vec<Judged> {
        let depth = items.iter().map(|j| j.plugins.len()).max().unwrap_or(0);
        for position in 0..depth {
            for (call, members) in calls_at(&items, position) {
                self.call(&mut items, call, &members);
            }
        }
        items
    }

    /// One plugin over the events at `members`, each as earlier plugins left it.
    fn call(&self, items: &mut [Judged], (team, name, params): Call, members: &[usize]) {
        let current: Vec<Event> = members
            .iter()
            .map(|&i| match &items[i].outcome.replaced {
                Some(replaced) => (**replaced).clone(),
                None => items[i].event.clone(),
            })
            .collect();
        let batch: Vec<FilterInput<'_>> = current
            .iter()
            .zip(members)
            .map(|(event, &i)| FilterInput {
                event,
                received_at: items[i].received_at,
            })
            .collect();
        let verdicts = self.0.filter(&team, &name, &batch, &params);
        drop(batch);
        match verdicts {
            Ok(verdicts) => {
                for (verdict, &i) in verdicts.into_iter().zip(members) {
                    apply(&mut items[i], &name, verdict);
                }
            }
            Err(e) => fail_open(items, &team, &name, members, &e),
        }
    }
}

/// The calls for the plugins at `position` of the events not dropped yet, with the
/// events each takes.
fn calls_at(items: &[Judged], position: usize) -> BTreeMap<Call, Vec<usize>> {
    let mut calls: BTreeMap<Call, Vec<usize>> = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        if item.outcome.dropped.is_some() {
            continue;
        }
        if let Some((name, params)) = item.plugins.get(position) {
            calls
                .entry((item.team.clone(), name.clone(), params.clone()))
                .or_default()
                .push(i);
        }
    }
    calls
}

/// Records plugin `name`'s verdict on one event.
fn apply(item: &mut Judged, name: &str, verdict: Verdict) {
    match verdict {
        Verdict::Keep => {}
        Verdict::Drop(reason) => item.outcome.dropped = Some((name.to_owned(), reason)),
        Verdict::Replace(mut replacement) => {
            // The replacement keeps the team of the original.
            let team_label = item.event.context.get("team").cloned();
            match team_label {
                Some(team) => replacement.context.insert("team".into(), team),
                None => replacement.context.remove("team"),
            };
            match replacement.validate() {
                Ok(()) => item.outcome.replaced = Some(replacement),
                Err(errors) => item.outcome.notes.push(format!(
                    "plugin:{name} failed open: its replacement is invalid ({})",
                    errors
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                )),
            }
        }
    }
}

/// A failed call lets its events pass, each annotated with the error.
fn fail_open(items: &mut [Judged], team: &str, name: &str, members: &[usize], e: &PluginError) {
    tracing::warn!(team = %team, plugin = %name, error = %e, events = members.len(), "filter plugin failed; its events pass");
    for &i in members {
        items[i]
            .outcome
            .notes
            .push(format!("plugin:{name} failed open: {e}"));
    }
}
