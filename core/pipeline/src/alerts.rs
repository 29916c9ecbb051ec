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
//!
//! The table also gives each alert its database id (the `alerts` table's), in the order
//! alerts are first tracked, so that the rows a batch writes carry it: the store then
//! needs no lookup by team and fingerprint per row. The ids of a table are consecutive
//! (they are given in the same order the table is loaded in), so they take no memory:
//! the id of a slot is the first id plus the slot, unless a database gave them with
//! gaps, and then each is kept.

use std::hash::{BuildHasher, RandomState};

use hashbrown::HashTable;

use crate::state::{AlertKey, Slot, Tracked};

/// Tracked alert identities, by key and by [`Slot`].
#[derive(Debug)]
pub(crate) struct Alerts {
    records: Vec<(AlertKey, Tracked)>,
    index: HashTable<Slot>,
    /// Keyed: the fingerprint is derived from what a team sends, so a fixed hash would
    /// let a team pile its alerts into one chain of the table.
    hasher: RandomState,
    /// The id of slot 0; slot `n` has `first_id + n` while `ids` is empty.
    first_id: i64,
    /// Every slot's id, once they are not consecutive.
    ids: Vec<i64>,
    /// The id the next new alert gets: above every id the database holds.
    next_id: i64,
    /// Slots from here on were tracked since the last [`Alerts::written`]: their rows
    /// are inserted, not updated.
    unwritten: usize,
}

impl Default for Alerts {
    fn default() -> Self {
        Self {
            records: Vec::new(),
            index: HashTable::new(),
            hasher: RandomState::new(),
            first_id: 1,
            ids: Vec::new(),
            next_id: 1,
            unwritten: 0,
        }
    }
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

    /// The record at `slot`.
    pub(crate) fn at(&self, slot: Slot) -> Option<&Tracked> {
        self.records.get(slot as usize).map(|(_, tracked)| tracked)
    }

    /// The record at `slot`, to change it.
    pub(crate) fn at_mut(&mut self, slot: Slot) -> Option<&mut Tracked> {
        self.records
            .get_mut(slot as usize)
            .map(|(_, tracked)| tracked)
    }

    /// The database id of the alert at `slot`.
    pub(crate) fn id(&self, slot: Slot) -> i64 {
        match self.ids.get(slot as usize) {
            Some(&id) => id,
            None => self.first_id + i64::from(slot),
        }
    }

    /// Whether the alert at `slot` was tracked since the rows were last taken
    /// ([`Alerts::written`]): its row is not in the database yet.
    pub(crate) fn is_new(&self, slot: Slot) -> bool {
        slot as usize >= self.unwritten
    }

    /// The rows of every alert tracked so far are on their way to the database.
    pub(crate) fn written(&mut self) {
        self.unwritten = self.records.len();
    }

    /// An id the database holds (a loaded alert's, or one skipped): new alerts get
    /// higher ones.
    pub(crate) fn taken(&mut self, id: i64) {
        self.next_id = self.next_id.max(id.saturating_add(1));
    }

    /// Sets the record of `key`, tracking it if new with the next id; returns its slot.
    pub(crate) fn insert(&mut self, key: AlertKey, tracked: Tracked) -> Slot {
        let id = self.next_id;
        self.put(key, tracked, id)
    }

    /// Tracks `key` as loaded from the database with its id; returns its slot.
    pub(crate) fn load(&mut self, key: AlertKey, tracked: Tracked, id: i64) -> Slot {
        self.taken(id);
        let slot = self.put(key, tracked, id);
        self.written();
        slot
    }

    fn put(&mut self, key: AlertKey, tracked: Tracked, id: i64) -> Slot {
        if let Some(slot) = self.slot(&key) {
            self.records[slot as usize].1 = tracked;
            return slot;
        }
        let slot = Slot::try_from(self.records.len()).expect("fewer than 2³² alerts tracked");
        self.taken(id);
        if slot == 0 {
            self.first_id = id;
        }
        if self.ids.is_empty() && id != self.first_id + i64::from(slot) {
            self.ids = (0..slot)
                .map(|slot| self.first_id + i64::from(slot))
                .collect();
        }
        if !self.ids.is_empty() {
            self.ids.push(id);
        }
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

    #[test]
    fn gives_ids_above_every_loaded_one_and_keeps_gaps() {
        let mut alerts = Alerts::default();
        // Consecutive ids from the database: no id kept per slot.
        for n in 0..3 {
            alerts.load(key(n), tracked(0), 10 + i64::from(n));
        }
        assert!(alerts.ids.is_empty());
        // A row skipped at load (unreadable) still holds its id.
        alerts.taken(20);
        let new = alerts.insert(key(3), tracked(0));
        assert_eq!((alerts.id(0), alerts.id(2), alerts.id(new)), (10, 12, 21));
        assert!(alerts.is_new(new) && !alerts.is_new(2));
        let next = alerts.insert(key(4), tracked(0));
        assert_eq!(alerts.id(next), 22);
        // Setting a tracked key again gives no new id.
        alerts.insert(key(4), tracked(1));
        let last = alerts.insert(key(5), tracked(0));
        assert_eq!(alerts.id(last), 23);
        alerts.written();
        assert!(!alerts.is_new(next));
        // A fresh table starts at 1, consecutive.
        let mut fresh = Alerts::default();
        let (first, second) = (
            fresh.insert(key(0), tracked(0)),
            fresh.insert(key(1), tracked(0)),
        );
        assert_eq!((fresh.id(first), fresh.id(second)), (1, 2));
        assert!(fresh.ids.is_empty());
    }
}
