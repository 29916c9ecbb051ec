//! Typed views over a filter batch. The host sends every string of a batch in one
//! text and each event as spans into it; these views borrow from that text.

use crate::bindings::tocsin::plugin::types::{Batch, EventView, Priority, Span, Status};

/// One event of a batch, borrowing from it.
#[derive(Clone, Copy)]
pub struct EventRef<'a> {
    batch: &'a Batch,
    view: &'a EventView,
}

fn text(batch: &Batch, span: Span) -> &str {
    let start = span.offset as usize;
    batch
        .text
        .get(start..start + span.len as usize)
        .unwrap_or("")
}

impl Batch {
    /// The events, in order.
    pub fn events(&self) -> impl ExactSizeIterator<Item = EventRef<'_>> {
        self.events.iter().map(move |view| EventRef { batch: self, view })
    }

    /// How many events the batch holds.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

impl<'a> EventRef<'a> {
    /// The check's name.
    pub fn monitor(&self) -> &'a str {
        text(self.batch, self.view.monitor)
    }

    /// Its status.
    pub fn status(&self) -> Status {
        self.view.status
    }

    /// Whether the status is unhealthy.
    pub fn is_unhealthy(&self) -> bool {
        matches!(self.view.status, Status::Unhealthy)
    }

    /// The message, empty when none.
    pub fn message(&self) -> &'a str {
        text(self.batch, self.view.message)
    }

    /// The priority as sent, if any.
    pub fn priority(&self) -> Option<Priority> {
        self.view.priority
    }

    /// When the check entered its status, unix ms, if sent.
    pub fn since(&self) -> Option<i64> {
        self.view.since
    }

    /// When Tocsin accepted the event, unix ms.
    pub fn received_at(&self) -> i64 {
        self.view.received_at
    }

    /// The labels, in key order.
    pub fn labels(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let batch = self.batch;
        let start = self.view.labels_start as usize;
        let end = start + self.view.labels_len as usize;
        batch
            .labels
            .get(start..end)
            .unwrap_or(&[])
            .iter()
            .map(move |l| (text(batch, l.key), text(batch, l.value)))
    }

    /// The value of one label.
    pub fn label(&self, key: &str) -> Option<&'a str> {
        self.labels().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// A stable key for the alert identity: monitor and labels. Handy as a state key.
    pub fn identity(&self) -> String {
        let mut key = String::from(self.monitor());
        for (k, v) in self.labels() {
            key.push('\u{1f}');
            key.push_str(k);
            key.push('=');
            key.push_str(v);
        }
        key
    }
}
