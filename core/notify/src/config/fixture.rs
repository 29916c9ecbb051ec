//! A notifiers file and its environment, shared by the tests of each part of the
//! configuration.

/// Three notifiers and two routes: one for every team, one for team bender.
pub(super) const FILE: &str = r##"
public-url: https://tocsin.example.com/
retry: { attempts: 3, first: 2s, max: 1m }
notifiers:
  pd: { kind: pagerduty, routing-key: "${env:PD_KEY}" }
  slack: { kind: slack, token: "${env:SLACK}", channel: "#ops" }
  jira: { kind: jira, url: https://x.atlassian.net, email: a@b.c, token: "${env:JIRA}", project: OPS, close-transition: Done }
routes:
  - { page: pd, chat: slack }
  - { team: bender, page: pd, ticket: jira, chat: slack }
"##;

/// The environment `FILE` takes its secrets from.
pub(super) fn env(name: &str) -> Option<String> {
    match name {
        "PD_KEY" => Some("0123456789abcdef0123456789abcdef".into()),
        "SLACK" => Some("xoxb-secret".into()),
        "JIRA" => Some("jira-secret".into()),
        _ => None,
    }
}
