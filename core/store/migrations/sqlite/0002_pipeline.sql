-- The pipeline (DESIGN §4): events leave the journal once processed, so the journal's
-- seq must never be reused below a cursor: AUTOINCREMENT guarantees that, and SQLite
-- can only add it by rebuilding the table.
CREATE TABLE journal_new (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    id             TEXT NOT NULL,
    team           TEXT NOT NULL,
    fingerprint    TEXT NOT NULL,
    source         TEXT NOT NULL,
    received_at    INTEGER NOT NULL,
    monitor        TEXT NOT NULL,
    status         TEXT NOT NULL,
    labels         TEXT NOT NULL,
    reported_since INTEGER,
    reported_count INTEGER,
    event          TEXT NOT NULL
);
INSERT INTO journal_new SELECT * FROM journal;
DROP TABLE journal;
ALTER TABLE journal_new RENAME TO journal;
-- Keeps AUTOINCREMENT above every seq ever used, even when the journal is empty.
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'journal', COALESCE(MAX(seq), 0) FROM journal
    WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'journal');

-- What the pipeline knows of each alert besides its reported status: the status last
-- passed downstream (to grouping), why the two differ (`hold`), and the recent status
-- changes that flap detection counts (comma-separated unix milliseconds).
ALTER TABLE alerts ADD COLUMN passed TEXT NOT NULL DEFAULT 'healthy';
ALTER TABLE alerts ADD COLUMN hold TEXT;
ALTER TABLE alerts ADD COLUMN transitions TEXT NOT NULL DEFAULT '';

-- The pipeline's cursor replaces the alert-state stage's. `generation` counts the
-- pipeline's commits, so a process whose in-memory state is stale (another process
-- committed) notices and reloads; `config` counts catalogue and suppression changes.
INSERT INTO progress (stage, seq) SELECT 'pipeline', seq FROM progress WHERE stage = 'alerts';
INSERT INTO progress (stage, seq) VALUES ('generation', 0), ('config', 0);
DELETE FROM progress WHERE stage = 'alerts';

-- Events the pipeline holds back and may release later: an `ignore-flap` wait, a
-- flapping alert's latest change, an unhealthy alert under a suppression.
CREATE TABLE held (
    team           TEXT NOT NULL,
    fingerprint    TEXT NOT NULL,
    kind           TEXT NOT NULL,       -- ignore-flap | flapping | suppressed
    due_at         INTEGER,             -- when the hold ends by itself, if it does
    suppression_id TEXT,
    id             TEXT NOT NULL,
    source         TEXT NOT NULL,
    received_at    INTEGER NOT NULL,
    event          TEXT NOT NULL,
    PRIMARY KEY (team, fingerprint)
) WITHOUT ROWID;

-- Every event that changed something or was stopped, with why; steady repeats only
-- refresh their alert's row and a counter. Pruned after the retention period.
CREATE TABLE history (
    id             TEXT NOT NULL,
    team           TEXT NOT NULL,
    fingerprint    TEXT NOT NULL,
    source         TEXT NOT NULL,
    received_at    INTEGER NOT NULL,
    processed_at   INTEGER NOT NULL,
    monitor        TEXT NOT NULL,
    status         TEXT NOT NULL,
    labels         TEXT NOT NULL,
    outcome        TEXT NOT NULL,       -- passed | dropped | held | suppressed
    reason         TEXT NOT NULL,
    suppression_id TEXT,
    incident_id    TEXT,
    priority       TEXT,
    event          TEXT NOT NULL
);
CREATE INDEX history_by_time ON history (processed_at);
CREATE INDEX history_by_alert ON history (team, fingerprint, processed_at);
CREATE INDEX history_by_suppression ON history (suppression_id, processed_at) WHERE suppression_id IS NOT NULL;

-- How many events each reason stopped, since the database was created.
CREATE TABLE drops (
    reason TEXT PRIMARY KEY,
    count  BIGINT NOT NULL
);

-- Incidents: groups of alerts with one key. `open_key` is the key while the incident
-- still takes new alerts and NULL after; the unique index is what makes two open
-- incidents for one key impossible, whatever the process.
CREATE TABLE incidents (
    id            TEXT PRIMARY KEY,
    team          TEXT NOT NULL,
    key           TEXT NOT NULL,
    open_key      TEXT,
    state         TEXT NOT NULL,        -- open | resolving | resolved | closed
    priority      TEXT NOT NULL,
    title         TEXT NOT NULL,
    service       TEXT,
    region        TEXT,
    window_ms     BIGINT NOT NULL,
    alerts        BIGINT NOT NULL,
    unhealthy     BIGINT NOT NULL,
    opened_at     INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    last_alert_at INTEGER NOT NULL,
    resolve_at    INTEGER,
    resolved_at   INTEGER,
    acked_at      INTEGER,
    acked_by      TEXT,
    closed_at     INTEGER,
    closed_by     TEXT
);
CREATE UNIQUE INDEX incidents_one_open_per_key ON incidents (team, open_key) WHERE open_key IS NOT NULL;
CREATE INDEX incidents_by_state ON incidents (state, opened_at);
CREATE INDEX incidents_by_time ON incidents (updated_at);

CREATE TABLE incident_alerts (
    incident_id TEXT NOT NULL,
    team        TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    monitor     TEXT NOT NULL,
    labels      TEXT NOT NULL,
    status      TEXT NOT NULL,
    priority    TEXT NOT NULL,
    joined_at   INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    last_event  TEXT NOT NULL,
    PRIMARY KEY (incident_id, team, fingerprint)
);

CREATE TABLE incident_timeline (
    incident_id TEXT NOT NULL,
    at          INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    detail      TEXT NOT NULL
);
CREATE INDEX incident_timeline_by_incident ON incident_timeline (incident_id, at);

-- The service catalogue: one row per service, its settings as JSON.
CREATE TABLE services (
    name       TEXT PRIMARY KEY,
    team       TEXT NOT NULL,
    spec       TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by TEXT NOT NULL
);

CREATE TABLE suppressions (
    id          TEXT PRIMARY KEY,
    team        TEXT,                   -- NULL when an admin created it for no team
    description TEXT NOT NULL,
    start_time  INTEGER NOT NULL,
    end_time    INTEGER NOT NULL,
    metadata    TEXT NOT NULL,
    targets     TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    created_by  TEXT NOT NULL,
    forced      INTEGER NOT NULL
);
CREATE INDEX suppressions_by_end ON suppressions (end_time);

-- Who changed which suppression, when, and how (the change as JSON).
CREATE TABLE suppression_audit (
    suppression_id TEXT NOT NULL,
    at             INTEGER NOT NULL,
    actor          TEXT NOT NULL,
    action         TEXT NOT NULL,       -- created | edited | ended
    detail         TEXT NOT NULL
);
CREATE INDEX suppression_audit_by_id ON suppression_audit (suppression_id, at);
