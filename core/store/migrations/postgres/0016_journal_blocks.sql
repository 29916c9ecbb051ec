-- The journal in blocks: one row per append, holding the append's events as one JSON
-- array, where it was one row per event. A row per event cost PostgreSQL a heap tuple,
-- an index entry, a sequence draw and about 500 bytes of WAL each, which held ingest
-- through `api` under 1.4x Alertmanager on a 2-core machine; a block costs that once per
-- request, and its body is compressed (lz4 where the server has it).
--
-- A block draws one number from `journal_block_seq` and its events take the seqs from
-- that number times 65,536 onwards, in their order, so one draw gives every event of an
-- append a consecutive seq (an append of more events takes several blocks). Seqs keep
-- increasing across blocks but are no longer dense, which nothing needs: readers go by
-- `seq > cursor`. The pipeline reads whole blocks and skips the events at or before its
-- cursor; a block is deleted once its last event is processed.
--
-- Each element of `records` is an object with the fields the per-event rows had:
-- {"id", "team", "fp", "source", "received", "monitor", "status", "labels" (an object),
--  "since", "count" (numbers or null), "event" (the event as sent), "trace" (or null)}.
CREATE TABLE journal_blocks (
    first_seq BIGINT PRIMARY KEY,
    last_seq  BIGINT NOT NULL,
    records   TEXT NOT NULL
);

DO $$
BEGIN
    ALTER TABLE journal_blocks ALTER COLUMN records SET COMPRESSION lz4;
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'lz4 is not available: journal blocks use the default compression';
END
$$;

-- Events waiting at the upgrade become blocks of one, at their own seqs.
INSERT INTO journal_blocks (first_seq, last_seq, records)
SELECT seq, seq, json_build_array(json_build_object(
        'id', id, 'team', team, 'fp', fingerprint, 'source', source,
        'received', received_at, 'monitor', monitor, 'status', status,
        'labels', labels::json, 'since', reported_since, 'count', reported_count,
        'event', event::json, 'trace', trace_id))::text
FROM journal;

-- New blocks start above every seq drawn so far.
CREATE SEQUENCE journal_block_seq;
SELECT setval('journal_block_seq',
    (SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM journal_seq_seq)
        / 65536 + 1,
    false);

DROP FUNCTION journal_append(TEXT[], TEXT[], TEXT[], TEXT[], BIGINT[], TEXT[], TEXT[], TEXT[],
    BIGINT[], BIGINT[], TEXT[], TEXT[]);
DROP TABLE journal;

-- Appends blocks in one transaction, without a lock (migration 0013 says why the
-- transaction id comes before the seqs): `blocks[i]` holds `counts[i]` events. Returns
-- the first event's seq and the pipeline's and the catalogue's counters, read after the
-- inserts.
CREATE FUNCTION journal_append(blocks TEXT[], counts INT[],
    OUT first BIGINT, OUT generation BIGINT, OUT config BIGINT)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    block BIGINT;
BEGIN
    PERFORM pg_current_xact_id();
    FOR i IN 1 .. coalesce(cardinality(blocks), 0) LOOP
        block := nextval('journal_block_seq') * 65536;
        IF i = 1 THEN
            first := block;
        END IF;
        INSERT INTO journal_blocks (first_seq, last_seq, records)
        VALUES (block, block + counts[i] - 1, blocks[i]);
    END LOOP;
    SELECT p.seq INTO generation FROM progress p WHERE p.stage = 'generation';
    SELECT p.seq INTO config FROM progress p WHERE p.stage = 'config';
END
$$;
