//! Who may use a notifier, and what a team may name on it: each queue kind's syntax
//! and the per-team allow-lists.

use std::collections::BTreeMap;

/// What a queue names on a notifier, with the service's syntax for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueKind {
    /// A Slack channel: `#name`, `name` or a channel id.
    Channel,
    /// A Jira project key, such as `OPS`.
    Project,
    /// A GitHub repository, `owner/repo`.
    Repository,
}

impl QueueKind {
    /// The key of a notifier's per-team allow-list in the notifiers file.
    pub fn allow_key(self) -> &'static str {
        match self {
            Self::Channel => "channels",
            Self::Project => "projects",
            Self::Repository => "repositories",
        }
    }

    /// What the value is called in messages.
    pub(super) fn noun(self) -> &'static str {
        match self {
            Self::Channel => "Slack channel",
            Self::Project => "Jira project",
            Self::Repository => "GitHub repository",
        }
    }

    /// What an event or service calls the value.
    pub(super) fn field(self) -> &'static str {
        match self {
            Self::Channel => "channel",
            Self::Project | Self::Repository => "ticket queue",
        }
    }

    /// The syntax the service takes, for messages.
    pub(super) fn hint(self) -> &'static str {
        match self {
            Self::Channel => "a Slack channel: #name (letters, digits, - and _) or a channel id",
            Self::Project => "a Jira project key such as OPS (A-Z, 0-9, _)",
            Self::Repository => "a GitHub repository as owner/repo (letters, digits, ., - and _)",
        }
    }

    /// Checks `value` against the service's syntax, so that it can only ever name a
    /// channel, project or repository: never a path, a query or another endpoint.
    pub fn check(self, value: &str) -> Result<(), String> {
        let ok = match self {
            // Slack: lower-case names of letters, digits, `-` and `_` (at most 80), or
            // an upper-case id such as C0123ABCD.
            Self::Channel => {
                let name = value.strip_prefix('#').unwrap_or(value);
                (1..=80).contains(&name.len())
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            }
            // Jira: an upper-case letter, then upper-case letters, digits or `_`.
            Self::Project => {
                (2..=255).contains(&value.len())
                    && value.starts_with(|c: char| c.is_ascii_uppercase())
                    && value
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            }
            // GitHub: an owner of letters, digits and `-` (at most 39, not starting
            // with `-`), one `/`, a repository of letters, digits, `.`, `-`, `_` (at
            // most 100, neither `.` nor `..`).
            Self::Repository => value.split_once('/').is_some_and(|(owner, repo)| {
                (1..=39).contains(&owner.len())
                    && !owner.starts_with('-')
                    && owner.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && (1..=100).contains(&repo.len())
                    && repo != "."
                    && repo != ".."
                    && repo
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c))
            }),
        };
        if ok {
            return Ok(());
        }
        Err(format!(
            "invalid {} \"{value}\": expected {}",
            self.field(),
            self.hint()
        ))
    }

    /// Whether two valid values name the same thing: Slack and GitHub ignore case, and
    /// `#` before a Slack channel is optional.
    pub(super) fn same(self, a: &str, b: &str) -> bool {
        match self {
            Self::Channel => a
                .trim_start_matches('#')
                .eq_ignore_ascii_case(b.trim_start_matches('#')),
            Self::Project => a == b,
            Self::Repository => a.eq_ignore_ascii_case(b),
        }
    }
}

/// Who may use one notifier, and what each team may name on it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    /// The teams the notifier is open to; `None` opens it to every team.
    pub teams: Option<Vec<String>>,
    /// The channels, projects or repositories each team may name (the key `*` for
    /// every team); `None` allows any valid one. The notifier's default is always
    /// allowed to the teams it is open to.
    pub queues: Option<BTreeMap<String, Vec<String>>>,
}

impl Access {
    /// Whether `team` may use the notifier.
    pub fn open_to(&self, team: &str) -> bool {
        self.teams
            .as_ref()
            .is_none_or(|teams| teams.iter().any(|t| t == team))
    }

    /// The queues `team` may name, when the notifier lists them.
    pub(super) fn queues_of<'a>(
        &'a self,
        team: &'a str,
    ) -> Option<impl Iterator<Item = &'a String>> {
        self.queues.as_ref().map(|queues| {
            queues
                .iter()
                .filter(move |(t, _)| t.as_str() == team || t.as_str() == "*")
                .flat_map(|(_, list)| list)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_follow_each_services_syntax() {
        for ok in ["#bender-on-call", "ops", "C0123ABCD"] {
            assert_eq!(QueueKind::Channel.check(ok), Ok(()), "{ok}");
        }
        for ok in ["OPS", "CHK_2"] {
            assert_eq!(QueueKind::Project.check(ok), Ok(()), "{ok}");
        }
        for ok in ["example/ops", "a-b/c.d_e"] {
            assert_eq!(QueueKind::Repository.check(ok), Ok(()), "{ok}");
        }
        for (kind, bad) in [
            (QueueKind::Repository, "../../orgs/flexo/teams?x=#"),
            (QueueKind::Repository, "flexo/.."),
            (QueueKind::Repository, "flexo/repo/issues"),
            (QueueKind::Repository, "-x/repo"),
            (QueueKind::Project, "ops"),
            (QueueKind::Project, "OPS/../X"),
            (QueueKind::Channel, "#a b"),
            (QueueKind::Channel, "#x?y"),
        ] {
            let err = kind.check(bad).expect_err(bad);
            assert!(err.contains(&format!("\"{bad}\"")), "{err}");
        }
    }
}
