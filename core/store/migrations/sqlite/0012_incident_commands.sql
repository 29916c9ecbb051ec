-- Incident commands (ack, close): written by whichever process serves the API, applied
-- in order by the pipeline wherever it runs, their outcome read back by the request.
CREATE TABLE incident_commands (
    id TEXT PRIMARY KEY,
    incident_id TEXT NOT NULL,
    -- The team whose incident it must be; NULL for an admin's command.
    team TEXT,
    command TEXT NOT NULL,
    who TEXT NOT NULL,
    requested_at INTEGER NOT NULL,
    -- NULL while pending; then applied, not-found or closed.
    outcome TEXT,
    done_at INTEGER
);
CREATE INDEX incident_commands_pending ON incident_commands (requested_at) WHERE outcome IS NULL;
CREATE INDEX incident_commands_done ON incident_commands (done_at) WHERE outcome IS NOT NULL;
