//! The API against its own OpenAPI document: schemathesis (PyPI, installed by
//! `infra/deps.sh`) generates requests from `GET /openapi.json`, valid and invalid, sends
//! them to a real `tocsin serve`, and checks that valid ones are accepted, invalid ones
//! refused, and that every answer matches the document. `tests/e2e/schemathesis.toml`
//! lists the few operations that may refuse a schema-valid request with a 400, each for
//! a rule no schema can state (docs/testing.md).

use std::process::Command;

use tocsin_tests::{Server, create_token, sqlite_url, venv_bin, workspace};

/// Examples per operation and phase: enough to reach every operation's edges, few
/// enough to stay under two minutes in a debug build.
const EXAMPLES: &str = "25";
/// A fixed seed: a failure reproduces, and the run does not change under the tests.
const SEED: &str = "1";

/// Runs schemathesis against `server` with `token`; the failure message is its report.
fn fuzz(server: &Server, token: &str) {
    // Its example database (`.schemathesis/`) goes to a directory of the run's own.
    let scratch = tempfile::tempdir().expect("temp dir");
    let output = Command::new(venv_bin("schemathesis"))
        .current_dir(scratch.path())
        .arg("--config-file")
        .arg(workspace().join("tests/e2e/schemathesis.toml"))
        .args(["run", &format!("{}/openapi.json", server.url)])
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(["-n", EXAMPLES, "--seed", SEED, "-w", "1", "--no-shrink"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run schemathesis ({e}): infra/deps.sh installs it in ~/.cache/tocsin-venv"
            )
        });
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis reported failures:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn schemathesis_finds_no_failure_with_a_team_token() {
    let (_dir, url) = sqlite_url();
    let server = Server::start(&url, &[], &[]).expect("server");
    let token = create_token(&url, &["--team", "bender"]).expect("token");
    fuzz(&server, &token);
}
