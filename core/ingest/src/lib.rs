//! The first stage: a request body becomes validated events, or precise reasons why not.
//!
//! One bad item never spoils its batch: each item is parsed and validated on its own, the
//! valid ones go on, and every rejected one is reported with its index and field.
//!
//! Layout: this root parses and validates Tocsin's own events (JSON or YAML) into
//! [`tocsin_store::Accepted`]; `adapt` turns Datadog and Loggly webhooks and
//! Alertmanager alerts into those events, one module per source. Nothing here stores:
//! the API hands what is accepted to its append.

pub mod adapt;

use serde::Serialize;
use serde_json::value::RawValue;
use time::OffsetDateTime;
use utoipa::ToSchema;

use tocsin_model::event::{Event, FieldError};
use tocsin_model::json::kind;
use tocsin_model::team;
use tocsin_model::team::Caller;
use tocsin_store::Accepted;

/// Largest request body, in bytes (10 MiB).
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;
/// Most events in one request.
pub const MAX_ITEMS: usize = 10_000;

/// The encodings a body may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/json`.
    Json,
    /// `application/yaml` (or `application/x-yaml`, `text/yaml`).
    Yaml,
}

impl Format {
    /// Reads the `Content-Type` header; `None` when it names something else.
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "application/json" => Some(Self::Json),
            "application/yaml" | "application/x-yaml" | "text/yaml" | "text/x-yaml" => {
                Some(Self::Yaml)
            }
            _ => None,
        }
    }
}

/// Why a whole body was refused.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The body is not JSON (or YAML) at all.
    #[error("{0}")]
    Malformed(String),
    /// Neither an event nor a list of events.
    #[error("expected an event object or an array of events, got {0}")]
    WrongShape(&'static str),
    /// More items than one request may carry.
    #[error("{0} events in one request, at most {MAX_ITEMS} are allowed: split the batch")]
    TooManyItems(usize),
}

/// One item that was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Rejected {
    /// Position of the item in the request (0 for a single event).
    pub index: usize,
    /// The offending field, such as `alert.status`.
    pub field: String,
    /// What is wrong and how to fix it.
    pub error: String,
}

/// The outcome of reading a body.
#[derive(Debug, Default)]
pub struct Batch {
    /// Events ready for the journal, in request order.
    pub accepted: Vec<Accepted>,
    /// Why the others were not accepted.
    pub rejected: Vec<Rejected>,
    /// For each item, its new event id, or `None` when it was rejected.
    pub ids: Vec<Option<uuid::Uuid>>,
    /// Where it came from (`api`, `datadog`, `loggly`, `alertmanager`, `plugin`).
    pub source: &'static str,
    /// The caller's team (`admin` for an admin token), for counting refusals.
    pub caller_team: String,
}

/// Parses, validates and stamps every item of a body on behalf of `caller`.
pub fn read(
    body: &[u8],
    format: Format,
    caller: &Caller,
    source: &'static str,
) -> Result<Batch, BodyError> {
    let now = OffsetDateTime::now_utc();
    let mut batch = Batch::of(caller, source);
    match format {
        Format::Json => {
            let items = json_items(body)?;
            for (index, raw) in items.into_iter().enumerate() {
                // The plain parse is the fast path; only a failure pays for the second,
                // path-tracking parse that names the offending field.
                let parsed = serde_json::from_str::<Event>(raw.get()).or_else(|_| {
                    let mut de = serde_json::Deserializer::from_str(raw.get());
                    match serde_path_to_error::deserialize::<_, Event>(&mut de) {
                        Ok(event) => Ok(event),
                        Err(e) => Err(FieldError {
                            field: path(e.path()),
                            error: without_position(&e.inner().to_string()),
                        }),
                    }
                });
                batch.push(index, parsed, caller, source, now);
            }
        }
        Format::Yaml => {
            for (index, value) in yaml_items(body)?.into_iter().enumerate() {
                let parsed = serde_path_to_error::deserialize(value).map_err(|e| FieldError {
                    field: path(e.path()),
                    error: e.inner().to_string(),
                });
                batch.push(index, parsed, caller, source, now);
            }
        }
    }
    Ok(batch)
}

/// Validates and stamps events a transformer plugin produced, on behalf of `caller`,
/// exactly as [`read`] does for a body.
pub fn accept(events: Vec<Event>, caller: &Caller, source: &'static str) -> Batch {
    accept_each(events.into_iter().map(Ok).collect(), caller, source)
}

/// Validates and stamps what an adapter read, item by item: an item it could not read
/// is rejected with its position, exactly as a bad item of a body is.
pub fn accept_each(
    items: Vec<Result<Event, FieldError>>,
    caller: &Caller,
    source: &'static str,
) -> Batch {
    let now = OffsetDateTime::now_utc();
    let mut batch = Batch::of(caller, source);
    for (index, item) in items.into_iter().enumerate() {
        batch.push(index, item, caller, source, now);
    }
    batch
}

impl Batch {
    /// An empty batch from `caller` through `source`.
    fn of(caller: &Caller, source: &'static str) -> Self {
        Self {
            source,
            caller_team: caller.team.clone().unwrap_or_else(|| "admin".to_owned()),
            ..Self::default()
        }
    }

    fn push(
        &mut self,
        index: usize,
        parsed: Result<Event, FieldError>,
        caller: &Caller,
        source: &'static str,
        now: OffsetDateTime,
    ) {
        let checked = parsed
            .map_err(|error| vec![error])
            .and_then(|event| event.validate().map(|()| event))
            .and_then(|event| {
                owning_team(&event, caller)
                    .map(|team| (event, team))
                    .map_err(|error| vec![error])
            });
        match checked {
            Ok((event, team)) => {
                let accepted = Accepted::new(event, team, source, now);
                self.ids.push(Some(accepted.id));
                self.accepted.push(accepted);
            }
            Err(errors) => self.reject(index, errors),
        }
    }

    /// Rejects the accepted events `check` refuses, each with its index, as if
    /// validation had; the others stay accepted. For rules that need the server's
    /// configuration (which notifiers a team may reach), which parsing does not know.
    pub fn refuse(&mut self, check: impl Fn(&Accepted) -> Result<(), FieldError>) {
        let mut accepted = std::mem::take(&mut self.accepted).into_iter();
        let mut kept = Vec::with_capacity(accepted.len());
        let mut refused = false;
        for (index, id) in self.ids.iter_mut().enumerate() {
            if id.is_none() {
                continue;
            }
            let Some(event) = accepted.next() else { break };
            match check(&event) {
                Ok(()) => kept.push(event),
                Err(e) => {
                    *id = None;
                    refused = true;
                    self.rejected.push(Rejected {
                        index,
                        field: e.field,
                        error: e.error,
                    });
                }
            }
        }
        self.accepted = kept;
        if refused {
            self.rejected.sort_by_key(|r| r.index);
        }
    }

    fn reject(&mut self, index: usize, errors: Vec<FieldError>) {
        self.ids.push(None);
        self.rejected.extend(errors.into_iter().map(|e| Rejected {
            index,
            field: e.field,
            error: e.error,
        }));
    }
}

/// The team an event belongs to: a team token's own team, or for an admin the event's
/// `team` label. A team token naming another team in `context.team` is refused.
fn owning_team(event: &Event, caller: &Caller) -> Result<String, FieldError> {
    let label = event.context.get("team");
    let refuse = |error: String| FieldError {
        field: "context.team".into(),
        error,
    };
    if caller.admin {
        return match label {
            Some(named) => team::check_team_name(named)
                .map(|()| named.clone())
                .map_err(refuse),
            None => Ok(String::new()),
        };
    }
    match (caller.team.as_deref(), label) {
        (Some(own), Some(named)) if own != named => Err(refuse(format!(
            "this token acts for team \"{own}\"; it cannot send events for team \"{named}\""
        ))),
        (Some(own), _) => Ok(own.to_owned()),
        // The schema forbids such a token; should one exist, it acts for nobody.
        (None, _) => Err(refuse(
            "this token belongs to no team and is not admin; it cannot send events".into(),
        )),
    }
}

fn json_items(body: &[u8]) -> Result<Vec<&RawValue>, BodyError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    let malformed = |e: serde_json::Error| BodyError::Malformed(format!("invalid JSON: {e}"));
    match first {
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_slice(body).map_err(malformed)?;
            check_count(items.len())?;
            Ok(items)
        }
        Some(b'{') => Ok(vec![serde_json::from_slice(body).map_err(malformed)?]),
        None => Err(BodyError::Malformed(
            "empty body: send an event object or an array of events".into(),
        )),
        Some(_) => match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(value) => Err(BodyError::WrongShape(kind(&value))),
            Err(e) => Err(malformed(e)),
        },
    }
}

fn yaml_items(body: &[u8]) -> Result<Vec<serde_json::Value>, BodyError> {
    let value = tocsin_model::yaml::from_slice(body)
        .map_err(|e| BodyError::Malformed(format!("invalid YAML: {e}")))?;
    match value {
        serde_json::Value::Array(items) => {
            check_count(items.len())?;
            Ok(items)
        }
        object @ serde_json::Value::Object(_) => Ok(vec![object]),
        serde_json::Value::Null => Err(BodyError::Malformed(
            "empty body: send an event object or an array of events".into(),
        )),
        other => Err(BodyError::WrongShape(kind(&other))),
    }
}

fn check_count(n: usize) -> Result<(), BodyError> {
    if n > MAX_ITEMS {
        Err(BodyError::TooManyItems(n))
    } else {
        Ok(())
    }
}

fn path(path: &serde_path_to_error::Path) -> String {
    path.to_string()
}

/// serde_json appends "at line 1 column 42", which counts from the start of the item,
/// not of the body: it would mislead more than help.
fn without_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admin() -> Caller {
        Caller {
            token_id: "a".into(),
            team: None,
            admin: true,
        }
    }

    fn team(name: &str) -> Caller {
        Caller {
            token_id: "t".into(),
            team: Some(name.into()),
            admin: false,
        }
    }

    #[test]
    fn valid_items_of_a_batch_are_accepted_beside_rejected_ones() {
        let body = br#"[
            {"alert": {"monitor": "a", "status": "unhealthy"}},
            {"alert": {"monitor": "b", "status": "warning"}},
            {"alert": {"monitor": "c", "status": "healthy", "count": "many"}},
            {"alert": {"status": "healthy"}},
            {"alert": {"monitor": "e", "status": "healthy"}, "context": {"Reg ion": "x"}}
        ]"#;
        let batch = read(body, Format::Json, &admin(), "api").expect("body parses");
        assert_eq!(batch.accepted.len(), 1);
        assert_eq!(
            batch.ids.iter().map(Option::is_some).collect::<Vec<_>>(),
            [true, false, false, false, false]
        );
        let fields: Vec<(usize, &str)> = batch
            .rejected
            .iter()
            .map(|r| (r.index, r.field.as_str()))
            .collect();
        assert_eq!(
            fields,
            [
                (1, "alert.status"),
                (2, "alert.count"),
                (3, "alert"),
                (4, "context.\"Reg ion\"")
            ]
        );
        assert!(
            batch.rejected[1].error.contains("expected u64"),
            "{:?}",
            batch.rejected[1]
        );
        assert!(
            !batch.rejected[1].error.contains("line"),
            "no misleading position: {:?}",
            batch.rejected[1]
        );
        assert!(batch.rejected[2].error.contains("missing field `monitor`"));
    }

    #[test]
    fn since_defaults_to_receipt_time_and_the_report_is_kept_apart() {
        let batch = read(
            br#"{"alert": {"monitor": "a", "status": "unhealthy"}}"#,
            Format::Json,
            &admin(),
            "api",
        )
        .expect("parses");
        let accepted = &batch.accepted[0];
        assert_eq!(accepted.since(), accepted.received_at);
        assert_eq!(
            accepted.event.alert.since, None,
            "the event is kept as sent"
        );
    }

    #[test]
    fn yaml_single_event_and_list_are_read() {
        let one = b"alert:\n  monitor: a\n  status: healthy\ncontext:\n  region: eu\n";
        assert_eq!(
            read(one, Format::Yaml, &admin(), "api")
                .expect("parses")
                .accepted
                .len(),
            1
        );
        let two =
            b"- alert: {monitor: a, status: healthy}\n- alert: {monitor: b, status: medium}\n";
        let batch = read(two, Format::Yaml, &admin(), "api").expect("parses");
        assert_eq!(batch.accepted.len(), 1);
        assert_eq!(batch.rejected[0].field, "alert.status");
    }

    #[test]
    fn malformed_bodies_say_where() {
        let err = read(b"[{\"alert\": }]", Format::Json, &admin(), "api")
            .expect_err("bad JSON")
            .to_string();
        assert!(
            err.starts_with("invalid JSON:") && err.contains("line 1 column 12"),
            "{err}"
        );
        let err = read(b"alert: [unclosed", Format::Yaml, &admin(), "api")
            .expect_err("bad YAML")
            .to_string();
        assert!(
            err.starts_with("invalid YAML:") && err.contains("line"),
            "{err}"
        );
        let err = read(b"42", Format::Json, &admin(), "api")
            .expect_err("a number")
            .to_string();
        assert_eq!(
            err,
            "expected an event object or an array of events, got a number"
        );
        assert!(read(b"  ", Format::Json, &admin(), "api").is_err());
    }

    #[test]
    fn a_team_token_cannot_send_for_another_team() {
        let body =
            br#"[{"alert": {"monitor": "a", "status": "healthy"}, "context": {"team": "flexo"}},
                        {"alert": {"monitor": "a", "status": "healthy"}}]"#;
        let batch = read(body, Format::Json, &team("bender"), "api").expect("parses");
        assert_eq!(batch.rejected.len(), 1);
        assert_eq!(batch.rejected[0].field, "context.team");
        assert_eq!(batch.accepted[0].team, "bender");
        let batch = read(body, Format::Json, &admin(), "api").expect("parses");
        assert_eq!(
            batch
                .accepted
                .iter()
                .map(|a| a.team.as_str())
                .collect::<Vec<_>>(),
            ["flexo", ""]
        );
    }

    #[test]
    fn a_token_of_no_team_that_is_not_admin_sends_nothing() {
        let nobody = Caller {
            token_id: "x".into(),
            team: None,
            admin: false,
        };
        let batch = read(
            br#"{"alert": {"monitor": "a", "status": "healthy"}, "context": {"team": "flexo"}}"#,
            Format::Json,
            &nobody,
            "api",
        )
        .expect("parses");
        assert!(batch.accepted.is_empty());
        assert_eq!(batch.rejected[0].field, "context.team");
    }

    #[test]
    fn too_many_items_are_refused_whole() {
        let one = r#"{"alert":{"monitor":"a","status":"healthy"}}"#;
        let body = format!("[{}]", vec![one; MAX_ITEMS + 1].join(","));
        assert!(matches!(
            read(body.as_bytes(), Format::Json, &admin(), "api"),
            Err(BodyError::TooManyItems(10_001))
        ));
        let body = format!("[{}]", vec![one; MAX_ITEMS].join(","));
        assert_eq!(
            read(body.as_bytes(), Format::Json, &admin(), "api")
                .expect("at the limit")
                .accepted
                .len(),
            MAX_ITEMS
        );
    }

    #[test]
    fn content_types() {
        assert_eq!(
            Format::from_content_type("application/json; charset=utf-8"),
            Some(Format::Json)
        );
        assert_eq!(
            Format::from_content_type("Application/YAML"),
            Some(Format::Yaml)
        );
        assert_eq!(Format::from_content_type("text/plain"), None);
    }
}
