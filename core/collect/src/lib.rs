//! Context collection ([docs/alerting.md](../../docs/alerting.md#context-collection)): what the engineer paged at 03:00 needs next to the
//! alert: what to do (runbook), where to look (logs, cluster health, recent changes,
//! previous incidents), and whatever a team's collector plugin adds.
//!
//! Collectors run when an incident opens and again when it changes, in the order the
//! opening alert's event lists them (`plugins:`). Each has a time limit; a collector
//! that fails or runs out of time leaves a section saying so, and the others go on:
//! collection never stops a notification.
//!
//! An incident's context comes from its own team's data only: runbooks, changes, alert
//! states and previous incidents are all read for the incident's team, so a team cannot
//! put words into, or read through, another team's incident.
//!
//! The `logs` collector runs a query the incident's team registered (see [`crate::logs`])
//! on the logs database the operator assigned to that team; the event only names it and
//! passes values, which are bound as parameters.
//!
//! Layout: this root runs the collectors for an incident, reading through the store's
//! [`ViewStore`] only (collection never writes); `logs` holds the logs sources and their
//! checks, and knows nothing of incidents.

pub mod logs;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use tocsin_model::event::render;
use tocsin_model::event::{Event, PluginSpec, Status, parse_duration};
use tocsin_model::views::ContextSection;
use tocsin_model::views::{IncidentDetail, IncidentQuery};
use tocsin_store::{AlertQuery, ViewStore};

/// Longest cell of a `logs` table, in characters.
const LOG_CELL: usize = 300;
/// Largest section a collector may return, in bytes.
const MAX_SECTION: usize = 16 * 1024;
/// Known alerts `cluster-health` reads at most.
const HEALTH_SCAN: u32 = 10_000;

/// Runs the collectors of incidents.
#[derive(Clone)]
pub struct Collectors {
    store: Arc<dyn ViewStore>,
    logs: Option<logs::LogsSources>,
    plugins: Option<Arc<dyn tocsin_model::plugin::Collector>>,
    limit: Duration,
}

impl Collectors {
    /// Collectors reading `store`, each limited to 2 s.
    pub fn new(store: Arc<dyn ViewStore>) -> Self {
        Self {
            store,
            logs: None,
            plugins: None,
            limit: Duration::from_secs(2),
        }
    }

    /// The databases `logs` collectors query, per team.
    pub fn with_logs(mut self, logs: logs::LogsSources) -> Self {
        self.logs = Some(logs);
        self
    }

    /// The runtime that runs teams' collector plugins.
    pub fn with_plugins(mut self, plugins: Arc<dyn tocsin_model::plugin::Collector>) -> Self {
        self.plugins = Some(plugins);
        self
    }

    /// The time each collector may take.
    pub fn with_limit(mut self, limit: Duration) -> Self {
        self.limit = limit;
        self
    }

    /// Runs the collectors the incident's alerts ask for (the first alert whose event
    /// lists any), in order; never fails: a failed collector leaves a section saying why.
    pub async fn collect(&self, incident: &IncidentDetail, now: i64) -> Vec<ContextSection> {
        let Some(event) = incident
            .alert_list
            .iter()
            .filter_map(|a| a.event.as_ref())
            .find(|e| !e.plugins.is_empty())
        else {
            return Vec::new();
        };
        let mut runs = Vec::with_capacity(event.plugins.len());
        for spec in &event.plugins {
            runs.push(self.run_one(spec, event, incident, now));
        }
        futures::future::join_all(runs)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    /// One collector within its time limit, as sections (or the one saying it failed).
    async fn run_one(
        &self,
        spec: &PluginSpec,
        event: &Event,
        incident: &IncidentDetail,
        now: i64,
    ) -> Vec<ContextSection> {
        let title = spec.kind.clone();
        match tokio::time::timeout(self.limit, self.one(spec, event, incident, now)).await {
            Ok(Ok(sections)) => sections
                .into_iter()
                .map(|(title, markdown)| ContextSection {
                    title,
                    markdown: cut(markdown),
                    error: String::new(),
                    collected_at: now,
                })
                .collect(),
            Ok(Err(error)) => vec![failed(title, error, now)],
            Err(_) => vec![failed(
                title,
                format!("timed out after {} ms", self.limit.as_millis()),
                now,
            )],
        }
    }

    async fn one(
        &self,
        spec: &PluginSpec,
        event: &Event,
        incident: &IncidentDetail,
        now: i64,
    ) -> Result<Vec<(String, String)>, String> {
        let param = |name: &str| -> Option<String> {
            spec.params
                .get(name)
                .and_then(Value::as_str)
                .map(|text| render(text, event))
        };
        match spec.kind.as_str() {
            "markdown" => {
                let content = param("content").ok_or("markdown needs params.content")?;
                Ok(vec![(
                    param("title").unwrap_or_else(|| "Notes".into()),
                    content,
                )])
            }
            "runbook" => {
                let id = param("id").ok_or("runbook needs params.id")?;
                let runbook = self
                    .store
                    .runbook(&incident.incident.team, &id)
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| {
                        format!("no runbook \"{id}\": add it with PUT /v1/runbooks/{id}")
                    })?;
                Ok(vec![(format!("Runbook {id}"), runbook.markdown)])
            }
            "logs" => {
                let sources = self.logs.as_ref().ok_or(
                    "no logs database is configured: start tocsin serve with --logs-database or --team-logs-database",
                )?;
                let name = spec.params.get("query").and_then(Value::as_str).ok_or(
                    "logs needs params.query: the name of a query registered with PUT /v1/logs-queries/{name}",
                )?;
                let team = &incident.incident.team;
                let shown: String = name.chars().take(64).collect();
                let registered = if team.is_empty() {
                    None
                } else {
                    self.store
                        .logs_query(team, name)
                        .await
                        .map_err(|e| e.to_string())?
                }
                .ok_or_else(|| {
                    format!("no logs query \"{shown}\" in this incident's team: register it with PUT /v1/logs-queries/NAME and name it in params.query")
                })?;
                let sql = logs::LogsSql::parse(&registered.sql).map_err(|e| e.to_string())?;
                let given: std::collections::HashMap<String, String> = spec
                    .params
                    .iter()
                    .filter(|(k, _)| !logs::RESERVED_PARAMS.contains(&k.as_str()))
                    .map(|(k, v)| {
                        let text = match v {
                            Value::String(text) => render(text, event),
                            other => other.to_string(),
                        };
                        (k.clone(), text)
                    })
                    .collect();
                let values = sql.values(name, &given)?;
                let deadline = std::time::Instant::now() + self.limit;
                let rows = sources.query(team, &sql, values, deadline).await?;
                Ok(vec![(
                    param("title").unwrap_or_else(|| "Logs".into()),
                    table(&rows.columns, &rows.rows),
                )])
            }
            "cluster-health" => self
                .cluster_health(
                    &incident.incident.team,
                    event,
                    param("service"),
                    param("region"),
                )
                .await
                .map(|s| vec![s]),
            "recent-changes" => {
                let service = param("service")
                    .or_else(|| event.context.get("service").cloned())
                    .ok_or("recent-changes needs params.service or a service label")?;
                let window = param("window")
                    .map(|w| parse_duration(&w))
                    .transpose()?
                    .unwrap_or(Duration::from_secs(24 * 3600));
                let since = now - window.as_millis() as i64;
                let changes = self
                    .store
                    .changes(Some(&incident.incident.team), &service, since, 20)
                    .await
                    .map_err(|e| e.to_string())?;
                let mut text = String::new();
                for c in &changes {
                    let at = tocsin_model::clock::from_millis_lossy(c.at)
                        .format(&time::format_description::well_known::Rfc3339)
                        .unwrap_or_default();
                    let link = if c.link.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", c.link)
                    };
                    text.push_str(&format!("- {at} **{}**: {}{link}\n", c.kind, c.description));
                }
                if text.is_empty() {
                    text = format!(
                        "No change of {service} recorded in the last {} hours.",
                        window.as_secs() / 3600
                    );
                }
                Ok(vec![(format!("Recent changes to {service}"), text)])
            }
            "previous-incidents" => {
                let summary = &incident.incident;
                let query = IncidentQuery {
                    team: Some(summary.team.clone()),
                    key: Some(summary.key.clone()),
                    limit: 6,
                    ..IncidentQuery::default()
                };
                let previous = self
                    .store
                    .incidents(&query)
                    .await
                    .map_err(|e| e.to_string())?;
                let mut text = String::new();
                for p in previous.iter().filter(|p| p.id != summary.id).take(5) {
                    let at = p
                        .opened_at
                        .format(&time::format_description::well_known::Rfc3339)
                        .unwrap_or_default();
                    text.push_str(&format!(
                        "- {at}: {} ({}, {} alerts) `{}`\n",
                        p.title,
                        p.state.as_str(),
                        p.alerts,
                        p.id
                    ));
                }
                if text.is_empty() {
                    text = "None: this is the first incident with this key.".into();
                }
                Ok(vec![("Previous incidents".into(), text)])
            }
            "plugin" => {
                let plugins = self
                    .plugins
                    .clone()
                    .ok_or("collector plugins are not available here")?;
                let name = param("name").ok_or("plugin needs params.name")?;
                let context = tocsin_model::plugin::IncidentContext {
                    id: incident.incident.id.clone(),
                    team: incident.incident.team.clone(),
                    key: incident.incident.key.clone(),
                    title: incident.incident.title.clone(),
                    state: incident.incident.state.as_str().to_owned(),
                    priority: incident.incident.priority,
                    opened_at: tocsin_model::clock::millis(incident.incident.opened_at),
                    alerts: incident
                        .alert_list
                        .iter()
                        .map(|a| tocsin_model::plugin::IncidentAlert {
                            monitor: a.monitor.clone(),
                            status: a.status,
                            context: a
                                .labels
                                .as_object()
                                .map(|m| {
                                    m.iter()
                                        .filter_map(|(k, v)| {
                                            Some((k.clone(), v.as_str()?.to_owned()))
                                        })
                                        .collect()
                                })
                                .unwrap_or_default(),
                            message: a.message.clone(),
                        })
                        .collect(),
                };
                let params = Value::Object(spec.params.clone()).to_string();
                let team = incident.incident.team.clone();
                let sections = tokio::task::spawn_blocking(move || {
                    plugins.collect(&team, &name, &context, &params)
                })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
                Ok(sections
                    .into_iter()
                    .map(|s| (s.title, s.markdown))
                    .collect())
            }
            other => Err(format!("unknown collector \"{other}\"")),
        }
    }

    /// How many of the team's alerts of the service (and region) are unhealthy now, of
    /// how many known.
    async fn cluster_health(
        &self,
        team: &str,
        event: &Event,
        service: Option<String>,
        region: Option<String>,
    ) -> Result<(String, String), String> {
        let service = service
            .or_else(|| event.context.get("service").cloned())
            .ok_or("cluster-health needs params.service or a service label")?;
        let region = region.or_else(|| event.context.get("region").cloned());
        let mut labels = vec![("service".to_owned(), service.clone())];
        if let Some(region) = &region {
            labels.push(("region".to_owned(), region.clone()));
        }
        let query = AlertQuery {
            team: Some(team.to_owned()),
            labels,
            limit: HEALTH_SCAN,
            ..AlertQuery::default()
        };
        let alerts = self.store.alerts(&query).await.map_err(|e| e.to_string())?;
        let known = alerts.len();
        let unhealthy: Vec<_> = alerts
            .iter()
            .filter(|a| a.status == Status::Unhealthy)
            .collect();
        let place = match &region {
            Some(region) => format!("{service} in {region}"),
            None => service.clone(),
        };
        let mut text = format!(
            "**{} of {known}** known alerts of {place} are unhealthy now{}.\n",
            unhealthy.len(),
            if known as u32 >= HEALTH_SCAN {
                " (the first 10,000 read)"
            } else {
                ""
            }
        );
        for alert in unhealthy.iter().take(10) {
            let instance = alert
                .labels
                .get("instance")
                .or_else(|| alert.labels.get("host"))
                .and_then(Value::as_str)
                .unwrap_or("-");
            text.push_str(&format!("- `{}` on {instance}\n", alert.monitor));
        }
        Ok((format!("Cluster health: {place}"), text))
    }
}

fn failed(title: String, error: String, now: i64) -> ContextSection {
    ContextSection {
        title,
        markdown: String::new(),
        error,
        collected_at: now,
    }
}

fn cut(mut markdown: String) -> String {
    if markdown.len() > MAX_SECTION {
        let mut end = MAX_SECTION;
        while !markdown.is_char_boundary(end) {
            end -= 1;
        }
        markdown.truncate(end);
        markdown.push_str("\n\n[… cut at 16 KiB]");
    }
    markdown
}

/// Rows as a Markdown table, cells cut and their pipes escaped.
fn table(columns: &[String], rows: &[Vec<String>]) -> String {
    if rows.is_empty() {
        return "No matching rows.".into();
    }
    let cell = |text: &str| -> String {
        text.chars()
            .take(LOG_CELL)
            .collect::<String>()
            .replace('|', "\\|")
            .replace('\n', " ")
    };
    let mut out = format!(
        "| {} |\n|{}|\n",
        columns
            .iter()
            .map(|c| cell(c))
            .collect::<Vec<_>>()
            .join(" | "),
        vec!["---"; columns.len()].join("|")
    );
    for row in rows {
        out.push_str(&format!(
            "| {} |\n",
            row.iter().map(|c| cell(c)).collect::<Vec<_>>().join(" | ")
        ));
    }
    out
}
