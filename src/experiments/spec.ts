/**
 * The experiment file: what to run (models × tasks × lengths × methods × sparsities) and how
 * (backend, examples per configuration, seed, generation and chunk settings). Read from YAML or
 * JSON, validated with zod (errors name the bad field by its path), and expanded into the list of
 * configurations the runner executes: dense once per (model, task, length), every prefill method
 * and every decode method once per sparsity (or per sweep value, for methods whose sparsity is an
 * outcome rather than an input, such as FlexPrefill's `alpha`).
 */
import { readFileSync } from 'node:fs';
import { basename, extname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { listMethods } from '../methods/index.js';

export type Phase = 'prefill' | 'decode';
/** `dense` rows are the baseline for both phases. */
export type ConfigPhase = Phase | 'dense';

const paramValue = z.union([z.number(), z.string(), z.boolean()]);

const sparsity = z
  .number()
  .min(0, { error: (issue) => `a sparsity must be at least 0 (got ${String(issue.input)})` })
  .lt(1, { error: (issue) => `a sparsity must be below 1 (got ${String(issue.input)}; s = 1 attends nothing)` });

const modelEntry = z.union([
  z.string().min(1),
  z.strictObject({
    path: z.string().min(1),
    /** Label used in tables and plots; defaults to the directory's base name. */
    name: z.string().min(1).optional(),
  }),
]);

const methodEntry = z.union([
  z.string().min(1),
  z.strictObject({
    /** A method id of the registry (src/methods/index.ts), e.g. vertical_and_slash, quest. */
    name: z.string().min(1),
    /** Optional check: the registry fixes each method's phase. */
    phase: z.enum(['prefill', 'decode']).optional(),
    /** Fixed hyper-parameters by their registry names (e.g. `approximationSize`, `pageSize`). */
    params: z.record(z.string(), paramValue).optional(),
    /** Target sparsities for this method; defaults to the experiment's `sparsities`. */
    sparsities: z.array(sparsity).min(1).optional(),
    /**
     * For methods whose sparsity is an outcome (FlexPrefill): sweep this hyper-parameter instead of
     * a target sparsity; each value is one configuration, and its achieved sparsity is measured.
     */
    sweep: z.strictObject({ param: z.string().min(1), values: z.array(paramValue).min(1) }).optional(),
  }),
]);

const taskEntry = z.union([
  z.string().min(1),
  z.strictObject({
    /** A task of the registry (src/tasks), e.g. niah. */
    name: z.string().min(1),
    /** Generator parameters by the task's own names (`sparse-frontier tasks list` shows the defaults). */
    params: z.record(z.string(), paramValue).optional(),
    /** Name in tables, plots and results keys; default `name[k=v,…]` with params, else the name. */
    label: z.string().min(1).optional(),
  }),
]);

export const experimentSpecSchema = z.strictObject({
  name: z.string().min(1).default('experiment'),
  models: z.array(modelEntry).min(1, 'list at least one model directory'),
  backend: z.enum(['cpu', 'cuda', 'auto']).default('auto'),
  /**
   * Task names, or { name, params, label } for a task with other generator parameters; the runner
   * resolves them through the task registry (unknown names and parameters fail there).
   */
  tasks: z.array(taskEntry).min(1, 'list at least one task'),
  lengths: z.array(z.number().int().positive()).min(1, 'list at least one context length'),
  methods: z.array(methodEntry).default([]),
  sparsities: z.array(sparsity).default([]),
  examples: z.number().int().positive().default(100),
  seed: z.number().int().nonnegative().default(43),
  generation: z
    .strictObject({ maxNewTokens: z.number().int().positive().default(1024) })
    .default({ maxNewTokens: 1024 }),
  /** Prefill chunk size in tokens (methods that need the whole prompt ignore it). */
  chunkSize: z.number().int().positive().default(4096),
  /** Whether dense runs once per (model, task, length): the baseline every paired test needs. */
  includeDense: z.boolean().default(true),
});

export type ExperimentSpecInput = z.input<typeof experimentSpecSchema>;
export type ExperimentSpec = z.output<typeof experimentSpecSchema>;

export interface ModelRef {
  path: string;
  name: string;
}

/** A task of the grid: registry name, generator parameters and the label results are filed under. */
export interface TaskRef {
  name: string;
  params: Record<string, number | string | boolean>;
  label: string;
}

export interface MethodRef {
  name: string;
  phase: Phase;
  params: Record<string, number | string | boolean>;
  sparsities: number[];
  sweep: { param: string; values: (number | string | boolean)[] } | null;
}

/** One cell of the grid: everything that identifies a set of examples run alike. */
export interface ExperimentConfiguration {
  /** Stable identity used as the results key; independent of `examples`, so runs can be extended. */
  key: string;
  model: ModelRef;
  /** The task's label (TaskRef.label): its registry name unless it has generator parameters. */
  task: string;
  /** Registry name and generator parameters the examples are built with. */
  taskName: string;
  taskParams: Record<string, number | string | boolean>;
  length: number;
  phase: ConfigPhase;
  method: string;
  /** Target sparsity; 0 for dense; null for swept methods (sparsity is measured, not requested). */
  requestedSparsity: number | null;
  /** Method hyper-parameters, including the swept one. */
  params: Record<string, number | string | boolean>;
  examples: number;
  seed: number;
  maxNewTokens: number;
  chunkSize: number;
}

/** Formats zod issues as `path: message` lines, so the bad field is named. */
export function formatSpecIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const path = issue.path.length ? issue.path.map(String).join('.') : '(root)';
      return `  ${path}: ${issue.message}`;
    })
    .join('\n');
}

/** Validates a parsed experiment object; throws an Error listing every bad field. */
export function parseExperimentSpec(raw: unknown, source = 'experiment'): ExperimentSpec {
  const result = experimentSpecSchema.safeParse(raw);
  if (!result.success) throw new Error(`invalid ${source}:\n${formatSpecIssues(result.error)}`);
  const spec = result.data;
  // Cross-field rules zod's per-field schema cannot express.
  const problems: string[] = [];
  resolveMethods(spec, problems);
  resolveTasks(spec, problems);
  if (!spec.includeDense && spec.methods.length === 0) problems.push('  methods: nothing to run (no methods and includeDense is false)');
  if (problems.length) throw new Error(`invalid ${source}:\n${problems.join('\n')}`);
  return spec;
}

/** Reads a YAML (.yaml/.yml) or JSON (.json) experiment file. */
export function loadExperimentSpec(path: string): ExperimentSpec {
  const text = readFileSync(path, 'utf8');
  const ext = extname(path).toLowerCase();
  let raw: unknown;
  try {
    raw = ext === '.json' ? JSON.parse(text) : parseYaml(text);
  } catch (e) {
    throw new Error(`cannot parse ${path}: ${(e as Error).message}`);
  }
  return parseExperimentSpec(raw, path);
}

export function resolveModels(spec: ExperimentSpec): ModelRef[] {
  const models = spec.models.map((m) =>
    typeof m === 'string' ? { path: m, name: basename(resolve(m)) } : { path: m.path, name: m.name ?? basename(resolve(m.path)) },
  );
  const seen = new Set<string>();
  for (const m of models) {
    if (seen.has(m.name)) throw new Error(`models: two models share the name "${m.name}"; give one a distinct \`name\``);
    seen.add(m.name);
  }
  return models;
}

/**
 * Tasks with parameters and labels resolved; appends `path: message` problems (a label used twice).
 * Task names and parameter names are checked against the task registry by the runner.
 */
export function resolveTasks(spec: ExperimentSpec, problems: string[] = []): TaskRef[] {
  const out: TaskRef[] = [];
  spec.tasks.forEach((entry, i) => {
    const t = typeof entry === 'string' ? { name: entry } : entry;
    const params = ('params' in t && t.params) || {};
    const p = canonicalParams(params);
    const label = ('label' in t && t.label) || (p ? `${t.name}[${p}]` : t.name);
    if (out.some((o) => o.label === label)) problems.push(`  tasks.${i}: the task "${label}" is listed twice (give one a distinct label or other params)`);
    out.push({ name: t.name, params, label });
  });
  return out;
}

/** Methods with their phase and sparsity list resolved; appends `path: message` problems. */
export function resolveMethods(spec: ExperimentSpec, problems: string[] = []): MethodRef[] {
  const registry = new Map(listMethods().map((m) => [m.id, m]));
  const out: MethodRef[] = [];
  spec.methods.forEach((entry, i) => {
    const m = typeof entry === 'string' ? { name: entry } : entry;
    const where = `methods.${i}`;
    if (m.name === 'dense') {
      problems.push(`  ${where}.name: dense is the baseline and runs once per (model, task, length); remove it from methods`);
      return;
    }
    const descriptor = registry.get(m.name);
    if (!descriptor || descriptor.phase === 'both') {
      problems.push(`  ${where}.name: unknown method "${m.name}" (known: ${[...registry.keys()].filter((k) => k !== 'dense').join(', ')})`);
      return;
    }
    const phase = descriptor.phase;
    if ('phase' in m && m.phase && m.phase !== phase) problems.push(`  ${where}.phase: "${m.name}" is a ${phase} method, not ${m.phase}`);
    const params = ('params' in m && m.params) || {};
    const known = new Set(descriptor.params.map((p) => p.name));
    for (const name of Object.keys(params)) {
      if (!known.has(name)) problems.push(`  ${where}.params.${name}: "${m.name}" has no parameter "${name}" (known: ${[...known].join(', ') || 'none'})`);
    }
    const sweep = ('sweep' in m && m.sweep) || null;
    if (sweep && !known.has(sweep.param)) problems.push(`  ${where}.sweep.param: "${m.name}" has no parameter "${sweep.param}" (known: ${[...known].join(', ') || 'none'})`);
    const sparsities = ('sparsities' in m && m.sparsities) || spec.sparsities;
    if (sweep && 'sparsities' in m && m.sparsities) problems.push(`  ${where}: give either sparsities or sweep, not both`);
    if (!sweep && sparsities.length === 0) problems.push(`  ${where}.sparsities: no sparsities for "${m.name}" (set the experiment's sparsities or the method's own)`);
    if (out.some((o) => o.name === m.name && JSON.stringify(o.params) === JSON.stringify(params))) {
      problems.push(`  ${where}: "${m.name}" is listed twice with the same params`);
    }
    out.push({ name: m.name, phase, params, sparsities: sweep ? [] : [...sparsities], sweep });
  });
  return out;
}

function canonicalParams(params: Record<string, number | string | boolean>): string {
  return Object.keys(params)
    .sort()
    .map((k) => `${k}=${params[k]}`)
    .join(',');
}

/** The results key of a configuration: readable, and stable across spec edits that do not change it. */
export function configurationKey(c: Omit<ExperimentConfiguration, 'key' | 'examples' | 'seed' | 'maxNewTokens' | 'chunkSize' | 'taskName' | 'taskParams'>): string {
  const parts = [`model=${c.model.name}`, `task=${c.task}`, `n=${c.length}`, `phase=${c.phase}`, `method=${c.method}`];
  if (c.requestedSparsity !== null) parts.push(`s=${c.requestedSparsity}`);
  const p = canonicalParams(c.params);
  if (p) parts.push(`params=${p}`);
  return parts.join('|');
}

/**
 * The cartesian grid: per (model, task, length) dense once, then each prefill method × its
 * sparsities and each decode method × its sparsities (or sweep values). Order: model, length,
 * task, then dense, prefill methods, decode methods, so early results already pair with dense.
 */
export function expandExperiment(spec: ExperimentSpec): ExperimentConfiguration[] {
  const problems: string[] = [];
  const methods = resolveMethods(spec, problems);
  const tasks = resolveTasks(spec, problems);
  if (problems.length) throw new Error(`invalid experiment:\n${problems.join('\n')}`);
  const models = resolveModels(spec);
  const common = { examples: spec.examples, seed: spec.seed, maxNewTokens: spec.generation.maxNewTokens, chunkSize: spec.chunkSize };
  const ordered = [...methods.filter((m) => m.phase === 'prefill'), ...methods.filter((m) => m.phase === 'decode')];
  const out: ExperimentConfiguration[] = [];
  const push = (c: Omit<ExperimentConfiguration, 'key' | 'examples' | 'seed' | 'maxNewTokens' | 'chunkSize'>) => {
    out.push({ ...c, key: configurationKey(c), ...common });
  };
  for (const model of models) {
    for (const length of spec.lengths) {
      for (const t of tasks) {
        const task = t.label;
        const taskName = t.name, taskParams = t.params;
        if (spec.includeDense) push({ model, task, taskName, taskParams, length, phase: 'dense', method: 'dense', requestedSparsity: 0, params: {} });
        for (const m of ordered) {
          if (m.sweep) {
            for (const v of m.sweep.values) {
              push({ model, task, taskName, taskParams, length, phase: m.phase, method: m.name, requestedSparsity: null, params: { ...m.params, [m.sweep.param]: v } });
            }
          } else {
            for (const s of m.sparsities) {
              push({ model, task, taskName, taskParams, length, phase: m.phase, method: m.name, requestedSparsity: s, params: { ...m.params } });
            }
          }
        }
      }
    }
  }
  const keys = new Set<string>();
  for (const c of out) {
    if (keys.has(c.key)) throw new Error(`experiment expands to a duplicate configuration: ${c.key} (a repeated task, length or sparsity?)`);
    keys.add(c.key);
  }
  return out;
}

/**
 * Runner shards: each (configuration, example) pair goes to one shard, chosen from a hash of the
 * configuration key plus the example index, so shards `i/n` for i = 1..n cover the grid exactly once
 * and the assignment survives edits of the spec that add or reorder configurations. Returns whether
 * the pair belongs to shard `index` of `count` (1-based, as the CLI's `--shard i/n`).
 */
export function inShard(configKey: string, exampleIndex: number, shard: { index: number; count: number }): boolean {
  // FNV-1a over the key: stable across runs and platforms.
  let h = 0x811c9dc5;
  for (let i = 0; i < configKey.length; i++) {
    h ^= configKey.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return (h + exampleIndex) % shard.count === shard.index - 1;
}

/** Parses `--shard i/n` (1 ≤ i ≤ n). */
export function parseShard(text: string): { index: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(text.trim());
  if (!m) throw new Error(`--shard must look like i/n (e.g. 2/4), got "${text}"`);
  const index = Number(m[1]), count = Number(m[2]);
  if (count < 1 || index < 1 || index > count) throw new Error(`--shard ${text}: need 1 <= i <= n`);
  return { index, count };
}
