//! The web UI in a real browser: Debian's chromium, headless, driven through chromedriver
//! (WebDriver) against a real `tocsin serve` with notifiers on the fakes. Each test signs
//! in as a team and does what an on-call engineer or a plugin author does. With
//! `TOCSIN_UI_SCREENSHOTS=DIR`, each page is saved as a PNG in DIR (docs/ui/ is made so).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tocsin_tests::fakes::{Fakes, Scripted};
use tocsin_tests::{Killed, Server, create_token, free_port, sqlite_url};

/// A headless chromium behind its own chromedriver, both stopped when dropped.
struct Browser {
    client: Client,
    _driver: Killed,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Self {
        let port = free_port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts (infra/deps.sh installs chromium-driver)");
        let driver = Killed(driver);
        let profile = tempfile::tempdir().expect("profile dir");
        // Without the background-networking flags chromium tries Google's hosts, which
        // this machine's closed network refuses.
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-quic",
            "--no-first-run",
            "--window-size=1280,1000",
        ]
        .iter()
        .map(|a| (*a).to_owned())
        .chain([format!("--user-data-dir={}", profile.path().display())])
        .collect::<Vec<_>>();
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({"binary": "/usr/bin/chromium", "args": args}),
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            {
                Ok(client) => break client,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("chromedriver did not start a session: {e}"),
            }
        };
        Self {
            client,
            _driver: driver,
            _profile: profile,
        }
    }

    async fn goto(&self, url: &str) {
        self.client.goto(url).await.expect("navigates");
    }

    async fn css(&self, selector: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(selector))
            .await
            .unwrap_or_else(|e| panic!("no {selector} on the page: {e}"))
    }

    async fn fill(&self, selector: &str, text: &str) {
        let field = self.css(selector).await;
        field.clear().await.expect("clears");
        field.send_keys(text).await.expect("types");
    }

    async fn click(&self, selector: &str) {
        self.css(selector).await.click().await.expect("clicks");
    }

    /// The page's visible text.
    async fn text(&self) -> String {
        // The page may be replaced between finding its body and reading it (a form's
        // answer arriving): read the new one.
        for _ in 0..50 {
            if let Ok(text) = self.css("body").await.text().await {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the page's text could not be read");
    }

    /// Waits until the page's text contains `needle`, reloading it if `reload`.
    async fn wait_for_text(&self, needle: &str, reload: bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = self.text().await;
            if text.contains(needle) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "\"{needle}\" never showed; the page says:\n{text}"
            );
            if reload {
                self.client.refresh().await.expect("reloads");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn sign_in(&self, base: &str, token: &str) {
        self.goto(&format!("{base}/ui/incidents")).await;
        let url = self.client.current_url().await.expect("url");
        assert_eq!(
            url.path(),
            "/ui/login",
            "a page without a session asks to sign in"
        );
        self.fill("#token", token).await;
        self.click("main button[type=submit]").await;
        self.wait_for_text("Signed in as team", false).await;
    }

    /// Saves the page as `docs/ui/NAME.png` when asked to (`TOCSIN_UI_SCREENSHOTS`).
    async fn shot(&self, name: &str) {
        let Some(dir) = std::env::var_os("TOCSIN_UI_SCREENSHOTS").map(PathBuf::from) else {
            return;
        };
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        // The whole page, not just the window: grow the window to the page's height.
        let (width, height) = self.client.get_window_size().await.expect("window size");
        let full = self
            .client
            .execute(
                // The page's height plus the browser's own (the window is larger than
                // the page's viewport).
                "return document.documentElement.scrollHeight + window.outerHeight - window.innerHeight;",
                vec![],
            )
            .await
            .expect("page height")
            .as_u64()
            .unwrap_or(height)
            .clamp(height, 4_000);
        let size = |n: u64| u32::try_from(n).unwrap_or(4_000);
        let resize = self.client.set_window_size(size(width), size(full));
        resize.await.expect("resize");
        let png = self.client.screenshot().await.expect("screenshot");
        let resize = self.client.set_window_size(size(width), size(height));
        resize.await.expect("resize back");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("screenshot written");
    }
}

/// The notifiers file: bender pages PagerDuty and chats in Slack, one attempt each so a
/// refused page is dead at once.
fn notifiers(fakes: &Fakes) -> String {
    let url = &fakes.url;
    format!(
        r##"
public-url: http://tocsin.test
retry: {{ attempts: 1, first: 10ms, max: 50ms }}
notifiers:
  pd: {{ kind: pagerduty, routing-key: "R0UT1NGKEY0000000000000000000000", url: "{url}" }}
  slack: {{ kind: slack, token: xoxb-test-token, channel: "#ops", url: "{url}" }}
routes:
  - {{ team: bender, page: pd, chat: slack }}
"##
    )
}

fn event(monitor: &str, instance: &str, status: &str, priority: &str, message: &str) -> Value {
    json!({
        "alert": {"monitor": monitor, "status": status, "message": message},
        "context": {"service": "bender-web", "region": "eu-west-1a", "instance": instance},
        "alerting": {"priority": priority},
    })
}

/// A running server, the fakes it notifies, and a token of teams bender and flexo.
struct Stack {
    server: Server,
    fakes: Fakes,
    http: reqwest::Client,
    bender: String,
    flexo: String,
    _dir: tempfile::TempDir,
}

impl Stack {
    async fn start() -> Self {
        let fakes = Fakes::start().await.expect("fakes");
        let (dir, database) = sqlite_url();
        let file = dir.path().join("notifiers.yaml");
        std::fs::write(&file, notifiers(&fakes)).expect("notifiers file");
        let bender = create_token(&database, &["--team", "bender"]).expect("token");
        let flexo = create_token(&database, &["--team", "flexo"]).expect("token");
        let server = Server::start(
            &database,
            &["--notifiers", file.to_str().expect("utf-8 path")],
            &[],
        )
        .expect("server");
        Self {
            server,
            fakes,
            http: reqwest::Client::new(),
            bender,
            flexo,
            _dir: dir,
        }
    }

    async fn api(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.server.url))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("API answers");
        let status = response.status();
        let value = response.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {value}");
        value
    }

    async fn get(&self, token: &str, path: &str) -> Value {
        self.api(token, reqwest::Method::GET, path, None).await
    }

    async fn post_events(&self, token: &str, events: Value) {
        self.api(token, reqwest::Method::POST, "/v1/events", Some(events))
            .await;
    }

    /// Waits until `token`'s incident list has one whose title contains `needle`.
    async fn incident(&self, token: &str, needle: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let list = self
                .api(token, reqwest::Method::GET, "/v1/incidents", None)
                .await;
            if let Some(found) = list["incidents"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|i| i["title"].as_str().is_some_and(|t| t.contains(needle)))
            {
                return found.clone();
            }
            assert!(Instant::now() < deadline, "no incident {needle}: {list}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engineer_suppresses_acknowledges_closes_and_retries_through_the_ui() {
    let stack = Stack::start().await;
    let base = stack.server.url.clone();
    // bender's first page is refused once: with one attempt, it is dead.
    stack.fakes.script(
        "pagerduty",
        [Scripted {
            status: 503,
            ..Scripted::default()
        }],
    );
    // A fleet of 30 steady alerts in one incident, and an alert whose message is hostile
    // in its own high-priority incident.
    let hostile = "<script>window.__xss = 1</script><img src=x onerror=\"window.__xss = 2\">";
    let mut fleet: Vec<Value> = (1..=30)
        .map(|n| {
            event(
                "DiskFull",
                &format!("web-{n}"),
                "unhealthy",
                "low",
                "95% used",
            )
        })
        .collect();
    fleet.push(event("Http5xx", "web-1", "unhealthy", "high", hostile));
    stack.post_events(&stack.bender, Value::Array(fleet)).await;
    let flexo_event = json!({"alert": {"monitor": "FlexoSecretMonitor", "status": "unhealthy"},
                             "context": {"service": "flexo-api", "region": "us-east-1", "instance": "f-1"}});
    stack.post_events(&stack.flexo, flexo_event).await;
    let hot = stack.incident(&stack.bender, "Http5xx").await;
    let hot_id = hot["id"].as_str().expect("id").to_owned();
    let flexo_incident = stack.incident(&stack.flexo, "FlexoSecretMonitor").await;
    let flexo_id = flexo_incident["id"].as_str().expect("id").to_owned();
    stack.incident(&stack.bender, "DiskFull").await;

    let browser = Browser::start().await;
    browser.sign_in(&base, &stack.bender).await;

    // The list: bender's incidents, newest first, none of flexo's.
    let list = browser.wait_for_text("Http5xx", false).await;
    assert!(list.contains("DiskFull"), "{list}");
    assert!(!list.contains("FlexoSecretMonitor"), "{list}");
    browser.shot("incidents").await;

    // Refreshed live: a new incident shows without navigating.
    stack
        .post_events(
            &stack.bender,
            event("CertExpiry", "web-7", "unhealthy", "low", "12 days left"),
        )
        .await;
    browser.wait_for_text("CertExpiry", false).await;

    // The hostile message is shown as text, and nothing in it ran.
    browser.goto(&format!("{base}/ui/incidents/{hot_id}")).await;
    let page = browser.wait_for_text("Latest message", false).await;
    assert!(page.contains("<script>window.__xss = 1</script>"), "{page}");
    let ran = browser
        .client
        .execute("return typeof window.__xss;", vec![])
        .await
        .expect("script runs");
    assert_eq!(ran, json!("undefined"), "the alert's message must not run");
    let images = browser
        .client
        .find_all(Locator::Css("main img"))
        .await
        .expect("query");
    assert!(images.is_empty(), "no element comes from the message");
    browser.shot("incident").await;

    // The refused page is dead, with its error and a retry button; retrying delivers it.
    browser.goto(&format!("{base}/ui/deliveries")).await;
    browser.wait_for_text("Retry", true).await;
    let page = browser.text().await;
    assert!(page.contains("503"), "the dead page says why: {page}");
    browser.shot("deliveries").await;
    browser.click("form[action$='/retry'] button").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while stack.fakes.pages().is_empty() {
        assert!(Instant::now() < deadline, "the retried page never arrived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    browser.goto(&format!("{base}/ui/deliveries")).await;
    let page = browser.wait_for_text("No notifications.", true).await;
    assert!(page.contains("Dead notifications"), "{page}");

    // Acknowledge, then close.
    browser.goto(&format!("{base}/ui/incidents/{hot_id}")).await;
    browser.click("form[action$='/ack'] button").await;
    browser.wait_for_text("Acknowledged", false).await;
    browser.click("form[action$='/close'] button").await;
    browser.wait_for_text("Closed", false).await;
    let closed = stack
        .get(&stack.bender, &format!("/v1/incidents/{hot_id}"))
        .await;
    assert_eq!(closed["state"], "closed", "{closed}");
    assert!(closed["acked_by"].is_string(), "{closed}");

    // A suppression through the form: the live preview shows what the draft matches, and
    // the guard refuses the whole service (all 32 known alerts) before saving.
    browser.goto(&format!("{base}/ui/suppressions/new")).await;
    browser
        .fill("#description", "Patching web-1 and the new web-99")
        .await;
    browser.fill("#for", "2h").await;
    browser
        .fill("#metadata", "engineer=bpannell\nticket=BENDER-42")
        .await;
    browser.fill("#targets", "service=bender-web").await;
    let refused = browser.wait_for_text("Refused:", false).await;
    assert!(refused.contains("Matches 32 of 32"), "{refused}");
    browser.shot("suppression-refused").await;
    browser
        .click("#draft button[type=submit]:not([formaction])")
        .await;
    let page = browser.wait_for_text("Refused:", false).await;
    assert!(
        page.contains("New suppression"),
        "the refused form comes back: {page}"
    );
    let none = stack.get(&stack.bender, "/v1/suppressions").await;
    assert_eq!(none["suppressions"], json!([]), "nothing was saved");

    browser
        .fill("#targets", "service=bender-web, instance=~web-(1|99)")
        .await;
    let preview = browser
        .wait_for_text("The guards accept this draft.", false)
        .await;
    assert!(
        preview.contains("Matches 2 of 32"),
        "web-1's two alerts: {preview}"
    );
    browser.shot("suppression-new").await;
    browser
        .click("#draft button[type=submit]:not([formaction])")
        .await;
    browser.wait_for_text("What it suppressed", false).await;
    let url = browser.client.current_url().await.expect("url");
    let suppression_id = url.path().rsplit('/').next().expect("id").to_owned();

    // An alert it covers arrives: the suppression shows it, and so does the event history.
    stack
        .post_events(
            &stack.bender,
            event("DiskFull", "web-99", "unhealthy", "low", "97% used"),
        )
        .await;
    let page = browser.wait_for_text("What it suppressed (1)", true).await;
    assert!(page.contains("instance=web-99"), "{page}");
    assert!(page.contains("created"), "the audit trail: {page}");
    browser.shot("suppression").await;
    browser
        .goto(&format!("{base}/ui/events?outcome=suppressed"))
        .await;
    let events = browser.wait_for_text("web-99", false).await;
    assert!(
        events.contains(&format!("suppression {suppression_id}")),
        "{events}"
    );
    browser.shot("events").await;

    // End it now: it moves to the ended list.
    browser
        .goto(&format!("{base}/ui/suppressions/{suppression_id}"))
        .await;
    browser.click("button.danger").await;
    browser.wait_for_text("ended", false).await;
    browser.goto(&format!("{base}/ui/suppressions")).await;
    let list = browser.wait_for_text("Ended (1)", false).await;
    assert!(list.contains("Active (0)"), "{list}");

    // Alerts with a label filter.
    browser
        .goto(&format!("{base}/ui/alerts?labels=instance:web-3"))
        .await;
    let alerts = browser.wait_for_text("DiskFull", false).await;
    assert!(!alerts.contains("web-4"), "{alerts}");
    browser.shot("alerts").await;

    // Another team's incident is not reachable by URL, and says nothing of it.
    browser
        .goto(&format!("{base}/ui/incidents/{flexo_id}"))
        .await;
    let page = browser.wait_for_text("404", false).await;
    assert!(!page.contains("FlexoSecretMonitor"), "{page}");
    assert!(!page.contains("flexo"), "{page}");

    // On a phone.
    browser
        .client
        .set_window_size(390, 844)
        .await
        .expect("resize");
    browser.goto(&format!("{base}/ui/incidents")).await;
    browser.wait_for_text("DiskFull", false).await;
    browser.shot("incidents-phone").await;
    browser.client.clone().close().await.expect("closes");
    assert!(
        stack.fakes.violations().is_empty(),
        "{:?}",
        stack.fakes.violations()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_author_uploads_a_component_and_runs_a_dry_run_through_the_ui() {
    let stack = Stack::start().await;
    let base = stack.server.url.clone();
    let dir = tempfile::tempdir().expect("dir");
    let wasm = dir.path().join("nagios.wasm");
    std::fs::write(&wasm, tocsin_tests::plugins::component("nagios")).expect("component");

    let browser = Browser::start().await;
    browser.sign_in(&base, &stack.bender).await;
    browser.goto(&format!("{base}/ui/plugins")).await;
    browser.fill("#name", "nagios").await;
    browser
        .css("#component")
        .await
        .send_keys(wasm.to_str().expect("utf-8 path"))
        .await
        .expect("chooses the file");
    browser.click("form[enctype] button[type=submit]").await;
    let page = browser.wait_for_text("Dry run", false).await;
    assert!(page.contains("nagios (transformer)"), "{page}");

    browser
        .fill(
            "#sample",
            "[1700000000] PROCESS_SERVICE_CHECK_RESULT;web-1;HTTP;2;CRITICAL - connection refused",
        )
        .await;
    browser.click("form[action*='/test'] button").await;
    let result = browser.wait_for_text("Result", false).await;
    assert!(result.contains("\"monitor\": \"http\""), "{result}");
    assert!(result.contains("\"status\": \"unhealthy\""), "{result}");
    browser.shot("plugin").await;

    // Nothing was ingested by the dry run.
    let alerts = stack.get(&stack.bender, "/v1/alerts").await;
    assert_eq!(alerts["alerts"], json!([]), "{alerts}");

    // The list shows it with its version; flexo sees none of it.
    browser.goto(&format!("{base}/ui/plugins")).await;
    let list = browser.wait_for_text("nagios", false).await;
    assert!(list.contains("1 of 1"), "{list}");
    browser.shot("plugins").await;
    browser.client.clone().close().await.expect("closes");

    let other = Browser::start().await;
    other.sign_in(&base, &stack.flexo).await;
    other.goto(&format!("{base}/ui/plugins/nagios")).await;
    other.wait_for_text("404", false).await;
    other.goto(&format!("{base}/ui/plugins")).await;
    let list = other.wait_for_text("No plugins yet.", false).await;
    assert!(!list.contains("nagios"), "{list}");
    other.client.clone().close().await.expect("closes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_forbid_inline_scripts_keep_the_token_from_scripts_and_refuse_forged_forms() {
    let stack = Stack::start().await;
    let base = &stack.server.url;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let login = http
        .post(format!("{base}/ui/login"))
        .form(&[("token", stack.bender.as_str())])
        .send()
        .await
        .expect("signs in");
    assert_eq!(login.status(), 303);
    let cookie = login.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    let csp = login.headers()["content-security-policy"]
        .to_str()
        .expect("ascii");
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let session = cookie.split(';').next().expect("name=value").to_owned();

    // A wrong token is refused on the page, with no cookie.
    let wrong = http
        .post(format!("{base}/ui/login"))
        .form(&[("token", "tocsin_0000_0000")])
        .send()
        .await
        .expect("answers");
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().get("set-cookie").is_none());

    stack
        .post_events(
            &stack.bender,
            json!([event("Http5xx", "web-1", "unhealthy", "low", "x")]),
        )
        .await;
    let incident = stack.incident(&stack.bender, "Http5xx").await;
    let id = incident["id"].as_str().expect("id");
    let page = http
        .get(format!("{base}/ui/incidents/{id}"))
        .header("cookie", &session)
        .send()
        .await
        .expect("page");
    let html = page.text().await.expect("html");
    assert!(
        !html.contains(&stack.bender),
        "the token never appears in a page"
    );
    assert!(!html.contains("<script>"), "no inline script: {html}");

    // A form without the session's CSRF token, or posted from another site, changes
    // nothing.
    for (headers, form) in [
        (vec![], vec![("csrf", "0123456789abcdef0123456789abcdef")]),
        (vec![("origin", "https://evil.example")], vec![]),
        (vec![("sec-fetch-site", "cross-site")], vec![]),
    ] {
        let mut request = http
            .post(format!("{base}/ui/incidents/{id}/close"))
            .header("cookie", &session)
            .form(&form);
        for (k, v) in headers {
            request = request.header(k, v);
        }
        let answer = request.send().await.expect("answers");
        assert_eq!(answer.status(), 403, "a forged close is refused");
    }
    let still = stack
        .get(&stack.bender, &format!("/v1/incidents/{id}"))
        .await;
    assert_eq!(still["state"], "open", "{still}");
}

/// Every page of the UI, signed in as flexo, against bender's objects by id and by name:
/// each is a 404 (or a 403 for naming bender's team), and no page says anything of
/// bender's. The pages are the API's client, so this is the API's scoping seen through
/// them; a new page gets its line here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_team_reaches_nothing_of_bender_through_any_page() {
    let stack = Stack::start().await;
    let base = &stack.server.url;
    let secret = "BenderSecretMonitor";
    stack
        .post_events(
            &stack.bender,
            json!([event(
                secret,
                "web-1",
                "unhealthy",
                "high",
                "bender-only text"
            )]),
        )
        .await;
    let incident = stack.incident(&stack.bender, secret).await;
    let incident = incident["id"].as_str().expect("id").to_owned();
    let at = |hours: i64| {
        (time::OffsetDateTime::now_utc() + time::Duration::hours(hours))
            .replace_nanosecond(0)
            .expect("whole seconds")
            .format(&time::format_description::well_known::Rfc3339)
            .expect("formats")
    };
    let end = at(24);
    let suppression = stack
        .api(
            &stack.bender,
            reqwest::Method::POST,
            "/v1/suppressions",
            Some(
                json!({"description": "bender's own maintenance", "startTime": at(-1),
                        "endTime": end, "metadata": {},
                        "targets": [{"service": "bender-web", "instance": "web-9"}]}),
            ),
        )
        .await;
    let suppression = suppression["id"].as_str().expect("id").to_owned();
    let upload = stack
        .http
        .put(format!("{base}/v1/plugins/bender-nagios?kind=transformer"))
        .bearer_auth(&stack.bender)
        .body(tocsin_tests::plugins::component("nagios"))
        .send()
        .await
        .expect("uploads");
    assert_eq!(upload.status(), 201);
    // Wait until bender's page has been attempted, so the deliveries exist.
    let deadline = Instant::now() + Duration::from_secs(20);
    while stack.fakes.pages().is_empty() {
        assert!(Instant::now() < deadline, "bender's page never went out");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let login = http
        .post(format!("{base}/ui/login"))
        .form(&[("token", stack.flexo.as_str())])
        .send()
        .await
        .expect("signs in");
    let session = login.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .split(';')
        .next()
        .expect("cookie")
        .to_owned();
    let get = |path: String| {
        let request = http.get(format!("{base}{path}")).header("cookie", &session);
        async move {
            let answer = request.send().await.expect("answers");
            (answer.status().as_u16(), answer.text().await.expect("body"))
        }
    };
    // What only bender's objects carry. A refusal may repeat the id or name flexo itself
    // asked for, so those count only where flexo did not name them.
    let leaks = |path: &str, body: &str| {
        for needle in [
            secret,
            "bender-only text",
            "bender's own maintenance",
            "bender-nagios",
            &incident,
            &suppression,
        ] {
            if !path.contains(needle) {
                assert!(!body.contains(needle), "{path} shows bender's \"{needle}\"");
            }
        }
    };
    for path in [
        "/ui/incidents",
        "/ui/incidents/table",
        "/ui/alerts",
        "/ui/alerts?labels=service:bender-web",
        "/ui/events",
        "/ui/events?outcome=passed",
        "/ui/suppressions",
        "/ui/suppressions/new",
        "/ui/plugins",
        "/ui/deliveries",
    ] {
        let (status, body) = get(path.to_owned()).await;
        assert_eq!(status, 200, "{path}: {body}");
        leaks(path, &body);
    }
    for path in [
        format!("/ui/incidents/{incident}"),
        format!("/ui/suppressions/{suppression}"),
        "/ui/plugins/bender-nagios".to_owned(),
        "/ui/plugins/bender-nagios?team=bender".to_owned(),
        "/ui/incidents?team=bender".to_owned(),
        "/ui/alerts?team=bender".to_owned(),
        "/ui/events?team=bender".to_owned(),
    ] {
        let (status, body) = get(path.clone()).await;
        assert!(matches!(status, 403 | 404), "{path}: {status} {body}");
        leaks(&path, &body);
    }

    // flexo's own, valid CSRF token changes none of bender's objects either.
    let (_, page) = get("/ui/incidents".to_owned()).await;
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a csrf field")
        .to_owned();
    let notifications = stack.get(&stack.bender, "/v1/notifications").await;
    let delivery = notifications["notifications"][0]["id"]
        .as_str()
        .expect("a delivery")
        .to_owned();
    for path in [
        format!("/ui/incidents/{incident}/ack"),
        format!("/ui/incidents/{incident}/close"),
        format!("/ui/suppressions/{suppression}/end"),
        format!("/ui/suppressions/{suppression}/edit"),
        "/ui/plugins/bender-nagios/rollback".to_owned(),
        "/ui/plugins/bender-nagios/test".to_owned(),
        format!("/ui/deliveries/{delivery}/retry"),
    ] {
        let answer = http
            .post(format!("{base}{path}"))
            .header("cookie", &session)
            .form(&[("csrf", csrf.as_str()), ("end", &at(2)), ("sample", "x")])
            .send()
            .await
            .expect("answers");
        let status = answer.status().as_u16();
        let body = answer.text().await.expect("body");
        assert!(matches!(status, 403 | 404), "{path}: {status} {body}");
        leaks(&path, &body);
    }
    let still = stack
        .get(&stack.bender, &format!("/v1/incidents/{incident}"))
        .await;
    assert_eq!(still["state"], "open", "{still}");
    assert!(still["acked_at"].is_null(), "{still}");
    let kept = stack
        .get(&stack.bender, &format!("/v1/suppressions/{suppression}"))
        .await;
    assert_eq!(kept["endTime"], end.as_str(), "{kept}");
    assert_eq!(kept["state"], "active", "{kept}");
}
