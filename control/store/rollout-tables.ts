// The rollout tables, in the SQL both databases speak (SQLite migration 8,
// PostgreSQL migration 3). A rollout is kept whole as the engine models it
// (control/rollout/model.ts) in `body`, with the columns lists and the
// current-rollout lookup need; `revision` grows at every save, so that two
// replicas advancing one rollout never overwrite each other's step.
export const ROLLOUT_TABLES = `
  CREATE TABLE rollouts (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    revision BIGINT NOT NULL,
    body TEXT NOT NULL
  );
  CREATE INDEX rollouts_created ON rollouts (created_at, id);
  CREATE INDEX rollouts_state ON rollouts (state);
  -- What an instance was to run at a generation: its assignment and the
  -- cluster settings then. A rollout serves a host the generation it
  -- released to it (a pending host keeps its old one); a rollback serves
  -- an older one again.
  CREATE TABLE instance_configs (
    instance_id TEXT NOT NULL,
    generation BIGINT NOT NULL,
    assignment TEXT,
    settings TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (instance_id, generation)
  );
  -- The generation a rollout released to an instance; no row: the newest.
  CREATE TABLE instance_releases (
    instance_id TEXT PRIMARY KEY,
    generation BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
  );
`;

// SQLite migration 10, PostgreSQL migration 6: the generation released to an
// instance beside its other generations, so that fleet health compares what
// the agent applied with what it is served (health.ts), from the
// instances_health index as before.
export const RELEASED_GENERATION_COLUMN = `
  ALTER TABLE instances ADD COLUMN released_generation BIGINT;
  UPDATE instances SET released_generation =
    (SELECT r.generation FROM instance_releases r WHERE r.instance_id = instances.instance_id);
  DROP INDEX instances_health;
  CREATE INDEX instances_health ON instances
    (roles_key, enrolled_at, status_state, teleport_ready, applied_generation, generation, released_generation);
`;
