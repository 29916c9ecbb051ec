-- Teams are tenants (DESIGN §3): a runbook id is unique within its team only, a team's
-- changes are read by (team, service), and drop counters are kept per team. Existing
-- runbooks and changes keep the team they were written by. Counters from before this
-- migration were never split by team: they stay under team "", which only an admin's
-- totals include.
ALTER TABLE runbooks DROP CONSTRAINT runbooks_pkey, ADD PRIMARY KEY (team, id);

DROP INDEX changes_by_service;
CREATE INDEX changes_by_team_service ON changes (team, service, at);

ALTER TABLE drops ADD COLUMN team TEXT NOT NULL DEFAULT '';
ALTER TABLE drops ALTER COLUMN team DROP DEFAULT;
ALTER TABLE drops DROP CONSTRAINT drops_pkey, ADD PRIMARY KEY (team, reason);
