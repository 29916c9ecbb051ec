//! Jira Cloud's REST API v2 (plain-text bodies): create an issue in the ticket queue's
//! project when an incident opens, comment on each change, comment and transition it
//! to done (configurable) when it resolves. Authentication is Basic (email and API
//! token).

use serde_json::{Value, json};

use super::{Notice, cut};

/// Jira's limit on `summary`.
pub const MAX_SUMMARY: usize = 255;
/// Jira's limit on a text field (description, comment body).
pub const MAX_TEXT: usize = 32_767;

/// `POST /rest/api/2/issue`.
pub fn create(project: &str, issue_type: &str, notice: &Notice<'_>) -> Value {
    json!({
        "fields": {
            "project": { "key": project },
            "issuetype": { "name": issue_type },
            "summary": cut(&notice.summary(), MAX_SUMMARY),
            "description": cut(&notice.markdown(), MAX_TEXT),
            "labels": ["tocsin", super::incident_label(&notice.incident.incident.id)],
        }
    })
}

/// `POST /rest/api/2/issue/{key}/comment`.
pub fn comment(notice: &Notice<'_>) -> Value {
    json!({ "body": cut(&format!("{}\n\n{}", notice.summary(), notice.markdown()), MAX_TEXT) })
}
