-- Teams are tenants (DESIGN §3): a runbook id is unique within its team only, a team's
-- changes are read by (team, service), and drop counters are kept per team. Existing
-- runbooks and changes keep the team they were written by. Counters from before this
-- migration were never split by team: they stay under team "", which only an admin's
-- totals include.
CREATE TABLE runbooks_by_team (
    team       TEXT NOT NULL,
    id         TEXT NOT NULL,
    markdown   TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by TEXT NOT NULL,
    PRIMARY KEY (team, id)
);
INSERT INTO runbooks_by_team (team, id, markdown, updated_at, updated_by)
    SELECT team, id, markdown, updated_at, updated_by FROM runbooks;
DROP TABLE runbooks;
ALTER TABLE runbooks_by_team RENAME TO runbooks;

DROP INDEX changes_by_service;
CREATE INDEX changes_by_team_service ON changes (team, service, at);

CREATE TABLE drops_by_team (
    team   TEXT NOT NULL,
    reason TEXT NOT NULL,
    count  BIGINT NOT NULL,
    PRIMARY KEY (team, reason)
);
INSERT INTO drops_by_team (team, reason, count) SELECT '', reason, count FROM drops;
DROP TABLE drops;
ALTER TABLE drops_by_team RENAME TO drops;
