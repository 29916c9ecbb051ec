//! The serverless deployment, checked offline: `infra/template.yaml` passes
//! `infra/validate-template.py` (the SAM transform, then cfn-lint on its output), its
//! functions are the four `cargo lambda build --arm64` binaries, and the validator
//! catches mistakes that only show in the resources SAM generates, which cfn-lint run
//! on the SAM template itself lets through.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use tocsin_tests::workspace;

/// Python of the virtualenv `infra/deps.sh` makes, which has aws-sam-translator and
/// cfn-lint; else `python3` on `PATH`.
fn python() -> PathBuf {
    tocsin_tests::venv_bin("python")
}

/// The shipped template.
fn template() -> PathBuf {
    workspace().join("infra/template.yaml")
}

/// Runs the validator on `template`, writing the transformed template to `output` if
/// given: (success, stdout and stderr).
fn validate(template: &Path, output: Option<&Path>) -> (bool, String) {
    let mut command = Command::new(python());
    command.arg(workspace().join("infra/validate-template.py"));
    if let Some(output) = output {
        command.arg("--output").arg(output);
    }
    let output = command.arg(template).output().expect("python runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !text.contains("ModuleNotFoundError"),
        "the validator's libraries are missing: run bash infra/deps.sh\n{text}"
    );
    (output.status.success(), text)
}

/// The shipped template with each `(from, to)` edit applied, written to a temporary
/// directory. Each `from` must occur exactly once, so that an edit of the template
/// cannot silently turn a mutation into a no-op.
fn mutated(edits: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let mut text = std::fs::read_to_string(template()).expect("template readable");
    for (from, to) in edits {
        assert_eq!(
            text.matches(from).count(),
            1,
            "the template should contain this exactly once:\n{from}"
        );
        text = text.replace(from, to);
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("template.yaml");
    std::fs::write(&path, text).expect("template written");
    (dir, path)
}

/// The shipped template plus a FIFO queue feeding the notify function, `batch`
/// messages at a time. The queue's visibility timeout is 6 times the function's, as for
/// the real queues, so that only the batch size can be wrong.
fn with_fifo_event(batch: u32) -> (tempfile::TempDir, PathBuf) {
    mutated(&[
        (
            "\nResources:\n",
            "\nResources:\n  AuditQueue:\n    Type: AWS::SQS::Queue\n    Properties:\n      \
             FifoQueue: true\n      VisibilityTimeout: 360\n\n",
        ),
        (
            "      Events:\n        Outbox:\n",
            &format!(
                "      Events:\n        Audit:\n          Type: SQS\n          Properties:\n            \
                 Queue: !GetAtt AuditQueue.Arn\n            BatchSize: {batch}\n        Outbox:\n"
            ),
        ),
    ])
}

/// Whether one line of the validator's output names all of `parts`.
fn names(output: &str, parts: &[&str]) -> bool {
    output
        .lines()
        .any(|line| parts.iter().all(|part| line.contains(part)))
}

#[test]
fn the_shipped_template_validates() {
    let (ok, output) = validate(&template(), None);
    assert!(ok, "{output}");
    assert!(output.contains("template.yaml: valid"), "{output}");
}

/// A misspelt response type is valid YAML and a valid SAM event, and cfn-lint on the
/// SAM file accepts it; only the generated event source mapping shows it.
#[test]
fn a_misspelt_report_batch_item_failures_is_caught() {
    let (_dir, path) = mutated(&[(
        "            MaximumBatchingWindowInSeconds: 1\n            \
         FunctionResponseTypes: [ReportBatchItemFailures]\n",
        "            MaximumBatchingWindowInSeconds: 1\n            \
         FunctionResponseTypes: [ReportBatchItemFailure]\n",
    )]);
    let (ok, output) = validate(&path, None);
    assert!(!ok, "{output}");
    assert!(
        names(
            &output,
            &[
                "FunctionResponseTypes",
                "'ReportBatchItemFailure'",
                "PipelineFunction's event Journal"
            ]
        ),
        "{output}"
    );
}

/// Lambda takes at most 10 messages at a time from a FIFO queue. The same queue and
/// event with a batch of 10 pass, so the failure is the batch size's.
#[test]
fn a_fifo_batch_over_ten_is_caught() {
    let (_dir, path) = with_fifo_event(10);
    let (ok, output) = validate(&path, None);
    assert!(ok, "a batch of 10 from a FIFO queue is fine: {output}");

    let (_dir, path) = with_fifo_event(20);
    let (ok, output) = validate(&path, None);
    assert!(!ok, "{output}");
    assert!(
        names(
            &output,
            &["Properties/BatchSize", "NotifyFunction's event Audit", "20"]
        ),
        "{output}"
    );
}

/// Every function is a `cargo lambda build --release --arm64` binary: Graviton, the
/// OS-only runtime whose entry point is `bootstrap`, and the code of its own name.
/// SAM resolves CodeUri against the template's directory, `infra/`, hence the `../`.
/// Read from the transformed template, so that Globals count as SAM applies them.
#[test]
fn functions_are_the_arm64_lambda_builds() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("transformed.json");
    let (ok, output) = validate(&template(), Some(&out));
    assert!(ok, "{output}");
    let transformed: Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("--output written"))
            .expect("JSON");
    let resources = transformed["Resources"].as_object().expect("resources");
    let mut functions: Vec<&str> = Vec::new();
    for (id, resource) in resources {
        if resource["Type"] != "AWS::Lambda::Function" {
            continue;
        }
        let name = id
            .strip_suffix("Function")
            .unwrap_or_else(|| panic!("{id}: not named <Name>Function"))
            .to_lowercase();
        let properties = &resource["Properties"];
        assert_eq!(
            properties["Architectures"],
            serde_json::json!(["arm64"]),
            "{id}"
        );
        assert_eq!(properties["Runtime"], "provided.al2023", "{id}");
        assert_eq!(properties["Handler"], "bootstrap", "{id}");
        assert_eq!(
            properties["Code"]["S3Key"],
            format!("../target/lambda/{name}/"),
            "{id}: {}",
            properties["Code"]
        );
        functions.push(id);
    }
    functions.sort_unstable();
    assert_eq!(
        functions,
        [
            "ApiFunction",
            "NotifyFunction",
            "PipelineFunction",
            "TickFunction"
        ]
    );
}
