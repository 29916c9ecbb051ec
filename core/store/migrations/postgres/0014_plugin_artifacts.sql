-- Precompiled plugin code (DESIGN §5): what a component compiled to, for one engine
-- configuration, so that a cold process (a Lambda function, a restarted server) loads a
-- plugin in milliseconds instead of compiling it again. Keyed by the component's
-- SHA-256 and the engine's compatibility hash, not by team: the same bytes compile to
-- the same code, and only the plugin host writes here, from its own compiler's output.
-- An artifact is removed with the last plugin version of its component.
CREATE TABLE plugin_artifacts (
    sha256     TEXT NOT NULL,
    engine     TEXT NOT NULL,
    artifact   BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (sha256, engine)
);
