-- Team plugins (DESIGN §5). A plugin is a team's name for a kind of component; each
-- upload is a new version, and one version is active. Components are kept whole so
-- that a restart (or another process) can compile them again.
CREATE TABLE plugins (
    team           TEXT NOT NULL,
    name           TEXT NOT NULL,
    kind           TEXT NOT NULL,
    active_version BIGINT NOT NULL,
    updated_at     BIGINT NOT NULL,
    PRIMARY KEY (team, name)
);

CREATE TABLE plugin_versions (
    team        TEXT NOT NULL,
    name        TEXT NOT NULL,
    version     BIGINT NOT NULL,
    sha256      TEXT NOT NULL,
    size        BIGINT NOT NULL,
    component   BYTEA NOT NULL,
    uploaded_at BIGINT NOT NULL,
    uploaded_by TEXT NOT NULL,
    PRIMARY KEY (team, name, version)
);

-- The key/value state a plugin keeps through the host's get/set/delete.
CREATE TABLE plugin_state (
    team  TEXT NOT NULL,
    name  TEXT NOT NULL,
    key   TEXT NOT NULL,
    value BYTEA NOT NULL,
    PRIMARY KEY (team, name, key)
);

-- Transformer inputs whose plugin failed: kept with the error so nothing sent is lost.
CREATE TABLE dead_letters (
    id           TEXT PRIMARY KEY,
    team         TEXT NOT NULL,
    plugin       TEXT NOT NULL,
    received_at  BIGINT NOT NULL,
    content_type TEXT NOT NULL,
    headers      TEXT NOT NULL,
    body         BYTEA NOT NULL,
    error        TEXT NOT NULL
);
CREATE INDEX dead_letters_by_plugin ON dead_letters (team, plugin, received_at);
