//! Test support for Tocsin's end-to-end tests and benchmarks: the real `tocsin` binary,
//! real SQLite files and a real PostgreSQL database per test.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

pub mod fakes;
pub mod lambda;
pub mod load;
pub mod plugins;
pub mod sample;
pub mod storm;

/// The workspace root.
pub fn workspace() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// Path of a freshly built `tocsin` binary: built once per test process with the same
/// profile as the caller (release for benchmarks), so a test never runs a stale binary.
/// `TOCSIN_BENCH_BIN` names another program to run instead, for a benchmark run under a
/// profiler (a script that runs a build of `tocsin` under `heaptrack`, say).
pub fn tocsin_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| match std::env::var_os("TOCSIN_BENCH_BIN") {
        Some(bin) => PathBuf::from(bin),
        None => build_bin("tocsin", "tocsin").unwrap_or_else(|e| panic!("{e:#}")),
    })
}

/// Builds `bin` of `package` with the caller's profile; returns its path.
pub fn build_bin(package: &str, bin: &str) -> anyhow::Result<PathBuf> {
    let mut cargo = Command::new(env!("CARGO"));
    cargo.current_dir(workspace()).args([
        "build",
        "--quiet",
        "--message-format=json",
        "-p",
        package,
        "--bin",
        bin,
    ]);
    if !cfg!(debug_assertions) {
        cargo.arg("--release");
    }
    let output = cargo
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run cargo")?;
    if !output.status.success() {
        bail!("cargo build -p {package} --bin {bin} failed");
    }
    for line in output.stdout.split(|b| *b == b'\n') {
        let Ok(message) = serde_json::from_slice::<serde_json::Value>(line) else {
            continue;
        };
        if message["reason"] == "compiler-artifact"
            && message["target"]["name"] == bin
            && let Some(path) = message["executable"].as_str()
        {
            return Ok(PathBuf::from(path));
        }
    }
    bail!("cargo did not report the {bin} executable")
}

/// A `tocsin serve` process on a free loopback port, killed when dropped. Its stdout
/// and stderr are collected (a closed pipe would make the server fail on its next line).
pub struct Server {
    child: Child,
    /// Base URL, such as `http://127.0.0.1:40123`.
    pub url: String,
    /// The database it serves.
    pub database_url: String,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts `tocsin serve` on `database_url` with extra arguments and environment, and
    /// waits until it listens.
    pub fn start(database_url: &str, extra: &[&str], env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let mut child = Command::new(tocsin_bin())
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--database-url",
                database_url,
            ])
            .args(extra)
            .env("TOCSIN_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start tocsin serve")?;
        let stdout = drain(child.stdout.take().context("no stdout")?);
        let stderr = drain(child.stderr.take().context("no stderr")?);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(url) = lines(&stdout)
                .first()
                .and_then(|l| l.strip_prefix("Tocsin listening on "))
            {
                return Ok(Self {
                    url: url.to_owned(),
                    database_url: database_url.to_owned(),
                    child,
                    stdout,
                    stderr,
                });
            }
            if Instant::now() > deadline || child.try_wait()?.is_some() {
                let _ = child.kill();
                bail!(
                    "tocsin serve did not start; stderr: {}",
                    lines(&stderr).join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What the server printed on stdout so far.
    pub fn stdout(&self) -> Vec<String> {
        lines(&self.stdout)
    }

    /// What the server logged on stderr so far.
    pub fn stderr(&self) -> Vec<String> {
        lines(&self.stderr)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the server with SIGKILL, as a crash would.
    pub fn kill(mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn drain(pipe: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            sink.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(line);
        }
    });
    lines
}

fn lines(buffer: &Mutex<Vec<String>>) -> Vec<String> {
    buffer
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

/// Runs the `tocsin` binary with `args` and returns (exit success, stdout, stderr).
pub fn tocsin(args: &[&str]) -> anyhow::Result<(bool, String, String)> {
    let output = Command::new(tocsin_bin())
        .args(args)
        .env("TOCSIN_LOG", "warn")
        .output()?;
    Ok((
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    ))
}

/// Creates a token with the CLI: `--admin` or `--team NAME`.
pub fn create_token(database_url: &str, who: &[&str]) -> anyhow::Result<String> {
    let mut args = vec!["token", "create", "--database-url", database_url];
    args.extend_from_slice(who);
    let (ok, stdout, stderr) = tocsin(&args)?;
    if !ok {
        bail!("tocsin token create failed: {stderr}");
    }
    Ok(stdout.trim().to_owned())
}

/// A tool from the virtualenv `infra/deps.sh` fills with PyPI packages
/// (`~/.cache/tocsin-venv`), or else the one of that name on the `PATH`.
pub fn venv_bin(name: &str) -> PathBuf {
    let venv = std::env::var("HOME").map(|home| {
        PathBuf::from(home)
            .join(".cache/tocsin-venv/bin")
            .join(name)
    });
    match venv {
        Ok(path) if path.is_file() => path,
        _ => PathBuf::from(name),
    }
}

/// A SQLite database URL in a fresh temporary directory (kept alive by the guard).
pub fn sqlite_url() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("cannot create a temp dir: {e}"));
    let url = format!("sqlite://{}", dir.path().join("tocsin.db").display());
    (dir, url)
}

/// A fresh, empty PostgreSQL database on the server that `infra/test.sh` started
/// (`TOCSIN_TEST_POSTGRES_URL`). Tests that need it fail, never skip, without it.
pub async fn postgres_url() -> String {
    use sqlx::Connection as _;
    let base = std::env::var("TOCSIN_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!(
            "TOCSIN_TEST_POSTGRES_URL is not set: run the tests with infra/test.sh, which starts \
             a throwaway PostgreSQL, or point it at a server where the user may CREATE DATABASE"
        )
    });
    let name = format!("tocsin_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&base)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to TOCSIN_TEST_POSTGRES_URL {base}: {e}"));
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|e| panic!("cannot create database {name}: {e}"));
    let (prefix, _) = base.rsplit_once('/').unwrap_or((&base, ""));
    format!("{prefix}/{name}")
}

/// Runs the pipeline over everything in the journal, `batch` rows at a time, as a
/// server would (loading its state from the store first); returns the rows processed.
pub async fn process(store: &dyn tocsin_store::Store, batch: usize) -> usize {
    use tocsin_pipeline::{Config, worker};
    let mut engine = worker::load(store, Config::default())
        .await
        .expect("pipeline state loads");
    drain_journal(store, &mut engine, batch).await
}

/// Drains the journal with `engine` until nothing waits in it. On PostgreSQL the
/// pipeline reads only up to the appends' horizon, which a write transaction anywhere
/// on the server (another test's) holds back while it runs: a drain may stop short, and
/// a pipeline runner comes back later, as this does for up to 10 s.
pub async fn drain_journal(
    store: &dyn tocsin_store::Store,
    engine: &mut tocsin_pipeline::Engine,
    batch: usize,
) -> usize {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut total = 0;
    loop {
        total += tocsin_pipeline::worker::drain(store, engine, batch)
            .await
            .expect("pipeline drains the journal");
        if store.lag().await.expect("lag") == 0 || Instant::now() > deadline {
            return total;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A child process killed when dropped.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback port nobody listens on (yet).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// Debian's `prometheus` with `config` and `rules` (written as `prometheus.yml` and
/// `rules.yml` in `dir`, its data and `prometheus.log` there too) on a free loopback
/// port; returns it and its base URL.
pub fn start_prometheus(dir: &Path, config: &str, rules: &str) -> (Killed, String) {
    const PROMETHEUS: &str = "/usr/bin/prometheus";
    assert!(
        Path::new(PROMETHEUS).exists(),
        "{PROMETHEUS} is missing: run infra/deps.sh (it installs prometheus)"
    );
    std::fs::write(dir.join("prometheus.yml"), config).expect("prometheus config");
    std::fs::write(dir.join("rules.yml"), rules).expect("prometheus rules");
    let port = free_port();
    let log = std::fs::File::create(dir.join("prometheus.log")).expect("prometheus log");
    let child = Command::new(PROMETHEUS)
        .current_dir(dir)
        .args([
            "--config.file=prometheus.yml".to_owned(),
            format!("--storage.tsdb.path={}", dir.join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
        ])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("prometheus starts");
    (Killed(child), format!("http://127.0.0.1:{port}"))
}
