-- Logs queries (DESIGN §4, the `logs` collector): SQL a team registers under a name, so
-- that an event names a query and passes values instead of carrying SQL. Names are per
-- team: two teams may each have a `recent-errors`.
CREATE TABLE logs_queries (
    team        TEXT NOT NULL,
    name        TEXT NOT NULL,
    sql         TEXT NOT NULL,
    description TEXT NOT NULL,
    params      TEXT NOT NULL,          -- JSON array of the :name parameters, in order
    updated_at  BIGINT NOT NULL,
    updated_by  TEXT NOT NULL,
    PRIMARY KEY (team, name)
);
