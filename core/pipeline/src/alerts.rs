//! The table of tracked alert identities: the engine's largest structure, a million
//! entries for a wide outage, so laid out for memory.
//!
//! The records sit in one `Vec` in the order they were first tracked, and a hash table
//! of 4-byte positions finds them by key. A `HashMap<AlertKey, Tracked>` held the
//! records in its buckets: a million needed 2²¹ buckets of 57 bytes (its load factor
//! stops at 7/8 of 2²⁰), 120 MB. Here the million records take 56 MB and the positions
//! 10 MB. A record's position never changes (alerts are not forgotten while the
//! process runs), so an incident lists its members as positions, 4 bytes each instead of
//! a 20-byte key.

use std::hash::{BuildHasher, RandomState};

use hashbrown::HashTable;

use crate::state::{AlertKey, Tracked};

/// The position of a tracked alert in [`Alerts`].
pub(crate) type Slot = u32;

/// Tracked alert identities, by key and by [`Slot`].
#[derive(Debug, Default)]
pub(crate) struct Alerts {
    records: Vec<(AlertKey, Tracked)>,
    index: HashTable<Slot>,
    /// Keyed: the fingerprint is derived from what a team sends, so a fixed hash would
    /// let a team pile its alerts into one chain of the table.
    hasher: RandomState,
}

impl Alerts {
    /// How many alerts are tracked.
    pub(crate) fn len(&self) -> usize {
        self.records.len()
    }

    /// Every key and record, in the order they were first tracked.
    #[cfg(test)]
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&AlertKey, &Tracked)> {
        self.records.iter().map(|(key, tracked)| (key, tracked))
    }

    /// Every record, in the order they were first tracked.
    #[cfg(test)]
    pub(crate) fn values(&self) -> impl Iterator<Item = &Tracked> {
        self.records.iter().map(|(_, tracked)| tracked)
    }

    /// Where `key` is, if tracked.
    pub(crate) fn slot(&self, key: &AlertKey) -> Option<Slot> {
        let records = &self.records;
        self.index
            .find(self.hasher.hash_one(key), |&slot| {
                records[slot as usize].0 == *key
            })
            .copied()
    }

    /// The record of `key`.
    pub(crate) fn get(&self, key: &AlertKey) -> Option<&Tracked> {
        self.slot(key).map(|slot| &self.records[slot as usize].1)
    }

    /// The record of `key`, to change it.
    pub(crate) fn get_mut(&mut self, key: &AlertKey) -> Option<&mut Tracked> {
        let slot = self.slot(key)?;
        Some(&mut self.records[slot as usize].1)
    }

    /// The record at `slot`, to change it.
    pub(crate) fn at_mut(&mut self, slot: Slot) -> Option<&mut Tracked> {
        self.records
            .get_mut(slot as usize)
            .map(|(_, tracked)| tracked)
    }

    /// Sets the record of `key`, tracking it if new; returns its slot.
    pub(crate) fn insert(&mut self, key: AlertKey, tracked: Tracked) -> Slot {
        if let Some(slot) = self.slot(&key) {
            self.records[slot as usize].1 = tracked;
            return slot;
        }
        let slot = Slot::try_from(self.records.len()).expect("fewer than 2³² alerts tracked");
        if self.records.len() == self.records.capacity() {
            // Half again rather than double: a `Vec` doubled at a million reserves
            // room for two.
            self.records
                .reserve_exact((self.records.capacity() / 2).max(1024));
        }
        self.records.push((key, tracked));
        let (records, hasher) = (&self.records, &self.hasher);
        self.index
            .insert_unique(hasher.hash_one(key), slot, |&other| {
                hasher.hash_one(records[other as usize].0)
            });
        slot
    }
}

#[cfg(test)]
mod tests {
    use tocsin_model::event::Status;

    use super::*;
    use crate::state::NEVER;

    fn tracked(count: i64) -> Tracked {
        Tracked {
            since: 0,
            count,
            incident: 0,
            reported: Status::Unhealthy,
            passed: Status::Unhealthy,
            hold: None,
            changed: NEVER,
        }
    }

    fn key(n: u32) -> AlertKey {
        let fingerprint = format!("{n:032x}").parse().expect("32 hex digits");
        (n % 3, fingerprint)
    }

    #[test]
    fn finds_every_record_by_key_and_slot_across_growth() {
        let mut alerts = Alerts::default();
        for n in 0..50_000 {
            assert_eq!(alerts.insert(key(n), tracked(n.into())), n);
        }
        assert_eq!(alerts.len(), 50_000);
        for n in (0..50_000).step_by(7) {
            assert_eq!(alerts.slot(&key(n)), Some(n));
            assert_eq!(alerts.get(&key(n)).map(|t| t.count), Some(n.into()));
        }
        assert!(alerts.get(&key(50_000)).is_none());
        // Setting a tracked key again keeps its slot.
        assert_eq!(alerts.insert(key(42), tracked(-1)), 42);
        assert_eq!(alerts.len(), 50_000);
        if let Some(record) = alerts.at_mut(42) {
            record.count = 7;
        }
        assert_eq!(alerts.get(&key(42)).map(|t| t.count), Some(7));
        if let Some(record) = alerts.get_mut(&key(43)) {
            record.count = 8;
        }
        assert_eq!(alerts.get(&key(43)).map(|t| t.count), Some(8));
        assert!(alerts.at_mut(50_000).is_none());
    }
}
