//! Faults from outside the process: the disk under the database fills up; PostgreSQL
//! restarts under load; SIGKILL lands in the middle of a WAL checkpoint or of retention
//! pruning. Nothing that got a 202 is lost, the files stay whole, and every client is
//! told clearly what happened.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tocsin_store as store;
use tocsin_store::StoreOptions;
use tocsin_tests::{Server, create_token};

/// A small tmpfs mounted for one test (the tests run as root, as `infra/test.sh` does on
/// CI), unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("runs mount");
        assert!(
            status.success(),
            "mounting a tmpfs needs root (the tests run as root under infra/test.sh)"
        );
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Writes zeros into `path` until the file system has no room left.
fn fill(path: &Path) -> u64 {
    let mut file = std::fs::File::create(path).expect("filler");
    let chunk = vec![0u8; 64 << 10];
    let mut written = 0;
    while file.write_all(&chunk).is_ok() {
        written += chunk.len() as u64;
    }
    // The last, partial chunk: whatever bytes are left.
    while file.write_all(&[0]).is_ok() {
        written += 1;
    }
    let _ = file.sync_all();
    written
}

/// Posts `n` new unhealthy alerts; the status, body and `Retry-After`.
async fn post(
    client: &reqwest::Client,
    server: &Server,
    token: &str,
    batch: usize,
    n: usize,
) -> (u16, Value, Option<String>) {
    let events: Vec<Value> = (0..n)
        .map(|i| {
            json!({"alert": {"monitor": "DiskFull", "status": "unhealthy", "message": "x".repeat(200)},
                   "context": {"service": "checkout", "instance": format!("i-{batch}-{i}")}})
        })
        .collect();
    let response = client
        .post(format!("{}/v1/events", server.url))
        .bearer_auth(token)
        .json(&events)
        .send()
        .await
        .expect("the server answers");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body, retry_after)
}

fn ids(receipt: &Value) -> Vec<String> {
    receipt["ids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|id| id.as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_ingest_with_503_and_ingest_resumes_when_space_returns() {
    let disk = Tmpfs::mount("24m");
    let url = format!("sqlite://{}", disk.path().join("tocsin.db").display());
    let token = create_token(&url, &["--team", "ops"]).expect("token");
    let server = Server::start(&url, &[], &[]).expect("serves");
    let client = reqwest::Client::new();
    let mut acknowledged = Vec::new();
    let (status, receipt, _) = post(&client, &server, &token, 0, 100).await;
    assert_eq!(status, 202, "{receipt}");
    acknowledged.extend(ids(&receipt));

    let filler: PathBuf = disk.path().join("filler");
    fill(&filler);
    // SQLite may still write into pages its files already hold: post until the disk's
    // lack of room reaches an append.
    let mut refused = None;
    for batch in 1..=2_000 {
        let (status, body, retry_after) = post(&client, &server, &token, batch, 100).await;
        match status {
            202 => acknowledged.extend(ids(&body)),
            503 => {
                refused = Some((body, retry_after));
                break;
            }
            other => panic!("a full disk answered {other}: {body}"),
        }
    }
    let (body, retry_after) = refused.expect("a full disk refuses ingest within 2,000 batches");
    let message = body["error"].as_str().unwrap_or_default();
    assert!(
        message.contains("disk is full") && message.contains("nothing was accepted"),
        "the client is told why and that nothing was stored: {body}"
    );
    assert!(
        retry_after.is_some_and(|s| s.parse::<u64>().is_ok_and(|s| s > 0)),
        "a 503 says when to retry"
    );
    let health = client
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .expect("the server is still up");
    assert_eq!(health.status(), 200);

    // Space returns: the very next request is taken.
    std::fs::remove_file(&filler).expect("frees the space");
    let mut resumed = false;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let (status, body, _) = post(&client, &server, &token, 10_000, 10).await;
        if status == 202 {
            acknowledged.extend(ids(&body));
            resumed = true;
            break;
        }
        assert_eq!(status, 503, "{body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(resumed, "ingest resumes once space returns");

    // Nothing acknowledged is lost, and the pipeline, whose commits failed while the disk
    // was full, catches up on every one of them.
    stored_and_processed_once(&url, &acknowledged).await;
    drop(server);
}

/// Writers posting batches of 100 new alerts until the server stops answering; the ids
/// of every event whose batch got a 202.
struct Load {
    acknowledged: Arc<Mutex<Vec<String>>>,
    writers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(server: &Server, token: &str) -> Self {
        let acknowledged = Arc::new(Mutex::new(Vec::new()));
        let client = reqwest::Client::new();
        let writers = (0..4)
            .map(|writer| {
                let (client, url, token, acknowledged) = (
                    client.clone(),
                    format!("{}/v1/events", server.url),
                    token.to_owned(),
                    acknowledged.clone(),
                );
                tokio::spawn(async move {
                    for batch in 0.. {
                        let events: Vec<Value> = (0..100)
                            .map(|i| {
                                json!({"alert": {"monitor": "Killed", "status": "unhealthy", "message": "m".repeat(500)},
                                       "context": {"writer": writer.to_string(), "instance": format!("i-{batch}-{i}")}})
                            })
                            .collect();
                        let Ok(response) = client.post(&url).bearer_auth(&token).json(&events).send().await
                        else {
                            break;
                        };
                        if response.status() != 202 {
                            break;
                        }
                        let Ok(receipt) = response.json::<Value>().await else { break };
                        lock(&acknowledged).extend(ids(&receipt));
                    }
                })
            })
            .collect();
        Self {
            acknowledged,
            writers,
        }
    }

    fn count(&self) -> usize {
        lock(&self.acknowledged).len()
    }

    async fn finish(self) -> Vec<String> {
        for writer in self.writers {
            writer.await.expect("writer task");
        }
        lock(&self.acknowledged).clone()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `PRAGMA integrity_check` of one SQLite file, with the server stopped.
async fn integrity(path: &Path) -> String {
    use sqlx::Connection as _;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("opens the file");
    let answer: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await
        .expect("integrity check");
    conn.close().await.expect("closes");
    answer
}

async fn count(path: &Path, sql: &str) -> i64 {
    use sqlx::Connection as _;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("opens the file");
    let n = sqlx::query_scalar(sql)
        .fetch_one(&mut conn)
        .await
        .expect("counts");
    conn.close().await.expect("closes");
    n
}

/// Every acknowledged event is stored, and the pipeline of the server running on `url`
/// catches up on them: each stored event is its own alert, applied once.
async fn stored_and_processed_once(url: &str, acknowledged: &[String]) {
    let store = store::open(url, StoreOptions::default())
        .await
        .expect("opens");
    let stored: std::collections::HashSet<String> =
        store.event_ids().await.expect("ids").into_iter().collect();
    let lost = acknowledged
        .iter()
        .filter(|id| !stored.contains(*id))
        .count();
    assert_eq!(
        lost,
        0,
        "{lost} of {} acknowledged events lost",
        acknowledged.len()
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    while store.lag().await.expect("lag") > 0 {
        assert!(Instant::now() < deadline, "the pipeline does not catch up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let alerts = store
        .alerts(&store::AlertQuery {
            limit: u32::MAX,
            ..Default::default()
        })
        .await
        .expect("alerts");
    assert_eq!(alerts.len(), stored.len(), "each stored event is its alert");
    assert!(
        alerts.iter().all(|a| a.count == 1),
        "an event was applied twice"
    );
}

/// After a SIGKILL: a restarted server finds every acknowledged event, processes each
/// once, and is ready.
async fn nothing_acknowledged_is_lost(url: &str, acknowledged: &[String]) {
    let server = Server::start(url, &[], &[]).expect("restarts after SIGKILL");
    stored_and_processed_once(url, acknowledged).await;
    let ready = reqwest::get(format!("{}/readyz", server.url))
        .await
        .expect("answers");
    assert_eq!(ready.status(), 200);
}

/// The state of the thread named `name` of process `pid` (`R` running, `S` sleeping, …).
fn thread_state(pid: u32, name: &str) -> Option<char> {
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim() == name {
            let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
            // `pid (comm) S …`: the state follows the closing parenthesis.
            return stat.rsplit_once(')')?.1.trim_start().chars().next();
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_wal_checkpoint_loses_nothing_and_corrupts_nothing() {
    let (dir, url) = tocsin_tests::sqlite_url();
    let token = create_token(&url, &["--team", "ops"]).expect("token");
    let server = Server::start(&url, &[], &[]).expect("serves");
    let load = Load::start(&server, &token);
    // Under load the WAL grows between checkpoints; kill while the checkpointer's thread
    // is copying pages (running), not while it sleeps between passes.
    let wal = dir.path().join("tocsin.db-wal");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut caught = false;
    while Instant::now() < deadline {
        let big = std::fs::metadata(&wal).is_ok_and(|m| m.len() > 4 << 20);
        if big
            && load.count() > 5_000
            && matches!(
                thread_state(server.pid(), "sqlite-checkpt"),
                Some('R' | 'D')
            )
        {
            caught = true;
            break;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    assert!(caught, "no checkpoint seen running under load within 60 s");
    server.kill().expect("SIGKILL");
    let acknowledged = load.finish().await;
    for file in ["tocsin.db", "tocsin.journal.db"] {
        assert_eq!(integrity(&dir.path().join(file)).await, "ok", "{file}");
    }
    nothing_acknowledged_is_lost(&url, &acknowledged).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_retention_pruning_rolls_it_back_whole_and_the_next_prune_finishes() {
    const ALERTS: usize = 40_000;
    let (dir, url) = tocsin_tests::sqlite_url();
    let db = dir.path().join("tocsin.db");
    let token = create_token(&url, &["--team", "ops"]).expect("token");
    let server = Server::start(&url, &[], &[]).expect("serves");
    let client = reqwest::Client::new();
    let mut acknowledged = Vec::new();
    for batch in 0..ALERTS / 1_000 {
        let (status, receipt, _) = post(&client, &server, &token, batch, 1_000).await;
        assert_eq!(status, 202, "{receipt}");
        acknowledged.extend(ids(&receipt));
    }
    let store = store::open(&url, StoreOptions::default())
        .await
        .expect("opens");
    while store.lag().await.expect("lag") > 0 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(store);
    drop(server);
    let history = count(&db, "SELECT count(*) FROM history").await;
    assert!(
        history >= ALERTS as i64,
        "one history row per first report: {history}"
    );

    // Every row is now past a 1 s retention; a server starts with a prune. Kill it as the
    // prune starts: it deletes in one transaction, so it is rolled back whole.
    std::thread::sleep(Duration::from_millis(1_500));
    let args = ["--retention", "1s"];
    let log = [("TOCSIN_LOG", "warn,tocsin_pipeline::worker=debug")];
    let server = Server::start(&url, &args, &log).expect("serves");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !server
        .stderr()
        .iter()
        .any(|l| l.contains("pruning history"))
    {
        assert!(
            Instant::now() < deadline,
            "no prune started: {:?}",
            server.stderr()
        );
        std::thread::sleep(Duration::from_micros(200));
    }
    server.kill().expect("SIGKILL");
    assert_eq!(integrity(&db).await, "ok");
    assert_eq!(
        count(&db, "SELECT count(*) FROM history").await,
        history,
        "the killed prune removed nothing (or it was not killed mid-prune)"
    );

    // The next server's prune finishes, and the alerts are untouched.
    let server = Server::start(
        &url,
        &args,
        &[("TOCSIN_LOG", "warn,tocsin_pipeline::worker=info")],
    )
    .expect("restarts after SIGKILL");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !server.stderr().iter().any(|l| l.contains("pruned history")) {
        assert!(
            Instant::now() < deadline,
            "the prune does not finish: {:?}",
            server.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(server);
    assert_eq!(count(&db, "SELECT count(*) FROM history").await, 0);
    assert_eq!(
        count(&db, "SELECT count(*) FROM alerts").await,
        ALERTS as i64,
        "pruning keeps every tracked alert"
    );
    assert_eq!(integrity(&db).await, "ok");
    assert_eq!(acknowledged.len(), ALERTS);
}

/// A PostgreSQL cluster of one test's own (`infra/postgres.sh`), stopped when dropped.
struct Cluster {
    dir: tempfile::TempDir,
    url: String,
}

impl Cluster {
    fn script(&self, command: &str) -> String {
        let output = Command::new("bash")
            .arg(tocsin_tests::workspace().join("infra/postgres.sh"))
            .args([command, &self.dir.path().display().to_string()])
            .output()
            .expect("runs infra/postgres.sh");
        assert!(
            output.status.success(),
            "postgres.sh {command}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    fn start() -> Self {
        let mut cluster = Self {
            dir: tempfile::tempdir().expect("temp dir"),
            url: String::new(),
        };
        cluster.url = cluster.script("start");
        cluster
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(tocsin_tests::workspace().join("infra/postgres.sh"))
            .args(["stop", &self.dir.path().display().to_string()])
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_restarted_under_load_loses_nothing_and_the_pools_reconnect() {
    let cluster = Cluster::start();
    let token = create_token(&cluster.url, &["--team", "ops"]).expect("token");
    let server = Server::start(&cluster.url, &[], &[]).expect("serves");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let refusals = Arc::new(Mutex::new(Vec::<(u16, Value)>::new()));
    let client = reqwest::Client::new();
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let (client, url, token) = (
                client.clone(),
                format!("{}/v1/events", server.url),
                token.clone(),
            );
            let (stop, acknowledged, refusals) =
                (stop.clone(), acknowledged.clone(), refusals.clone());
            tokio::spawn(async move {
                let mut batch = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    batch += 1;
                    let events: Vec<Value> = (0..100)
                        .map(|i| {
                            json!({"alert": {"monitor": "PgRestart", "status": "unhealthy"},
                                   "context": {"writer": writer.to_string(), "instance": format!("i-{batch}-{i}")}})
                        })
                        .collect();
                    let response = client
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&events)
                        .send()
                        .await
                        .expect("the server answers while its database restarts");
                    let status = response.status().as_u16();
                    let body: Value = response.json().await.unwrap_or(Value::Null);
                    if status == 202 {
                        lock(&acknowledged).extend(ids(&body));
                    } else {
                        lock(&refusals).push((status, body));
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            })
        })
        .collect();
    let acknowledged_count = || lock(&acknowledged).len();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acknowledged_count() < 3_000 {
        assert!(Instant::now() < deadline, "the load does not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A fast restart: PostgreSQL closes every connection, then takes new ones.
    cluster.script("restart");
    let before = acknowledged_count();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acknowledged_count() < before + 3_000 {
        assert!(
            Instant::now() < deadline,
            "ingest does not resume after PostgreSQL restarted: {:?}",
            lock(&refusals).last()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for writer in writers {
        writer.await.expect("writer task");
    }
    for (status, body) in lock(&refusals).iter() {
        assert_eq!(*status, 503, "a refusal during the restart: {body}");
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|e| e.contains("database cannot be reached")),
            "the client is told why: {body}"
        );
    }

    // Every acknowledged event is stored and processed once, by the same server.
    let acknowledged = lock(&acknowledged).clone();
    stored_and_processed_once(&cluster.url, &acknowledged).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = reqwest::get(format!("{}/readyz", server.url))
            .await
            .expect("answers");
        if ready.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "never ready again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(server);
}
