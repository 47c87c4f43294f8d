/**
 * What every attention method declares about itself: its place in the paper's taxonomy (four axes),
 * its hyper-parameters with the original implementation's defaults, how a target sparsity becomes
 * its budget, and the FLOPs of its importance estimation. The registry (index.ts) holds one
 * descriptor per method; `create` turns options into the engine's method objects.
 */
import type { DecodeAttention, PrefillAttention } from '../engine/attention.js';

export type MethodPhase = 'prefill' | 'decode' | 'both';

/** Unit of sparsification: what one selected item is. */
export type SparsityUnit = 'none' | 'tokens' | 'columns+diagonals' | 'blocks' | 'pages';
/** How importance is estimated. */
export type ImportanceEstimation =
  | 'none'
  | 'fixed pattern'
  | 'last queries x all keys'
  | 'last queries x all keys, coverage threshold'
  | 'last query block, pooled blocks, JS-divergence switch'
  | 'mean-pooled blocks'
  | 'page key min/max upper bound'
  | 'observation window (mean)'
  | 'observation window (max)';
/** How the budget is spread over heads (and queries). */
export type BudgetAllocation = 'all' | 'uniform' | 'fixed counts' | 'adaptive per head' | 'adaptive across heads';
/** What happens to the KV cache. */
export type KvCacheManagement = 'full' | 'full, pages selected' | 'evicting' | 'evicted after prefill';

export interface Taxonomy {
  unit: SparsityUnit;
  importance: ImportanceEstimation;
  budget: BudgetAllocation;
  kvCache: KvCacheManagement;
}

/** One hyper-parameter: its default is the original implementation's (see docs/methods.md). */
export interface ParamSpec {
  name: string;
  description: string;
  kind: 'integer' | 'number' | 'boolean';
  /** undefined: the parameter is off unless given (a budget knob that replaces `sparsity`). */
  default?: number | boolean;
  /** For budget parameters (no default here): the value the original's configuration uses. */
  originalDefault?: number;
  min?: number;
  max?: number;
  /** Excluded upper bound (for numbers such as a ratio in [0, 1)). */
  maxExclusive?: boolean;
}

export type ParamValues = Record<string, number | boolean | undefined>;

/** Per-layer head geometry the FLOPs formulas need. */
export interface HeadShape {
  numHeads: number; // H
  numKvHeads: number; // Hkv
  headDim: number; // D
}

/**
 * FLOPs of a method's importance estimation, per layer. `atPrefill` is paid once per prompt of n
 * tokens (Vertical-Slash's last-query scores, SnapKV's window scores, Quest's page bounds);
 * `perDecodeToken` is paid by every generated token at a context of n tokens (Quest's page scoring).
 * The attention itself is not included (FLOPs accounting scales dense attention by 1 - s).
 */
export interface EstimationFlops {
  atPrefill: number;
  perDecodeToken: number;
}

/**
 * What a method expects from a target sparsity at a prompt length, before seeing any content.
 * `expectedSparsity` may sit below the requested one when forced tokens (sink, local, diagonal
 * blocks, minimum budgets) exceed the budget; `note` then says why. Achieved sparsity (measured from
 * the attended pairs) must lie within `tolerance` of `expectedSparsity`.
 */
export interface BudgetDescription {
  requested: number | null;
  /** The counts the method will run with (sizes, capacities, budgets), for display. */
  counts: Record<string, number | string>;
  expectedSparsity: number | null;
  tolerance: number;
  /**
   * Largest |expectedSparsity - requested| that rounding the counts to whole units (tokens, pages,
   * chunks, columns) can cause at this n; a larger gap always comes with a `note`.
   */
  resolution: number;
  note?: string;
}

export interface PlanOptions {
  /** Target sparsity s in [0, 1). Omit it only when a budget parameter (e.g. alpha) is given instead. */
  sparsity?: number;
  /** Method hyper-parameters by name (see `listMethods()[i].params`). */
  params?: Record<string, unknown>;
}

/** Options after validation: sparsity checked, every parameter present (defaults filled in). */
export interface ResolvedOptions {
  sparsity: number | null;
  params: ParamValues;
}

export interface MethodObjects {
  prefill?: PrefillAttention;
  decode?: DecodeAttention;
}

export interface MethodDescriptor {
  id: string;
  title: string;
  phase: MethodPhase;
  taxonomy: Taxonomy;
  /** One line: where it comes from and what it does. */
  summary: string;
  params: ParamSpec[];
  /**
   * Parameters that set the budget directly; giving one of them replaces `sparsity` (then the
   * achieved sparsity is an outcome). Empty for methods that only take `sparsity`.
   */
  budgetParams: string[];
  create(options: ResolvedOptions): MethodObjects;
  /** `params` holds every declared parameter: the given value where numeric, else its declared default. */
  estimationFlops(shape: HeadShape, n: number, params: ParamValues): EstimationFlops;
  describeBudget(n: number, options: ResolvedOptions): BudgetDescription;
}

/**
 * A per-layer record of the budget a method actually used (the counts it derived, and why the
 * achieved sparsity may differ from the requested one). Method objects keep the latest per layer.
 */
export interface BudgetDecision {
  layer: number;
  counts: Record<string, number | string>;
  note?: string;
}
