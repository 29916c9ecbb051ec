-- Notifications (DESIGN §4, alerting and delivery). The pipeline writes a notice in the
-- same transaction as the incident change that calls for it. The outbox turns each
-- notice into one delivery per notifier, in one transaction that also deletes the
-- notice, then sends the deliveries with retries.
CREATE TABLE notices (
    id          TEXT PRIMARY KEY,       -- UUIDv7: time-ordered
    incident_id TEXT NOT NULL,
    team        TEXT NOT NULL,
    action      TEXT NOT NULL,          -- open | update | resolve
    at          BIGINT NOT NULL
);

CREATE TABLE deliveries (
    id          TEXT PRIMARY KEY,       -- UUIDv7: time-ordered
    notice_id   TEXT NOT NULL,
    incident_id TEXT NOT NULL,
    team        TEXT NOT NULL,
    notifier    TEXT NOT NULL,          -- the notifier's name in the configuration
    kind        TEXT NOT NULL,          -- pagerduty | slack | jira | github | webhook
    action      TEXT NOT NULL,          -- open | update | resolve
    state       TEXT NOT NULL,          -- pending | sent | dead
    attempts    BIGINT NOT NULL,
    due_at      BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    last_error  TEXT NOT NULL,
    UNIQUE (notice_id, notifier)
);
CREATE INDEX deliveries_due ON deliveries (state, due_at);
CREATE INDEX deliveries_by_incident ON deliveries (incident_id, notifier, id);

-- What each notifier knows an incident by: the Slack message (channel and ts), the Jira
-- issue key, the GitHub issue number, that PagerDuty was paged.
CREATE TABLE delivery_refs (
    incident_id TEXT NOT NULL,
    notifier    TEXT NOT NULL,
    reference   TEXT NOT NULL,
    PRIMARY KEY (incident_id, notifier)
);
