//! Tocsin's own metrics: the Prometheus exporter `GET /metrics` renders, and the names
//! and help of every metric the stages record (through the `metrics` facade, which
//! records nothing until an exporter is installed).
//!
//! Labels never grow with the data: teams, sources, notifiers, plugins, suppressions,
//! reasons, route templates; never a fingerprint, an event or an incident id.

use std::time::Duration;

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Bounds of every `_seconds` histogram: from half a millisecond (an append, a fast
/// notification) to a minute (a slow notifier).
const SECONDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];
/// Bounds of every `_events` histogram (events per journal commit, per pipeline batch).
const EVENTS: &[f64] = &[1.0, 10.0, 100.0, 1_000.0, 5_000.0, 20_000.0];

/// The installed exporter; cheap to clone.
#[derive(Clone)]
pub struct Exporter {
    handle: PrometheusHandle,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Exporter")
    }
}

/// The exporter could not be installed (another recorder was installed first).
#[derive(Debug, thiserror::Error)]
#[error("cannot install the metrics exporter: {0}")]
pub struct ExporterError(String);

impl Exporter {
    /// Installs the Prometheus recorder for this process and describes every metric.
    /// Once per process: a second call fails.
    pub fn install() -> Result<Self, ExporterError> {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS)
            .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_events".into()), EVENTS))
            .map_err(|e| ExporterError(e.to_string()))?
            .build_recorder();
        let handle = recorder.handle();
        metrics::set_global_recorder(recorder).map_err(|e| ExporterError(e.to_string()))?;
        describe();
        metrics::gauge!("tocsin_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
        Ok(Self { handle })
    }

    /// Every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        self.handle.run_upkeep();
        self.handle.render()
    }

    /// Folds recorded histogram samples into their buckets every few seconds (on the
    /// current Tokio runtime), so that memory stays flat when nobody scrapes.
    pub fn keep_up(&self) {
        let handle = self.handle.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(UPKEEP_EVERY);
            loop {
                every.tick().await;
                handle.run_upkeep();
            }
        });
    }
}

/// How often histogram samples are folded into buckets between scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Help and unit of every metric Tocsin exports.
fn describe() {
    // Ingest.
    describe_counter!(
        "tocsin_events_accepted_total",
        "Events accepted (durable), by source and team."
    );
    describe_counter!(
        "tocsin_events_rejected_total",
        "Events refused, by source, caller team and reason (invalid, refused, busy, failed)."
    );
    describe_histogram!(
        "tocsin_journal_commit_duration_seconds",
        Unit::Seconds,
        "Time of one journal commit (a group of appends)."
    );
    describe_histogram!(
        "tocsin_journal_commit_events",
        Unit::Count,
        "Events per journal commit."
    );
    describe_counter!(
        "tocsin_ingest_busy_total",
        "Ingest requests answered 503 because the pipeline is behind its bound."
    );
    // Pipeline.
    describe_gauge!(
        "tocsin_pipeline_lag_events",
        Unit::Count,
        "Accepted events the pipeline has not processed."
    );
    describe_gauge!(
        "tocsin_pipeline_lag_seconds",
        Unit::Seconds,
        "Age of the oldest accepted event the pipeline has not processed."
    );
    describe_gauge!(
        "tocsin_pipeline_max_lag_events",
        Unit::Count,
        "The lag (events) past which ingest answers 503 (0: no bound)."
    );
    describe_gauge!(
        "tocsin_pipeline_max_lag_seconds",
        Unit::Seconds,
        "The lag (seconds) past which ingest answers 503 (0: no bound)."
    );
    describe_counter!(
        "tocsin_pipeline_events_processed_total",
        "Journal events the pipeline processed."
    );
    describe_histogram!(
        "tocsin_pipeline_batch_events",
        Unit::Count,
        "Events per pipeline batch."
    );
    describe_histogram!(
        "tocsin_pipeline_stage_duration_seconds",
        Unit::Seconds,
        "Time of each step of a pipeline batch: read, process (pre-filters, plugins, suppressions, grouping, alerting), commit."
    );
    describe_counter!(
        "tocsin_pipeline_dropped_total",
        "Events stopped before grouping, by team and reason."
    );
    describe_counter!(
        "tocsin_pipeline_suppressed_total",
        "Events a suppression stopped, by team and suppression."
    );
    describe_counter!(
        "tocsin_pipeline_held_total",
        "Events held back (ignore-flap, flapping), by team and reason."
    );
    describe_gauge!(
        "tocsin_pipeline_flapping_alerts",
        Unit::Count,
        "Alerts flapping now (their changes held)."
    );
    describe_gauge!(
        "tocsin_pipeline_tracked_alerts",
        Unit::Count,
        "Alert identities the pipeline tracks."
    );
    describe_counter!(
        "tocsin_incidents_opened_total",
        "Incidents opened, by team and priority."
    );
    describe_counter!(
        "tocsin_incidents_resolved_total",
        "Incidents resolved or closed, by team and priority."
    );
    describe_counter!(
        "tocsin_pipeline_conflicts_total",
        "Batches given up because another process committed first (then reloaded)."
    );
    // Outbox.
    describe_counter!(
        "tocsin_outbox_deliveries_total",
        "Delivery attempts, by notifier, kind and outcome (sent, retry, dead)."
    );
    describe_histogram!(
        "tocsin_outbox_attempt_duration_seconds",
        Unit::Seconds,
        "Time of one delivery attempt, by notifier and kind."
    );
    describe_histogram!(
        "tocsin_outbox_delivery_latency_seconds",
        Unit::Seconds,
        "From a delivery's creation to its sending, by notifier and kind."
    );
    describe_gauge!(
        "tocsin_outbox_pending",
        Unit::Count,
        "Deliveries waiting to be sent (or retried)."
    );
    describe_gauge!(
        "tocsin_outbox_notices_pending",
        Unit::Count,
        "Notices not yet expanded into deliveries."
    );
    describe_gauge!(
        "tocsin_outbox_oldest_pending_age_seconds",
        Unit::Seconds,
        "Age of the oldest pending delivery (0: none)."
    );
    describe_gauge!(
        "tocsin_outbox_dead",
        Unit::Count,
        "Dead deliveries kept (retry them through the API)."
    );
    // Plugins.
    describe_counter!(
        "tocsin_plugin_calls_total",
        "Plugin calls, by team and plugin."
    );
    describe_counter!(
        "tocsin_plugin_errors_total",
        "Failed plugin calls, by team, plugin and kind."
    );
    describe_histogram!(
        "tocsin_plugin_call_duration_seconds",
        Unit::Seconds,
        "Time of one plugin call, by team and plugin."
    );
    // HTTP.
    describe_counter!(
        "tocsin_http_requests_total",
        "HTTP requests, by method, route template and status."
    );
    describe_histogram!(
        "tocsin_http_request_duration_seconds",
        Unit::Seconds,
        "HTTP request time, by method and route template."
    );
    // Store.
    describe_gauge!(
        "tocsin_store_database_bytes",
        Unit::Bytes,
        "Size of each database file (SQLite) or of the database (PostgreSQL)."
    );
    describe_gauge!(
        "tocsin_store_wal_bytes",
        Unit::Bytes,
        "Size of each SQLite write-ahead log."
    );
    describe_histogram!(
        "tocsin_store_checkpoint_duration_seconds",
        Unit::Seconds,
        "Time of one SQLite WAL checkpoint, by file."
    );
    // The canary.
    describe_gauge!(
        "tocsin_canary_latency_seconds",
        Unit::Seconds,
        "From the canary's accept to its processing (the last one that arrived)."
    );
    describe_gauge!(
        "tocsin_canary_ok",
        "1 while the last canary arrived in time, else 0."
    );
    describe_counter!("tocsin_canary_sent_total", "Canary events sent.");
    describe_gauge!("tocsin_build_info", "Always 1; the version is a label.");
}
