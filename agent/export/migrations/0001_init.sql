-- 0001: the two export tables. IF NOT EXISTS throughout so a database
-- prepared by hand, or a migration interrupted on a database without
-- transactional DDL, can be migrated again.

-- One row per op, exactly as signed (the audit trail).
CREATE TABLE IF NOT EXISTS fieldsync_ops (
    origin      text        NOT NULL,
    seq         bigint      NOT NULL,
    record_id   text        NOT NULL,
    at          timestamptz,
    signed      bytea       NOT NULL,
    exported_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (origin, seq)
);

CREATE INDEX IF NOT EXISTS fieldsync_ops_record_id ON fieldsync_ops (record_id);

-- One row per record: its merged state as the exporting hub last saw it.
CREATE TABLE IF NOT EXISTS fieldsync_records (
    id          text        PRIMARY KEY,
    fields      jsonb       NOT NULL,
    conflicts   jsonb       NOT NULL,
    origin      text,
    created_by  text,
    updated_at  timestamptz,
    version     bigint      NOT NULL,
    exported_at timestamptz NOT NULL DEFAULT now()
);
