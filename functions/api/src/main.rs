//! The `api` Lambda function: the whole HTTP API (`tocsin_api::app`) behind API Gateway's
//! HTTP API or a function URL. Events are committed to the PostgreSQL journal before the
//! `202`; transformer plugins run here; no pipeline does.

use std::sync::Arc;

use tocsin_lambda::Settings;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tocsin_lambda::init_logs();
    let settings = Settings::from_env()?;
    let config = settings.config()?;
    let notifiers = Arc::new(settings.notifiers()?);
    let store = settings.open_store().await?;
    // Nothing is compiled at init: plugins load at the first batch that needs them.
    let plugins = Arc::new(tocsin_host::WasmPlugins::open(
        store.clone(),
        tocsin_host::Limits::one_invocation(),
    )?);
    let queues = settings.queues().await;
    let state =
        tocsin_lambda::api::state(store, plugins, notifiers, config.policy, queues.pipeline);
    tracing::info!("api ready");
    lambda_http::run(tocsin_lambda::api::app(state)).await
}
