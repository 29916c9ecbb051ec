-- The journal keeps each event's labels and body as the text Tocsin serialised, not as
-- JSONB: nothing queries inside them (the pipeline reads them back whole), and parsing
-- two JSON documents per event into JSONB was a tenth of the CPU an append costs. The
-- journal only holds the backlog, so the rewrite this takes is short.
ALTER TABLE journal ALTER COLUMN labels TYPE TEXT, ALTER COLUMN event TYPE TEXT;

CREATE OR REPLACE FUNCTION journal_append(
    ids TEXT[], teams TEXT[], fingerprints TEXT[], sources TEXT[], received BIGINT[],
    monitors TEXT[], statuses TEXT[], labels TEXT[], since BIGINT[], counts BIGINT[],
    events TEXT[], traces TEXT[],
    OUT first_seq BIGINT, OUT last_seq BIGINT, OUT stored BIGINT,
    OUT generation BIGINT, OUT config BIGINT)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    -- The transaction id before the seqs (migration 0013 says why).
    PERFORM pg_current_xact_id();
    WITH rows AS (
        INSERT INTO journal (id, team, fingerprint, source, received_at, monitor, status, labels,
            reported_since, reported_count, event, trace_id)
        SELECT t.id, t.team, t.fp, t.src, t.rcv, t.mon, t.st, t.lab, t.rs, t.rc, t.ev, t.tr
        FROM UNNEST(ids, teams, fingerprints, sources, received, monitors, statuses, labels,
                    since, counts, events, traces)
            WITH ORDINALITY AS t(id, team, fp, src, rcv, mon, st, lab, rs, rc, ev, tr, n)
        ORDER BY t.n
        RETURNING seq)
    SELECT MIN(seq), MAX(seq), COUNT(*) INTO first_seq, last_seq, stored FROM rows;
    SELECT seq INTO generation FROM progress WHERE stage = 'generation';
    SELECT seq INTO config FROM progress WHERE stage = 'config';
END
$$;
