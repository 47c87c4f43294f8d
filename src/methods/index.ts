/**
 * The attention-method registry: the one entry point the experiment runner, the CLI and the report use.
 *
 *   listMethods(): MethodDescriptor[]           every method, in the paper's order
 *   getMethod(id): MethodDescriptor             one method (clear error for an unknown id)
 *   createAttentionPlan(id, { sparsity, params }): AttentionPlan
 *       the method's object for its phase and dense attention for the other phase, as the study
 *       measures each phase on its own. `sparsity` is the target s in [0, 1); a method's budget
 *       parameters (alpha, tokenCapacity, topChunks, ...) may replace it (then s is an outcome).
 *       Unknown parameters, bad values and a missing budget are errors naming the method.
 *   describeBudget(id, n, { sparsity, params }): the counts a method derives at prompt length n,
 *       the sparsity it expects to achieve, its tolerance, and why it may differ from the request.
 *   estimationFlops(id, shape, n, params): the importance-estimation FLOPs per layer
 *       ({ atPrefill, perDecodeToken }), for the FLOPs accounting.
 *
 * Each descriptor also carries its place on the paper's four axes (`taxonomy`: unit, importance,
 * budget, kvCache) and its hyper-parameters with the original's defaults (`params`), which
 * `sparse-frontier methods` prints as a table.
 *
 * Method objects record the budget they actually used per layer in `lastDecisions` (a
 * Map<layer, BudgetDecision>); achieved sparsity comes from the HeadCounts each call returns.
 */
import type { AttentionPlan } from '../engine/attention.js';
import { DenseDecode, DensePrefill, denseMethod } from './dense.js';
import { sinkLocalDecodeMethod, sinkLocalPrefillMethod } from './sink-local.js';
import { verticalSlashMethod } from './vertical-slash.js';
import { flexPrefillMethod } from './flexprefill.js';
import { flexPrefillFullMethod } from './flexprefill-full.js';
import { blockSparseMethod } from './block-sparse.js';
import { questMethod } from './quest.js';
import { snapKvMethod } from './snapkv.js';
import { adaSnapKvMethod } from './ada-snapkv.js';
import { paramsWithDefaults, resolveOptions } from './options.js';
import type { BudgetDescription, EstimationFlops, HeadShape, MethodDescriptor, PlanOptions } from './types.js';

export type {
  BudgetDecision, BudgetDescription, EstimationFlops, HeadShape, MethodDescriptor, MethodPhase, ParamSpec, PlanOptions,
  Taxonomy,
} from './types.js';

const METHODS: readonly MethodDescriptor[] = [
  denseMethod,
  sinkLocalPrefillMethod,
  verticalSlashMethod,
  flexPrefillMethod,
  flexPrefillFullMethod,
  blockSparseMethod,
  sinkLocalDecodeMethod,
  questMethod,
  snapKvMethod,
  adaSnapKvMethod,
];

export function listMethods(): MethodDescriptor[] {
  return [...METHODS];
}

export function getMethod(id: string): MethodDescriptor {
  const method = METHODS.find((m) => m.id === id);
  if (!method) throw new Error(`unknown attention method "${id}" (known: ${METHODS.map((m) => m.id).join(', ')})`);
  return method;
}

export function createAttentionPlan(methodId: string, options: PlanOptions = {}): AttentionPlan {
  const method = getMethod(methodId);
  const objects = method.create(resolveOptions(method, options));
  return {
    prefill: objects.prefill ?? new DensePrefill(),
    decode: objects.decode ?? new DenseDecode(),
  };
}

export function describeBudget(methodId: string, n: number, options: PlanOptions = {}): BudgetDescription {
  if (!Number.isInteger(n) || n < 1) throw new Error(`prompt length must be a positive integer, got ${n}`);
  const method = getMethod(methodId);
  return method.describeBudget(n, resolveOptions(method, options));
}

export function estimationFlops(methodId: string, shape: HeadShape, n: number, params?: Record<string, unknown>): EstimationFlops {
  const method = getMethod(methodId);
  return method.estimationFlops(shape, n, paramsWithDefaults(method, params));
}
