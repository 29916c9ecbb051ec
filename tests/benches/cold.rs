//! Cold starts of the Lambda functions, with 10 stored plugins (7 distinct components,
//! the 18 MB Python one among them): what each function's release binary weighs (stripped, as bundled), how
//! long its init takes, and what its first invocation costs when the plugins load from
//! their precompiled artifacts, and when no artifact fits and they are compiled.
//!
//! Each function runs as Lambda runs it: the release binary, started with the Lambda
//! environment, talking to a Runtime API. The bench serves that API itself (the same
//! HTTP protocol `cargo lambda watch` and Lambda serve), because the init time is the
//! span from the process start to its first `GET /runtime/invocation/next`, which only
//! the Runtime API sees. The database is the test PostgreSQL; SQS is not reached.
//!
//! `cargo bench -p tocsin-tests --bench cold` with `TOCSIN_TEST_POSTGRES_URL` set.
//! Options (after `--`): `--runs N` cold starts per function and case (default 3; the
//! median is printed); `--functions api,tick` measures only those.

#![allow(clippy::print_stdout, missing_docs)]

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::routing::{get, post};
use bytes::Bytes;
use serde_json::{Value, json};
use tocsin_model::plugin::{Kind, Registry as _};
use tocsin_store::{Migrations, StoreOptions};
use tokio::sync::{Mutex, mpsc};

/// The stored plugins: (team, name, kind, package).
const PLUGINS: [(&str, &str, Kind, &str); 10] = [
    ("bender", "nagios", Kind::Transformer, "nagios"),
    ("bender", "sensu", Kind::Transformer, "sensu"),
    ("bender", "zabbix", Kind::Transformer, "zabbix"),
    ("bender", "debounce", Kind::Filter, "debounce"),
    ("bender", "retired-hosts", Kind::Filter, "retired-hosts"),
    ("bender", "chaos", Kind::Filter, "chaos"),
    ("bender", "runbooks", Kind::Collector, "runbook-link"),
    ("leela", "nagios", Kind::Transformer, "nagios"),
    ("leela", "debounce", Kind::Filter, "debounce"),
    ("leela", "runbooks", Kind::Collector, "runbook-link"),
];

/// What the Runtime API saw of one function process.
#[derive(Default)]
struct Seen {
    /// When the process asked for its first invocation (the end of init).
    first_next: Option<Instant>,
    /// Responses and errors, in order: (request id, when, error?).
    finished: Vec<(String, Instant, Option<String>)>,
}

#[derive(Clone)]
struct Api {
    events: Arc<Mutex<mpsc::Receiver<(String, Value)>>>,
    seen: Arc<std::sync::Mutex<Seen>>,
}

fn seen(api: &Api) -> std::sync::MutexGuard<'_, Seen> {
    api.seen.lock().unwrap_or_else(|e| e.into_inner())
}

async fn next(State(api): State<Api>) -> (HeaderMap, String) {
    {
        let mut seen = seen(&api);
        if seen.first_next.is_none() {
            seen.first_next = Some(Instant::now());
        }
    }
    let Some((id, event)) = api.events.lock().await.recv().await else {
        // No more invocations: hold the process here until it is killed.
        std::future::pending::<()>().await;
        unreachable!()
    };
    let deadline = tocsin_model::clock::now_ms() + 120_000;
    let mut headers = HeaderMap::new();
    let header = |v: &str| HeaderValue::from_str(v).unwrap_or(HeaderValue::from_static("x"));
    headers.insert("lambda-runtime-aws-request-id", header(&id));
    headers.insert("lambda-runtime-deadline-ms", header(&deadline.to_string()));
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        header("arn:aws:lambda:us-east-1:000000000000:function:bench"),
    );
    headers.insert(
        "lambda-runtime-trace-id",
        header("Root=1-00000000-000000000000000000000000"),
    );
    (headers, event.to_string())
}

async fn response(State(api): State<Api>, Path(id): Path<String>, _body: Bytes) {
    seen(&api).finished.push((id, Instant::now(), None));
}

async fn error(State(api): State<Api>, Path(id): Path<String>, body: Bytes) {
    let message = String::from_utf8_lossy(&body).into_owned();
    seen(&api)
        .finished
        .push((id, Instant::now(), Some(message)));
}

async fn init_error(State(api): State<Api>, body: Bytes) {
    let message = String::from_utf8_lossy(&body).into_owned();
    seen(&api)
        .finished
        .push(("init".into(), Instant::now(), Some(message)));
}

/// One function process under the bench's Runtime API.
struct Instance {
    child: Child,
    api: Api,
    events: mpsc::Sender<(String, Value)>,
    started: Instant,
    _server: tokio::task::JoinHandle<()>,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Instance {
    async fn start(binary: &std::path::Path, env: &[(String, String)]) -> anyhow::Result<Self> {
        let (events, receiver) = mpsc::channel(4);
        let api = Api {
            events: Arc::new(Mutex::new(receiver)),
            seen: Arc::default(),
        };
        let router = axum::Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(response),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(api.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let started = Instant::now();
        let child = Command::new(binary)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("AWS_LAMBDA_RUNTIME_API", address.to_string())
            .stdout(Stdio::null())
            // Warnings and a failed init's reason reach the bench's output.
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        Ok(Self {
            child,
            api,
            events,
            started,
            _server: server,
        })
    }

    /// The init duration: from the process start to its first request for work.
    async fn init(&mut self) -> anyhow::Result<Duration> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(at) = seen(&self.api).first_next {
                return Ok(at - self.started);
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("the function exited during init: {status}");
            }
            if let Some((_, _, Some(error))) = seen(&self.api).finished.last() {
                bail!("init failed: {error}");
            }
            if Instant::now() > deadline {
                bail!("no request for work within 60 s");
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }

    /// Delivers one event; returns how long the invocation took.
    async fn invoke(&mut self, id: &str, event: Value) -> anyhow::Result<Duration> {
        let sent = Instant::now();
        self.events.send((id.to_owned(), event)).await?;
        let deadline = sent + Duration::from_secs(120);
        loop {
            if let Some((_, at, error)) = seen(&self.api).finished.iter().find(|f| f.0 == id) {
                if let Some(error) = error {
                    bail!("invocation {id} failed: {error}");
                }
                return Ok(*at - sent);
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("the function exited during invocation {id}: {status}");
            }
            if Instant::now() > deadline {
                bail!("invocation {id} did not finish within 120 s");
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
    }
}

/// An SQS event of one nudge.
fn sqs(kind: &str) -> Value {
    json!({"Records": [{
        "messageId": "00000000-0000-0000-0000-000000000001",
        "receiptHandle": "handle",
        "body": json!({"kind": kind}).to_string(),
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1700000000000",
            "SenderId": "bench", "ApproximateFirstReceiveTimestamp": "1700000000000"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:tocsin-pipeline",
        "awsRegion": "us-east-1"
    }]})
}

/// An API Gateway HTTP API (v2) request.
fn http(path: &str, token: &str) -> Value {
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"authorization": format!("Bearer {token}"), "host": "tocsin.test"},
        "requestContext": {
            "accountId": "000000000000", "apiId": "bench", "domainName": "tocsin.test",
            "domainPrefix": "tocsin", "requestId": "bench", "routeKey": "$default",
            "stage": "$default", "time": "05/Dec/2026:00:00:00 +0000", "timeEpoch": 1700000000000u64,
            "http": {"method": "GET", "path": path, "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1", "userAgent": "bench"}
        },
        "isBase64Encoded": false
    })
}

/// A scheduled (EventBridge) event.
fn schedule() -> Value {
    json!({"version": "0", "id": "bench", "detail-type": "Scheduled Event",
        "source": "aws.events", "account": "000000000000", "time": "2026-12-05T00:00:00Z",
        "region": "us-east-1", "resources": [], "detail": {}})
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

struct Case {
    init: Duration,
    first: Duration,
    warm: Duration,
}

/// Starts the function `runs` times; before each start `prepare` runs on the database.
async fn cold_starts(
    binary: &std::path::Path,
    env: &[(String, String)],
    event: &Value,
    runs: usize,
    db: &sqlx::PgPool,
    drop_artifacts: bool,
) -> anyhow::Result<Case> {
    let (mut inits, mut firsts, mut warms) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..runs {
        if drop_artifacts {
            sqlx::query("DELETE FROM plugin_artifacts")
                .execute(db)
                .await?;
        }
        let mut instance = Instance::start(binary, env).await?;
        inits.push(instance.init().await?);
        firsts.push(
            instance
                .invoke(&format!("first-{run}"), event.clone())
                .await?,
        );
        warms.push(
            instance
                .invoke(&format!("warm-{run}"), event.clone())
                .await?,
        );
    }
    Ok(Case {
        init: median(inits),
        first: median(firsts),
        warm: median(warms),
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mut runs = 3;
    let mut only: Option<Vec<String>> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--runs" => runs = args.next().context("--runs N")?.parse()?,
            "--functions" => {
                only = Some(
                    args.next()
                        .context("--functions api,pipeline,notify,tick")?
                        .split(',')
                        .map(str::to_owned)
                        .collect(),
                )
            }
            "--bench" => {}
            other => bail!("unknown option {other}"),
        }
    }
    if std::env::var("TOCSIN_TEST_POSTGRES_URL").is_err() {
        bail!("set TOCSIN_TEST_POSTGRES_URL (bash infra/postgres.sh start DIR prints one)");
    }
    let url = tocsin_tests::postgres_url().await;
    let (ok, _, err) = tocsin_tests::tocsin(&["migrate", "--database-url", &url])?;
    anyhow::ensure!(ok, "migrate failed: {err}");
    let token = tocsin_tests::create_token(&url, &["--team", "bender"])?;

    // The plugins, uploaded as through `api`: compiled once each, artifacts stored.
    let store = tocsin_store::open(
        &url,
        StoreOptions {
            migrations: Migrations::Require,
            ..StoreOptions::default()
        },
    )
    .await?;
    let host =
        tocsin_host::WasmPlugins::open(store.clone(), tocsin_host::Limits::one_invocation())?;
    let python = tokio::task::spawn_blocking(tocsin_tests::plugins::python_zabbix).await?;
    let mut distinct = std::collections::BTreeMap::new();
    for (team, name, kind, package) in PLUGINS {
        let bytes = match package {
            "zabbix" => python.clone(),
            other => tocsin_tests::plugins::component(other),
        };
        distinct.insert(package, bytes.len());
        let started = Instant::now();
        host.install(team, name, kind, Bytes::from(bytes), "bench")
            .await
            .map_err(|e| anyhow::anyhow!("{team}/{name}: {e}"))?;
        println!("uploaded {team}/{name} in {}", ms(started.elapsed()));
    }
    drop(host);
    let db = sqlx::PgPool::connect(&url).await?;
    let (artifacts, artifact_bytes): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COALESCE(SUM(length(artifact)), 0)::int8 FROM plugin_artifacts",
    )
    .fetch_one(&db)
    .await?;
    println!();
    println!(
        "cold starts: {} plugins, {} distinct components ({:.1} MiB), {artifacts} artifacts ({:.1} MiB); median of {runs} runs, {} CPUs",
        PLUGINS.len(),
        distinct.len(),
        distinct.values().sum::<usize>() as f64 / (1 << 20) as f64,
        artifact_bytes as f64 / (1 << 20) as f64,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();

    let env: Vec<(String, String)> = [
        ("DATABASE_URL", url.as_str()),
        ("AWS_LAMBDA_FUNCTION_NAME", "bench"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "bench"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "bench"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "bench"),
        ("AWS_SECRET_ACCESS_KEY", "bench"),
        // Queues nobody serves: the SQS client is set up at init as on AWS, and these
        // invocations send nothing.
        ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
        (
            "TOCSIN_PIPELINE_QUEUE_URL",
            "http://127.0.0.1:9/000000000000/pipeline",
        ),
        (
            "TOCSIN_NOTIFY_QUEUE_URL",
            "http://127.0.0.1:9/000000000000/notify",
        ),
        ("RUST_LOG", "warn"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();

    println!(
        "| {:<9} | {:>9} | {:>9} | {:>24} | {:>24} | {:>9} |",
        "function",
        "binary",
        "init",
        "1st call, from artifacts",
        "1st call, compiling",
        "warm call"
    );
    println!(
        "|{:-<11}|{:->11}|{:->11}|{:->26}|{:->26}|{:->11}|",
        "", "", "", "", "", ""
    );
    let dir = tempfile::tempdir()?;
    for (function, event) in [
        ("api", http("/v1/plugins", &token)),
        ("pipeline", sqs("journal")),
        ("notify", sqs("outbox")),
        ("tick", schedule()),
    ] {
        if only
            .as_ref()
            .is_some_and(|o| !o.iter().any(|f| f == function))
        {
            continue;
        }
        // The tick nudges both queues on every run, and nothing serves them here: it
        // runs without queues, which leaves it its pruning and timers.
        let env: Vec<(String, String)> = env
            .iter()
            .filter(|(k, _)| function != "tick" || !k.ends_with("_QUEUE_URL"))
            .cloned()
            .collect();
        let binary = tokio::task::spawn_blocking(move || {
            tocsin_tests::build_bin(&format!("tocsin-function-{function}"), function)
        })
        .await??;
        // What a bundle ships: the release binary without its symbols and line tables
        // (infra/build-lambda.sh builds it so), which is also what runs here.
        let stripped = dir.path().join(function);
        let status = Command::new("strip")
            .arg("-o")
            .arg(&stripped)
            .arg(&binary)
            .status()
            .context("cannot run strip (binutils)")?;
        anyhow::ensure!(status.success(), "strip {} failed", binary.display());
        let binary = stripped;
        let size = std::fs::metadata(&binary)?.len();
        let artifacts = cold_starts(&binary, &env, &event, runs, &db, false).await?;
        // The tick runs no plugin: nothing to compile.
        let compiling = if function == "tick" {
            None
        } else {
            Some(cold_starts(&binary, &env, &event, runs, &db, true).await?)
        };
        println!(
            "| {:<9} | {:>9} | {:>9} | {:>24} | {:>24} | {:>9} |",
            function,
            format!("{:.1} MiB", size as f64 / (1 << 20) as f64),
            ms(artifacts.init),
            ms(artifacts.first),
            compiling.as_ref().map_or("-".into(), |c| ms(c.first)),
            ms(artifacts.warm),
        );
    }
    Ok(())
}
