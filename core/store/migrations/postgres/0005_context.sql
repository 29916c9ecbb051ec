-- Context for incidents (DESIGN §4, context collection): runbooks and recent changes
-- that teams record, and the sections collectors gathered for each incident.
CREATE TABLE runbooks (
    id         TEXT PRIMARY KEY,
    team       TEXT NOT NULL,
    markdown   TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by TEXT NOT NULL
);

CREATE TABLE changes (
    id          TEXT PRIMARY KEY,       -- UUIDv7: time-ordered
    team        TEXT NOT NULL,
    service     TEXT NOT NULL,
    kind        TEXT NOT NULL,          -- deploy | config | other
    description TEXT NOT NULL,
    link        TEXT NOT NULL,
    at          BIGINT NOT NULL,
    recorded_by TEXT NOT NULL
);
CREATE INDEX changes_by_service ON changes (service, at);

CREATE TABLE incident_context (
    incident_id  TEXT NOT NULL,
    position     BIGINT NOT NULL,
    title        TEXT NOT NULL,
    markdown     TEXT NOT NULL,
    error        TEXT NOT NULL,
    collected_at BIGINT NOT NULL,
    PRIMARY KEY (incident_id, position)
);
