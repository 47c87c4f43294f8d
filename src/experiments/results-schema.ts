/**
 * SQLite schema of an experiment's results (one file per experiment directory). Kept as a TS
 * string so it ships inside the compiled package. `user_version` records the schema version.
 *
 * - runs: one row per invocation of the runner (the spec it ran, the shard, when).
 * - models: each model's name, directory, shape and parameter counts (the FLOPs and the
 *   scaling law read them, so analysis needs no checkpoint).
 * - configurations: one row per grid cell (see ExperimentConfiguration).
 * - examples: one row per (configuration, example index); the primary key makes inserts
 *   idempotent, which is what resume and shard merging rely on.
 * - build_failures: examples the task could not build at that length, with its reason.
 */
export const RESULTS_SCHEMA_VERSION = 1;

export const RESULTS_SCHEMA = `
CREATE TABLE IF NOT EXISTS runs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  started_at TEXT NOT NULL,
  spec_json TEXT NOT NULL,
  shard TEXT,
  note TEXT
);

CREATE TABLE IF NOT EXISTS models (
  name TEXT PRIMARY KEY,
  path TEXT NOT NULL,
  shape_json TEXT NOT NULL,
  non_embedding_params REAL NOT NULL,
  stored_params REAL NOT NULL
);

CREATE TABLE IF NOT EXISTS configurations (
  key TEXT PRIMARY KEY,
  model TEXT NOT NULL,
  task TEXT NOT NULL,
  length INTEGER NOT NULL,
  phase TEXT NOT NULL CHECK (phase IN ('dense', 'prefill', 'decode')),
  method TEXT NOT NULL,
  requested_sparsity REAL,
  params_json TEXT NOT NULL,
  config_json TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS examples (
  config_key TEXT NOT NULL REFERENCES configurations(key),
  example_index INTEGER NOT NULL,
  run_id INTEGER REFERENCES runs(id),
  prompt_hash TEXT NOT NULL,
  output TEXT NOT NULL,
  gold TEXT,
  -- NULL: the scorer dropped the example (e.g. Multi-hop without answer tags) or it failed.
  score REAL,
  metric TEXT,
  input_tokens INTEGER NOT NULL,
  output_tokens INTEGER NOT NULL,
  gold_tokens INTEGER,
  prefill_attended_pairs REAL NOT NULL,
  prefill_dense_pairs REAL NOT NULL,
  decode_attended_pairs REAL NOT NULL,
  decode_dense_pairs REAL NOT NULL,
  -- Pair totals over the full-attention layers (methods act there; sliding layers run dense);
  -- sparsity = 1 - attended/dense over those layers and all heads; NULL when dense is 0.
  prefill_sparsity REAL,
  decode_sparsity REAL,
  -- Per layer and query head attended/dense counts, JSON (see HeadDetail in results-db.ts).
  head_detail_json TEXT,
  flops_prefill_linear REAL NOT NULL,
  flops_prefill_attention REAL NOT NULL,
  flops_prefill_estimation REAL NOT NULL,
  flops_decode_linear REAL NOT NULL,
  flops_decode_attention REAL NOT NULL,
  flops_decode_estimation REAL NOT NULL,
  flops_total REAL NOT NULL,
  prefill_ms REAL NOT NULL,
  decode_ms REAL NOT NULL,
  error TEXT,
  recorded_at TEXT NOT NULL,
  PRIMARY KEY (config_key, example_index)
);

-- Examples a task could not build within the length bounds (not recorded in examples; a later run
-- retries them and deletes the row when it succeeds).
CREATE TABLE IF NOT EXISTS build_failures (
  model TEXT NOT NULL,
  task TEXT NOT NULL,
  length INTEGER NOT NULL,
  example_index INTEGER NOT NULL,
  error TEXT NOT NULL,
  recorded_at TEXT NOT NULL,
  PRIMARY KEY (model, task, length, example_index)
);

CREATE INDEX IF NOT EXISTS configurations_by_cell ON configurations (model, task, length);
`;
