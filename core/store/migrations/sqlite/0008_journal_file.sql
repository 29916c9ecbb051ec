-- The journal moves to a database file of its own (`tocsin.journal.db`, attached to every
-- connection as `j`), with a writer of its own: appends and the pipeline's commits no
-- longer wait for each other. The store creates `j.journal` before the migrations run;
-- this moves the rows and the seq counter over, so no seq is ever reused.
INSERT INTO j.journal SELECT seq, id, team, fingerprint, source, received_at, monitor, status,
    labels, reported_since, reported_count, event, trace_id FROM main.journal;
INSERT INTO j.sqlite_sequence (name, seq)
    SELECT 'journal', seq FROM main.sqlite_sequence WHERE name = 'journal'
    AND NOT EXISTS (SELECT 1 FROM j.sqlite_sequence WHERE name = 'journal');
UPDATE j.sqlite_sequence SET seq = MAX(seq, (SELECT seq FROM main.sqlite_sequence WHERE name = 'journal'))
    WHERE name = 'journal' AND EXISTS (SELECT 1 FROM main.sqlite_sequence WHERE name = 'journal');
DROP TABLE main.journal;
