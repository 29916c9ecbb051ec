//! The `tick` Lambda function, on an EventBridge schedule (every minute): retention, and
//! wakes the pipeline (timers) and the notifier (retries due). It runs no plugin, so it
//! does not link the WebAssembly runtime.

use std::sync::Arc;

use lambda_runtime::{LambdaEvent, service_fn};
use tocsin_lambda::Settings;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tocsin_lambda::init_logs();
    let settings = Settings::from_env()?;
    let retention = settings.config()?.retention_ms;
    let store = settings.open_store().await?;
    let queues = Arc::new(settings.queues().await);
    tracing::info!("tick ready");
    lambda_runtime::run(service_fn(move |_: LambdaEvent<serde_json::Value>| {
        let (store, queues) = (store.clone(), queues.clone());
        async move {
            let ticked = tocsin_lambda::tick::tick(store, retention, &queues).await?;
            Ok::<serde_json::Value, lambda_runtime::Error>(serde_json::to_value(ticked)?)
        }
    }))
    .await
}
