//! The store's contract, checked alike on SQLite and PostgreSQL.

use std::sync::Arc;

use time::OffsetDateTime;
use tocsin_api::auth::{self, Grant};
use tocsin_ingest as ingest;
use tocsin_ingest::Format;
use tocsin_model::Status;
use tocsin_model::team::Caller;
use tocsin_store as store;
use tocsin_store::{AlertQuery, AlertState, Record, Store, StoreOptions};

/// One store per backend; the guard keeps the SQLite directory alive.
pub async fn backends() -> Vec<(&'static str, Arc<dyn Store>, Option<tempfile::TempDir>)> {
    let (dir, sqlite) = tocsin_tests::sqlite_url();
    let postgres = tocsin_tests::postgres_url().await;
    vec![
        (
            "sqlite",
            store::open(&sqlite, StoreOptions::default())
                .await
                .expect("sqlite opens"),
            Some(dir),
        ),
        (
            "postgres",
            store::open(&postgres, StoreOptions::default())
                .await
                .expect("postgres opens"),
            None,
        ),
    ]
}

pub fn admin() -> Caller {
    Caller {
        token_id: "test".into(),
        team: None,
        admin: true,
    }
}

/// Events as the API would accept and encode them.
pub fn accept(json: &str) -> Vec<Record> {
    let batch = ingest::read(json.as_bytes(), Format::Json, &admin(), "api").expect("valid body");
    assert!(batch.rejected.is_empty(), "{:?}", batch.rejected);
    batch
        .accepted
        .into_iter()
        .map(|a| a.into_record(None))
        .collect()
}

fn event(monitor: &str, status: &str, extra: &str) -> String {
    format!(
        r#"{{"alert": {{"monitor": "{monitor}", "status": "{status}"{extra}}}, "context": {{"service": "bender", "region": "eu"}}}}"#
    )
}

/// Appends these events, each a JSON object, as one batch.
async fn append_all(store: &dyn Store, events: &[String]) {
    store
        .append(accept(&format!("[{}]", events.join(","))))
        .await
        .expect("append");
}

async fn only_alert(store: &dyn Store) -> AlertState {
    tocsin_tests::process(store, 5_000).await;
    let mut alerts = store
        .alerts(&AlertQuery {
            limit: 10,
            ..AlertQuery::default()
        })
        .await
        .expect("lists");
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    alerts.remove(0)
}

#[tokio::test]
async fn append_reports_the_seqs_the_journal_gave_so_the_pipeline_can_skip_reading_them() {
    for (backend, store, _guard) in backends().await {
        // Small appends run in one trip to SQLite's writer; a large one statement by
        // statement.
        for (round, size) in [5, 5, 300].into_iter().enumerate() {
            let events: Vec<String> = (0..size)
                .map(|i| event(&format!("m{i}"), "unhealthy", ""))
                .collect();
            if round == 1 {
                // A catalogue change committed before an append is counted in what the
                // append reports: the pipeline then need not read the counters.
                let service = tocsin_model::catalogue::Service {
                    name: "checkout".into(),
                    spec: serde_json::from_value(serde_json::json!({ "team": "ops" }))
                        .expect("spec"),
                    updated_at: OffsetDateTime::now_utc(),
                    updated_by: "test".into(),
                };
                store.put_service(&service, 0).await.expect("service");
            }
            let records = accept(&format!("[{}]", events.join(",")));
            let before = store.journal_after(0, 1_000).await.expect("reads").len();
            let appended = store.append(records.clone()).await.expect("append");
            let first = appended
                .first
                .unwrap_or_else(|| panic!("{backend}: consecutive seqs"));
            assert_eq!(
                appended.versions,
                store.versions().await.expect("versions"),
                "{backend} round {round}: the counters as the append saw them"
            );
            let stored = store.journal_after(0, 1_000).await.expect("reads");
            let stored = &stored[before..];
            let bodies = store
                .journal_bodies(&stored.iter().map(|r| r.seq).collect::<Vec<_>>())
                .await
                .expect("bodies");
            assert_eq!(stored.len(), size, "{backend} round {round}");
            for (i, (record, row)) in records.iter().zip(stored).enumerate() {
                // What the pipeline would have been handed in memory.
                let fed = record.incoming(first + i as i64);
                assert_eq!(
                    (fed.seq, &fed.id, &fed.fingerprint, fed.status, &fed.monitor),
                    (row.seq, &row.id, &row.fingerprint, row.status, &row.monitor),
                    "{backend} round {round} row {i}"
                );
                let (labels, event) = &bodies[&row.seq];
                let same = |a: &str, b: &str| {
                    serde_json::from_str::<serde_json::Value>(a).expect("json")
                        == serde_json::from_str::<serde_json::Value>(b).expect("json")
                };
                assert!(same(&fed.labels, labels), "{backend}: labels");
                assert!(same(&fed.event, event), "{backend}: event");
            }
        }
    }
}

#[tokio::test]
async fn the_bodies_asked_for_are_read_whether_they_lie_close_together_or_far_apart() {
    for (backend, store, _guard) in backends().await {
        let events: Vec<String> = (0..300)
            .map(|i| event(&format!("m{i}"), "unhealthy", ""))
            .collect();
        append_all(store.as_ref(), &events).await;
        let rows = store.journal_after(0, 1_000).await.expect("reads");
        let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
        let all = store.journal_bodies(&seqs).await.expect("bodies");
        assert_eq!(all.len(), 300, "{backend}");
        // Most of the span (the pipeline behind a wide outage), and one seq in ten
        // (a steady stream with a few changes), each asked for out of order.
        let dense: Vec<i64> = seqs.iter().rev().copied().filter(|s| s % 10 != 3).collect();
        let sparse: Vec<i64> = seqs.iter().rev().copied().step_by(10).collect();
        for asked in [dense, sparse] {
            let bodies = store.journal_bodies(&asked).await.expect("bodies");
            let mut got: Vec<i64> = bodies.keys().copied().collect();
            let mut want = asked.clone();
            got.sort_unstable();
            want.sort_unstable();
            assert_eq!(got, want, "{backend}: exactly the seqs asked for");
            for seq in &asked {
                assert_eq!(bodies[seq], all[seq], "{backend}: the body of {seq}");
            }
        }
    }
}

#[tokio::test]
async fn a_new_incident_taken_from_its_batch_is_the_incident_read_back() {
    use tocsin_pipeline::{Config, worker};
    for (backend, store, _guard) in backends().await {
        // A steady alert first, so the batch also holds rows of no incident.
        store
            .append(accept(&event("steady", "healthy", "")))
            .await
            .expect("append");
        tocsin_tests::process(store.as_ref(), 100).await;
        let records = accept(&format!(
            "[{}, {}, {}]",
            event("steady", "healthy", ""),
            r#"{"alert": {"monitor": "disk", "status": "unhealthy", "message": "92% full"}, "context": {"service": "bender", "region": "eu", "host": "h1"}, "alerting": {"priority": "high", "channel": "C-OPS", "ticket-queue": "OPS"}}"#,
            r#"{"alert": {"monitor": "disk", "status": "unhealthy"}, "context": {"service": "bender", "region": "eu", "host": "h2"}}"#
        ));
        store.append(records).await.expect("append");
        let mut engine = worker::load(store.as_ref(), Config::default())
            .await
            .expect("loads");
        let mut rows = store
            .journal_after(engine.cursor(), 100)
            .await
            .expect("reads");
        let mut bodies = store
            .journal_bodies(&rows.iter().map(|r| r.seq).collect::<Vec<_>>())
            .await
            .expect("bodies");
        for row in &mut rows {
            (row.labels, row.event) = bodies.remove(&row.seq).expect("body");
        }
        let outcome = engine.process(rows, tocsin_model::clock::now_ms());
        store
            .commit(&outcome, engine.generation())
            .await
            .expect("commits");
        assert_eq!(outcome.incidents.len(), 1, "{backend}: one incident");
        let id = &outcome.incidents[0].id;
        let taken = store::incident_from(&outcome, id).expect("all of it is in the batch");
        let read = store
            .incident(id, None)
            .await
            .expect("reads")
            .expect("stored");
        assert_eq!(
            serde_json::to_value(&taken).expect("json"),
            serde_json::to_value(&read).expect("json"),
            "{backend}"
        );
        assert_eq!(taken.alert_list.len(), 2, "{backend}");
        for (a, b) in taken.alert_list.iter().zip(&read.alert_list) {
            assert_eq!(
                (&a.channel, &a.ticket_queue, a.event.is_some()),
                (&b.channel, &b.ticket_queue, b.event.is_some()),
                "{backend}: where to notify, from the latest event"
            );
        }
        let disk = taken.alert_list.iter().find(|a| a.labels["host"] == "h1");
        assert_eq!(
            disk.and_then(|a| a.channel.as_deref()),
            Some("C-OPS"),
            "{backend}"
        );
        assert!(
            store::incident_from(&outcome, "no-such-incident").is_none(),
            "{backend}"
        );
    }
}

#[tokio::test]
async fn appended_events_are_in_the_journal_and_update_alert_state() {
    for (backend, store, _guard) in backends().await {
        let first = accept(&format!(
            "[{}]",
            event("m", "unhealthy", r#", "since": "2026-01-01T00:00:00Z""#)
        ));
        let first_id = first[0].id().to_owned();
        store.append(first).await.expect("append");
        let alert = only_alert(store.as_ref()).await;
        assert_eq!(alert.status, Status::Unhealthy, "{backend}");
        assert_eq!(
            alert.since.unix_timestamp(),
            1_767_225_600,
            "{backend}: the reported since"
        );
        assert_eq!(alert.count, 1, "{backend}");
        assert_eq!(alert.last_event, first_id, "{backend}");

        // Same status without since: Tocsin keeps its since and counts up.
        store
            .append(accept(&event("m", "unhealthy", "")))
            .await
            .expect("append");
        let alert = only_alert(store.as_ref()).await;
        assert_eq!(
            (alert.since.unix_timestamp(), alert.count),
            (1_767_225_600, 2),
            "{backend}"
        );

        // A reported count wins over Tocsin's own.
        store
            .append(accept(&event("m", "unhealthy", r#", "count": 12"#)))
            .await
            .expect("append");
        assert_eq!(only_alert(store.as_ref()).await.count, 12, "{backend}");

        // A change of status starts afresh, at receipt time when no since is given.
        let before = OffsetDateTime::now_utc() - time::Duration::seconds(1);
        store
            .append(accept(&event("m", "healthy", "")))
            .await
            .expect("append");
        let alert = only_alert(store.as_ref()).await;
        assert_eq!(
            (alert.status, alert.count),
            (Status::Healthy, 1),
            "{backend}"
        );
        assert!(alert.since > before, "{backend}: since is the receipt time");
        assert!(alert.first_seen <= alert.last_seen, "{backend}");
        assert_eq!(
            store.lag().await.expect("lag"),
            0,
            "{backend}: processed events leave the journal"
        );
    }
}

#[tokio::test]
async fn events_of_one_identity_in_one_batch_apply_in_order() {
    for (backend, store, _guard) in backends().await {
        let batch = accept(&format!(
            "[{}, {}, {}, {}]",
            event("m", "unhealthy", ""),
            event("m", "unhealthy", ""),
            event("other", "unhealthy", ""),
            event("m", "healthy", r#", "count": 3"#)
        ));
        let expected: Vec<String> = batch.iter().map(|r| r.id().to_owned()).collect();
        store.append(batch).await.expect("append");
        assert_eq!(store.lag().await.expect("lag"), 4, "{backend}");
        assert_eq!(store.event_ids().await.expect("ids"), expected, "{backend}");
        assert_eq!(
            tocsin_tests::process(store.as_ref(), 5_000).await,
            4,
            "{backend}"
        );
        assert_eq!(store.lag().await.expect("lag"), 0, "{backend}");
        let alerts = store
            .alerts(&AlertQuery {
                monitor: Some("m".into()),
                limit: 10,
                ..AlertQuery::default()
            })
            .await
            .expect("lists");
        assert_eq!(alerts.len(), 1, "{backend}");
        assert_eq!(
            (alerts[0].status, alerts[0].count),
            (Status::Healthy, 3),
            "{backend}: the last event wins"
        );
        let ids = store.event_ids().await.expect("ids");
        assert_eq!(
            ids,
            [&expected[0], &expected[2], &expected[3]]
                .map(String::clone)
                .to_vec(),
            "{backend}: the steady repeat only counts; the changes are in the history"
        );
    }
}

#[tokio::test]
async fn alerts_filter_by_team_status_label_and_page() {
    for (backend, store, _guard) in backends().await {
        let mut events = Vec::new();
        for i in 0..25 {
            let status = if i % 5 == 0 { "unhealthy" } else { "healthy" };
            let team = if i % 2 == 0 { "bender" } else { "flexo" };
            events.push(format!(
                r#"{{"alert": {{"monitor": "m", "status": "{status}"}}, "context": {{"team": "{team}", "i": "{i}", "region": "r{}"}}}}"#,
                i % 3
            ));
        }
        append_all(store.as_ref(), &events).await;
        // In small batches, as the stage runs behind a busy journal.
        tocsin_tests::process(store.as_ref(), 7).await;
        let count = |query: AlertQuery| {
            let store = store.clone();
            async move {
                store
                    .alerts(&AlertQuery {
                        limit: 100,
                        ..query
                    })
                    .await
                    .expect("lists")
                    .len()
            }
        };
        assert_eq!(count(AlertQuery::default()).await, 25, "{backend}");
        assert_eq!(
            count(AlertQuery {
                team: Some("bender".into()),
                ..Default::default()
            })
            .await,
            13,
            "{backend}"
        );
        assert_eq!(
            count(AlertQuery {
                status: Some(Status::Unhealthy),
                ..Default::default()
            })
            .await,
            5,
            "{backend}"
        );
        let by_label = AlertQuery {
            labels: vec![
                ("region".into(), "r1".into()),
                ("team".into(), "flexo".into()),
            ],
            ..Default::default()
        };
        assert_eq!(count(by_label).await, 4, "{backend}: i = 1, 7, 13, 19");
        let missing_label = AlertQuery {
            labels: vec![("zone".into(), "r1".into())],
            ..Default::default()
        };
        assert_eq!(count(missing_label).await, 0, "{backend}");

        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = store
                .alerts(&AlertQuery {
                    after: after.clone(),
                    limit: 10,
                    ..Default::default()
                })
                .await
                .expect("page");
            seen.extend(page.iter().map(|a| a.fingerprint.clone()));
            match page.last() {
                Some(last) if page.len() == 10 => {
                    after = Some((last.team.clone(), last.fingerprint.clone()))
                }
                _ => break,
            }
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 25, "{backend}: paging visits every alert once");
    }
}

#[tokio::test]
async fn tokens_are_stored_hashed_and_revocable() {
    for (backend, store, _guard) in backends().await {
        let (secret, record) = auth::create(store.as_ref(), Grant::Team("bender".into()), "ci")
            .await
            .expect("create");
        assert!(
            secret.starts_with(&format!("tocsin_{}_", record.id)),
            "{backend}"
        );
        let caller = auth::authenticate(store.as_ref(), &secret)
            .await
            .expect("lookup")
            .expect("known");
        assert_eq!(
            (caller.team.as_deref(), caller.admin),
            (Some("bender"), false),
            "{backend}"
        );
        assert!(
            auth::authenticate(store.as_ref(), &format!("{secret}x"))
                .await
                .expect("lookup")
                .is_none()
        );

        assert!(
            store
                .revoke_token(&record.id, OffsetDateTime::now_utc())
                .await
                .expect("revoke"),
            "{backend}"
        );
        assert!(
            !store
                .revoke_token(&record.id, OffsetDateTime::now_utc())
                .await
                .expect("revoke"),
            "{backend}: once"
        );
        assert!(
            auth::authenticate(store.as_ref(), &secret)
                .await
                .expect("lookup")
                .is_none(),
            "{backend}"
        );
        let listed = store.tokens().await.expect("list");
        assert!(listed[0].revoked_at.is_some(), "{backend}");
        let rendered = serde_json::to_string(&listed).expect("serializes");
        assert!(
            !rendered.contains(&secret[20..]),
            "{backend}: the secret is never listed"
        );
    }
}

#[tokio::test]
async fn reopening_a_store_keeps_its_data_and_is_ready() {
    let (_dir, sqlite) = tocsin_tests::sqlite_url();
    let postgres = tocsin_tests::postgres_url().await;
    for url in [sqlite, postgres] {
        let store = store::open(&url, StoreOptions::default())
            .await
            .expect("opens");
        store
            .append(accept(&event("m", "unhealthy", "")))
            .await
            .expect("append");
        drop(store);
        let store = store::open(&url, StoreOptions::default())
            .await
            .expect("reopens: migrations are idempotent");
        store.ready().await.expect("ready");
        assert_eq!(store.lag().await.expect("lag"), 1, "{url}");
    }
}

#[tokio::test]
async fn an_unknown_database_url_is_refused_clearly() {
    let err = store::open("mysql://u:pw@h/db", StoreOptions::default())
        .await
        .err()
        .expect("refused")
        .to_string();
    assert_eq!(
        err,
        "unsupported database URL \"mysql://u:***@h/db\": use sqlite://PATH or postgres://…"
    );
}

/// A SQLite store in a fresh directory (kept alive by the guard), with its URL.
async fn fresh_sqlite() -> (tempfile::TempDir, String, Arc<dyn Store>) {
    let (dir, url) = tocsin_tests::sqlite_url();
    let store = store::open(&url, StoreOptions::default())
        .await
        .expect("opens");
    (dir, url, store)
}

/// The monitors of the first alerts, sorted.
async fn monitors(store: &dyn Store) -> Vec<String> {
    let alerts = store
        .alerts(&AlertQuery {
            limit: 10,
            ..AlertQuery::default()
        })
        .await
        .expect("lists");
    let mut monitors: Vec<String> = alerts.into_iter().map(|a| a.monitor).collect();
    monitors.sort_unstable();
    monitors
}

/// The tables of the SQLite file `url`'s own schema, without the journal's file attached.
async fn sqlite_tables(url: &str) -> Vec<String> {
    use sqlx::Connection as _;
    let mut conn = sqlx::SqliteConnection::connect(url).await.expect("opens");
    sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .fetch_all(&mut conn)
        .await
        .expect("lists tables")
}

/// A directory with `backend`'s migrations numbered below `below`: an older build's.
fn migrations_below(backend: &str, below: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let all = tocsin_tests::workspace()
        .join("core/store/migrations")
        .join(backend);
    for entry in std::fs::read_dir(&all).expect("migrations") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        if name.as_str() < below {
            std::fs::copy(&path, dir.path().join(&name)).expect("copy");
        }
    }
    dir
}

/// An older journal's rows: seq 41 (processed) and 42 (waiting).
fn old_journal_rows() -> Vec<tocsin_model::rows::Incoming> {
    [
        (41, event("processed", "unhealthy", "")),
        (42, event("waiting", "unhealthy", "")),
    ]
    .into_iter()
    .map(|(seq, json)| accept(&json).remove(0).incoming(seq))
    .collect()
}

#[tokio::test]
async fn sqlite_moves_an_older_databases_journal_to_its_own_file_keeping_every_seq() {
    use sqlx::Connection as _;
    let (dir, url) = tocsin_tests::sqlite_url();
    // The database as the builds before the journal's own file left it (migrations up
    // to 0007): seq 41 processed, 42 waiting, the counter at 42.
    let old = migrations_below("sqlite", "0008");
    let mut conn = sqlx::SqliteConnection::connect(&format!("{url}?mode=rwc"))
        .await
        .expect("opens");
    sqlx::migrate::Migrator::new(old.path())
        .await
        .expect("reads migrations")
        .run(&mut conn)
        .await
        .expect("old schema");
    let rows = old_journal_rows();
    for row in &rows {
        sqlx::query(
            "INSERT INTO journal (seq, id, team, fingerprint, source, received_at, monitor, status, \
             labels, reported_since, reported_count, event, trace_id) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?, NULL)",
        )
        .bind(row.seq)
        .bind(&row.id)
        .bind(&row.team)
        .bind(&row.fingerprint)
        .bind(&row.source)
        .bind(row.received_at)
        .bind(&row.monitor)
        .bind(row.status.as_str())
        .bind(&row.labels)
        .bind(&row.event)
        .execute(&mut conn)
        .await
        .expect("old journal row");
    }
    sqlx::query("UPDATE progress SET seq = 41 WHERE stage = 'pipeline'")
        .execute(&mut conn)
        .await
        .expect("cursor");
    conn.close().await.expect("closes");

    let store = store::open(&url, StoreOptions::default())
        .await
        .expect("opens and migrates");
    assert!(
        dir.path().join("tocsin.journal.db").exists(),
        "the journal has a file of its own"
    );
    assert!(
        !sqlite_tables(&url).await.contains(&"journal".to_owned()),
        "and left the main file"
    );
    let waiting = store.journal_after(41, 100).await.expect("reads");
    assert_eq!(
        waiting
            .iter()
            .map(|r| (r.seq, r.id.as_str()))
            .collect::<Vec<_>>(),
        vec![(42, rows[1].id.as_str())],
        "the waiting event kept its seq"
    );
    assert_eq!(store.lag().await.expect("lag"), 1);
    let appended = store
        .append(accept(&event("new", "unhealthy", "")))
        .await
        .expect("appends");
    assert_eq!(appended.first, Some(43), "no seq is reused");
    tocsin_tests::process(store.as_ref(), 100).await;
    assert_eq!(
        monitors(store.as_ref()).await,
        vec!["new", "waiting"],
        "the waiting and the new event are processed, the processed one not again"
    );
}

/// A PostgreSQL database from before the journal went into blocks (migration 0016):
/// its waiting events keep their seqs and are processed once, and new appends are
/// numbered above every seq drawn before.
#[tokio::test]
async fn postgres_turns_an_older_journals_rows_into_blocks_keeping_every_seq() {
    use sqlx::Connection as _;
    let url = tocsin_tests::postgres_url().await;
    let old = migrations_below("postgres", "0016");
    let mut conn = sqlx::PgConnection::connect(&url).await.expect("connects");
    sqlx::migrate::Migrator::new(old.path())
        .await
        .expect("reads migrations")
        .run(&mut conn)
        .await
        .expect("old schema");
    // Seq 41 processed, 42 waiting (with a trace id), the counter at 42.
    let rows = old_journal_rows();
    for row in &rows {
        sqlx::query(
            "INSERT INTO journal (seq, id, team, fingerprint, source, received_at, monitor, status, \
             labels, reported_since, reported_count, event, trace_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, 3, $10, $11)",
        )
        .bind(row.seq)
        .bind(&row.id)
        .bind(&row.team)
        .bind(&row.fingerprint)
        .bind(&row.source)
        .bind(row.received_at)
        .bind(&row.monitor)
        .bind(row.status.as_str())
        .bind(&row.labels)
        .bind(&row.event)
        .bind(format!("{:032x}", row.seq))
        .execute(&mut conn)
        .await
        .expect("old journal row");
    }
    sqlx::query("SELECT setval('journal_seq_seq', 42)")
        .execute(&mut conn)
        .await
        .expect("counter");
    sqlx::query("UPDATE progress SET seq = 41 WHERE stage = 'pipeline'")
        .execute(&mut conn)
        .await
        .expect("cursor");
    conn.close().await.expect("closes");

    let store = store::open(&url, StoreOptions::default())
        .await
        .expect("opens and migrates");
    let waiting = store.journal_after(41, 100).await.expect("reads");
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    let row = &waiting[0];
    assert_eq!((row.seq, row.id.as_str()), (42, rows[1].id.as_str()));
    assert_eq!(row.reported_count, Some(3));
    assert_eq!(
        row.trace_id.as_deref(),
        Some(format!("{:032x}", 42).as_str())
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&row.event).expect("event"),
        serde_json::from_str::<serde_json::Value>(&rows[1].event).expect("event"),
        "the event as sent"
    );
    assert_eq!(store.lag().await.expect("lag"), 1);
    assert!(
        store.event_ids().await.expect("ids").contains(&rows[1].id),
        "the waiting event is traceable"
    );
    let appended = store
        .append(accept(&event("new", "unhealthy", "")))
        .await
        .expect("appends");
    assert!(
        appended.first.is_some_and(|first| first > 42),
        "no seq is reused: {appended:?}"
    );
    assert_eq!(store.lag().await.expect("lag"), 2);
    tocsin_tests::process(store.as_ref(), 100).await;
    assert_eq!(
        monitors(store.as_ref()).await,
        vec!["new", "waiting"],
        "the waiting and the new event are processed, the processed one not again"
    );
    assert_eq!(store.lag().await.expect("lag"), 0);
}

#[tokio::test]
async fn sqlite_a_lost_journal_file_never_numbers_new_events_below_the_cursor() {
    let (dir, url, store) = fresh_sqlite().await;
    for n in 0..3 {
        store
            .append(accept(&event(&format!("m{n}"), "unhealthy", "")))
            .await
            .expect("appends");
    }
    assert_eq!(tocsin_tests::process(store.as_ref(), 100).await, 3);
    drop(store);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.path().join(format!("tocsin.journal.db{suffix}")));
    }

    let store = store::open(&url, StoreOptions::default())
        .await
        .expect("reopens with a new journal file");
    let appended = store
        .append(accept(&event("after", "unhealthy", "")))
        .await
        .expect("appends");
    assert_eq!(
        appended.first,
        Some(4),
        "numbered after the pipeline's cursor (3), where it reads"
    );
    assert_eq!(tocsin_tests::process(store.as_ref(), 100).await, 1);
    assert_eq!(
        monitors(store.as_ref()).await,
        vec!["after", "m0", "m1", "m2"],
        "the new event is processed"
    );
}

#[tokio::test]
async fn sqlite_an_append_the_database_refuses_stores_nothing_and_the_next_one_goes_through() {
    use sqlx::Connection as _;
    let (dir, _url, store) = fresh_sqlite().await;
    // No valid event makes SQLite refuse an insert: a trigger on the journal's file
    // stands in for a failing disk.
    let mut conn = sqlx::SqliteConnection::connect(&format!(
        "sqlite://{}",
        dir.path().join("tocsin.journal.db").display()
    ))
    .await
    .expect("opens the journal's file");
    sqlx::query(
        "CREATE TRIGGER refuse BEFORE INSERT ON journal WHEN NEW.monitor = 'refused' \
         BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
    )
    .execute(&mut conn)
    .await
    .expect("trigger");
    conn.close().await.expect("closes");

    for size in [2, 300] {
        // A small append (one trip to the writer) and a large one (statement by statement).
        let mut refused = accept(&format!(
            "[{}]",
            (0..size - 1)
                .map(|n| event(&format!("ok-{n}"), "unhealthy", ""))
                .collect::<Vec<_>>()
                .join(",")
        ));
        refused.extend(accept(&event("refused", "unhealthy", "")));
        assert!(
            store.append(refused).await.is_err(),
            "{size}: the append fails"
        );
        assert!(
            store
                .journal_after(0, 1_000)
                .await
                .expect("reads")
                .is_empty(),
            "{size}: none of its events is stored"
        );
    }
    let appended = store
        .append(accept(&event("after", "unhealthy", "")))
        .await
        .expect("the writer is usable again");
    let stored = store.journal_after(0, 1_000).await.expect("reads");
    assert_eq!(
        stored
            .iter()
            .map(|r| (r.seq, r.monitor.as_str()))
            .collect::<Vec<_>>(),
        vec![(appended.first.expect("seq"), "after")]
    );
}

/// Appends from several processes (each with a pool of its own, as `api` functions have)
/// run side by side on PostgreSQL and commit in any order. A pipeline reading while they
/// do must never move its cursor past a row committed a moment later: every event is
/// processed once, none skipped.
#[tokio::test]
async fn postgres_concurrent_appends_from_several_processes_are_all_processed_once() {
    use tocsin_pipeline::{Config, worker};
    let url = tocsin_tests::postgres_url().await;
    let mut writers = Vec::new();
    for _ in 0..3 {
        writers.push(
            store::open(&url, StoreOptions::default())
                .await
                .expect("postgres opens"),
        );
    }
    let pipeline = store::open(&url, StoreOptions::default())
        .await
        .expect("postgres opens");
    const TASKS: usize = 6;
    const BATCHES: usize = 40;
    const SIZE: usize = 25;
    let mut appends = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let store = writers[task % writers.len()].clone();
        appends.spawn(async move {
            for batch in 0..BATCHES {
                let events: Vec<String> = (0..SIZE)
                    .map(|i| event(&format!("t{task}-b{batch}-{i}"), "healthy", ""))
                    .collect();
                append_all(store.as_ref(), &events).await;
            }
        });
    }
    // The pipeline runs while the appends commit, batch after batch.
    let mut engine = worker::load(pipeline.as_ref(), Config::default())
        .await
        .expect("loads");
    let mut processed = 0;
    while !appends.is_empty() {
        processed += worker::step(
            pipeline.as_ref(),
            &mut engine,
            37,
            tocsin_model::clock::now_ms(),
        )
        .await
        .expect("step");
        while let Some(done) = appends.try_join_next() {
            done.expect("append task");
        }
    }
    processed += tocsin_tests::drain_journal(pipeline.as_ref(), &mut engine, 500).await;
    let total = TASKS * BATCHES * SIZE;
    assert_eq!(processed, total, "every appended event processed once");
    assert_eq!(pipeline.lag().await.expect("lag"), 0);
    let alerts = pipeline
        .alerts(&AlertQuery {
            limit: 100_000,
            ..AlertQuery::default()
        })
        .await
        .expect("lists");
    assert_eq!(alerts.len(), total, "one alert per identity, none skipped");
}

/// An append that drew its seq first but commits last (another process, a slow
/// connection) is not skipped: the pipeline waits for it rather than move its cursor
/// past its seq.
#[tokio::test]
async fn postgres_an_append_committing_after_a_later_one_is_not_skipped() {
    use sqlx::Connection as _;
    use tocsin_pipeline::{Config, worker};
    let url = tocsin_tests::postgres_url().await;
    let store = store::open(&url, StoreOptions::default())
        .await
        .expect("postgres opens");
    let mut slow = sqlx::PgConnection::connect(&url).await.expect("connects");
    let mut tx = slow.begin().await.expect("begins");
    // An append through `journal_append` (a transaction id, then a block's seqs), held
    // open. The block is written in the format migration 0016 documents.
    let slow_event = accept(&format!("[{}]", event("slow", "healthy", "")))
        .remove(0)
        .incoming(0);
    let body = |text: &str| serde_json::from_str::<serde_json::Value>(text).expect("json");
    let block = serde_json::json!([{
        "id": slow_event.id,
        "team": slow_event.team,
        "fp": slow_event.fingerprint,
        "source": slow_event.source,
        "received": slow_event.received_at,
        "monitor": slow_event.monitor,
        "status": slow_event.status.as_str(),
        "labels": body(&slow_event.labels),
        "since": null,
        "count": null,
        "event": body(&slow_event.event),
        "trace": null,
    }]);
    sqlx::query("SELECT * FROM journal_append($1, $2)")
        .bind(vec![block.to_string()])
        .bind(vec![1_i32])
        .execute(&mut *tx)
        .await
        .expect("append held open");
    store
        .append(accept(&format!("[{}]", event("fast", "healthy", ""))))
        .await
        .expect("append");
    let mut engine = worker::load(store.as_ref(), Config::default())
        .await
        .expect("loads");
    let early = worker::step(
        store.as_ref(),
        &mut engine,
        100,
        tocsin_model::clock::now_ms(),
    )
    .await
    .expect("step");
    assert_eq!(early, 0, "the later append waits behind the one in flight");
    tx.commit().await.expect("commits");
    let processed = tocsin_tests::drain_journal(store.as_ref(), &mut engine, 100).await;
    assert_eq!(processed, 2, "both appends processed");
    let monitors = monitors(store.as_ref()).await;
    assert_eq!(monitors, ["fast", "slow"]);
}

/// A pipeline loading its state while another process commits a batch (a function
/// killed with its last commit in flight, on a shared database) reads one point of the
/// store's history: it starts from that batch, rather than from state read half before
/// and half after it, which its first batch would then refuse.
#[tokio::test]
async fn postgres_a_batch_committed_while_the_pipeline_loads_is_seen_whole() {
    use sqlx::Connection as _;
    use tocsin_pipeline::{Config, worker};
    let url = tocsin_tests::postgres_url().await;
    let first = store::open(&url, StoreOptions::default())
        .await
        .expect("postgres opens");
    let second = store::open(&url, StoreOptions::default())
        .await
        .expect("postgres opens");
    first
        .append(accept(&format!("[{}]", event("early", "unhealthy", ""))))
        .await
        .expect("append");
    let mut running = worker::load(first.as_ref(), Config::default())
        .await
        .expect("loads");
    tocsin_tests::drain_journal(first.as_ref(), &mut running, 100).await;
    first
        .append(accept(&format!("[{}]", event("late", "unhealthy", ""))))
        .await
        .expect("append");
    // The first pipeline reads only up to its horizon, which waits for the transactions
    // in progress on the whole server (the blocker below is one, and so are other tests'
    // on the same server). It has passed the late event before the lock is taken.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !first
        .journal_after(0, 100)
        .await
        .expect("reads")
        .iter()
        .any(|row| row.monitor == "late")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the late event never became readable"
        );
    }
    // Held events are read after the commit counter: a lock on them stops the second
    // pipeline's load half-way while the first one commits its next batch.
    let mut blocker = sqlx::PgConnection::connect(&url).await.expect("connects");
    let mut tx = blocker.begin().await.expect("begins");
    sqlx::query("LOCK TABLE held IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await
        .expect("locks");
    let loading = tokio::spawn({
        let second = second.clone();
        async move { worker::load(second.as_ref(), Config::default()).await }
    });
    let mut watcher = sqlx::PgConnection::connect(&url).await.expect("connects");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (waiting,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%FROM held%'",
        )
        .fetch_one(&mut watcher)
        .await
        .expect("activity");
        if waiting > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the load never reached the held events"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let late = worker::step(
        first.as_ref(),
        &mut running,
        100,
        tocsin_model::clock::now_ms(),
    )
    .await
    .expect("the first pipeline commits");
    assert_eq!(late, 1);
    tx.rollback().await.expect("unlocks");
    let mut loaded = loading.await.expect("load task").expect("loads");
    assert_eq!(loaded.tracked(), 2, "both alerts, the late one included");
    assert_eq!(loaded.generation(), running.generation());
    let step = worker::step(
        second.as_ref(),
        &mut loaded,
        100,
        tocsin_model::clock::now_ms(),
    )
    .await;
    assert!(
        matches!(step, Ok(0)),
        "the late event was processed once, by the first pipeline: {step:?}"
    );
}

#[tokio::test]
async fn the_pipeline_reloads_every_alert_page_by_page_and_each_incidents_members() {
    for (backend, store, _guard) in backends().await {
        let events: Vec<String> = (0..7)
            .map(|n| {
                let status = if n == 6 { "healthy" } else { "unhealthy" };
                format!(
                    r#"{{"alert": {{"monitor": "M{n}", "status": "{status}"}},
                        "context": {{"service": "svc-{}", "region": "eu"}},
                        "grouping": {{"keys": ["${{context.service}}"]}}}}"#,
                    n % 2
                )
            })
            .collect();
        append_all(store.as_ref(), &events).await;
        tocsin_tests::process(store.as_ref(), 5_000).await;

        // Pages of two, each after the last id of the one before: every alert once, in
        // id order, with its state.
        let (mut rows, mut after) = (Vec::new(), None);
        loop {
            let page = store.tracked_page(after, 2).await.expect("page");
            assert!(page.len() <= 2, "{backend}: a page is bounded");
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            rows.extend(page);
        }
        assert_eq!(rows.len(), 7, "{backend}: every alert once");
        let ids: Vec<_> = rows.iter().map(|r| r.id).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{backend}: {ids:?}");
        let keys: std::collections::BTreeSet<_> =
            rows.iter().map(|r| (&r.team, &r.fingerprint)).collect();
        assert_eq!(keys.len(), 7, "{backend}: every alert once: {keys:?}");
        let unhealthy = rows
            .iter()
            .filter(|r| r.status == Status::Unhealthy)
            .count();
        assert_eq!(unhealthy, 6, "{backend}");
        assert!(rows.iter().all(|r| r.count == 1), "{backend}");

        // Two incidents (one per service), their six members listed under each.
        let snapshot = store.snapshot().await.expect("snapshot");
        assert_eq!(snapshot.incidents.len(), 2, "{backend}");
        let mut members: Vec<usize> = snapshot
            .members
            .iter()
            .map(|(incident, team, fingerprints)| {
                assert!(
                    snapshot.incidents.iter().any(|i| &i.id == incident),
                    "{backend}: {incident} is not an open incident"
                );
                for fingerprint in fingerprints {
                    assert!(
                        rows.iter().any(|r| &r.team == team
                            && &r.fingerprint == fingerprint
                            && r.status == Status::Unhealthy),
                        "{backend}: member {team}/{fingerprint} is no failing alert"
                    );
                }
                fingerprints.len()
            })
            .collect();
        members.sort_unstable();
        assert_eq!(members, vec![3, 3], "{backend}");
    }
}

/// The (merged keys, mark, tail) of a SQLite database: `alert_keys`' rows, the highest
/// id merged, and the alerts above it.
async fn sqlite_keys(url: &str) -> (i64, i64, i64) {
    use sqlx::Connection as _;
    let mut conn = sqlx::SqliteConnection::connect(url).await.expect("opens");
    sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM alert_keys), (SELECT id FROM alert_keys_mark), \
         (SELECT COUNT(*) FROM alerts WHERE id > (SELECT id FROM alert_keys_mark))",
    )
    .fetch_one(&mut conn)
    .await
    .expect("counts keys")
}

/// On SQLite an alert's key is merged into `alert_keys` in runs of 50,000 new identities
/// and is only in the alerts table's tail until then: the listing, its filters and
/// cursor, and an alert's history find every alert either way, in order.
#[tokio::test]
async fn sqlite_alerts_are_listed_and_found_whether_their_keys_are_merged_yet_or_not() {
    const ALERTS: usize = 52_000;
    let (_dir, url, store) = fresh_sqlite().await;
    for start in (0..ALERTS).step_by(4_000) {
        let events: Vec<String> = (start..(start + 4_000).min(ALERTS))
            .map(|i| {
                let status = if i % 4 == 0 { "unhealthy" } else { "healthy" };
                format!(
                    r#"{{"alert": {{"monitor": "m{}", "status": "{status}"}}, "context": {{"team": "bender", "i": "{i}"}}}}"#,
                    i % 3
                )
            })
            .collect();
        append_all(store.as_ref(), &events).await;
    }
    tocsin_tests::process(store.as_ref(), 5_000).await;
    assert_eq!(
        sqlite_keys(&url).await,
        (50_000, 50_000, 2_000),
        "ten batches of 5,000 new identities merged, the last 2,000 in the tail"
    );

    // Every alert once, in (team, fingerprint) order, page after page.
    let mut all: Vec<AlertState> = Vec::new();
    loop {
        let page = store
            .alerts(&AlertQuery {
                team: Some("bender".into()),
                after: all.last().map(|a| (a.team.clone(), a.fingerprint.clone())),
                limit: 1_000,
                ..Default::default()
            })
            .await
            .expect("page");
        let full = page.len() == 1_000;
        all.extend(page);
        if !full {
            break;
        }
    }
    assert_eq!(all.len(), ALERTS, "every alert listed");
    assert!(
        all.windows(2).all(|w| w[0].fingerprint < w[1].fingerprint),
        "in fingerprint order, none twice"
    );

    let count = |query: AlertQuery| {
        let store = store.clone();
        async move {
            store
                .alerts(&AlertQuery {
                    limit: 100_000,
                    ..query
                })
                .await
                .expect("lists")
        }
    };
    assert_eq!(
        count(AlertQuery {
            status: Some(Status::Unhealthy),
            monitor: Some("m1".into()),
            ..Default::default()
        })
        .await
        .len(),
        (0..ALERTS).filter(|i| i % 4 == 0 && i % 3 == 1).count(),
        "status and monitor filters cover merged and tail alike"
    );
    assert!(
        count(AlertQuery {
            team: Some("flexo".into()),
            ..Default::default()
        })
        .await
        .is_empty(),
        "another team has none"
    );

    // First failures (a healthy first report is tracked, not kept in the history), merged
    // and in the tail.
    for i in [0, 8, 50_000, 51_996] {
        let found = count(AlertQuery {
            team: Some("bender".into()),
            labels: vec![("i".into(), i.to_string())],
            ..Default::default()
        })
        .await;
        assert_eq!(found.len(), 1, "alert {i} by its label");
        let fingerprint = found[0].fingerprint.clone();
        let history = |team: &str| {
            let store = store.clone();
            let query = tocsin_model::views::HistoryQuery {
                team: Some(team.into()),
                fingerprint: Some(fingerprint.clone()),
                limit: 10,
                ..Default::default()
            };
            async move { store.history(&query).await.expect("history") }
        };
        let own = history("bender").await;
        assert_eq!(own.len(), 1, "alert {i}'s first report, by its fingerprint");
        assert_eq!(own[0].fingerprint, fingerprint);
        assert!(
            history("flexo").await.is_empty(),
            "not another team's, for alert {i}"
        );
    }
}

/// A SQLite database from before `alert_keys` (migration 0018): its alerts' keys are all
/// merged when it opens, and are listed and found as before.
#[tokio::test]
async fn sqlite_an_older_databases_alert_keys_are_merged_when_it_opens() {
    use sqlx::Connection as _;
    let (_dir, url, store) = fresh_sqlite().await;
    let events: Vec<String> = (0..3)
        .map(|i| event(&format!("m{i}"), "unhealthy", ""))
        .collect();
    append_all(store.as_ref(), &events).await;
    tocsin_tests::process(store.as_ref(), 100).await;
    drop(store);
    // Back to the schema before 0018: the key a unique index of the alerts table.
    let mut conn = sqlx::SqliteConnection::connect(&url).await.expect("opens");
    for statement in [
        "DROP TABLE alert_keys",
        "DROP TABLE alert_keys_mark",
        "CREATE UNIQUE INDEX alerts_by_key ON alerts (team, fingerprint)",
        "DELETE FROM _sqlx_migrations WHERE version = 18",
    ] {
        sqlx::query(statement)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
    conn.close().await.expect("closes");

    let store = store::open(&url, StoreOptions::default())
        .await
        .expect("opens and migrates");
    assert_eq!(sqlite_keys(&url).await, (3, 3, 0), "every key merged");
    let listed = store
        .alerts(&AlertQuery {
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("lists");
    assert_eq!(listed.len(), 3);
    let history = store
        .history(&tocsin_model::views::HistoryQuery {
            fingerprint: Some(listed[1].fingerprint.clone()),
            limit: 10,
            ..Default::default()
        })
        .await
        .expect("history");
    assert_eq!(history.len(), 1, "found by its merged key");

    // A new identity goes to the tail, a known one stays where it is.
    store
        .append(accept(&format!(
            "[{},{}]",
            event("m0", "healthy", ""),
            event("m3", "unhealthy", "")
        )))
        .await
        .expect("append");
    tocsin_tests::process(store.as_ref(), 100).await;
    assert_eq!(sqlite_keys(&url).await, (3, 3, 1));
    assert_eq!(monitors(store.as_ref()).await, vec!["m0", "m1", "m2", "m3"]);
}

/// The SQLite every Tocsin binary links is built by `.cargo/config.toml`'s
/// `LIBSQLITE3_FLAGS`: a page cache per connection (not one pool behind a global mutex
/// that the pipeline's writer shared with every reader) and no global count of its
/// allocations. Built without them, a million new failing identities took 15 % longer
/// and left 40 MiB more resident (docs/benchmarks.md).
#[tokio::test]
async fn sqlite_is_built_with_a_page_cache_per_connection_and_no_global_allocation_count() {
    use sqlx::Connection as _;
    let (_dir, url) = tocsin_tests::sqlite_url();
    let mut conn = sqlx::SqliteConnection::connect(&format!("{url}?mode=rwc"))
        .await
        .expect("opens");
    let options: Vec<String> = sqlx::query_scalar("PRAGMA compile_options")
        .fetch_all(&mut conn)
        .await
        .expect("compile options");
    assert!(
        !options.iter().any(|o| o == "ENABLE_MEMORY_MANAGEMENT"),
        "one page cache shared by every connection: {options:?}"
    );
    assert!(
        options.iter().any(|o| o == "DEFAULT_MEMSTATUS=0"),
        "SQLite counts its allocations under a global mutex: {options:?}"
    );
}
