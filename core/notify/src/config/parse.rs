//! Reading the file: `${env:NAME}` resolved first, then each notifier split into its
//! settings and its [`Access`], then every route checked.

use std::collections::BTreeMap;

use serde::Deserialize;

use tocsin_model::notice::Route;

use crate::config::access::{Access, QueueKind};
use crate::config::error::ConfigError;
use crate::config::notifier::Notifier;
use crate::config::notifiers::Notifiers;
use crate::config::retry::RetryFile;
use crate::config::routes::check_route;

/// The file as written: its notifiers not yet read, its routes not yet checked.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct File {
    #[serde(default)]
    public_url: Option<String>,
    #[serde(default)]
    retry: Option<RetryFile>,
    /// Read as YAML first: `teams:` and the allow-list are taken out before the rest
    /// is read as the [`Notifier`].
    #[serde(default)]
    notifiers: BTreeMap<String, serde_yaml_ng::Value>,
    #[serde(default)]
    routes: Vec<Route>,
}

/// Reads one notifier of the file: its [`Access`] (`teams:` and the allow-list of its
/// kind) and the rest as the [`Notifier`].
fn read_notifier(value: serde_yaml_ng::Value) -> Result<(Notifier, Access), String> {
    let serde_yaml_ng::Value::Mapping(mut map) = value else {
        return Err("expected a mapping with kind and its settings".into());
    };
    let mut take = |key: &str| map.remove(serde_yaml_ng::Value::String(key.to_owned()));
    let teams: Option<Vec<String>> = take("teams")
        .map(serde_yaml_ng::from_value)
        .transpose()
        .map_err(|e| format!("teams: {e}"))?;
    // Only the allow-list of the notifier's own kind is taken out: another kind's is
    // left in, and refused below as an unknown field.
    let kind = map
        .get(serde_yaml_ng::Value::String("kind".into()))
        .and_then(serde_yaml_ng::Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let allow_key = match kind.as_str() {
        "slack" => Some(QueueKind::Channel),
        "jira" => Some(QueueKind::Project),
        "github" => Some(QueueKind::Repository),
        _ => None,
    }
    .map(QueueKind::allow_key);
    let mut take = |key: &str| map.remove(serde_yaml_ng::Value::String(key.to_owned()));
    let queues: Option<BTreeMap<String, Vec<String>>> = allow_key
        .and_then(&mut take)
        .map(serde_yaml_ng::from_value)
        .transpose()
        .map_err(|e| format!("{}: {e}", allow_key.unwrap_or_default()))?;
    let notifier: Notifier =
        serde_yaml_ng::from_value(serde_yaml_ng::Value::Mapping(map)).map_err(|e| e.to_string())?;
    for team in teams.iter().flatten() {
        tocsin_model::team::check_team_name(team).map_err(|e| format!("teams: {e}"))?;
    }
    if let Some(kind) = notifier.queue_kind() {
        if let Some(default) = notifier.default_queue() {
            kind.check(default)?;
        }
        for (team, list) in queues.iter().flatten() {
            if team != "*" {
                tocsin_model::team::check_team_name(team)
                    .map_err(|e| format!("{}.{team}: {e}", kind.allow_key()))?;
            }
            for queue in list {
                kind.check(queue)
                    .map_err(|e| format!("{}.{team}: {e}", kind.allow_key()))?;
            }
        }
    }
    Ok((notifier, Access { teams, queues }))
}

/// Replaces `${env:NAME}` with the variable's value.
fn interpolate(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${env:") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 6..];
        let end = after
            .find('}')
            .ok_or_else(|| ConfigError::Invalid("unclosed ${env:".into()))?;
        let name = &after[..end];
        out.push_str(&env(name).ok_or_else(|| ConfigError::MissingEnv(name.to_owned()))?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

impl Notifiers {
    /// Reads a notifiers file, resolving `${env:NAME}` from the process environment.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        Self::parse_with(text, &|name| std::env::var(name).ok())
    }

    /// [`Notifiers::parse`] with another environment (tests).
    pub fn parse_with(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let text = interpolate(text, env)?;
        let file: File =
            serde_yaml_ng::from_str(&text).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let retry = file
            .retry
            .map(RetryFile::read)
            .transpose()?
            .unwrap_or_default();
        let mut notifiers = BTreeMap::new();
        let mut access = BTreeMap::new();
        for (name, value) in file.notifiers {
            let (notifier, rules) = read_notifier(value)
                .map_err(|e| ConfigError::Invalid(format!("notifiers.{name}: {e}")))?;
            notifiers.insert(name.clone(), notifier);
            if rules != Access::default() {
                access.insert(name, rules);
            }
        }
        for (i, route) in file.routes.iter().enumerate() {
            check_route(&notifiers, &access, route)
                .map_err(|e| ConfigError::Invalid(format!("routes[{i}].{e}")))?;
        }
        Ok(Self {
            public_url: file
                .public_url
                .unwrap_or_else(|| "http://127.0.0.1:8080".into())
                .trim_end_matches('/')
                .to_owned(),
            retry,
            notifiers,
            access,
            routes: file.routes,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::fixture::{FILE, env};

    #[test]
    fn a_file_reads_with_its_secrets_from_the_environment() {
        let config = Notifiers::parse_with(FILE, &env).expect("valid");
        assert_eq!(config.public_url, "https://tocsin.example.com");
        assert_eq!(config.retry.attempts, 3);
        assert_eq!(config.retry.first, Duration::from_secs(2));
        let Some(Notifier::Slack { token, .. }) = config.notifiers.get("slack") else {
            panic!("slack notifier");
        };
        assert_eq!(token.expose(), "xoxb-secret");
        // Secrets never show: not in Debug, not in the API's view.
        let shown = format!("{config:?} {}", config.public(None));
        for secret in ["xoxb-secret", "jira-secret", "0123456789abcdef"] {
            assert!(!shown.contains(secret), "{secret} leaked: {shown}");
        }
    }

    #[test]
    fn mistakes_are_refused_with_their_place() {
        let missing = Notifiers::parse_with(FILE, &|_| None).expect_err("no env");
        assert!(missing.to_string().contains("PD_KEY"), "{missing}");
        let wrong = FILE.replace("- { page: pd, chat: slack }", "- { page: slack }");
        let err = Notifiers::parse_with(&wrong, &env).expect_err("wrong kind");
        assert!(
            err.to_string()
                .contains("routes[0].page: \"slack\" is a slack notifier"),
            "{err}"
        );
        let unknown = FILE.replace("chat: slack }\n  - { team", "chat: nope }\n  - { team");
        let err = Notifiers::parse_with(&unknown, &env).expect_err("unknown");
        assert!(
            err.to_string().contains("no notifier named \"nope\""),
            "{err}"
        );
    }
}
