-- The W3C trace id (DESIGN §7) of the request that brought each event, carried from the
-- journal (and a hold) to the history and to the incident it opened, so one id links
-- the sender's request, Tocsin's logs and every notification about the incident.
ALTER TABLE journal ADD COLUMN trace_id TEXT;
ALTER TABLE held ADD COLUMN trace_id TEXT;
ALTER TABLE history ADD COLUMN trace_id TEXT;
ALTER TABLE incidents ADD COLUMN trace_id TEXT;
