/**
 * Validation of a method's options: the target sparsity and its hyper-parameters. Every problem is
 * reported with the method id and the offending name, so a bad experiment spec fails before running.
 */
import type { PrefillCall } from '../engine/attention.js';
import type { MethodDescriptor, ParamSpec, ParamValues, PlanOptions, ResolvedOptions } from './types.js';

export function checkSparsity(methodId: string, s: unknown): number {
  if (typeof s !== 'number' || !Number.isFinite(s) || s < 0 || s >= 1) {
    throw new Error(`${methodId}: sparsity must be a number in [0, 1), got ${String(s)}`);
  }
  return s;
}

function checkParam(methodId: string, spec: ParamSpec, value: unknown): number | boolean {
  const where = `${methodId}: parameter ${spec.name}`;
  if (spec.kind === 'boolean') {
    if (typeof value !== 'boolean') throw new Error(`${where} must be true or false, got ${String(value)}`);
    return value;
  }
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new Error(`${where} must be a finite number, got ${String(value)}`);
  if (spec.kind === 'integer' && !Number.isInteger(value)) throw new Error(`${where} must be an integer, got ${value}`);
  if (spec.min !== undefined && value < spec.min) throw new Error(`${where} must be >= ${spec.min}, got ${value}`);
  if (spec.max !== undefined) {
    if (spec.maxExclusive ? value >= spec.max : value > spec.max) {
      throw new Error(`${where} must be ${spec.maxExclusive ? '<' : '<='} ${spec.max}, got ${value}`);
    }
  }
  return value;
}

/**
 * The parameter values a cost estimate reads: each declared parameter's given value when it is a
 * number, otherwise its declared default. Lenient on purpose (FLOPs accounting runs over stored
 * experiment rows, which resolveOptions already validated when the run started).
 */
export function paramsWithDefaults(method: MethodDescriptor, given: Record<string, unknown> = {}): ParamValues {
  const values: ParamValues = {};
  for (const spec of method.params) {
    const v = given[spec.name];
    values[spec.name] = typeof v === 'number' ? v : spec.default;
  }
  return values;
}

/**
 * Fill defaults, reject unknown parameters, and decide what sets the budget: exactly one of
 * `sparsity` or the method's budget parameters (dense takes neither, or sparsity 0).
 */
export function resolveOptions(method: MethodDescriptor, options: PlanOptions = {}): ResolvedOptions {
  const raw = options.params ?? {};
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error(`${method.id}: params must be an object`);
  const known = new Map(method.params.map((p) => [p.name, p]));
  for (const name of Object.keys(raw)) {
    if (!known.has(name)) {
      const allowed = method.params.map((p) => p.name).join(', ') || 'none';
      throw new Error(`${method.id}: unknown parameter "${name}" (allowed: ${allowed})`);
    }
  }
  const params: ParamValues = {};
  for (const spec of method.params) {
    const value = (raw as Record<string, unknown>)[spec.name];
    params[spec.name] = value === undefined ? spec.default : checkParam(method.id, spec, value);
  }
  const givenBudgetParams = method.budgetParams.filter((name) => (raw as Record<string, unknown>)[name] !== undefined);
  const sparsity = options.sparsity === undefined ? null : checkSparsity(method.id, options.sparsity);
  if (sparsity !== null && givenBudgetParams.length > 0) {
    throw new Error(`${method.id}: give either sparsity or ${givenBudgetParams.join('/')}, not both`);
  }
  if (sparsity === null && givenBudgetParams.length === 0 && method.budgetParams.length > 0) {
    throw new Error(`${method.id}: a target sparsity (or one of ${method.budgetParams.join(', ')}) is required`);
  }
  if (sparsity === null && method.budgetParams.length === 0 && method.id !== 'dense') {
    throw new Error(`${method.id}: a target sparsity is required`);
  }
  return { sparsity, params };
}

export function intParam(params: ParamValues, name: string): number {
  const v = params[name];
  if (typeof v !== 'number') throw new Error(`internal: parameter ${name} missing`);
  return v;
}

export function optionalIntParam(params: ParamValues, name: string): number | null {
  const v = params[name];
  return typeof v === 'number' ? v : null;
}

export function boolParam(params: ParamValues, name: string): boolean {
  const v = params[name];
  if (typeof v !== 'boolean') throw new Error(`internal: parameter ${name} missing`);
  return v;
}

/** Dense causal pairs of a prompt of n tokens: n(n+1)/2. */
export function causalPairs(n: number): number {
  return (n * (n + 1)) / 2;
}

export function assertFullAttentionLayer(methodId: string, slidingWindow: number | null): void {
  if (slidingWindow !== null) {
    throw new Error(`${methodId}: sliding-window layers run dense windowed attention; the engine must not hand them to a sparse method`);
  }
}

/**
 * For methods that estimate importance from the last queries against all keys: the call must be a
 * full-attention layer's whole prompt in one chunk, with every KV head's cache holding exactly it.
 */
export function assertWholePromptCall(methodId: string, call: PrefillCall): void {
  const { shape, numQueries: n, queryStart, cache } = call;
  assertFullAttentionLayer(methodId, shape.slidingWindow);
  if (queryStart !== 0 || !call.isLastChunk) {
    throw new Error(`${methodId}: needs the whole prompt in one chunk (got queries from ${queryStart}, last=${call.isLastChunk})`);
  }
  for (let kvh = 0; kvh < shape.numKvHeads; kvh++) {
    if (cache.lengths[kvh] !== n) throw new Error(`${methodId}: cache holds ${cache.lengths[kvh]} rows, expected the ${n}-token prompt`);
  }
}
