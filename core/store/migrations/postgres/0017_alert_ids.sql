-- Alert ids: each alert identity gets an integer id, in the order the pipeline first
-- tracked it, and the tables that point at an alert point at that id (see the SQLite
-- migration of the same number for why: an index keyed by the fingerprint, a hash,
-- takes every new identity at a random place).

ALTER TABLE alerts ADD COLUMN id BIGSERIAL;
CREATE UNIQUE INDEX alerts_by_id ON alerts (id);

-- The history of a tracked alert is found by its id; an event whose identity was not
-- tracked when it was recorded (dropped before it ever passed) by its fingerprint.
ALTER TABLE history ADD COLUMN alert BIGINT;
UPDATE history h SET alert = a.id FROM alerts a
    WHERE a.team = h.team AND a.fingerprint = h.fingerprint;
DROP INDEX history_by_alert;
CREATE INDEX history_by_alert ON history (alert, processed_at);
CREATE INDEX history_untracked ON history (fingerprint, processed_at) WHERE alert IS NULL;

-- An incident's members by alert id.
ALTER TABLE incident_alerts ADD COLUMN alert BIGINT;
UPDATE incident_alerts m SET alert = a.id FROM alerts a
    WHERE a.team = m.team AND a.fingerprint = m.fingerprint;
-- A member whose alert row is missing (none should be) keeps a negative id of its own.
UPDATE incident_alerts m SET alert = -o.n
    FROM (SELECT ctid, row_number() OVER () AS n FROM incident_alerts WHERE alert IS NULL) o
    WHERE m.ctid = o.ctid;
ALTER TABLE incident_alerts ALTER COLUMN alert SET NOT NULL;
ALTER TABLE incident_alerts DROP CONSTRAINT incident_alerts_pkey;
ALTER TABLE incident_alerts ADD PRIMARY KEY (incident_id, alert);
