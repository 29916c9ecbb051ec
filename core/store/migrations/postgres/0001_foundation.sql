-- Tokens: only the SHA-256 of a token is kept; the token itself is shown once, at creation.
CREATE TABLE tokens (
    id          TEXT PRIMARY KEY,
    hash        TEXT NOT NULL UNIQUE,
    team        TEXT,
    admin       BOOLEAN NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,           -- unix milliseconds, like every time here
    revoked_at  BIGINT,
    -- An admin token acts for every team and belongs to none; any other belongs to one.
    CHECK ((admin AND team IS NULL) OR (NOT admin AND team IS NOT NULL))
);

-- The durable journal: an event is here before its 202 is sent, and stays until the
-- pipeline has processed it. Besides the event as sent, it keeps the fields the
-- alert-state stage needs as columns, so that stage runs as one SQL statement per batch.
CREATE TABLE journal (
    seq            BIGSERIAL PRIMARY KEY,
    id             TEXT NOT NULL,         -- a UUIDv7, unique by construction
    team           TEXT NOT NULL,
    fingerprint    TEXT NOT NULL,
    source         TEXT NOT NULL,
    received_at    BIGINT NOT NULL,
    monitor        TEXT NOT NULL,
    status         TEXT NOT NULL,
    labels         JSONB NOT NULL,
    reported_since BIGINT,
    reported_count BIGINT,
    event          JSONB NOT NULL
);

-- The current state of each alert identity. `since`/`count` are Tocsin's view; the
-- `reported_*` columns keep what the check itself last said (NULL when it said nothing).
CREATE TABLE alerts (
    team           TEXT NOT NULL,
    fingerprint    TEXT NOT NULL,
    monitor        TEXT NOT NULL,
    labels         JSONB NOT NULL,
    status         TEXT NOT NULL,
    since          BIGINT NOT NULL,
    count          BIGINT NOT NULL,
    first_seen     BIGINT NOT NULL,
    last_seen      BIGINT NOT NULL,
    reported_since BIGINT,
    reported_count BIGINT,
    last_event     TEXT NOT NULL,
    PRIMARY KEY (team, fingerprint)
);

-- How far each pipeline stage has read the journal: it moves in the same transaction
-- as the stage's writes, so a crash never applies an event twice or skips one.
CREATE TABLE progress (
    stage TEXT PRIMARY KEY,
    seq   BIGINT NOT NULL
);
INSERT INTO progress (stage, seq) VALUES ('alerts', 0);
