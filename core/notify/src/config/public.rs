//! The configuration as the API shows it: no secrets, and to a team only what is its.

use tocsin_model::notice::Route;

use crate::config::notifier::Notifier;
use crate::config::notifiers::Notifiers;

impl Notifiers {
    /// The configuration as `team` may see it (`None`: an admin, who sees all of it):
    /// the notifiers open to the team and its own routes, without secrets, each URL
    /// as scheme, host and path only.
    pub fn public(&self, team: Option<&str>) -> serde_json::Value {
        let notifiers: serde_json::Map<String, serde_json::Value> = self
            .notifiers
            .iter()
            .filter(|(name, _)| team.is_none_or(|team| self.open_to(name, team)))
            .map(|(name, notifier)| {
                let url = |url: &Option<String>| url.as_deref().map(shown_url);
                let detail = match notifier {
                    Notifier::Pagerduty { url: u, .. } => serde_json::json!({ "url": url(u) }),
                    Notifier::Slack { channel, url: u, .. } => {
                        serde_json::json!({ "channel": channel, "url": url(u) })
                    }
                    Notifier::Jira { url: u, email, project, issue_type, close_transition, settle, .. } => {
                        serde_json::json!({ "url": shown_url(u), "email": email, "project": project, "issueType": issue_type, "closeTransition": close_transition, "settleMs": settle.as_millis() as u64 })
                    }
                    Notifier::Github { repository, close, url: u, settle, .. } => {
                        serde_json::json!({ "repository": repository, "close": close, "url": url(u), "settleMs": settle.as_millis() as u64 })
                    }
                    Notifier::Webhook { url: u, .. } => serde_json::json!({ "url": shown_url(u) }),
                };
                let mut detail = detail;
                detail["kind"] = notifier.kind().into();
                if let Some(access) = self.access.get(name) {
                    if team.is_none() {
                        detail["teams"] = serde_json::json!(access.teams);
                    }
                    if let (Some(kind), Some(queues)) = (notifier.queue_kind(), &access.queues) {
                        // A team sees what it may name, never another team's list.
                        detail[kind.allow_key()] = match team {
                            None => serde_json::json!(queues),
                            Some(team) => serde_json::json!(access
                                .queues_of(team)
                                .into_iter()
                                .flatten()
                                .collect::<Vec<_>>()),
                        };
                    }
                }
                (name.clone(), detail)
            })
            .collect();
        let routes: Vec<&Route> = self
            .routes
            .iter()
            .filter(|r| team.is_none() || r.team.is_none() || r.team.as_deref() == team)
            .collect();
        serde_json::json!({
            "publicUrl": self.public_url,
            "retry": {
                "attempts": self.retry.attempts,
                "firstMs": self.retry.first.as_millis() as u64,
                "maxMs": self.retry.max.as_millis() as u64,
            },
            "notifiers": notifiers,
            "routes": routes,
        })
    }
}

/// Shows a URL as scheme, host and path: a query, user name, password or fragment may
/// carry a key, and `${env:…}` has already put it there.
fn shown_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(url) => {
            let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!(
                "{}://{}{port}{}",
                url.scheme(),
                url.host_str().unwrap_or_default(),
                url.path()
            )
        }
        Err(_) => "(not a valid URL)".to_owned(),
    }
}
