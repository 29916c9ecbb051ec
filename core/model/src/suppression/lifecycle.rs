//! What a caller does to a suppression over its life: creates it, moves its start or end,
//! ends it; each behind the guards of `docs/pipeline.md#suppressions` and
//! `docs/security.md#suppressions-across-teams`.
//!
//! Nothing here reads the store. The one guard that needs it, the share of known alerts
//! a new suppression would match, takes the counts from its caller: [`NewSuppression`]
//! hands out the [`Matcher`] to count with, and [`NewSuppression::admit`] takes the
//! counts. Each function returns what to store (and to audit), or a [`SuppressionError`]
//! that the API maps to HTTP once.

use serde::Deserialize;
use time::OffsetDateTime;

use super::{Draft, Matcher, Policy, check_share, rfc3339};
use crate::clock::{from_millis_lossy, millis};
use crate::event::FieldError;
use crate::team::Caller;
use crate::views::SuppressionRecord;

/// Why a suppression cannot be created or changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SuppressionError {
    /// The draft breaks one or more rules, each error naming its field.
    #[error("invalid suppression: {}", joined(.0))]
    Invalid(Vec<FieldError>),
    /// A team token asked to force a suppression past the share guard.
    #[error("only an admin token may force a suppression past the share guard")]
    ForceNeedsAdmin,
    /// The draft matches more than the policy share of known alerts; the reason names
    /// both counts.
    #[error("refused: {0}")]
    TooBroad(String),
    /// A team token tried to change or end the admin's suppression of every team with
    /// this id, which it may only see.
    #[error(
        "suppression {0} was made by an admin for every team: only an admin can change or end it"
    )]
    AdminOnly(String),
    /// The suppression with this id has ended, so it can no longer be moved.
    #[error("suppression {0} has ended; create a new one")]
    Ended(String),
}

fn joined(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// A suppression's state at `now`, all three in unix milliseconds: `scheduled`, `active`
/// or `ended`.
pub fn state(start: i64, end: i64, now: i64) -> &'static str {
    if now < start {
        "scheduled"
    } else if now < end {
        "active"
    } else {
        "ended"
    }
}

/// A new suppression that passed every guard but the share guard, which needs the
/// known alerts its [`matcher`](Self::matcher) matches.
#[derive(Debug)]
pub struct NewSuppression {
    draft: Draft,
    matcher: Matcher,
    team: Option<String>,
    created_by: String,
    force: bool,
    policy: Policy,
}

impl NewSuppression {
    /// Checks `draft` as a suppression of `team`'s alerts (every team's when `None`, an
    /// admin's act the caller has already allowed): every rule of the draft, then
    /// whether `caller` may `force` it past the share guard.
    pub fn check(
        draft: Draft,
        team: Option<String>,
        caller: &Caller,
        force: bool,
        policy: &Policy,
    ) -> Result<Self, SuppressionError> {
        let matcher = draft.validate(policy).map_err(SuppressionError::Invalid)?;
        if force && !caller.admin {
            return Err(SuppressionError::ForceNeedsAdmin);
        }
        Ok(Self {
            draft,
            matcher,
            team,
            created_by: caller.token_id.clone(),
            force,
            policy: *policy,
        })
    }

    /// What to count known alerts with.
    pub fn matcher(&self) -> &Matcher {
        &self.matcher
    }

    /// The team whose alerts it stops; `None` for every team's.
    pub fn team(&self) -> Option<&str> {
        self.team.as_deref()
    }

    /// Applies the share guard to the `matched` of `known` alerts of its team (of every
    /// team for `None`), unless forced, and makes the record to store under `id`,
    /// created `now` (unix milliseconds).
    pub fn admit(
        self,
        matched: usize,
        known: usize,
        id: String,
        now: i64,
    ) -> Result<SuppressionRecord, SuppressionError> {
        if let Err(reason) = check_share(matched, known, &self.policy)
            && !self.force
        {
            return Err(SuppressionError::TooBroad(reason));
        }
        Ok(SuppressionRecord {
            id,
            team: self.team,
            state: state(
                millis(self.draft.start_time),
                millis(self.draft.end_time),
                now,
            ),
            draft: self.draft,
            created_at: from_millis_lossy(now),
            created_by: self.created_by,
            forced: self.force,
        })
    }
}

/// New start or end times.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Retime {
    /// New start.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub start_time: Option<OffsetDateTime>,
    /// New end.
    #[serde(default, with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub end_time: Option<OffsetDateTime>,
}

/// A change to a stored suppression: what to store, and how to audit it.
#[derive(Debug)]
pub struct Change {
    /// The suppression as it is once the change is stored.
    pub record: SuppressionRecord,
    /// Its start, in unix milliseconds.
    pub start: i64,
    /// Its end, in unix milliseconds.
    pub end: i64,
    /// The audit action: `edited` or `ended`.
    pub action: &'static str,
    /// The audit detail: each time that may have moved, as `[before, after]` (JSON).
    pub detail: String,
}

/// Moves `record`'s start or end at `now` (unix milliseconds); every rule of the draft
/// is checked again.
pub fn retime(
    record: &SuppressionRecord,
    caller: &Caller,
    retime: &Retime,
    policy: &Policy,
    now: i64,
) -> Result<Change, SuppressionError> {
    may_change(caller, record)?;
    if record.state == "ended" {
        return Err(SuppressionError::Ended(record.id.clone()));
    }
    let mut record = record.clone();
    let before = (record.draft.start_time, record.draft.end_time);
    if let Some(start) = retime.start_time {
        record.draft.start_time = start;
    }
    if let Some(end) = retime.end_time {
        record.draft.end_time = end;
    }
    record
        .draft
        .validate(policy)
        .map_err(SuppressionError::Invalid)?;
    let (start, end) = (
        millis(record.draft.start_time),
        millis(record.draft.end_time),
    );
    let detail = serde_json::json!({
        "startTime": [rfc3339(before.0), rfc3339(record.draft.start_time)],
        "endTime": [rfc3339(before.1), rfc3339(record.draft.end_time)],
    });
    record.state = state(start, end, now);
    Ok(Change {
        record,
        start,
        end,
        action: "edited",
        detail: detail.to_string(),
    })
}

/// Ends `record` at `now` (unix milliseconds); `None` when it has ended already, which
/// leaves it as it is.
pub fn end(
    record: &SuppressionRecord,
    caller: &Caller,
    now: i64,
) -> Result<Option<Change>, SuppressionError> {
    may_change(caller, record)?;
    if record.state == "ended" {
        return Ok(None);
    }
    let mut record = record.clone();
    // One that has not started yet gets an empty window at `now`, never an end before
    // its start.
    let start = millis(record.draft.start_time).min(now);
    let detail = serde_json::json!({
        "endTime": [rfc3339(record.draft.end_time), rfc3339(from_millis_lossy(now))],
    });
    record.draft.start_time = from_millis_lossy(start);
    record.draft.end_time = from_millis_lossy(now);
    record.state = "ended";
    Ok(Some(Change {
        record,
        start,
        end: now,
        action: "ended",
        detail: detail.to_string(),
    }))
}

/// A team sees an admin's suppression of every team once it stopped one of its alerts,
/// but only an admin changes or ends it.
fn may_change(caller: &Caller, record: &SuppressionRecord) -> Result<(), SuppressionError> {
    if caller.admin || (record.team.is_some() && record.team == caller.team) {
        return Ok(());
    }
    Err(SuppressionError::AdminOnly(record.id.clone()))
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    const HOUR: i64 = 3_600_000;

    fn caller(team: Option<&str>) -> Caller {
        Caller {
            token_id: "tok".into(),
            team: team.map(str::to_owned),
            admin: team.is_none(),
        }
    }

    fn draft() -> Draft {
        Draft {
            description: "windows updates".into(),
            start_time: datetime!(2021-02-14 00:00 UTC),
            end_time: datetime!(2021-02-14 07:00 UTC),
            metadata: serde_json::Map::new(),
            targets: vec![[("service".to_owned(), "bender".to_owned())].into()],
        }
    }

    fn start_ms() -> i64 {
        millis(draft().start_time)
    }

    fn record(team: Option<&str>, now: i64) -> SuppressionRecord {
        NewSuppression::check(
            draft(),
            team.map(str::to_owned),
            &caller(team),
            false,
            &Policy::default(),
        )
        .expect("valid")
        .admit(0, 0, "s1".into(), now)
        .expect("admitted")
    }

    #[test]
    fn a_new_suppression_is_recorded_with_its_team_creator_and_state() {
        let record = record(Some("bender"), start_ms() - HOUR);
        assert_eq!(record.id, "s1");
        assert_eq!(record.team.as_deref(), Some("bender"));
        assert_eq!(record.created_by, "tok");
        assert_eq!(record.state, "scheduled");
        assert!(!record.forced);
    }

    #[test]
    fn an_invalid_draft_is_refused_with_every_field() {
        let mut bad = draft();
        bad.description = String::new();
        bad.targets.clear();
        let err = NewSuppression::check(bad, None, &caller(None), false, &Policy::default())
            .expect_err("invalid");
        assert!(matches!(&err, SuppressionError::Invalid(errors) if errors.len() == 2));
        assert!(
            err.to_string()
                .starts_with("invalid suppression: description: "),
            "{err}"
        );
        assert!(err.to_string().contains("; targets: "), "{err}");
    }

    #[test]
    fn only_an_admin_forces_and_the_draft_is_checked_first() {
        let team = caller(Some("bender"));
        let err = NewSuppression::check(
            draft(),
            Some("bender".into()),
            &team,
            true,
            &Policy::default(),
        )
        .expect_err("team force");
        assert_eq!(err, SuppressionError::ForceNeedsAdmin);
        assert_eq!(
            err.to_string(),
            "only an admin token may force a suppression past the share guard"
        );
        let mut bad = draft();
        bad.targets.clear();
        assert!(matches!(
            NewSuppression::check(bad, Some("bender".into()), &team, true, &Policy::default()),
            Err(SuppressionError::Invalid(_))
        ));
    }

    #[test]
    fn the_share_guard_refuses_unless_an_admin_forces() {
        let policy = Policy {
            always_allowed: 0,
            ..Policy::default()
        };
        let team = caller(Some("bender"));
        let new = NewSuppression::check(draft(), Some("bender".into()), &team, false, &policy)
            .expect("valid");
        assert_eq!(new.team(), Some("bender"));
        let err = new.admit(2, 10, "s1".into(), 0).expect_err("20 %");
        assert!(
            err.to_string()
                .starts_with("refused: the suppression would match 2 of 10 known alerts"),
            "{err}"
        );
        let forced = NewSuppression::check(draft(), None, &caller(None), true, &policy)
            .expect("admin may force")
            .admit(2, 10, "s2".into(), 0)
            .expect("forced past the guard");
        assert!(forced.forced);
        assert_eq!(forced.team, None);
    }

    #[test]
    fn retiming_moves_the_times_checks_them_again_and_audits_both() {
        let now = start_ms() - HOUR;
        let record = record(Some("bender"), now);
        let later = Retime {
            end_time: Some(datetime!(2021-02-14 08:00 UTC)),
            ..Retime::default()
        };
        let change = retime(
            &record,
            &caller(Some("bender")),
            &later,
            &Policy::default(),
            now,
        )
        .expect("moved");
        assert_eq!(
            change.record.draft.end_time,
            datetime!(2021-02-14 08:00 UTC)
        );
        assert_eq!(
            (change.start, change.end),
            (start_ms(), start_ms() + 8 * HOUR)
        );
        assert_eq!(change.action, "edited");
        assert_eq!(
            change.detail,
            r#"{"endTime":["2021-02-14T07:00:00Z","2021-02-14T08:00:00Z"],"startTime":["2021-02-14T00:00:00Z","2021-02-14T00:00:00Z"]}"#
        );

        let backwards = Retime {
            end_time: Some(datetime!(2021-02-13 08:00 UTC)),
            ..Retime::default()
        };
        let err = retime(
            &record,
            &caller(Some("bender")),
            &backwards,
            &Policy::default(),
            now,
        )
        .expect_err("end before start");
        assert!(
            err.to_string()
                .starts_with("invalid suppression: endTime: "),
            "{err}"
        );
    }

    #[test]
    fn an_ended_suppression_cannot_be_moved_and_ends_only_once() {
        let ended = record(Some("bender"), start_ms() + 8 * HOUR);
        assert_eq!(ended.state, "ended");
        let bender = caller(Some("bender"));
        let err =
            retime(&ended, &bender, &Retime::default(), &Policy::default(), 0).expect_err("ended");
        assert_eq!(
            err.to_string(),
            "suppression s1 has ended; create a new one"
        );
        assert!(end(&ended, &bender, 0).expect("no error").is_none());
    }

    #[test]
    fn ending_now_keeps_a_past_start_and_pulls_a_future_one_in() {
        let now = start_ms() + HOUR;
        let active = record(Some("bender"), now);
        let change = end(&active, &caller(Some("bender")), now)
            .expect("allowed")
            .expect("ends");
        assert_eq!((change.start, change.end), (start_ms(), now));
        assert_eq!(change.record.state, "ended");
        assert_eq!(change.record.draft.end_time, from_millis_lossy(now));
        assert_eq!(change.action, "ended");
        assert_eq!(
            change.detail,
            r#"{"endTime":["2021-02-14T07:00:00Z","2021-02-14T01:00:00Z"]}"#
        );

        let early = start_ms() - HOUR;
        let scheduled = record(Some("bender"), early);
        let change = end(&scheduled, &caller(Some("bender")), early)
            .expect("allowed")
            .expect("ends");
        assert_eq!((change.start, change.end), (early, early));
    }

    #[test]
    fn only_an_admin_changes_an_admins_suppression_of_every_team() {
        let now = start_ms() - HOUR;
        let everyone = record(None, now);
        let bender = caller(Some("bender"));
        let refused = SuppressionError::AdminOnly("s1".into());
        assert_eq!(
            retime(
                &everyone,
                &bender,
                &Retime::default(),
                &Policy::default(),
                now
            )
            .expect_err("team"),
            refused
        );
        assert_eq!(end(&everyone, &bender, now).expect_err("team"), refused);
        assert_eq!(
            refused.to_string(),
            "suppression s1 was made by an admin for every team: only an admin can change or end it"
        );
        assert!(end(&everyone, &caller(None), now).expect("admin").is_some());
        let flexo = caller(Some("flexo"));
        let benders = record(Some("bender"), now);
        assert!(end(&benders, &flexo, now).is_err(), "another team's");
    }

    #[test]
    fn states_follow_the_clock() {
        assert_eq!(state(10, 20, 5), "scheduled");
        assert_eq!(state(10, 20, 10), "active");
        assert_eq!(state(10, 20, 20), "ended");
    }
}
