-- 0002: attachments (photos, fingerprint templates, documents), one row per
-- file a dossier's manifest names. The bytes are bytea, not large objects:
-- a file is at most tens of MB (the agents' limit is 20 MB by default); a
-- bytea row is read, backed up (pg_dump), replicated and deleted with the
-- dossier's rows like any other, while large objects live apart, need
-- lo_unlink to be freed and are skipped by logical replication. Photos and
-- templates are already compressed: STORAGE EXTERNAL keeps PostgreSQL from
-- trying again.
CREATE TABLE IF NOT EXISTS fieldsync_attachments (
    record_id   text        NOT NULL,
    kind        text        NOT NULL CHECK (kind IN ('photo', 'fingerprint', 'document')),
    finger      text        NOT NULL DEFAULT '',
    sha256      text        NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size        bigint      NOT NULL CHECK (size > 0),
    media_type  text        NOT NULL,
    origin      text        NOT NULL,
    seq         bigint      NOT NULL,
    captured_at timestamptz,
    bytes       bytea       NOT NULL,
    exported_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (record_id, kind, finger, sha256),
    CHECK (octet_length(bytes) = size)
);

ALTER TABLE fieldsync_attachments ALTER COLUMN bytes SET STORAGE EXTERNAL;

CREATE INDEX IF NOT EXISTS fieldsync_attachments_sha256 ON fieldsync_attachments (sha256);
