//! GitHub issues (REST API, `2022-11-28`): create an issue in the ticket queue's
//! repository (`owner/repo`) when an incident opens, comment on each change, comment
//! and close it (configurable) when it resolves.

use serde_json::{Value, json};

use super::{Notice, cut};

/// GitHub's limit on an issue or comment body.
pub const MAX_BODY: usize = 65_536;
/// Longest title Tocsin sends (GitHub allows more; lists show about this much).
pub const MAX_TITLE: usize = 256;

/// `POST /repos/{owner}/{repo}/issues`.
pub fn create(notice: &Notice<'_>) -> Value {
    json!({
        "title": cut(&notice.summary(), MAX_TITLE),
        "body": cut(&notice.markdown(), MAX_BODY),
        "labels": ["tocsin", format!("priority:{}", notice.urgency().to_lowercase())],
    })
}

/// `POST /repos/{owner}/{repo}/issues/{number}/comments`.
pub fn comment(notice: &Notice<'_>) -> Value {
    json!({ "body": cut(&format!("{}\n\n{}", notice.summary(), notice.markdown()), MAX_BODY) })
}

/// `PATCH /repos/{owner}/{repo}/issues/{number}` closing it.
pub fn close() -> Value {
    json!({ "state": "closed", "state_reason": "completed" })
}
