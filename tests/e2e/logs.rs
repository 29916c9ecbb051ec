//! The `logs` collector: SQL is registered by a team under a name, never carried by an
//! event; values from the event are bound as parameters; each team's queries run on the
//! logs database the operator assigned to it, as its own role; an overdue query is
//! stopped on the server. Against real SQLite files and a real PostgreSQL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection as _;
use tocsin_api::auth::{self, Grant};
use tocsin_collect::Collectors;
use tocsin_collect::logs::LogsSources;
use tocsin_model::clock::now_ms;
use tocsin_notify::config::Notifiers;
use tocsin_outbox::Outbox;
use tocsin_tests::fakes::Fakes;

use crate::api::Api;

/// An API with a second team, flexo, and a webhook that both teams' incidents go to
/// (collectors run only for incidents someone is told about).
struct Setup {
    api: Api,
    fakes: Fakes,
    flexo: String,
    dir: tempfile::TempDir,
}

impl Setup {
    async fn new() -> Self {
        let (dir, url) = tocsin_tests::sqlite_url();
        let config = tocsin_pipeline::Config {
            refresh_every_ms: 0,
            ..tocsin_pipeline::Config::default()
        };
        let api = Api::with_config(&url, None, config).await;
        let (flexo, _) = auth::create(api.store.as_ref(), Grant::Team("flexo".into()), "")
            .await
            .expect("token");
        let fakes = Fakes::start().await.expect("fakes");
        Self {
            api,
            fakes,
            flexo,
            dir,
        }
    }

    /// Tocsin's own database file, which holds the tokens.
    fn tocsin_db(&self) -> std::path::PathBuf {
        self.dir.path().join("tocsin.db")
    }

    fn outbox(&self, sources: LogsSources, limit: Duration) -> Outbox {
        let url = &self.fakes.url;
        let text = format!(
            "notifiers:\n  hook: {{ kind: webhook, url: \"{url}/webhook\", secret: s3cret }}\nroutes:\n  - {{ team: bender, webhooks: [hook] }}\n  - {{ team: flexo, webhooks: [hook] }}\n"
        );
        let notifiers = Arc::new(Notifiers::parse(&text).expect("notifiers"));
        let collectors = Collectors::new(self.api.store.clone())
            .with_logs(sources)
            .with_limit(limit);
        Outbox::new(self.api.store.clone(), notifiers).with_collectors(collectors)
    }

    /// Registers a logs query as `token`; returns the status and answer.
    async fn register(&self, token: &str, name: &str, sql: &str) -> (StatusCode, Value) {
        self.api
            .request(
                token,
                "PUT",
                &format!("/v1/logs-queries/{name}"),
                Some(json!({ "sql": sql, "description": "test" })),
            )
            .await
    }

    /// Sends one event with these collector params as `token`, runs the outbox and
    /// returns the incident's `logs` section (titled "Logs", or "logs" when it failed).
    async fn logs_section(
        &self,
        outbox: &Outbox,
        token: &str,
        monitor: &str,
        labels: Value,
        params: Value,
    ) -> Value {
        self.send(token, monitor, labels, params).await;
        self.deliver(outbox).await;
        self.section(token, monitor).await
    }

    async fn send(&self, token: &str, monitor: &str, labels: Value, params: Value) {
        self.api
            .events(
                token,
                json!([{
                    "alert": { "monitor": monitor, "status": "unhealthy" },
                    "context": labels,
                    "plugins": [{ "type": "logs", "params": params }],
                }]),
            )
            .await;
    }

    async fn deliver(&self, outbox: &Outbox) {
        self.api.settle().await;
        for _ in 0..50 {
            if outbox.round(now_ms()).await.expect("round") == 0 {
                return;
            }
        }
        panic!("the outbox keeps finding work");
    }

    /// The logs section of the token's incident opened by `monitor`.
    async fn section(&self, token: &str, monitor: &str) -> Value {
        let (_, list) = self.api.get(token, "/v1/incidents").await;
        let incident = list["incidents"]
            .as_array()
            .expect("incidents")
            .iter()
            .find(|i| {
                i["key"].as_str().unwrap_or_default().contains(monitor)
                    || i["title"].as_str().unwrap_or_default().contains(monitor)
            })
            .unwrap_or_else(|| panic!("no incident of {monitor}: {list}"))
            .clone();
        let (_, detail) = self
            .api
            .get(
                token,
                &format!("/v1/incidents/{}", incident["id"].as_str().expect("id")),
            )
            .await;
        detail["context"]
            .as_array()
            .expect("context")
            .iter()
            .find(|s| s["title"] == "Logs" || s["title"] == "logs")
            .cloned()
            .unwrap_or_else(|| panic!("no logs section: {detail}"))
    }
}

fn error_of(section: &Value) -> String {
    section["error"].as_str().unwrap_or_default().to_owned()
}

fn markdown_of(section: &Value) -> String {
    section["markdown"].as_str().unwrap_or_default().to_owned()
}

/// A SQLite logs database with lines of two teams' services; its URL.
async fn sqlite_logs(dir: &std::path::Path) -> String {
    use sqlx::ConnectOptions as _;
    let url = format!("sqlite://{}", dir.join("logs.db").display());
    let mut conn = <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(&url)
        .expect("url")
        .create_if_missing(true)
        .connect()
        .await
        .expect("logs db");
    for sql in [
        "CREATE TABLE logs (service TEXT NOT NULL, line TEXT NOT NULL)",
        "INSERT INTO logs VALUES ('checkout', 'ERROR 503 from upstream payments'), ('checkout', 'ERROR pool timeout after 30s'), ('storage', 'flexo only: disk key rotated')",
    ] {
        sqlx::query(sql).execute(&mut conn).await.expect("setup");
    }
    url
}

const RECENT_ERRORS: &str =
    "SELECT line FROM logs WHERE service = :service AND line LIKE :pattern ORDER BY line";

#[tokio::test]
async fn an_event_carrying_sql_runs_nothing() {
    let setup = Setup::new().await;
    let logs = sqlite_logs(setup.dir.path()).await;
    let outbox = setup.outbox(
        LogsSources::open(Some(&logs), &[]).expect("sources"),
        Duration::from_secs(2),
    );
    // Run as written, the first would read flexo's lines, the second Tocsin's tokens.
    let tokens = format!(
        "ATTACH DATABASE '{}' AS t; SELECT id, team, hash FROM t.tokens",
        setup.tocsin_db().display()
    );
    for (monitor, sql) in [
        ("EveryLine", "SELECT line FROM logs".to_owned()),
        ("Tokens", tokens),
    ] {
        let section = setup
            .logs_section(
                &outbox,
                &setup.api.bender,
                monitor,
                json!({ "service": "checkout" }),
                json!({ "query": sql }),
            )
            .await;
        assert!(
            error_of(&section).contains("no logs query"),
            "{monitor}: {section}"
        );
        assert_eq!(markdown_of(&section), "", "{monitor}: {section}");
    }
}

#[tokio::test]
async fn a_registered_query_binds_the_events_values_on_sqlite() {
    let setup = Setup::new().await;
    let logs = sqlite_logs(setup.dir.path()).await;
    let outbox = setup.outbox(
        LogsSources::open(Some(&logs), &[]).expect("sources"),
        Duration::from_secs(2),
    );
    let (status, registered) = setup
        .register(&setup.api.bender, "recent-errors", RECENT_ERRORS)
        .await;
    assert_eq!(status, StatusCode::OK, "{registered}");
    assert_eq!(registered["params"], json!(["service", "pattern"]));

    let params =
        json!({ "query": "recent-errors", "service": "${context.service}", "pattern": "ERROR%" });
    let section = setup
        .logs_section(
            &outbox,
            &setup.api.bender,
            "Http5xx",
            json!({ "service": "checkout" }),
            params.clone(),
        )
        .await;
    let markdown = markdown_of(&section);
    assert!(
        markdown.contains("ERROR 503 from upstream payments") && markdown.contains("pool timeout"),
        "{section}"
    );
    assert!(!markdown.contains("flexo only"), "{section}");
    // The webhook carries the same context.
    let sent = setup
        .fakes
        .requests_to("webhook")
        .iter()
        .map(|r| r.body.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(sent.contains("ERROR 503 from upstream payments"), "{sent}");

    // Spliced into the SQL text, this label would match every row of every service.
    let section = setup
        .logs_section(
            &outbox,
            &setup.api.bender,
            "Hostile",
            json!({ "service": "x' OR '1'='1" }),
            params,
        )
        .await;
    assert_eq!(markdown_of(&section), "No matching rows.", "{section}");

    // A value the query needs and the event does not give is a clear error.
    let section = setup
        .logs_section(
            &outbox,
            &setup.api.bender,
            "NoPattern",
            json!({ "service": "checkout" }),
            json!({ "query": "recent-errors", "service": "${context.service}" }),
        )
        .await;
    assert!(
        error_of(&section).contains("needs a value for :pattern"),
        "{section}"
    );
}

#[tokio::test]
async fn a_team_without_a_logs_database_gets_a_section_saying_so() {
    let setup = Setup::new().await;
    let logs = sqlite_logs(setup.dir.path()).await;
    let outbox = setup.outbox(
        LogsSources::open(None, &[("flexo".into(), logs)]).expect("sources"),
        Duration::from_secs(2),
    );
    setup
        .register(&setup.api.bender, "all", "SELECT line FROM logs")
        .await;
    let section = setup
        .logs_section(
            &outbox,
            &setup.api.bender,
            "Http5xx",
            json!({ "service": "checkout" }),
            json!({ "query": "all" }),
        )
        .await;
    assert!(
        error_of(&section).contains("no logs database is configured for team \"bender\""),
        "{section}"
    );
}

#[tokio::test]
async fn registration_refuses_what_is_not_one_read_statement() {
    let setup = Setup::new().await;
    let api = &setup.api;
    for (name, body, expected, needle) in [
        (
            "two",
            json!({ "sql": "SELECT 1; DELETE FROM logs" }),
            400,
            "exactly one statement",
        ),
        (
            "attach",
            json!({ "sql": "ATTACH DATABASE '/var/lib/tocsin/tocsin.db' AS t" }),
            400,
            "not \"ATTACH\"",
        ),
        (
            "wipe",
            json!({ "sql": "DELETE FROM logs" }),
            400,
            "not \"DELETE\"",
        ),
        (
            "positional",
            json!({ "sql": "SELECT line FROM logs WHERE service = ?" }),
            400,
            "placeholder \"?\"",
        ),
        (
            "long",
            json!({ "sql": format!("SELECT '{}'", "x".repeat(17 * 1024)) }),
            400,
            "at most 16384",
        ),
        (
            "bad%20name!",
            json!({ "sql": "SELECT 1" }),
            400,
            "invalid logs query name \"bad name!\"",
        ),
        (
            "extra",
            json!({ "sql": "SELECT 1", "owner": "flexo" }),
            400,
            "unknown field `owner`",
        ),
        ("array", json!([]), 400, "the body must be an object"),
    ] {
        let (status, answer) = api
            .request(
                &api.bender,
                "PUT",
                &format!("/v1/logs-queries/{name}"),
                Some(body),
            )
            .await;
        assert_eq!(status.as_u16(), expected, "{name}: {answer}");
        assert!(
            answer["error"]
                .as_str()
                .unwrap_or_default()
                .contains(needle),
            "{name}: wanted {needle:?} in {answer}"
        );
    }
    let (_, list) = api.get(&api.bender, "/v1/logs-queries").await;
    assert_eq!(list["queries"], json!([]), "nothing refused was stored");

    // YAML, as the other settings bodies.
    let request = axum::http::Request::put("/v1/logs-queries/recent-errors")
        .header("authorization", format!("Bearer {}", api.bender))
        .header("content-type", "application/yaml")
        .body(axum::body::Body::from(format!(
            "sql: \"{RECENT_ERRORS}\"\ndescription: the last errors of a service\n"
        )))
        .expect("request");
    let (status, answer, _) = api.call(request).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["team"], "bender");
}

#[tokio::test]
async fn teams_cannot_read_change_delete_or_run_each_others_logs_queries() {
    let setup = Setup::new().await;
    let api = &setup.api;
    let logs = sqlite_logs(setup.dir.path()).await;
    let outbox = setup.outbox(
        LogsSources::open(Some(&logs), &[]).expect("sources"),
        Duration::from_secs(2),
    );
    let (status, _) = setup
        .register(
            &api.bender,
            "recent-errors",
            "SELECT line FROM logs WHERE service = :service",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let before = api.get(&api.bender, "/v1/logs-queries/recent-errors").await;

    for (method, uri, body, expected) in [
        ("GET", "/v1/logs-queries/recent-errors", None, 404),
        (
            "GET",
            "/v1/logs-queries/recent-errors?team=bender",
            None,
            403,
        ),
        ("GET", "/v1/logs-queries?team=bender", None, 403),
        ("DELETE", "/v1/logs-queries/recent-errors", None, 404),
        (
            "DELETE",
            "/v1/logs-queries/recent-errors?team=bender",
            None,
            403,
        ),
        (
            "PUT",
            "/v1/logs-queries/recent-errors?team=bender",
            Some(json!({ "sql": "SELECT line FROM logs" })),
            403,
        ),
    ] {
        let (status, answer) = api.request(&setup.flexo, method, uri, body).await;
        assert_eq!(status.as_u16(), expected, "{method} {uri}: {answer}");
        let text = answer.to_string();
        assert!(
            !text.contains("SELECT") && !text.contains(":service"),
            "{method} {uri} shows bender's query: {text}"
        );
    }
    let (_, list) = api.get(&setup.flexo, "/v1/logs-queries").await;
    assert_eq!(list["queries"], json!([]), "{list}");
    assert_eq!(
        api.get(&api.bender, "/v1/logs-queries/recent-errors").await,
        before,
        "bender's query is unchanged"
    );

    // flexo's event naming bender's query does not run it.
    let params = json!({ "query": "recent-errors", "service": "${context.service}" });
    let section = setup
        .logs_section(
            &outbox,
            &setup.flexo,
            "Http5xx",
            json!({ "service": "checkout" }),
            params.clone(),
        )
        .await;
    assert!(error_of(&section).contains("no logs query"), "{section}");
    assert_eq!(markdown_of(&section), "");

    // Names are per team: flexo's own `recent-errors` runs for flexo's incidents.
    let (status, _) = setup
        .register(
            &setup.flexo,
            "recent-errors",
            "SELECT line FROM logs WHERE service = :service AND line LIKE 'flexo%'",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let section = setup
        .logs_section(
            &outbox,
            &setup.flexo,
            "DiskKey",
            json!({ "service": "storage" }),
            params,
        )
        .await;
    assert!(
        markdown_of(&section).contains("flexo only: disk key rotated"),
        "{section}"
    );
    let (_, mine) = api.get(&api.bender, "/v1/logs-queries/recent-errors").await;
    assert_eq!(
        mine["sql"],
        "SELECT line FROM logs WHERE service = :service"
    );

    // An admin sees both, and acts for a team with ?team=.
    let (_, all) = api.get(&api.admin, "/v1/logs-queries").await;
    assert_eq!(all["queries"].as_array().map(Vec::len), Some(2), "{all}");
    let (status, _) = api
        .request(
            &api.admin,
            "DELETE",
            "/v1/logs-queries/recent-errors?team=flexo",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = api.get(&api.bender, "/v1/logs-queries/recent-errors").await;
    assert_eq!(
        status,
        StatusCode::OK,
        "bender's query survives flexo's delete"
    );
}

#[tokio::test]
async fn sqlite_sources_deny_attach_and_interrupt_a_never_ending_query() {
    let setup = Setup::new().await;
    let logs = sqlite_logs(setup.dir.path()).await;
    let sources = LogsSources::open(Some(&logs), &[]).expect("sources");
    let outbox = setup.outbox(sources.clone(), Duration::from_millis(500));

    // A query that got into the store by another way than the API (registration refuses
    // ATTACH) is checked again before it runs, and cannot attach Tocsin's own database
    // (the source's ATTACH limit behind that check is tested in tocsin-core's logs.rs).
    let attach = format!("ATTACH DATABASE '{}' AS t", setup.tocsin_db().display());
    setup
        .api
        .store
        .put_logs_query(&tocsin_store::LogsQuery {
            team: "bender".into(),
            name: "attach".into(),
            sql: attach,
            description: String::new(),
            params: Vec::new(),
            updated_at: now_ms(),
            updated_by: String::new(),
        })
        .await
        .expect("stored");
    let (status, answer) = setup
        .register(
            &setup.api.bender,
            "attach-again",
            &format!("ATTACH DATABASE '{}' AS t", setup.tocsin_db().display()),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap_or_default()
            .contains("not \"ATTACH\""),
        "{answer}"
    );
    let section = setup
        .logs_section(
            &outbox,
            &setup.api.bender,
            "Attach",
            json!({ "service": "checkout" }),
            json!({ "query": "attach" }),
        )
        .await;
    assert!(error_of(&section).contains("not \"ATTACH\""), "{section}");
    assert_eq!(markdown_of(&section), "", "{section}");

    let (status, answer) = setup
        .register(
            &setup.api.bender,
            "forever",
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let started = Instant::now();
    let section = setup
        .logs_section(
            &outbox,
            &setup.api.bender,
            "Forever",
            json!({ "service": "checkout" }),
            json!({ "query": "forever" }),
        )
        .await;
    let error = error_of(&section);
    assert!(
        error.contains("timed out") || error.contains("interrupted"),
        "{section}"
    );
    // The statement itself stopped, not only the wait for it.
    let deadline = Instant::now() + Duration::from_secs(2);
    while sources.running() > 0 {
        assert!(
            Instant::now() < deadline,
            "the query still runs {:?} after it started",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A PostgreSQL logs database: one table of both teams' lines, a view per team, and a
/// role per team that may only SELECT its own view (as docs/alerting.md says to set
/// up). Returns the database's admin URL and each team's URL.
struct PgLogs {
    admin: String,
    bender: String,
    flexo: String,
    roles: [String; 2],
}

impl PgLogs {
    async fn new() -> Self {
        let admin = tocsin_tests::postgres_url().await;
        let database = admin.rsplit('/').next().expect("db name").to_owned();
        let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
        let roles = [
            format!("logs_bender_{suffix}"),
            format!("logs_flexo_{suffix}"),
        ];
        let mut conn = sqlx::PgConnection::connect(&admin).await.expect("connect");
        let [b, f] = &roles;
        for sql in [
            "CREATE TABLE logs (team TEXT NOT NULL, service TEXT NOT NULL, line TEXT NOT NULL)".to_owned(),
            "INSERT INTO logs VALUES ('bender', 'checkout', 'ERROR 503 from upstream payments'), ('flexo', 'storage', 'flexo only: disk key rotated')".to_owned(),
            "CREATE VIEW bender_logs AS SELECT service, line FROM logs WHERE team = 'bender'".to_owned(),
            "CREATE VIEW flexo_logs AS SELECT service, line FROM logs WHERE team = 'flexo'".to_owned(),
            format!("CREATE ROLE {b} LOGIN"),
            format!("CREATE ROLE {f} LOGIN"),
            format!("REVOKE ALL ON DATABASE {database} FROM PUBLIC"),
            format!("GRANT CONNECT ON DATABASE {database} TO {b}, {f}"),
            format!("GRANT USAGE ON SCHEMA public TO {b}, {f}"),
            format!("GRANT SELECT ON bender_logs TO {b}"),
            format!("GRANT SELECT ON flexo_logs TO {f}"),
        ] {
            sqlx::query(&sql).execute(&mut conn).await.expect(&sql);
        }
        let as_role = |role: &str| {
            let (scheme, rest) = admin.split_once("://").expect("url");
            let host = rest.split_once('@').map_or(rest, |(_, host)| host);
            format!("{scheme}://{role}@{host}")
        };
        Self {
            bender: as_role(b),
            flexo: as_role(f),
            admin,
            roles: roles.clone(),
        }
    }

    fn sources(&self) -> LogsSources {
        LogsSources::open(
            None,
            &[
                ("bender".into(), self.bender.clone()),
                ("flexo".into(), self.flexo.clone()),
            ],
        )
        .expect("sources")
    }

    async fn scalar(&self, sql: &str) -> i64 {
        let mut conn = sqlx::PgConnection::connect(&self.admin)
            .await
            .expect("connect");
        sqlx::query_scalar(sql)
            .fetch_one(&mut conn)
            .await
            .expect(sql)
    }

    /// Queries other than this one running `pg_sleep` in this database.
    async fn sleeping(&self) -> i64 {
        self.scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND state = 'active' AND query LIKE '%pg_sleep%' AND pid <> pg_backend_pid()",
        )
        .await
    }

    /// Drops the roles (they belong to the whole server, not to the test's database).
    async fn drop_roles(&self) {
        let mut conn = sqlx::PgConnection::connect(&self.admin)
            .await
            .expect("connect");
        for role in &self.roles {
            let _ = sqlx::query(&format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'"
            ))
            .execute(&mut conn)
            .await;
            let _ = sqlx::query(&format!("DROP OWNED BY {role}"))
                .execute(&mut conn)
                .await;
            let _ = sqlx::query(&format!("DROP ROLE {role}"))
                .execute(&mut conn)
                .await;
        }
    }
}

#[tokio::test]
async fn on_postgres_a_teams_query_reads_only_what_its_role_may() {
    let pg = PgLogs::new().await;
    let setup = Setup::new().await;
    let outbox = setup.outbox(pg.sources(), Duration::from_secs(5));
    let bender = &setup.api.bender;
    for (name, sql) in [
        (
            "recent-errors",
            "SELECT line, service FROM bender_logs WHERE service = :service ORDER BY line",
        ),
        ("peek", "SELECT line FROM flexo_logs"),
        ("peek-table", "SELECT line FROM logs"),
        (
            "wipe",
            "WITH rw AS (SELECT set_config('default_transaction_read_only', 'off', false) AS v), \
             d AS (DELETE FROM flexo_logs RETURNING line) SELECT (SELECT v FROM rw), count(*) FROM d",
        ),
    ] {
        let (status, answer) = setup.register(bender, name, sql).await;
        assert_eq!(status, StatusCode::OK, "{name}: {answer}");
    }
    let section = setup
        .logs_section(
            &outbox,
            bender,
            "Http5xx",
            json!({ "service": "checkout" }),
            json!({ "query": "recent-errors", "service": "${context.service}" }),
        )
        .await;
    assert!(
        markdown_of(&section).contains("ERROR 503 from upstream payments"),
        "{section}"
    );
    for (monitor, query) in [
        ("Peek", "peek"),
        ("PeekTable", "peek-table"),
        ("Wipe", "wipe"),
    ] {
        let section = setup
            .logs_section(
                &outbox,
                bender,
                monitor,
                json!({ "service": "checkout" }),
                json!({ "query": query }),
            )
            .await;
        assert!(
            error_of(&section).contains("permission denied"),
            "{query}: {section}"
        );
        assert!(
            !section.to_string().contains("disk key"),
            "{query}: {section}"
        );
    }
    assert_eq!(
        pg.scalar("SELECT count(*) FROM logs WHERE team = 'flexo'")
            .await,
        1,
        "flexo's rows are intact"
    );

    // flexo's own query on flexo's role reads flexo's view.
    setup
        .register(
            &setup.flexo,
            "recent-errors",
            "SELECT line FROM flexo_logs WHERE service = :service",
        )
        .await;
    let section = setup
        .logs_section(
            &outbox,
            &setup.flexo,
            "DiskKey",
            json!({ "service": "storage" }),
            json!({ "query": "recent-errors", "service": "${context.service}" }),
        )
        .await;
    assert!(
        markdown_of(&section).contains("flexo only: disk key rotated"),
        "{section}"
    );
    pg.drop_roles().await;
}

#[tokio::test]
async fn on_postgres_an_overdue_query_is_cancelled_on_the_server() {
    let pg = PgLogs::new().await;
    let setup = Setup::new().await;
    let limit = Duration::from_secs(1);
    let outbox = setup.outbox(pg.sources(), limit);
    let bender = &setup.api.bender;
    setup
        .register(bender, "slow", "SELECT pg_sleep(30) FROM bender_logs")
        .await;
    setup
        .register(
            bender,
            "recent-errors",
            "SELECT line FROM bender_logs WHERE service = :service",
        )
        .await;
    setup
        .register(
            &setup.flexo,
            "recent-errors",
            "SELECT line FROM flexo_logs WHERE service = :service",
        )
        .await;

    // More overdue queries at once than the source keeps connections (4).
    let slow: Vec<String> = (0..6).map(|i| format!("Slow{i}")).collect();
    for monitor in &slow {
        setup
            .send(
                bender,
                monitor,
                json!({ "service": "checkout" }),
                json!({ "query": "slow" }),
            )
            .await;
    }
    let started = Instant::now();
    setup.deliver(&outbox).await;
    for monitor in &slow {
        let section = setup.section(bender, monitor).await;
        assert!(
            error_of(&section).contains("timed out") || error_of(&section).contains("cancelled"),
            "{monitor}: {section}"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // Stopped on the server, not merely abandoned by Tocsin.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let sleeping = pg.sleeping().await;
        if sleeping == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{sleeping} pg_sleep queries still run {:?} after the first started",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The next queries, bender's and flexo's, get connections and run within the limit.
    let params = json!({ "query": "recent-errors", "service": "${context.service}" });
    let section = setup
        .logs_section(
            &outbox,
            bender,
            "Http5xx",
            json!({ "service": "checkout" }),
            params.clone(),
        )
        .await;
    assert!(markdown_of(&section).contains("ERROR 503"), "{section}");
    let section = setup
        .logs_section(
            &outbox,
            &setup.flexo,
            "DiskKey",
            json!({ "service": "storage" }),
            params,
        )
        .await;
    assert!(
        markdown_of(&section).contains("disk key rotated"),
        "{section}"
    );
    pg.drop_roles().await;
}

#[tokio::test]
async fn serve_takes_a_logs_database_per_team_and_refuses_a_malformed_one() {
    let (dir, database) = tocsin_tests::sqlite_url();
    let logs = sqlite_logs(dir.path()).await;
    for (arg, needle) in [
        ("bender".to_owned(), "is not TEAM=URL"),
        (format!("Bender={logs}"), "invalid team name"),
        (
            "bender=mysql://db/logs".to_owned(),
            "sqlite: or postgres://",
        ),
    ] {
        let (ok, _, stderr) = tocsin_tests::tocsin(&[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            &database,
            "--team-logs-database",
            &arg,
        ])
        .expect("runs");
        assert!(!ok, "{arg} was accepted");
        assert!(
            stderr.contains(needle),
            "{arg}: wanted {needle:?} in {stderr}"
        );
    }
    let server = tocsin_tests::Server::start(
        &database,
        &["--team-logs-database", &format!("bender={logs}")],
        &[("TOCSIN_LOGS_DATABASE", logs.as_str())],
    )
    .expect("serves with a default and a team's logs database");
    drop(server);
}
