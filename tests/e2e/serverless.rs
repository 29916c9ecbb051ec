//! The serverless stack end to end, with the real binaries: the four functions under
//! `cargo lambda watch`, SQS from moto, PostgreSQL, the fakes (`tocsin_tests::lambda`).
//! One stack serves every scenario in turn (starting one takes seconds, and the
//! emulator builds each function once).

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tocsin_tests::lambda::Stack;

const DD_TRIGGERED: &str = include_str!("../fixtures/datadog/triggered.json");
const DD_RECOVERED: &str = include_str!("../fixtures/datadog/recovered.json");

/// How long the queues may take to settle (a failed message comes back after the
/// test queues' 2 s visibility timeout).
const SETTLE: Duration = Duration::from_secs(90);

async fn incidents(stack: &Stack, token: &str, query: &str) -> Vec<Value> {
    let (status, body) = stack
        .api(Method::GET, &format!("/v1/incidents?{query}"), token, None)
        .await
        .expect("api answers");
    assert_eq!(status, 200, "{body}");
    body["incidents"].as_array().cloned().unwrap_or_default()
}

async fn post_events(stack: &Stack, token: &str, events: &Value) {
    let (mut status, mut body) = stack
        .api(Method::POST, "/v1/events", token, Some(&events.to_string()))
        .await
        .expect("api answers");
    // The emulator's own 500 (a problem document, not Tocsin's error body) was seen once
    // in CI with nothing in the function's log: a sender retries a 5xx, as this does
    // once. An append that did commit is then in the journal twice (Tocsin does not
    // deduplicate a sender's retries); the fleet's check below counts what was accepted.
    if status == 500 && body["title"] == "Internal Server Error" {
        eprintln!(
            "the emulator answered {body}; retrying once\n{}",
            stack.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        (status, body) = stack
            .api(Method::POST, "/v1/events", token, Some(&events.to_string()))
            .await
            .expect("api answers");
    }
    assert_eq!(status, 202, "{body}\n{}", stack.log());
}

/// Journal events the pipeline has not processed.
async fn lag(pool: &sqlx::PgPool) -> i64 {
    let (left,): (i64,) = sqlx::query_as(
        "SELECT COALESCE(SUM(last_seq - GREATEST(first_seq, p.seq + 1) + 1), 0)::BIGINT \
         FROM journal_blocks, progress p WHERE p.stage = 'pipeline' AND last_seq > p.seq",
    )
    .fetch_one(pool)
    .await
    .expect("lag");
    left
}

/// An SQS event of nudges, as Lambda would hand it to the pipeline.
fn nudges(stack: &Stack, ids: &[&str]) -> Value {
    let records: Vec<Value> = ids
        .iter()
        .map(|id| {
            json!({"messageId": id, "receiptHandle": id, "body": "{\"kind\":\"journal\"}",
                   "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
                   "eventSource": "aws:sqs", "eventSourceARN": stack.pipeline.arn,
                   "awsRegion": "us-east-1"})
        })
        .collect();
    json!({ "Records": records })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_functions_under_the_lambda_emulator_over_sqs_and_postgres() {
    let stack = Stack::start(&[("TOCSIN_RESOLVE_GRACE", "2s")])
        .await
        .expect("the stack starts");
    let bender = stack.token("bender").expect("token");

    // A Datadog webhook through `api` opens an incident in PostgreSQL: one page, one
    // Slack message.
    let (status, receipt) = stack
        .api(
            Method::POST,
            "/v1/webhooks/datadog",
            &bender,
            Some(DD_TRIGGERED),
        )
        .await
        .expect("api answers");
    assert_eq!(status, 202, "{receipt}\n{}", stack.log());
    stack.settle(SETTLE).await.expect("settles");
    let open = incidents(&stack, &bender, "state=open").await;
    assert_eq!(open.len(), 1, "{open:?}\n{}", stack.log());
    let id = open[0]["id"].as_str().expect("id").to_owned();
    assert_eq!(open[0]["service"], "checkout");
    assert_eq!(
        stack.fakes.pages(),
        std::slice::from_ref(&id),
        "one page\n{}",
        stack.log()
    );
    let posts: Vec<_> = stack
        .fakes
        .requests_to("slack")
        .into_iter()
        .filter(|r| r.path.ends_with("chat.postMessage"))
        .collect();
    assert_eq!(posts.len(), 1, "one Slack message: {posts:?}");
    assert!(
        stack.fakes.violations().is_empty(),
        "{:?}",
        stack.fakes.violations()
    );

    // `tick` resolves it after its grace period (2 s here): the recovery makes it
    // resolving, and only the tick's wake-up after the grace resolves it.
    let (status, _) = stack
        .api(
            Method::POST,
            "/v1/webhooks/datadog",
            &bender,
            Some(DD_RECOVERED),
        )
        .await
        .expect("api answers");
    assert_eq!(status, 202);
    stack.settle(SETTLE).await.expect("settles");
    let (_, detail) = stack
        .api(Method::GET, &format!("/v1/incidents/{id}"), &bender, None)
        .await
        .expect("api answers");
    assert_eq!(detail["state"], "resolving", "{detail}");
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let ticked = stack
        .invoke("tick", &json!({"source": "aws.events"}))
        .await
        .expect("tick");
    assert_eq!(ticked["pipeline"], true, "{ticked}");
    stack.settle(SETTLE).await.expect("settles");
    let (_, detail) = stack
        .api(Method::GET, &format!("/v1/incidents/{id}"), &bender, None)
        .await
        .expect("api answers");
    assert_eq!(detail["state"], "resolved", "{detail}\n{}", stack.log());

    // A poison message lands in the dead-letter queue with its error; the rest of its
    // batch is processed.
    let (status, _) = stack
        .api(
            Method::POST,
            "/v1/events",
            &bender,
            Some(r#"[{"alert": {"monitor": "disk", "status": "unhealthy"}, "context": {"service": "storage"}, "alerting": {"priority": "high"}}]"#),
        )
        .await
        .expect("api answers");
    assert_eq!(status, 202);
    stack
        .send(&stack.pipeline, "this is no Tocsin message")
        .await
        .expect("sends");
    let polled = stack
        .poll(&stack.pipeline, "pipeline")
        .await
        .expect("polls");
    assert_eq!(polled.received, 2, "the nudge and the poison in one batch");
    assert_eq!(polled.failed, 0, "the poison was moved, not reported");
    let dead = stack
        .dead_letters(&stack.pipeline)
        .await
        .expect("reads the dlq");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].body, "this is no Tocsin message");
    let error = dead[0].error.as_deref().unwrap_or_default();
    assert!(error.starts_with("not a Tocsin queue message"), "{error}");
    stack.settle(SETTLE).await.expect("settles");
    assert_eq!(
        incidents(&stack, &bender, "state=open&service=storage")
            .await
            .len(),
        1,
        "the nudge beside the poison was processed"
    );

    // Two `pipeline` invocations at once on one grouping key make one incident.
    let events: Vec<Value> = (0..40)
        .map(|i| {
            json!({"alert": {"monitor": format!("shard-{i}"), "status": "unhealthy"},
                        "context": {"service": "payments", "region": "eu"},
                        "grouping": {"keys": ["${context.service}"]},
                        "alerting": {"priority": "high"}})
        })
        .collect();
    post_events(&stack, &bender, &Value::Array(events)).await;
    let (a, b) = (nudges(&stack, &["a"]), nudges(&stack, &["b"]));
    let (first, second) = tokio::join!(stack.invoke("pipeline", &a), stack.invoke("pipeline", &b));
    for answer in [first, second] {
        let answer = answer.expect("pipeline answers");
        assert_eq!(answer["batchItemFailures"], json!([]), "{answer}");
    }
    stack.settle(SETTLE).await.expect("settles");
    let payments = incidents(&stack, &bender, "service=payments").await;
    assert_eq!(payments.len(), 1, "{payments:?}");
    let (_, detail) = stack
        .api(
            Method::GET,
            &format!("/v1/incidents/{}", payments[0]["id"].as_str().expect("id")),
            &bender,
            None,
        )
        .await
        .expect("api answers");
    assert_eq!(
        detail["alert_list"].as_array().map(Vec::len),
        Some(40),
        "{detail}"
    );
    assert_eq!(
        stack.fakes.pages().len(),
        3,
        "checkout, storage, payments: one page each"
    );

    // A filter plugin uploaded through `api` runs in `pipeline` (another process, which
    // loads it at its next batch).
    let (status, body) = stack
        .api_bytes(
            Method::PUT,
            "/v1/plugins/retired-hosts?kind=filter",
            &bender,
            Some((
                "application/wasm",
                tocsin_tests::plugins::component("retired-hosts"),
            )),
        )
        .await
        .expect("api answers");
    assert_eq!(status, 201, "{body}\n{}", stack.log());
    let filters =
        json!([{"type": "plugin", "params": {"name": "retired-hosts", "hosts": ["web-7"]}}]);
    let events: Vec<Value> = ["web-7", "web-1"]
        .iter()
        .map(|host| {
            json!({"alert": {"monitor": "disk", "status": "unhealthy"},
                           "context": {"service": "archive", "host": host},
                           "filters": filters})
        })
        .collect();
    post_events(&stack, &bender, &Value::Array(events)).await;
    stack.settle(SETTLE).await.expect("settles");
    let (_, dropped) = stack
        .api(Method::GET, "/v1/history?outcome=dropped", &bender, None)
        .await
        .expect("api answers");
    let reasons: Vec<&str> = dropped["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["reason"].as_str())
        .collect();
    assert_eq!(
        reasons,
        ["plugin:retired-hosts: host web-7 is retired"],
        "{dropped}\n{}",
        stack.log()
    );

    // Killing `pipeline` mid-batch loses nothing and doubles nothing: the batch comes
    // back, and the journal's cursor, committed with each batch's effects, says where
    // to resume.
    let pool = sqlx::PgPool::connect(&stack.database_url)
        .await
        .expect("connects");
    const FLEET: usize = 20_000;
    for chunk in 0..FLEET / 1_000 {
        let events: Vec<Value> = (0..1_000)
            .map(|i| json!({"alert": {"monitor": "ping", "status": "healthy"},
                            "context": {"service": "fleet", "instance": format!("i-{}", chunk * 1_000 + i)}}))
            .collect();
        post_events(&stack, &bender, &Value::Array(events)).await;
    }
    // What the journal holds: the fleet's reports, once each, unless the emulator
    // answered an append that did commit with its own 500 and `post_events` sent it
    // again (then one chunk twice, as a sender's retry would). Nothing processes the
    // journal until the poller below invokes `pipeline`.
    let accepted = lag(&pool).await;
    assert!(
        accepted == FLEET as i64 || accepted == FLEET as i64 + 1_000,
        "the fleet's reports are in the journal: {accepted}"
    );
    let poller = async {
        stack
            .poll(&stack.pipeline, "pipeline")
            .await
            .expect("polls")
    };
    let killer = async {
        // Once the pipeline has committed part of the journal, not all of it.
        loop {
            let left = lag(&pool).await;
            if left < accepted {
                assert!(left > 0, "the batch ended before the kill");
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let killed = stack.kill_function("pipeline");
        // Lambda replaces an instance that died; the emulator does not, so it starts
        // again (the invocation in flight fails with it, as the crashed one would).
        stack.restart_emulator().expect("a new instance");
        killed
    };
    let (polled, killed) = tokio::join!(poller, killer);
    assert!(killed >= 1, "a pipeline instance was running");
    assert_eq!(
        polled.failed, polled.received,
        "the killed invocation's batch comes back"
    );
    stack.settle(SETTLE).await.expect("settles");
    let (alerts, fingerprints): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COUNT(DISTINCT fingerprint) FROM alerts WHERE labels->>'service' = 'fleet'",
    )
    .fetch_one(&pool)
    .await
    .expect("counts");
    assert_eq!(
        (alerts, fingerprints),
        (FLEET as i64, FLEET as i64),
        "nothing lost"
    );
    let (entries, ids): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COUNT(DISTINCT id) FROM history WHERE fingerprint IN \
         (SELECT fingerprint FROM alerts WHERE labels->>'service' = 'fleet')",
    )
    .fetch_one(&pool)
    .await
    .expect("counts");
    assert_eq!(entries, ids, "no event processed twice");
    let (counted,): (i64,) = sqlx::query_as(
        "SELECT COALESCE(SUM(count), 0)::int8 FROM alerts WHERE labels->>'service' = 'fleet'",
    )
    .fetch_one(&pool)
    .await
    .expect("counts");
    assert_eq!(counted, accepted, "each accepted report counted once");
}
