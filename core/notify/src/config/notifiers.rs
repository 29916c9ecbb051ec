//! The whole configuration, and what each team may name on its notifiers.

use std::collections::BTreeMap;

use tocsin_model::event::{Event, FieldError};
use tocsin_model::notice::Route;

use crate::config::access::{Access, QueueKind};
use crate::config::notifier::Notifier;
use crate::config::retry::Retry;

/// Everything the outbox needs to know about where notifications go.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Notifiers {
    /// Base of the links back to incidents (default `http://127.0.0.1:8080`).
    pub public_url: String,
    /// Retry budget.
    pub retry: Retry,
    /// Notifiers by name.
    pub notifiers: BTreeMap<String, Notifier>,
    /// Who may use each notifier (by name; a notifier without an entry is open to
    /// every team and any valid queue).
    pub access: BTreeMap<String, Access>,
    /// Routes, most specific first when matched.
    pub routes: Vec<Route>,
}

impl Notifiers {
    /// Whether notifier `name` is open to `team`.
    pub fn open_to(&self, name: &str, team: &str) -> bool {
        self.access.get(name).is_none_or(|a| a.open_to(team))
    }

    /// Whether `team` may name `queue` on notifier `name` (of queue kind `kind`): the
    /// notifier's default always, else what its allow-list gives the team.
    fn allowed(
        &self,
        name: &str,
        notifier: &Notifier,
        kind: QueueKind,
        team: &str,
        queue: &str,
    ) -> bool {
        if notifier
            .default_queue()
            .is_some_and(|d| kind.same(d, queue))
        {
            return true;
        }
        match self.access.get(name).and_then(|a| a.queues_of(team)) {
            Some(mut listed) => listed.any(|q| kind.same(q, queue)),
            None => true,
        }
    }

    /// Where notifier `name` sends a `team`'s incident that asks for `wanted` (its
    /// rendered channel or ticket queue): `wanted` if the team may name it there, the
    /// notifier's default when nothing is wanted; an error naming the refused value
    /// otherwise. `None` for a notifier that takes no queue, or when there is none.
    pub fn queue_for(
        &self,
        name: &str,
        team: &str,
        wanted: Option<&str>,
    ) -> Result<Option<String>, String> {
        let Some(notifier) = self.notifiers.get(name) else {
            return Err(format!("notifier \"{name}\" is no longer configured"));
        };
        if !self.open_to(name, team) {
            return Err(format!(
                "notifier \"{name}\" is not open to team \"{team}\""
            ));
        }
        let Some(kind) = notifier.queue_kind() else {
            return Ok(None);
        };
        let Some(wanted) = wanted else {
            return Ok(notifier.default_queue().map(str::to_owned));
        };
        kind.check(wanted)?;
        if !self.allowed(name, notifier, kind, team, wanted) {
            return Err(format!(
                "{} \"{wanted}\" is not open to team \"{team}\" on notifier \"{name}\"",
                kind.noun()
            ));
        }
        Ok(Some(wanted.to_owned()))
    }

    /// Refuses an event whose `alerting.channel` or `alerting.ticket-queue`, rendered,
    /// no notifier open to its team would take: the wrong syntax for every one of them,
    /// or not on any allow-list of the team. When no notifier of that sort is open to
    /// the team the value is never used, and passes.
    pub fn check_event(&self, team: &str, event: &Event) -> Result<(), FieldError> {
        let Some(alerting) = &event.alerting else {
            return Ok(());
        };
        let wanted = [
            (
                "alerting.channel",
                alerting.channel.as_deref(),
                &[QueueKind::Channel][..],
            ),
            (
                "alerting.ticket-queue",
                alerting.ticket_queue.as_deref(),
                &[QueueKind::Project, QueueKind::Repository][..],
            ),
        ];
        for (field, value, kinds) in wanted {
            let Some(value) = value else { continue };
            let rendered = tocsin_model::event::render(value, event);
            // Kinds whose syntax the value breaks, and those that read it but do not
            // open it to this team.
            let (mut misread, mut closed) = (Vec::new(), Vec::new());
            let mut taken = false;
            for (name, notifier) in &self.notifiers {
                let Some(kind) = notifier.queue_kind().filter(|k| kinds.contains(k)) else {
                    continue;
                };
                if !self.open_to(name, team) {
                    continue;
                }
                if kind.check(&rendered).is_err() {
                    misread.push(kind);
                } else if self.allowed(name, notifier, kind, team, &rendered) {
                    taken = true;
                    break;
                } else {
                    closed.push(kind);
                }
            }
            if taken || (misread.is_empty() && closed.is_empty()) {
                continue;
            }
            let error = match (closed.first(), misread.as_slice()) {
                (Some(kind), _) => format!(
                    "{} \"{rendered}\" is not open to team \"{team}\"",
                    kind.noun()
                ),
                (None, misread) => {
                    let mut hints: Vec<&str> = misread.iter().map(|k| k.hint()).collect();
                    hints.sort_unstable();
                    hints.dedup();
                    format!(
                        "invalid {} \"{rendered}\": expected {}",
                        misread[0].field(),
                        hints.join(" or ")
                    )
                }
            };
            return Err(FieldError::new(field, error));
        }
        Ok(())
    }
}
