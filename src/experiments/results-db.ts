/**
 * The results database of one experiment directory (`<dir>/results.sqlite`, WAL mode so several
 * runner processes on one machine can write at once). The runner registers models and
 * configurations, asks `isDone` before each example and `record`s it after; analysis reads
 * `examples()` joined with their configuration and model. Shards run on other machines are
 * folded in with `mergeFrom`.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { ExampleFlops, FlopsModelShape } from './flops.js';
import { parameterCounts } from './flops.js';
import type { ConfigPhase, ExperimentConfiguration, ExperimentSpec } from './spec.js';
import { RESULTS_SCHEMA, RESULTS_SCHEMA_VERSION } from './results-schema.js';

export const RESULTS_FILE = 'results.sqlite';

/** Per-layer, per-query-head pair counts of one phase: attended[l][h], dense[l][h]. */
export interface PhaseHeadDetail {
  attended: number[][];
  dense: number[][];
}

export interface HeadDetail {
  prefill?: PhaseHeadDetail;
  decode?: PhaseHeadDetail;
}

export interface PairCounts {
  /** Pairs attended (decode: KV entries read), summed over layers and query heads. */
  attendedPairs: number;
  /** Pairs dense attention would attend. */
  densePairs: number;
}

/** What the runner records for one example. */
export interface ExampleRecord {
  configKey: string;
  exampleIndex: number;
  runId?: number | null;
  /** Hash of the templated prompt tokens: detects two shards that built different examples. */
  promptHash: string;
  output: string;
  gold?: string | null;
  /** null: dropped by the scorer (or failed; see `error`). */
  score: number | null;
  metric?: string | null;
  inputTokens: number;
  outputTokens: number;
  goldTokens?: number | null;
  /**
   * Pair totals of each phase over the layers the methods act on (full-attention layers; sliding
   * layers always run dense): the achieved sparsity columns come from these. FLOPs count every
   * layer and are passed in `flops`.
   */
  prefill: PairCounts;
  decode: PairCounts;
  /** Every layer's counts, sliding layers included. */
  headDetail?: HeadDetail | null;
  flops: ExampleFlops;
  prefillMs: number;
  decodeMs: number;
  error?: string | null;
}

/** A configuration as analysis sees it: its key, its model by name and size, and its cell of the grid. */
export interface ConfigurationIdentity
  extends Pick<ExperimentConfiguration, 'task' | 'length' | 'phase' | 'method' | 'requestedSparsity' | 'params'> {
  configKey: string;
  model: string;
  modelParams: number;
}

/** One example joined with its configuration and model: what analysis consumes. */
export interface ExampleRow extends ConfigurationIdentity {
  exampleIndex: number;
  score: number | null;
  metric: string | null;
  inputTokens: number;
  outputTokens: number;
  prefillSparsity: number | null;
  decodeSparsity: number | null;
  flopsPrefill: number;
  flopsDecode: number;
  flopsTotal: number;
  prefillMs: number;
  decodeMs: number;
}

export interface BuildFailure {
  model: string;
  task: string;
  length: number;
  exampleIndex: number;
  error: string;
}

export interface ModelRow {
  name: string;
  path: string;
  nonEmbeddingParams: number;
  storedParams: number;
}

function achieved(c: PairCounts): number | null {
  return c.densePairs > 0 ? 1 - c.attendedPairs / c.densePairs : null;
}

export class ResultsDb {
  readonly db: Database.Database;

  private constructor(readonly path: string, readonly: boolean) {
    this.db = new Database(path, { readonly, fileMustExist: readonly });
    if (!readonly) {
      // The wait comes first: switching to WAL takes a lock a sibling worker may hold.
      this.db.pragma('busy_timeout = 10000');
      this.db.pragma('journal_mode = WAL');
      this.db.exec(RESULTS_SCHEMA);
      const version = this.db.pragma('user_version', { simple: true }) as number;
      if (version === 0) this.db.pragma(`user_version = ${RESULTS_SCHEMA_VERSION}`);
      else if (version !== RESULTS_SCHEMA_VERSION) throw new Error(`${path}: results schema version ${version}, expected ${RESULTS_SCHEMA_VERSION}`);
    }
  }

  /** Opens (creating if needed) `<dir>/results.sqlite`. */
  static openDir(dir: string): ResultsDb {
    mkdirSync(dir, { recursive: true });
    return new ResultsDb(join(dir, RESULTS_FILE), false);
  }

  static openFile(path: string, options: { readonly?: boolean } = {}): ResultsDb {
    return new ResultsDb(path, options.readonly ?? false);
  }

  close(): void {
    this.db.close();
  }

  /** Records one runner invocation; returns its id for `ExampleRecord.runId`. */
  startRun(spec: ExperimentSpec | unknown, options: { shard?: string; note?: string } = {}): number {
    const info = this.db
      .prepare('INSERT INTO runs (started_at, spec_json, shard, note) VALUES (?, ?, ?, ?)')
      .run(new Date().toISOString(), JSON.stringify(spec), options.shard ?? null, options.note ?? null);
    return Number(info.lastInsertRowid);
  }

  /** Stores a model's shape and parameter counts (idempotent; a changed shape is an error). */
  recordModel(name: string, path: string, shape: FlopsModelShape): void {
    const counts = parameterCounts(shape);
    const shapeJson = JSON.stringify(shape);
    // Check and insert under one write lock: worker processes of a run record their model together.
    this.db.transaction(() => {
      const existing = this.db.prepare('SELECT shape_json FROM models WHERE name = ?').get(name) as { shape_json: string } | undefined;
      if (existing) {
        if (existing.shape_json !== shapeJson) throw new Error(`model "${name}" is already recorded with a different config; use another name`);
        return;
      }
      this.db
        .prepare('INSERT INTO models (name, path, shape_json, non_embedding_params, stored_params) VALUES (?, ?, ?, ?, ?)')
        .run(name, path, shapeJson, counts.nonEmbedding, counts.stored);
    }).immediate();
  }

  models(): ModelRow[] {
    return (this.db.prepare('SELECT name, path, non_embedding_params, stored_params FROM models ORDER BY non_embedding_params').all() as {
      name: string; path: string; non_embedding_params: number; stored_params: number;
    }[]).map((r) => ({ name: r.name, path: r.path, nonEmbeddingParams: r.non_embedding_params, storedParams: r.stored_params }));
  }

  modelShape(name: string): FlopsModelShape | null {
    const row = this.db.prepare('SELECT shape_json FROM models WHERE name = ?').get(name) as { shape_json: string } | undefined;
    return row ? (JSON.parse(row.shape_json) as FlopsModelShape) : null;
  }

  /** Registers grid cells (idempotent). */
  registerConfigurations(configs: readonly ExperimentConfiguration[]): void {
    const insert = this.db.prepare(
      `INSERT OR IGNORE INTO configurations (key, model, task, length, phase, method, requested_sparsity, params_json, config_json)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.db.transaction(() => {
      for (const c of configs) {
        insert.run(c.key, c.model.name, c.task, c.length, c.phase, c.method, c.requestedSparsity, JSON.stringify(c.params), JSON.stringify(c));
      }
    })();
  }

  isDone(configKey: string, exampleIndex: number): boolean {
    return this.db.prepare('SELECT 1 FROM examples WHERE config_key = ? AND example_index = ?').get(configKey, exampleIndex) !== undefined;
  }

  /** Example indices already recorded for a configuration. */
  doneIndices(configKey: string): Set<number> {
    const rows = this.db.prepare('SELECT example_index FROM examples WHERE config_key = ?').all(configKey) as { example_index: number }[];
    return new Set(rows.map((r) => r.example_index));
  }

  /**
   * Stores one example. Idempotent: recording the same (configuration, index) again is a no-op
   * returning false; recording it with a different prompt hash is an error, since it means two
   * runs built different examples under one key.
   */
  record(r: ExampleRecord): boolean {
    // Check and insert under one write lock, so two processes recording one example agree on the outcome.
    return this.db.transaction(() => this.recordUnlocked(r)).immediate();
  }

  private recordUnlocked(r: ExampleRecord): boolean {
    const known = this.db.prepare('SELECT 1 FROM configurations WHERE key = ?').get(r.configKey);
    if (!known) throw new Error(`record: configuration "${r.configKey}" is not registered (call registerConfigurations first)`);
    const existing = this.db
      .prepare('SELECT prompt_hash FROM examples WHERE config_key = ? AND example_index = ?')
      .get(r.configKey, r.exampleIndex) as { prompt_hash: string } | undefined;
    if (existing) {
      if (existing.prompt_hash !== r.promptHash) {
        throw new Error(`example ${r.exampleIndex} of ${r.configKey} is already recorded with a different prompt (different data, seed or tokenizer?)`);
      }
      return false;
    }
    this.db
      .prepare(
        `INSERT INTO examples (config_key, example_index, run_id, prompt_hash, output, gold, score, metric,
          input_tokens, output_tokens, gold_tokens,
          prefill_attended_pairs, prefill_dense_pairs, decode_attended_pairs, decode_dense_pairs,
          prefill_sparsity, decode_sparsity, head_detail_json,
          flops_prefill_linear, flops_prefill_attention, flops_prefill_estimation,
          flops_decode_linear, flops_decode_attention, flops_decode_estimation, flops_total,
          prefill_ms, decode_ms, error, recorded_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        r.configKey, r.exampleIndex, r.runId ?? null, r.promptHash, r.output, r.gold ?? null, r.score, r.metric ?? null,
        r.inputTokens, r.outputTokens, r.goldTokens ?? null,
        r.prefill.attendedPairs, r.prefill.densePairs, r.decode.attendedPairs, r.decode.densePairs,
        achieved(r.prefill), achieved(r.decode), r.headDetail ? JSON.stringify(r.headDetail) : null,
        r.flops.prefill.linear, r.flops.prefill.attention, r.flops.prefill.estimation,
        r.flops.decode.linear, r.flops.decode.attention, r.flops.decode.estimation, r.flops.total,
        r.prefillMs, r.decodeMs, r.error ?? null, new Date().toISOString(),
      );
    return true;
  }

  /** Every recorded example with its configuration and model (models absent from `models` get 0 params). */
  examples(): ExampleRow[] {
    const rows = this.db
      .prepare(
        `SELECT e.config_key, c.model, COALESCE(m.non_embedding_params, 0) AS params, c.task, c.length, c.phase, c.method,
                c.requested_sparsity, c.params_json, e.example_index, e.score, e.metric, e.input_tokens, e.output_tokens,
                e.prefill_sparsity, e.decode_sparsity,
                e.flops_prefill_linear + e.flops_prefill_attention + e.flops_prefill_estimation AS flops_prefill,
                e.flops_decode_linear + e.flops_decode_attention + e.flops_decode_estimation AS flops_decode,
                e.flops_total, e.prefill_ms, e.decode_ms
         FROM examples e JOIN configurations c ON c.key = e.config_key LEFT JOIN models m ON m.name = c.model
         ORDER BY c.model, c.task, c.length, c.phase, c.method, c.requested_sparsity, e.config_key, e.example_index`,
      )
      .all() as Record<string, unknown>[];
    return rows.map((r) => ({
      configKey: r.config_key as string,
      model: r.model as string,
      modelParams: r.params as number,
      task: r.task as string,
      length: r.length as number,
      phase: r.phase as ConfigPhase,
      method: r.method as string,
      requestedSparsity: r.requested_sparsity as number | null,
      params: JSON.parse(r.params_json as string) as Record<string, number | string | boolean>,
      exampleIndex: r.example_index as number,
      score: r.score as number | null,
      metric: r.metric as string | null,
      inputTokens: r.input_tokens as number,
      outputTokens: r.output_tokens as number,
      prefillSparsity: r.prefill_sparsity as number | null,
      decodeSparsity: r.decode_sparsity as number | null,
      flopsPrefill: r.flops_prefill as number,
      flopsDecode: r.flops_decode as number,
      flopsTotal: r.flops_total as number,
      prefillMs: r.prefill_ms as number,
      decodeMs: r.decode_ms as number,
    }));
  }

  /** Notes an example the task could not build (replacing an older note for the same example). */
  recordBuildFailure(f: BuildFailure): void {
    this.db
      .prepare('INSERT OR REPLACE INTO build_failures (model, task, length, example_index, error, recorded_at) VALUES (?, ?, ?, ?, ?, ?)')
      .run(f.model, f.task, f.length, f.exampleIndex, f.error, new Date().toISOString());
  }

  /** Forgets a build failure once the example was built. */
  clearBuildFailure(model: string, task: string, length: number, exampleIndex: number): void {
    this.db.prepare('DELETE FROM build_failures WHERE model = ? AND task = ? AND length = ? AND example_index = ?').run(model, task, length, exampleIndex);
  }

  buildFailures(): BuildFailure[] {
    // Files written before this table existed, opened read-only, lack it: they have no failures noted.
    const exists = this.db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'build_failures'").get();
    if (!exists) return [];
    return (this.db.prepare('SELECT model, task, length, example_index, error FROM build_failures ORDER BY model, task, length, example_index').all() as {
      model: string; task: string; length: number; example_index: number; error: string;
    }[]).map((r) => ({ model: r.model, task: r.task, length: r.length, exampleIndex: r.example_index, error: r.error }));
  }

  /** The spec of the latest run (null when none was recorded). */
  latestSpec(): unknown {
    const row = this.db.prepare('SELECT spec_json FROM runs ORDER BY id DESC LIMIT 1').get() as { spec_json: string } | undefined;
    return row ? JSON.parse(row.spec_json) : null;
  }

  /**
   * Folds another results file (a shard run elsewhere) into this one. Rows already present are
   * kept; an example present in both with different prompt hashes is an error. Returns how many
   * examples were added.
   */
  mergeFrom(otherPath: string): number {
    const other = ResultsDb.openFile(otherPath, { readonly: true });
    try {
      let added = 0;
      this.db.transaction(() => {
        const runIds = new Map<number, number>();
        for (const run of other.db.prepare('SELECT * FROM runs ORDER BY id').all() as Record<string, unknown>[]) {
          const info = this.db
            .prepare('INSERT INTO runs (started_at, spec_json, shard, note) VALUES (?, ?, ?, ?)')
            .run(run.started_at, run.spec_json, run.shard, `merged from ${otherPath}`);
          runIds.set(run.id as number, Number(info.lastInsertRowid));
        }
        for (const m of other.db.prepare('SELECT * FROM models').all() as Record<string, unknown>[]) {
          const mine = this.db.prepare('SELECT shape_json FROM models WHERE name = ?').get(m.name) as { shape_json: string } | undefined;
          if (mine && mine.shape_json !== m.shape_json) throw new Error(`merge: model "${m.name}" has different configs in the two files`);
          if (!mine) {
            this.db.prepare('INSERT INTO models (name, path, shape_json, non_embedding_params, stored_params) VALUES (?, ?, ?, ?, ?)')
              .run(m.name, m.path, m.shape_json, m.non_embedding_params, m.stored_params);
          }
        }
        for (const c of other.db.prepare('SELECT * FROM configurations').all() as Record<string, unknown>[]) {
          this.db
            .prepare(`INSERT OR IGNORE INTO configurations (key, model, task, length, phase, method, requested_sparsity, params_json, config_json)
                      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`)
            .run(c.key, c.model, c.task, c.length, c.phase, c.method, c.requested_sparsity, c.params_json, c.config_json);
        }
        for (const f of other.buildFailures()) {
          this.db
            .prepare('INSERT OR IGNORE INTO build_failures (model, task, length, example_index, error, recorded_at) VALUES (?, ?, ?, ?, ?, ?)')
            .run(f.model, f.task, f.length, f.exampleIndex, f.error, new Date().toISOString());
        }
        const columns = (this.db.prepare('PRAGMA table_info(examples)').all() as { name: string }[]).map((c) => c.name);
        const insert = this.db.prepare(`INSERT INTO examples (${columns.join(', ')}) VALUES (${columns.map(() => '?').join(', ')})`);
        const lookup = this.db.prepare('SELECT prompt_hash FROM examples WHERE config_key = ? AND example_index = ?');
        for (const e of other.db.prepare('SELECT * FROM examples').iterate() as Iterable<Record<string, unknown>>) {
          const mine = lookup.get(e.config_key, e.example_index) as { prompt_hash: string } | undefined;
          if (mine) {
            if (mine.prompt_hash !== e.prompt_hash) throw new Error(`merge: example ${e.example_index} of ${e.config_key} differs between the files`);
            continue;
          }
          const row: Record<string, unknown> = { ...e, run_id: e.run_id === null ? null : (runIds.get(e.run_id as number) ?? null) };
          insert.run(...columns.map((c) => row[c] as unknown));
          added++;
        }
      })();
      return added;
    } finally {
      other.close();
    }
  }
}
