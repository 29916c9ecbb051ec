-- Alert ids: each alert identity gets an integer id, in the order the pipeline first
-- tracked it, and the tables that point at an alert point at that id.
--
-- Why: the fingerprint is a hash, so every index keyed by it takes a new identity at a
-- random place. A wide outage (a million new failing identities) inserted into three
-- such B-trees (the alerts themselves, the history's per-alert index, the incidents'
-- members), and each insert dirtied a page of its own that the commit wrote to the WAL:
-- about 10 KB written per event. Keyed by the id, new identities are appended at the
-- end of each tree; only `alerts_by_key` (team, fingerprint -> id, a few dozen bytes an
-- entry) still takes them at random.

CREATE TABLE alerts_new (
    id             INTEGER PRIMARY KEY,
    team           TEXT NOT NULL,
    fingerprint    TEXT NOT NULL,
    monitor        TEXT NOT NULL,
    labels         TEXT NOT NULL,
    status         TEXT NOT NULL,
    since          INTEGER NOT NULL,
    count          INTEGER NOT NULL,
    first_seen     INTEGER NOT NULL,
    last_seen      INTEGER NOT NULL,
    reported_since INTEGER,
    reported_count INTEGER,
    last_event     TEXT NOT NULL,
    passed         TEXT NOT NULL DEFAULT 'healthy',
    hold           TEXT,
    transitions    TEXT NOT NULL DEFAULT ''
);
INSERT INTO alerts_new (team, fingerprint, monitor, labels, status, since, count, first_seen,
                        last_seen, reported_since, reported_count, last_event, passed, hold,
                        transitions)
    SELECT team, fingerprint, monitor, labels, status, since, count, first_seen, last_seen,
           reported_since, reported_count, last_event, passed, hold, transitions
    FROM alerts ORDER BY first_seen, team, fingerprint;
DROP TABLE alerts;
ALTER TABLE alerts_new RENAME TO alerts;
CREATE UNIQUE INDEX alerts_by_key ON alerts (team, fingerprint);

-- The history of a tracked alert is found by its id; an event whose identity was not
-- tracked when it was recorded (dropped before it ever passed) by its fingerprint.
ALTER TABLE history ADD COLUMN alert INTEGER;
UPDATE history SET alert = (
    SELECT a.id FROM alerts a WHERE a.team = history.team AND a.fingerprint = history.fingerprint
);
DROP INDEX history_by_alert;
CREATE INDEX history_by_alert ON history (alert, processed_at);
CREATE INDEX history_untracked ON history (fingerprint, processed_at) WHERE alert IS NULL;

-- An incident's members by alert id, the row in the key's tree (no separate index):
-- the members of a new incident are appended, and a restart reads each incident's
-- fingerprints from the same tree.
CREATE TABLE incident_alerts_new (
    incident_id TEXT NOT NULL,
    alert       INTEGER NOT NULL,
    team        TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    monitor     TEXT NOT NULL,
    labels      TEXT NOT NULL,
    status      TEXT NOT NULL,
    priority    TEXT NOT NULL,
    joined_at   INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    last_event  TEXT NOT NULL,
    PRIMARY KEY (incident_id, alert)
) WITHOUT ROWID;
-- A member whose alert row is missing (none should be) keeps a negative id of its own.
INSERT INTO incident_alerts_new
    SELECT m.incident_id, COALESCE(a.id, -m.rowid), m.team, m.fingerprint, m.monitor, m.labels,
           m.status, m.priority, m.joined_at, m.updated_at, m.last_event
    FROM incident_alerts m LEFT JOIN alerts a ON a.team = m.team AND a.fingerprint = m.fingerprint;
DROP TABLE incident_alerts;
ALTER TABLE incident_alerts_new RENAME TO incident_alerts;
