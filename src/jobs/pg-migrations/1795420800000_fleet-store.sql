-- Up Migration
-- Jobs are JSON documents with their key, state and next deadline as columns; `version` is the
-- compare-and-swap counter every write checks (UPDATE ... WHERE version = $n).
CREATE TABLE jobs (
  subscription_id text        NOT NULL,
  resource_group  text        NOT NULL,
  name            text        NOT NULL,
  state           text        NOT NULL,
  created_at      text        NOT NULL,
  version         integer     NOT NULL,
  next_deadline   timestamptz,
  doc             jsonb       NOT NULL,
  PRIMARY KEY (subscription_id, resource_group, name)
);
CREATE INDEX jobs_next_deadline ON jobs (next_deadline) WHERE next_deadline IS NOT NULL;
CREATE INDEX jobs_listing ON jobs (subscription_id, resource_group, created_at, name);

CREATE TABLE notices (
  id              bigserial PRIMARY KEY,
  at              text NOT NULL,
  code            text NOT NULL,
  subscription_id text,
  resource_group  text,
  job_name        text,
  drive_id        text,
  message         text NOT NULL
);
CREATE INDEX notices_at ON notices (at);

-- Resume state of drive transfers, shared by the fleet: a drive moved to another station resumes there.
CREATE TABLE blob_checkpoints (
  job        text    NOT NULL,
  drive_id   text    NOT NULL,
  blob_index integer NOT NULL,
  state      text    NOT NULL,
  target     text    NOT NULL,
  bytes      bigint  NOT NULL,
  log        jsonb,
  PRIMARY KEY (job, drive_id, blob_index)
);

-- Which station transfers a drive, until when (a lease renewed by that station's heartbeat).
CREATE TABLE drive_claims (
  subscription_id text        NOT NULL,
  resource_group  text        NOT NULL,
  job_name        text        NOT NULL,
  drive_id        text        NOT NULL,
  station_id      text        NOT NULL,
  expires_at      timestamptz NOT NULL,
  PRIMARY KEY (subscription_id, resource_group, job_name, drive_id)
);

-- Down Migration
DROP TABLE drive_claims;
DROP TABLE blob_checkpoints;
DROP TABLE notices;
DROP TABLE jobs;
