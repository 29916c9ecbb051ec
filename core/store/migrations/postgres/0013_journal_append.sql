-- Appends without a lock. Appends from many processes (the `api` functions) commit in
-- any order, so a reader must not move its cursor past a seq whose append is still in
-- flight: the pipeline reads up to a horizon that every append holding a lower seq has
-- finished (core/store/src/postgres.rs). That needs each append to own a transaction id
-- before it draws a seq, which one statement cannot promise (the sequence is drawn while
-- the first row is built, before the insert assigns the id): this function takes the id
-- first. One call is also one round trip where BEGIN, a lock, the insert and COMMIT were
-- four.
CREATE FUNCTION journal_append(
    ids TEXT[], teams TEXT[], fingerprints TEXT[], sources TEXT[], received BIGINT[],
    monitors TEXT[], statuses TEXT[], labels TEXT[], since BIGINT[], counts BIGINT[],
    events TEXT[], traces TEXT[],
    OUT first_seq BIGINT, OUT last_seq BIGINT, OUT stored BIGINT,
    OUT generation BIGINT, OUT config BIGINT)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_current_xact_id();
    WITH rows AS (
        INSERT INTO journal (id, team, fingerprint, source, received_at, monitor, status, labels,
            reported_since, reported_count, event, trace_id)
        SELECT t.id, t.team, t.fp, t.src, t.rcv, t.mon, t.st, t.lab::jsonb, t.rs, t.rc, t.ev::jsonb, t.tr
        FROM UNNEST(ids, teams, fingerprints, sources, received, monitors, statuses, labels,
                    since, counts, events, traces)
            WITH ORDINALITY AS t(id, team, fp, src, rcv, mon, st, lab, rs, rc, ev, tr, n)
        ORDER BY t.n
        RETURNING seq)
    SELECT MIN(seq), MAX(seq), COUNT(*) INTO first_seq, last_seq, stored FROM rows;
    -- Read after the inserts: a change committed before this append is counted.
    SELECT seq INTO generation FROM progress WHERE stage = 'generation';
    SELECT seq INTO config FROM progress WHERE stage = 'config';
END
$$;
