//! Typed views over a filter batch. The host sends every string of a batch in one
//! text and everything else as three lists of numbers (layout in the WIT); these views
//! borrow from them, so reading an event allocates nothing.

use crate::bindings::tocsin::plugin::types::{Batch, Priority, Status};

/// Numbers per event in [`Batch::events`].
const STRIDE: usize = 7;

/// One event of a batch, borrowing from it.
#[derive(Clone, Copy)]
pub struct EventRef<'a> {
    batch: &'a Batch,
    index: usize,
}

fn text(batch: &Batch, offset: u32, len: u32) -> &str {
    let start = offset as usize;
    batch.text.get(start..start + len as usize).unwrap_or("")
}

impl Batch {
    /// The events, in order.
    pub fn events(&self) -> impl ExactSizeIterator<Item = EventRef<'_>> {
        (0..self.len()).map(move |index| EventRef { batch: self, index })
    }

    /// How many events the batch holds.
    pub fn len(&self) -> usize {
        self.events.len() / STRIDE
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

impl<'a> EventRef<'a> {
    fn number(&self, field: usize) -> u32 {
        self.batch
            .events
            .get(self.index * STRIDE + field)
            .copied()
            .unwrap_or(0)
    }

    /// The check's name.
    pub fn monitor(&self) -> &'a str {
        text(self.batch, self.number(0), self.number(1))
    }

    /// Its status.
    pub fn status(&self) -> Status {
        if self.is_unhealthy() {
            Status::Unhealthy
        } else {
            Status::Healthy
        }
    }

    /// Whether the status is unhealthy.
    pub fn is_unhealthy(&self) -> bool {
        self.number(4) & 1 == 1
    }

    /// The message, empty when none.
    pub fn message(&self) -> &'a str {
        text(self.batch, self.number(2), self.number(3))
    }

    /// The priority as sent, if any.
    pub fn priority(&self) -> Option<Priority> {
        match (self.number(4) >> 1) & 3 {
            1 => Some(Priority::High),
            2 => Some(Priority::Low),
            _ => None,
        }
    }

    /// When the check entered its status, unix ms, if sent.
    pub fn since(&self) -> Option<i64> {
        self.batch
            .times
            .get(self.index * 2)
            .copied()
            .filter(|t| *t != i64::MIN)
    }

    /// When Tocsin accepted the event, unix ms.
    pub fn received_at(&self) -> i64 {
        self.batch
            .times
            .get(self.index * 2 + 1)
            .copied()
            .unwrap_or(0)
    }

    /// The labels, in key order.
    pub fn labels(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let batch = self.batch;
        let start = self.number(5) as usize * 4;
        let end = start + self.number(6) as usize * 4;
        batch
            .labels
            .get(start..end)
            .unwrap_or(&[])
            .chunks_exact(4)
            .map(move |l| (text(batch, l[0], l[1]), text(batch, l[2], l[3])))
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
