//! Links the runbook of every failing monitor of an incident: `base` (a param) plus
//! the monitor name, e.g. `https://wiki.example.com/runbooks/disk-full`.

use tocsin_plugin::{Collector, Config, IncidentSummary, Section, Status};

struct RunbookLink;

impl Collector for RunbookLink {
    fn collect(incident: &IncidentSummary, params: &Config) -> Result<Vec<Section>, String> {
        let base = params
            .str("base")
            .ok_or("params.base is required: the URL runbook names are appended to")?;
        let mut monitors: Vec<&str> = incident
            .alerts
            .iter()
            .filter(|a| matches!(a.status, Status::Unhealthy))
            .map(|a| a.monitor.as_str())
            .collect();
        monitors.sort_unstable();
        monitors.dedup();
        if monitors.is_empty() {
            return Ok(Vec::new());
        }
        let base = base.trim_end_matches('/');
        let lines: Vec<String> = monitors
            .iter()
            .map(|m| format!("- [{m}]({base}/{m})"))
            .collect();
        Ok(vec![Section {
            title: "Runbooks".into(),
            markdown: lines.join("\n"),
        }])
    }
}

tocsin_plugin::export_collector!(RunbookLink);
