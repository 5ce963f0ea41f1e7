-- Up Migration
-- The export engine's resume state (src/transfer/export/store.ts), shared by the fleet like the
-- import checkpoints: a selection and its drive plans, written blocks, finished blobs, confirmations.
CREATE TABLE export_selections (job text PRIMARY KEY, meta jsonb NOT NULL);
CREATE TABLE export_selected (job text NOT NULL, idx integer NOT NULL, blob jsonb NOT NULL, PRIMARY KEY (job, idx));
CREATE TABLE export_plans (
  job text NOT NULL, drive_id text NOT NULL, ordinal integer NOT NULL, plan jsonb NOT NULL,
  PRIMARY KEY (job, drive_id)
);
CREATE TABLE export_blocks (
  job text NOT NULL, drive_id text NOT NULL, idx integer NOT NULL, chunk integer NOT NULL, md5 text NOT NULL,
  PRIMARY KEY (job, drive_id, idx, chunk)
);
CREATE TABLE export_done (
  job text NOT NULL, drive_id text NOT NULL, idx integer NOT NULL, bytes bigint NOT NULL, entry jsonb NOT NULL,
  PRIMARY KEY (job, drive_id, idx)
);
CREATE TABLE export_confirmations (
  job text NOT NULL, drive_id text NOT NULL, by_whom text NOT NULL, at text NOT NULL,
  PRIMARY KEY (job, drive_id)
);

-- Down Migration
DROP TABLE export_confirmations;
DROP TABLE export_done;
DROP TABLE export_blocks;
DROP TABLE export_plans;
DROP TABLE export_selected;
DROP TABLE export_selections;
