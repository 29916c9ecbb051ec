//! Routes: which one an incident takes, and whether one may name its notifiers.

use std::collections::BTreeMap;

use tocsin_model::notice::Route;

use crate::config::access::Access;
use crate::config::notifier::Notifier;
use crate::config::notifiers::Notifiers;

/// Checks that every notifier a route names exists, is of the kind its field needs and
/// is open to the route's team (a route for every team names only notifiers open to
/// every team); the error starts with the field. A notifier closed to the team is
/// refused exactly as one that does not exist, so a team learns nothing of it.
pub(super) fn check_route(
    notifiers: &BTreeMap<String, Notifier>,
    access: &BTreeMap<String, Access>,
    route: &Route,
) -> Result<(), String> {
    let names = route
        .page
        .iter()
        .map(|n| (n, "page", &["pagerduty"][..]))
        .chain(
            route
                .ticket
                .iter()
                .map(|n| (n, "ticket", &["jira", "github"][..])),
        )
        .chain(route.chat.iter().map(|n| (n, "chat", &["slack"][..])))
        .chain(
            route
                .webhooks
                .iter()
                .map(|n| (n, "webhooks", &["webhook"][..])),
        );
    for (name, field, kinds) in names {
        let access = access.get(name);
        let notifier = match (&route.team, notifiers.get(name)) {
            (Some(team), notifier)
                if notifier.is_none() || access.is_some_and(|a| !a.open_to(team)) =>
            {
                return Err(format!(
                    "{field}: no notifier named \"{name}\" is open to team \"{team}\""
                ));
            }
            (_, None) => return Err(format!("{field}: no notifier named \"{name}\"")),
            (None, Some(_)) if access.is_some_and(|a| a.teams.is_some()) => {
                return Err(format!(
                    "{field}: \"{name}\" is open to some teams only; a route naming it names its team"
                ));
            }
            (_, Some(notifier)) => notifier,
        };
        if !kinds.contains(&notifier.kind()) {
            return Err(format!(
                "{field}: \"{name}\" is a {} notifier, expected {}",
                notifier.kind(),
                kinds.join(" or ")
            ));
        }
    }
    Ok(())
}

impl Notifiers {
    /// The route for an incident: the one that names its team and service, then its
    /// team, then its service, then one naming neither. `stored` are the routes set
    /// through the API; at equal specificity they win over the file's.
    pub fn route<'a>(
        &'a self,
        team: &str,
        service: Option<&str>,
        stored: &'a [Route],
    ) -> Option<&'a Route> {
        let score = |route: &Route| {
            let team_ok = route.team.as_deref().is_none_or(|t| t == team);
            let service_ok = route.service.is_none() || route.service.as_deref() == service;
            (team_ok && service_ok)
                .then_some(u8::from(route.team.is_some()) * 2 + u8::from(route.service.is_some()))
        };
        // The file's routes first: `max_by_key` keeps the last of equals.
        self.routes
            .iter()
            .chain(stored)
            .filter_map(|route| Some((score(route)?, route)))
            .max_by_key(|(score, _)| *score)
            .map(|(_, route)| route)
    }

    /// Whether any route (of the file, or `stored`) may take an incident of `team`,
    /// whatever its service: when none may, nobody is told about the team's incidents.
    pub fn routes_team(&self, team: &str, stored: &[Route]) -> bool {
        self.routes
            .iter()
            .chain(stored)
            .any(|route| route.team.as_deref().is_none_or(|t| t == team))
    }

    /// Why `route` cannot be used with these notifiers, if it cannot.
    pub fn check(&self, route: &Route) -> Result<(), String> {
        check_route(&self.notifiers, &self.access, route)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_team_no_route_names_is_routed_only_by_a_route_for_every_team() {
        let file = Notifiers {
            routes: vec![Route {
                team: Some("bender".into()),
                ..Route::default()
            }],
            ..Notifiers::default()
        };
        assert!(file.routes_team("bender", &[]));
        assert!(!file.routes_team("flexo", &[]));
        let stored = [Route {
            team: Some("flexo".into()),
            service: Some("api".into()),
            ..Route::default()
        }];
        assert!(
            file.routes_team("flexo", &stored),
            "a route for one of its services"
        );
        let everyone = [Route::default()];
        assert!(file.routes_team("leela", &everyone));
    }
    use crate::config::fixture::{FILE, env};

    #[test]
    fn routes_prefer_the_most_specific() {
        let config = Notifiers::parse_with(FILE, &env).expect("valid");
        assert_eq!(
            config
                .route("bender", Some("x"), &[])
                .and_then(|r| r.ticket.as_deref()),
            Some("jira")
        );
        assert_eq!(
            config
                .route("flexo", None, &[])
                .and_then(|r| r.ticket.as_deref()),
            None
        );
        assert_eq!(
            config
                .route("flexo", None, &[])
                .and_then(|r| r.chat.as_deref()),
            Some("slack")
        );
        // A stored route of equal specificity wins over the file's.
        let stored = [Route {
            team: Some("flexo".into()),
            chat: Some("other".into()),
            ..Route::default()
        }];
        assert_eq!(
            config
                .route("flexo", None, &stored)
                .and_then(|r| r.chat.as_deref()),
            Some("other")
        );
    }

    #[test]
    fn a_file_route_must_name_notifiers_open_to_its_team() {
        let closed = FILE.replace(
            "pd: { kind: pagerduty, routing-key: \"${env:PD_KEY}\" }",
            "pd: { kind: pagerduty, routing-key: \"${env:PD_KEY}\", teams: [flexo] }",
        );
        let err = Notifiers::parse_with(&closed, &env).expect_err("closed to bender");
        assert!(
            err.to_string()
                .contains("routes[0].page: \"pd\" is open to some teams only"),
            "{err}"
        );
        let other_kind = FILE.replace("project: OPS,", "project: OPS, channels: { a: [\"#a\"] },");
        let err = Notifiers::parse_with(&other_kind, &env).expect_err("a Slack list on Jira");
        assert!(
            err.to_string()
                .contains("notifiers.jira: unknown field `channels`"),
            "{err}"
        );
        let bad = FILE.replace(
            "channel: \"#ops\" }",
            "channel: \"#ops\", channels: { bender: [\"../x\"] } }",
        );
        let err = Notifiers::parse_with(&bad, &env).expect_err("bad channel");
        assert!(
            err.to_string()
                .contains("channels.bender: invalid channel \"../x\""),
            "{err}"
        );
    }
}
