//! Span export over OTLP/HTTP (`--otlp-endpoint`): the SDK's batch processor on a thread
//! of its own, sending protobuf with a blocking client, so no export ever runs on the
//! runtime that serves requests.

use std::time::Duration;

use anyhow::Context as _;
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
use tracing_subscriber::filter::Targets;

/// How often finished spans are sent.
const EXPORT_EVERY: Duration = Duration::from_secs(1);
/// Most spans waiting for export; past it new spans are dropped (and counted by the SDK),
/// never holding up the stages.
const QUEUE: usize = 8_192;

/// The crates whose `info` spans are exported.
const CRATES: &[&str] = &[
    "tocsin_api",
    "tocsin_server",
    "tocsin_pipeline",
    "tocsin_outbox",
    "tocsin_collect",
    "tocsin_notify",
    "tocsin_host",
    "tocsin_store",
];

/// Which spans go to the collector.
pub fn targets() -> Targets {
    CRATES.iter().fold(Targets::new(), |targets, krate| {
        targets.with_target(*krate, tracing::Level::INFO)
    })
}

/// A tracer provider exporting to the collector at `endpoint`.
pub fn provider(endpoint: &str) -> anyhow::Result<SdkTracerProvider> {
    let url = traces_url(endpoint)?;
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .context("cannot build the OTLP client")?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_endpoint(url)
        .build()
        .context("cannot build the OTLP exporter")?;
    let processor = BatchSpanProcessor::builder(exporter)
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_scheduled_delay(EXPORT_EVERY)
                .with_max_queue_size(QUEUE)
                .build(),
        )
        .build();
    Ok(SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(
            Resource::builder()
                .with_service_name("tocsin")
                .with_attribute(opentelemetry::KeyValue::new(
                    "service.version",
                    env!("CARGO_PKG_VERSION"),
                ))
                .build(),
        )
        .build())
}

/// The collector's traces URL: `/v1/traces` added to a URL with no path.
fn traces_url(endpoint: &str) -> anyhow::Result<String> {
    let url = url::Url::parse(endpoint)
        .with_context(|| format!("--otlp-endpoint {endpoint:?} is not a URL"))?;
    anyhow::ensure!(
        matches!(url.scheme(), "http" | "https"),
        "--otlp-endpoint must be an http:// or https:// URL"
    );
    Ok(if url.path() == "/" || url.path().is_empty() {
        format!("{}/v1/traces", endpoint.trim_end_matches('/'))
    } else {
        endpoint.to_owned()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_traces_path_is_added_only_to_a_bare_collector_url() {
        assert_eq!(
            super::traces_url("http://127.0.0.1:4318").ok().as_deref(),
            Some("http://127.0.0.1:4318/v1/traces")
        );
        assert_eq!(
            super::traces_url("https://otel.example.com/custom/traces")
                .ok()
                .as_deref(),
            Some("https://otel.example.com/custom/traces")
        );
        assert!(super::traces_url("collector:4318").is_err());
    }
}
