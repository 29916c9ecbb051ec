//! What a notification is rendered from: the incident as it is now (after its
//! collectors ran), its service, its team's routes and the channel or queue it asks for.

use tracing::Instrument as _;

use tocsin_model::catalogue::Service;
use tocsin_model::notice::{Action, StoredRoute};
use tocsin_model::plugin::Section;
use tocsin_model::rows::NoticeRow;
use tocsin_model::views::IncidentDetail;
use tocsin_notify::config::Route;
use tocsin_store::StoreError;

use crate::run::Outbox;
use crate::send::Target;

/// What a notification is rendered from: the incident as it is now, and its service.
pub(crate) struct Subject {
    pub(crate) incident: IncidentDetail,
    pub(crate) service: Option<Service>,
    /// The collected context, as notifiers show it.
    pub(crate) sections: Vec<Section>,
    pub(crate) target: Target,
    /// The team's routes set through the API.
    pub(crate) routes: Vec<Route>,
}

impl Outbox {
    /// Reads the incident a notice is about, first running its collectors (unless it
    /// resolved); `None` when the incident is gone.
    pub(crate) async fn prepare(
        &self,
        notice: &NoticeRow,
        now: i64,
    ) -> Result<Option<Subject>, StoreError> {
        if notice.action != Action::Resolve && self.collectors.is_some() {
            return match self.store.incident(&notice.incident_id, None).await? {
                Some(incident) => self.collect(notice, incident, None, now).await,
                None => Ok(None),
            };
        }
        self.read_subject(&notice.incident_id).await
    }

    /// Runs the collectors (if any) on `incident`, then makes it the subject; `known` is
    /// its service and routes when the pipeline handed them over.
    pub(crate) async fn collect(
        &self,
        notice: &NoticeRow,
        incident: IncidentDetail,
        known: Option<(Option<Service>, Vec<Route>)>,
        now: i64,
    ) -> Result<Option<Subject>, StoreError> {
        if let Some(collectors) = &self.collectors {
            let span = tracing::info_span!("collect", incident = %notice.incident_id);
            tocsin_model::trace::follow(&span, incident.incident.trace_id.as_deref(), None);
            let sections = collectors.collect(&incident, now).instrument(span).await;
            if !sections.is_empty() {
                self.store
                    .put_context(&notice.incident_id, &sections)
                    .await?;
                return self.read_subject(&notice.incident_id).await;
            }
        }
        Ok(Some(match known {
            Some((service, routes)) => Subject::new(incident, service, routes),
            None => self.subject(incident).await?,
        }))
    }

    /// The incident as it is now, with its service; `None` when it is gone.
    pub(crate) async fn read_subject(
        &self,
        incident_id: &str,
    ) -> Result<Option<Subject>, StoreError> {
        match self.store.incident(incident_id, None).await? {
            Some(incident) => Ok(Some(self.subject(incident).await?)),
            None => Ok(None),
        }
    }

    async fn subject(&self, incident: IncidentDetail) -> Result<Subject, StoreError> {
        let service = async {
            match incident.incident.service.as_deref() {
                // Another team's entry of that name does not route this team's incident.
                Some(name) => Ok(self.store.service(name).await?.filter(|service| {
                    service.spec.team.as_deref() == Some(incident.incident.team.as_str())
                })),
                None => Ok(None),
            }
        };
        let (service, routes) =
            tokio::try_join!(service, self.store.routes(Some(&incident.incident.team)))?;
        let routes = routes.iter().map(StoredRoute::route).collect();
        Ok(Subject::new(incident, service, routes))
    }
}

impl Subject {
    fn new(incident: IncidentDetail, service: Option<Service>, routes: Vec<Route>) -> Self {
        let alerting = service
            .as_ref()
            .and_then(|s| s.spec.alerting.clone())
            .unwrap_or_default();
        // An alert's own channel and queue come rendered against its event (the
        // store's view); the service's render against the event that opened the
        // incident. Each is rendered once: a label value holding `${…}` stays text.
        let opening = incident.alert_list.first().and_then(|a| a.event.as_ref());
        let render = |text: String| match opening {
            Some(event) => tocsin_model::event::render(&text, event),
            None => text,
        };
        let target = Target {
            channel: incident
                .alert_list
                .iter()
                .find_map(|a| a.channel.clone())
                .or_else(|| alerting.channel.map(render)),
            queue: incident
                .alert_list
                .iter()
                .find_map(|a| a.ticket_queue.clone())
                .or_else(|| alerting.ticket_queue.map(render)),
        };
        let sections = incident
            .context
            .iter()
            .map(|c| Section {
                title: c.title.clone(),
                markdown: if c.error.is_empty() {
                    c.markdown.clone()
                } else {
                    format!("_collector failed: {}_", c.error)
                },
            })
            .collect();
        Subject {
            incident,
            service,
            sections,
            target,
            routes,
        }
    }
}
