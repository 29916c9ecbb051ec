//! The `notify` Lambda function: the outbox (`tocsin_lambda::notify`), woken by SQS.
//! Collectors run here, collector plugins among them.

use std::sync::Arc;

use tocsin_lambda::Settings;
use tocsin_lambda::notify::NotifyFunction;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tocsin_lambda::init_logs();
    let settings = Settings::from_env()?;
    let notifiers = Arc::new(settings.notifiers()?);
    let store = settings.open_store().await?;
    // Nothing is compiled at init: plugins load at the first batch that needs them.
    let plugins = Arc::new(tocsin_host::WasmPlugins::open(
        store.clone(),
        tocsin_host::Limits::one_invocation(),
    )?);
    let collectors = tocsin_collect::Collectors::new(store.clone()).with_plugins(plugins.clone());
    let outbox = tocsin_outbox::Outbox::new(store.clone(), notifiers).with_collectors(collectors);
    let function =
        Arc::new(NotifyFunction::new(outbox, store, settings.queues().await).with_plugins(plugins));
    tracing::info!("notify ready");
    tocsin_lambda::run_consumer(function).await
}
