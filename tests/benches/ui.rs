//! The web UI's weight and speed with a realistic amount of data: 10,000 incidents (1 %
//! of them high priority) and 10,000 alerts in a `tocsin serve` on SQLite. Each page is
//! fetched sequentially over loopback, signed in as the team, and timed from request to
//! the last byte (the server's time plus loopback's, which is tens of microseconds);
//! the API's own list is timed beside it to show what rendering adds.
//!
//! `cargo bench -p tocsin-tests --bench ui [-- --incidents N --requests N]`

#![allow(clippy::print_stdout, missing_docs)]

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};
use tocsin_tests::{Server, create_token, sqlite_url};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Request headers: the session cookie, or the API's bearer token.
type Headers<'a> = &'a [(&'a str, &'a str)];

struct Settings {
    incidents: usize,
    requests: usize,
}

fn settings() -> anyhow::Result<Settings> {
    let mut settings = Settings {
        incidents: 10_000,
        requests: 300,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--incidents" => settings.incidents = args.next().context("--incidents N")?.parse()?,
            "--requests" => settings.requests = args.next().context("--requests N")?.parse()?,
            "--bench" => {}
            other => bail!("unknown option {other}"),
        }
    }
    Ok(settings)
}

/// Times `requests` sequential GETs of `path`; returns (p50, p99, mean) in ms and the
/// body's size.
async fn time(
    http: &reqwest::Client,
    url: &str,
    headers: &[(&str, &str)],
    requests: usize,
) -> anyhow::Result<(f64, f64, f64, usize)> {
    let mut took = Vec::with_capacity(requests);
    let mut size = 0;
    for _ in 0..requests {
        let mut request = http.get(url);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let started = Instant::now();
        let response = request.send().await?;
        let status = response.status();
        let body = response.bytes().await?;
        took.push(started.elapsed());
        if !status.is_success() {
            bail!("{url}: {status}");
        }
        size = body.len();
    }
    took.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let p = |q: f64| ms(took[((took.len() as f64 * q).ceil() as usize).saturating_sub(1)]);
    let mean = took.iter().map(|d| ms(*d)).sum::<f64>() / took.len() as f64;
    Ok((p(0.50), p(0.99), mean, size))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let settings = settings()?;
    let (_dir, database) = sqlite_url();
    let token = create_token(&database, &["--team", "bender"])?;
    let server = Server::start(&database, &[], &[])?;
    let base = server.url.clone();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;

    // Seed: one incident per monitor (the grouping key is monitor, service, region).
    let seeding = Instant::now();
    for chunk in (0..settings.incidents).collect::<Vec<_>>().chunks(1_000) {
        let events: Vec<Value> = chunk
            .iter()
            .map(|n| {
                json!({
                    "alert": {"monitor": format!("Check-{n}"), "status": "unhealthy",
                              "message": format!("check {n} failed: HTTP 503 from upstream")},
                    "context": {"service": format!("svc-{}", n % 50), "region": "eu-west-1", "instance": format!("i-{n}")},
                    "alerting": {"priority": if n % 100 == 0 { "high" } else { "low" }},
                })
            })
            .collect();
        let answer = http
            .post(format!("{base}/v1/events"))
            .bearer_auth(&token)
            .json(&events)
            .send()
            .await?;
        if answer.status() != 202 {
            bail!("seeding: {}", answer.status());
        }
    }
    let last = format!("Check-{}", settings.incidents - 1);
    let deadline = Instant::now() + Duration::from_secs(300);
    let newest = loop {
        let list: Value = http
            .get(format!("{base}/v1/incidents?limit=1"))
            .bearer_auth(&token)
            .send()
            .await?
            .json()
            .await?;
        let first = list["incidents"][0].clone();
        if first["title"]
            .as_str()
            .is_some_and(|t| t.starts_with(&last))
        {
            break first;
        }
        if Instant::now() > deadline {
            bail!("the pipeline did not open {} incidents", settings.incidents);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!(
        "seeded {} incidents and alerts in {:.1} s",
        settings.incidents,
        seeding.elapsed().as_secs_f64()
    );

    let login = http
        .post(format!("{base}/ui/login"))
        .form(&[("token", token.as_str())])
        .send()
        .await?;
    let cookie = login.headers()["set-cookie"]
        .to_str()?
        .split(';')
        .next()
        .context("cookie")?
        .to_owned();
    // A cursor half-way down the list: a deep page.
    let middle: Value = http
        .get(format!("{base}/v1/incidents?limit=1000"))
        .bearer_auth(&token)
        .send()
        .await?
        .json()
        .await?;
    let deep = middle["incidents"][settings.incidents.min(1000) / 2]["id"]
        .as_str()
        .context("an id")?
        .to_owned();
    let id = newest["id"].as_str().context("id")?.to_owned();

    let session = [("cookie", cookie.as_str())];
    let bearer = format!("Bearer {token}");
    let api = [("authorization", bearer.as_str())];
    let pages: Vec<(String, String, Headers)> = vec![
        (
            "API GET /v1/incidents?limit=50 (JSON, for comparison)".into(),
            "/v1/incidents?limit=50".into(),
            &api,
        ),
        (
            "incident list, first page (50 of 10,000)".into(),
            "/ui/incidents".into(),
            &session,
        ),
        (
            "incident list, live refresh fragment".into(),
            "/ui/incidents/table".into(),
            &session,
        ),
        (
            "incident list, a deep page (before= cursor)".into(),
            format!("/ui/incidents?before={deep}"),
            &session,
        ),
        (
            "incident list, high priority only (1 %)".into(),
            "/ui/incidents?priority=high".into(),
            &session,
        ),
        (
            "incident list, open + one service".into(),
            "/ui/incidents?state=open&service=svc-7".into(),
            &session,
        ),
        (
            "incident detail".into(),
            format!("/ui/incidents/{id}"),
            &session,
        ),
        (
            "alerts (200 of 10,000)".into(),
            "/ui/alerts".into(),
            &session,
        ),
        (
            "alerts, label filter".into(),
            "/ui/alerts?labels=service:svc-7".into(),
            &session,
        ),
        (
            "events (200 of 10,000)".into(),
            "/ui/events".into(),
            &session,
        ),
        (
            "suppression form".into(),
            "/ui/suppressions/new".into(),
            &session,
        ),
        ("stylesheet".into(), "/ui/assets/ui.css".into(), &session),
        ("script".into(), "/ui/assets/ui.js".into(), &session),
    ];
    println!(
        "\n{:<56} {:>9} {:>9} {:>9} {:>10}",
        "page", "p50 ms", "p99 ms", "mean ms", "bytes"
    );
    let mut weights = std::collections::BTreeMap::new();
    for (name, path, headers) in &pages {
        // Warm up, then measure.
        time(&http, &format!("{base}{path}"), headers, 10).await?;
        let (p50, p99, mean, size) =
            time(&http, &format!("{base}{path}"), headers, settings.requests).await?;
        println!("{name:<56} {p50:>9.2} {p99:>9.2} {mean:>9.2} {size:>10}");
        weights.insert(path.clone(), size);
    }
    let assets = weights["/ui/assets/ui.css"] + weights["/ui/assets/ui.js"];
    println!(
        "\npage weight, first visit of the incident list: {} bytes HTML + {} bytes CSS and JS = {} bytes, no images or fonts (assets cached 5 min after)",
        weights["/ui/incidents"],
        assets,
        weights["/ui/incidents"] + assets
    );
    Ok(())
}
