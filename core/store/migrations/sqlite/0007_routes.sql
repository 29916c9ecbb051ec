-- Routes set through the API (`PUT /v1/routes/{team}[/{service}]`): which configured
-- notifiers a team's incidents (of one service, or of all: service '') go to. They
-- name notifiers of the notifiers file, where the secrets stay; beside the file's
-- routes, the more specific route wins and at equal specificity this table's.
CREATE TABLE routes (
    team       TEXT NOT NULL,
    service    TEXT NOT NULL DEFAULT '',
    page       TEXT,
    ticket     TEXT,
    chat       TEXT,
    webhooks   TEXT NOT NULL DEFAULT '[]',   -- JSON array of notifier names
    updated_at BIGINT NOT NULL,
    updated_by TEXT NOT NULL,
    PRIMARY KEY (team, service)
);
