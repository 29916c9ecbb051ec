//! The messages on the queues. They carry no events: each says which store table has
//! work, and the function that takes it finds the work there.

use serde::{Deserialize, Serialize};

/// A queue message's body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
/// Unknown fields are ignored, so that a newer sender may add some.
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Nudge {
    /// New events are in the journal (sent by `api` after its commit).
    Journal,
    /// An incident command (ack, close) waits in the store.
    Command,
    /// The clock moved: timers may be due (sent by `tick`).
    Tick,
    /// Notices or deliveries wait in the outbox (sent by `pipeline`, `notify`, `tick`).
    Outbox,
}

impl Nudge {
    /// The body to send.
    pub fn body(self) -> String {
        // A unit variant with a tag always serialises.
        serde_json::to_string(&self).unwrap_or_default()
    }

    /// Reads a body; the error says why it is not one.
    pub fn parse(body: Option<&str>) -> Result<Self, String> {
        let body = body.ok_or("the message has no body")?;
        serde_json::from_str(body).map_err(|e| format!("not a Tocsin queue message: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_read_back_and_anything_else_says_why_not() {
        for nudge in [Nudge::Journal, Nudge::Command, Nudge::Tick, Nudge::Outbox] {
            assert_eq!(Nudge::parse(Some(&nudge.body())), Ok(nudge));
        }
        assert_eq!(Nudge::Journal.body(), r#"{"kind":"journal"}"#);
        assert_eq!(
            Nudge::parse(Some(r#"{"kind":"journal","from":"a newer api"}"#)),
            Ok(Nudge::Journal)
        );
        let err = Nudge::parse(Some(r#"{"kind":"events"}"#)).expect_err("unknown kind");
        assert!(err.contains("unknown variant"), "{err}");
        let err = Nudge::parse(Some("garbage")).expect_err("not json");
        assert!(err.starts_with("not a Tocsin queue message"), "{err}");
        assert_eq!(Nudge::parse(None), Err("the message has no body".into()));
    }
}
