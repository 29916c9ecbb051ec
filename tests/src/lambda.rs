//! The serverless stack, locally, with the real parts: the four functions under
//! `cargo lambda watch` (the Lambda runtime emulator), SQS from `moto_server`, the
//! database on the test PostgreSQL, notifiers pointing at the fakes. Both tools come
//! from PyPI through `infra/deps.sh`.
//!
//! moto cannot run Lambda functions (that needs Docker) and its own event source
//! mapping ignores `batchItemFailures`, so [`Stack::poll`] plays Lambda's: it receives up
//! to 10 messages, invokes the function, deletes all but the reported failures, and
//! treats a function error or a 5xx as the whole batch failing.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use serde_json::{Value, json};

use crate::fakes::Fakes;

/// A child process group, killed with it when dropped.
struct Group(Child);

impl Drop for Group {
    fn drop(&mut self) {
        // The group's id is its leader's pid (`process_group(0)`).
        if let Ok(pid) = i32::try_from(self.0.id()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_group(command: &mut Command) -> anyhow::Result<Group> {
    use std::os::unix::process::CommandExt as _;
    Ok(Group(command.process_group(0).spawn()?))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_for_port(port: u16, what: &str, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("{what} did not listen on port {port}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// A queue and its dead-letter queue.
#[derive(Debug, Clone)]
pub struct QueuePair {
    /// The queue's URL.
    pub url: String,
    /// Its ARN (what Lambda puts in each record).
    pub arn: String,
    /// The dead-letter queue's URL.
    pub dlq: String,
}

/// What one poll did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Polled {
    /// Messages received and handed to the function.
    pub received: usize,
    /// Messages the function reported (or all, if it failed).
    pub failed: usize,
}

/// A message read from a dead-letter queue.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// Its body.
    pub body: String,
    /// The `tocsin-error` attribute, if the function moved it there itself.
    pub error: Option<String>,
}

/// The running stack.
pub struct Stack {
    /// The database the functions share.
    pub database_url: String,
    /// The fake SaaS the notifiers point at.
    pub fakes: Fakes,
    /// The emulator's address, such as `http://127.0.0.1:9123`.
    pub invoke: String,
    /// The SQS client (on moto).
    pub sqs: aws_sdk_sqs::Client,
    /// The pipeline's queue.
    pub pipeline: QueuePair,
    /// The notifier's queue.
    pub notify: QueuePair,
    http: reqwest::Client,
    watch: std::sync::Mutex<Option<Group>>,
    port: u16,
    vars: Vec<(String, String)>,
    _moto: Group,
}

/// Routes for team bender (page, ticket, chat) on the fakes.
pub fn notifiers_yaml(fakes: &Fakes) -> String {
    let url = &fakes.url;
    format!(
        "public-url: http://tocsin.test\n\
         retry: {{ attempts: 3, first: 10ms, max: 50ms }}\n\
         notifiers:\n  \
           pd: {{ kind: pagerduty, routing-key: \"0123456789abcdef0123456789abcdef\", url: \"{url}\" }}\n  \
           slack: {{ kind: slack, token: xoxb-test-token, channel: \"#ops\", url: \"{url}\" }}\n\
         routes:\n  \
           - {{ team: bender, page: pd, chat: slack }}\n"
    )
}

impl Stack {
    /// Starts moto, creates the queues, migrates a fresh database (the deploy step),
    /// and starts the emulator with the functions' environment plus `env`.
    pub async fn start(env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let fakes = Fakes::start().await?;
        let database_url = crate::postgres_url().await;
        let (ok, _, err) = crate::tocsin(&["migrate", "--database-url", &database_url])?;
        anyhow::ensure!(ok, "tocsin migrate failed: {err}");

        let moto_port = free_port()?;
        let moto = spawn_group(
            Command::new(crate::venv_bin("moto_server"))
                .args(["-H", "127.0.0.1", "-p", &moto_port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
        .context("cannot start moto_server (infra/deps.sh installs it)")?;
        wait_for_port(moto_port, "moto_server", Duration::from_secs(30))?;
        let endpoint = format!("http://127.0.0.1:{moto_port}");
        let aws_env = [
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
        ];
        let config = aws_sdk_sqs::config::Builder::new()
            .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
            .region(aws_sdk_sqs::config::Region::new("us-east-1"))
            .endpoint_url(&endpoint)
            .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                "testing", "testing", None, None, "tests",
            ))
            .build();
        let sqs = aws_sdk_sqs::Client::from_conf(config);
        let pipeline = create_pair(&sqs, "tocsin-pipeline").await?;
        let notify = create_pair(&sqs, "tocsin-notify").await?;

        let notifiers = notifiers_yaml(&fakes);
        let mut vars: Vec<(&str, &str)> = vec![
            ("DATABASE_URL", &database_url),
            ("TOCSIN_PIPELINE_QUEUE_URL", &pipeline.url),
            ("TOCSIN_PIPELINE_DLQ_URL", &pipeline.dlq),
            ("TOCSIN_NOTIFY_QUEUE_URL", &notify.url),
            ("TOCSIN_NOTIFY_DLQ_URL", &notify.dlq),
            ("TOCSIN_NOTIFIERS_YAML", &notifiers),
            ("RUST_LOG", "info"),
        ];
        vars.extend(aws_env);
        vars.extend(env.iter().copied());
        // Built now, as the emulator would build them (`cargo run --bin`), so that no
        // first invocation waits for a compiler.
        for function in ["api", "pipeline", "notify", "tick"] {
            crate::build_bin(&format!("tocsin-function-{function}"), function)?;
        }
        let vars: Vec<(String, String)> = vars
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let port = free_port()?;
        let watch = emulator(port, &vars)?;
        Ok(Self {
            database_url,
            fakes,
            invoke: format!("http://127.0.0.1:{port}"),
            sqs,
            pipeline,
            notify,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(600))
                .build()?,
            watch: std::sync::Mutex::new(Some(watch)),
            port,
            vars,
            _moto: moto,
        })
    }

    /// Stops the emulator and starts it again on the same port: new instances of every
    /// function, as Lambda starts after a crash (`cargo lambda watch` does not replace
    /// an instance that died).
    pub fn restart_emulator(&self) -> anyhow::Result<()> {
        let mut watch = self.watch.lock().unwrap_or_else(|e| e.into_inner());
        drop(watch.take());
        // The emulator runs each instance in a process group of its own.
        for function in ["api", "pipeline", "notify", "tick"] {
            self.kill_function(function);
        }
        *watch = Some(emulator(self.port, &self.vars)?);
        Ok(())
    }

    /// The emulator's log (the functions' output), for failure messages.
    pub fn log(&self) -> String {
        let port = self.invoke.rsplit(':').next().unwrap_or_default();
        std::fs::read_to_string(std::env::temp_dir().join(format!("tocsin-lambda-{port}.log")))
            .unwrap_or_default()
    }

    /// Invokes `function` with `payload`; `Err` for a function error or a failed call.
    pub async fn invoke(&self, function: &str, payload: &Value) -> anyhow::Result<Value> {
        let answer = self
            .http
            .post(format!(
                "{}/2015-03-31/functions/{function}/invocations",
                self.invoke
            ))
            .json(payload)
            .send()
            .await?;
        let status = answer.status();
        let function_error = answer.headers().contains_key("x-amz-function-error");
        let body: Value = answer.json().await.unwrap_or(Value::Null);
        if !status.is_success() || function_error || body.get("errorType").is_some() {
            bail!("{function} failed ({status}): {body}");
        }
        Ok(body)
    }

    /// A request to the `api` function through its function URL (a JSON body).
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<&str>,
    ) -> anyhow::Result<(u16, Value)> {
        let body = body.map(|b| ("application/json", b.as_bytes().to_vec()));
        self.api_bytes(method, path, token, body).await
    }

    /// A request to the `api` function with a body of this content type.
    pub async fn api_bytes(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut request = self
            .http
            .request(method, format!("{}/lambda-url/api{path}", self.invoke))
            .bearer_auth(token);
        if let Some((content_type, body)) = body {
            request = request.header("content-type", content_type).body(body);
        }
        let answer = request.send().await?;
        let status = answer.status().as_u16();
        let text = answer.text().await?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        ))
    }

    /// One turn of the event source mapping on `queue` for `function`.
    pub async fn poll(&self, queue: &QueuePair, function: &str) -> anyhow::Result<Polled> {
        let received = self
            .sqs
            .receive_message()
            .queue_url(&queue.url)
            .max_number_of_messages(10)
            .wait_time_seconds(0)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await?;
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            return Ok(Polled::default());
        }
        let records: Vec<Value> = messages
            .iter()
            .map(|m| {
                let attributes: serde_json::Map<String, Value> = m
                    .attributes
                    .iter()
                    .flatten()
                    .map(|(k, v)| (k.as_str().to_owned(), Value::String(v.clone())))
                    .collect();
                json!({
                    "messageId": m.message_id,
                    "receiptHandle": m.receipt_handle,
                    "body": m.body,
                    "attributes": attributes,
                    "messageAttributes": {},
                    "md5OfBody": m.md5_of_body,
                    "eventSource": "aws:sqs",
                    "eventSourceARN": queue.arn,
                    "awsRegion": "us-east-1",
                })
            })
            .collect();
        let failed: Vec<String> = match self.invoke(function, &json!({ "Records": records })).await
        {
            Ok(answer) => answer["batchItemFailures"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|f| f["itemIdentifier"].as_str().map(str::to_owned))
                .collect(),
            // The whole batch comes back after its visibility timeout.
            Err(_) => messages
                .iter()
                .filter_map(|m| m.message_id.clone())
                .collect(),
        };
        for message in &messages {
            if failed
                .iter()
                .any(|f| Some(f) == message.message_id.as_ref())
            {
                continue;
            }
            if let Some(handle) = &message.receipt_handle {
                self.sqs
                    .delete_message()
                    .queue_url(&queue.url)
                    .receipt_handle(handle)
                    .send()
                    .await?;
            }
        }
        Ok(Polled {
            received: messages.len(),
            failed: failed.len(),
        })
    }

    /// Polls both queues until neither has a visible message (a failed message comes
    /// back after its visibility timeout: that wait is bounded by `within`).
    pub async fn settle(&self, within: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            let pipeline = self.poll(&self.pipeline, "pipeline").await?;
            let notify = self.poll(&self.notify, "notify").await?;
            if pipeline.received == 0 && notify.received == 0 && self.in_flight().await? == 0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "the queues did not settle: {pipeline:?} {notify:?}\n{}",
                    self.log()
                );
            }
            if pipeline.received == 0 && notify.received == 0 {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }

    /// Messages received but neither deleted nor visible again yet, on both queues.
    async fn in_flight(&self) -> anyhow::Result<u64> {
        let mut total = 0;
        for queue in [&self.pipeline.url, &self.notify.url] {
            let attributes = self
                .sqs
                .get_queue_attributes()
                .queue_url(queue)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
                .send()
                .await?;
            for value in attributes.attributes.unwrap_or_default().values() {
                total += value.parse::<u64>().unwrap_or(0);
            }
        }
        Ok(total)
    }

    /// Sends a raw message to a queue (a poison one, say).
    pub async fn send(&self, queue: &QueuePair, body: &str) -> anyhow::Result<()> {
        self.sqs
            .send_message()
            .queue_url(&queue.url)
            .message_body(body)
            .send()
            .await?;
        Ok(())
    }

    /// Everything in a dead-letter queue (received, not deleted).
    pub async fn dead_letters(&self, queue: &QueuePair) -> anyhow::Result<Vec<DeadLetter>> {
        let received = self
            .sqs
            .receive_message()
            .queue_url(&queue.dlq)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .send()
            .await?;
        Ok(received
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| DeadLetter {
                body: m.body.unwrap_or_default(),
                error: m
                    .message_attributes
                    .and_then(|a| a.get("tocsin-error").and_then(|v| v.string_value.clone())),
            })
            .collect())
    }

    /// A team token on the stack's database.
    pub fn token(&self, team: &str) -> anyhow::Result<String> {
        crate::create_token(&self.database_url, &["--team", team])
    }

    /// Kills every running instance of `function` with SIGKILL, as a crash would;
    /// returns how many there were.
    pub fn kill_function(&self, function: &str) -> usize {
        let suffix = format!("/debug/{function}");
        let mut killed = 0;
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(exe) = std::fs::read_link(entry.path().join("exe")) else {
                continue;
            };
            if exe.to_string_lossy().ends_with(&suffix) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
                killed += 1;
            }
        }
        killed
    }
}

/// `cargo lambda watch` on `port` with the functions' environment, once it listens. Its
/// output goes to a log file of its port (appended to across restarts).
fn emulator(port: u16, vars: &[(String, String)]) -> anyhow::Result<Group> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(std::env::temp_dir().join(format!("tocsin-lambda-{port}.log")))?;
    let watch = spawn_group(
        Command::new(crate::venv_bin("cargo-lambda"))
            .args(["lambda", "watch", "--ignore-changes", "--quiet"])
            .args(["-A", "127.0.0.1", "-P", &port.to_string()])
            .args(["--concurrency", "2", "--timeout", "120"])
            .current_dir(crate::workspace())
            .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(log.try_clone()?)
            .stderr(log),
    )
    .context("cannot start cargo lambda watch (infra/deps.sh installs it)")?;
    wait_for_port(port, "cargo lambda watch", Duration::from_secs(60))?;
    Ok(watch)
}

/// A standard queue with a dead-letter queue after 3 receives, and a short visibility
/// timeout so that a failed message comes back within the test.
async fn create_pair(sqs: &aws_sdk_sqs::Client, name: &str) -> anyhow::Result<QueuePair> {
    let dlq = sqs
        .create_queue()
        .queue_name(format!("{name}-dlq"))
        .send()
        .await?
        .queue_url
        .context("no dlq url")?;
    let dlq_arn = arn(sqs, &dlq).await?;
    let url = sqs
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::VisibilityTimeout, "2")
        .attributes(
            QueueAttributeName::RedrivePolicy,
            json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": 3 }).to_string(),
        )
        .send()
        .await?
        .queue_url
        .context("no queue url")?;
    Ok(QueuePair {
        arn: arn(sqs, &url).await?,
        url,
        dlq,
    })
}

async fn arn(sqs: &aws_sdk_sqs::Client, url: &str) -> anyhow::Result<String> {
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await?;
    attributes
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .context("no queue arn")
}
