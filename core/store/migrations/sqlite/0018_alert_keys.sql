-- Alert keys merged in bulk: the (team, fingerprint) -> id map leaves the alerts table's
-- unique index for a table of its own, `alert_keys`, that the pipeline fills in sorted
-- runs of at least 50,000 new identities rather than one random insert each.
--
-- Why: the fingerprint is a hash, so the unique index took every new identity at a
-- random leaf. In a wide outage (a million new failing identities) nearly every insert
-- dirtied a page of its own, which the commit wrote to the WAL and which pushed the
-- writer's page cache out. Sorted and merged in one statement, tens of thousands of
-- keys share each leaf they touch.
--
-- The alerts above the mark (`alert_keys_mark`, the highest id merged) are the tail:
-- fewer than 50,000 rows, which reads of the key (the alert listing, an alert's
-- history) scan besides `alert_keys`. The pipeline itself never looks an identity up
-- in the database: it holds every tracked identity's id in memory.

CREATE TABLE alert_keys (
    team        TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    id          INTEGER NOT NULL,
    PRIMARY KEY (team, fingerprint)
) WITHOUT ROWID;
INSERT INTO alert_keys (team, fingerprint, id)
    SELECT team, fingerprint, id FROM alerts ORDER BY team, fingerprint;

CREATE TABLE alert_keys_mark (id INTEGER NOT NULL);
INSERT INTO alert_keys_mark (id) SELECT COALESCE(MAX(id), 0) FROM alerts;

DROP INDEX alerts_by_key;
