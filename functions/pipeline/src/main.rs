//! The `pipeline` Lambda function: each SQS batch of nudges drains the PostgreSQL
//! journal through pre-filters, filter plugins, suppressions, grouping and the alerting
//! decision (`tocsin_lambda::pipeline`).

use std::sync::Arc;

use tocsin_lambda::Settings;
use tocsin_lambda::pipeline::PipelineFunction;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tocsin_lambda::init_logs();
    let mut settings = Settings::from_env()?;
    // The pipeline's lease holds one connection while the batches use another.
    settings.connections = settings.connections.max(2);
    let config = settings.config()?;
    let store = settings.open_store().await?;
    // Nothing is compiled at init: plugins load at the first batch that needs them.
    let plugins = Arc::new(tocsin_host::WasmPlugins::open(
        store.clone(),
        tocsin_host::Limits::one_invocation(),
    )?);
    let function = Arc::new(PipelineFunction::new(
        store,
        config,
        Some(plugins),
        settings.queues().await,
    ));
    tracing::info!("pipeline ready");
    tocsin_lambda::run_consumer(function).await
}
