/**
 * The GPU side of the attention-method contract (the CPU one is src/engine/attention.ts): one object
 * per phase, chosen per layer, the model never knowing which method runs. Everything a method reads
 * or writes stays on the device; what comes back to the host is only what the method needs to decide
 * (small index lists, budgets) and the pair counts that achieved sparsity is measured from.
 *
 * Shapes: T queries in a call, H query heads, Hkv KV heads, D head dim, g = H / Hkv; query head h reads
 * KV head floor(h / g). Queries arrive inside the model's fused qkv rows (row stride qRowStride
 * elements); the layer's cache is DeviceLayerKvCache ([Hkv, capacity, D] bf16, row r = position r),
 * with this call's tokens already appended.
 *
 * Eviction without moving the cache: a decode method that compresses (SnapKV, Ada-SnapKV) gathers the
 * rows it keeps for KV head h into rows [0, keep_h) of that head and reads, from then on, the row
 * segments [0, keep_h) ∪ [promptLength, cache.length) — decode tokens keep being appended at the
 * cache's common length. Page-selecting methods (Quest) read a per-head list of row segments too; the
 * segment-list decode kernel serves both.
 */
import type { HeadCounts } from '../../../engine/attention.js';
import type { ModelConfig } from '../../../engine/model-config.js';
import type { DevicePtr } from '../context.js';
import type { DeviceLayerKvCache } from '../kv-cache.js';
import type { CudaRuntime } from '../runtime.js';

export interface DeviceAttentionShape {
  numHeads: number; // H
  numKvHeads: number; // Hkv
  headDim: number; // D
  /** Softmax scale applied to q·k. */
  scale: number;
}

export interface DevicePrefillCall {
  layer: number;
  shape: DeviceAttentionShape;
  /** Query t, head h at q + 2·(t·qRowStride + h·D) bytes (bf16, rotated). */
  q: DevicePtr;
  qRowStride: number;
  numQueries: number; // T > 1 or a one-token prompt
  /** Position of query 0; the cache holds rows [0, queryStart + T). */
  queryStart: number;
  cache: DeviceLayerKvCache;
  /** [T, H, D] bf16 output, written by the method. */
  out: DevicePtr;
  /** True when this chunk ends the prompt. */
  isLastChunk: boolean;
}

/** After the whole prompt is in the cache and before the first decode step. */
export interface DeviceCompressCall {
  layer: number;
  shape: DeviceAttentionShape;
  /** [W, H, D] bf16 rotated queries of the last W prompt tokens, contiguous. */
  windowQueries: DevicePtr;
  windowLength: number; // W = min(observationWindow, prompt length)
  /** Prompt length n: the cache holds rows [0, n) when this is called. */
  promptLength: number;
  cache: DeviceLayerKvCache;
}

export interface DeviceDecodeCall {
  layer: number;
  shape: DeviceAttentionShape;
  /** Head h of the new token's query at q + 2·h·D bytes (bf16, rotated). */
  q: DevicePtr;
  /** Absolute position of the new token; its k/v are already at row `position` of the cache. */
  position: number;
  cache: DeviceLayerKvCache;
  /** [H, D] bf16 output, written by the method. */
  out: DevicePtr;
}

/**
 * Before the model captures one decode step of a sequence into a CUDA graph (issue 9): the graph will
 * replay the step at positions [firstPosition, capacity), each reading its position from device memory.
 */
export interface DeviceGraphDecodeSetup {
  shape: DeviceAttentionShape;
  /** The first replayed position; every full-attention layer has had its prompt (and afterPrefill). */
  firstPosition: number;
  /** The sequence's capacity: the last replayed position is capacity - 1 (≤ every cache's capacity). */
  capacity: number;
  /** Device memory that lives as long as the graph (its kernels may read it at every replay). */
  own(bytes: number): DevicePtr;
}

/** One full-attention layer's step, recorded while the graph is captured. */
export interface DeviceGraphDecodeLayerCall {
  layer: number;
  /** Head h of the new token's query at q + 2·h·D bytes (bf16, rotated). */
  q: DevicePtr;
  /** int32 on the device: the new token's position p (its k/v at row p when the kernels run). */
  position: DevicePtr;
  cache: DeviceLayerKvCache;
  /** [H, D] bf16 output. */
  out: DevicePtr;
}

/** A method's decode steps as a captured graph runs them (DeviceDecodeMethod.graphSteps). */
export interface DeviceGraphDecodeSteps {
  /**
   * Queues the layer's step on rt.stream inside the capture: kernel launches only (no allocation,
   * host copy or synchronisation), reading the position from call.position.
   */
  record(call: DeviceGraphDecodeLayerCall): void;
  /** The pair counts decode() returns for the layer's step at `position` (booked once per replay). */
  counts(layer: number, position: number): HeadCounts;
}

/**
 * The model's view of a decode method's graph steps, through its DeviceAttention (the plan): which
 * layers the method records, and the booking of every layer's pairs per replay.
 */
export interface GraphDecodeAttention {
  /** Records full-attention layer call.layer's step inside the capture (sliding layers stay the model's dense kernels). */
  record(call: DeviceGraphDecodeLayerCall): void;
  /** Books one replayed step at `position`: every layer's pair counts, as attend() would. */
  book(position: number): void;
  /** False once the method state the recorded kernels read is gone (another sequence started): the graph must go. */
  isCurrent(): boolean;
}

/** DeviceAttention.methodDecodeSteps: prepares a capture's method steps, or null where the method cannot serve them yet. */
export interface GraphDecodeSource {
  prepare(setup: Omit<DeviceGraphDecodeSetup, 'shape'>): GraphDecodeAttention | null;
}

export interface DevicePrefillMethod {
  readonly id: string;
  /** As PrefillAttention.requiresWholePrompt: the engine then prefills the prompt as one chunk. */
  readonly requiresWholePrompt: boolean;
  /** Runs importance estimation (if any) and attention; returns per-query-head pair counts. */
  prefill(call: DevicePrefillCall): HeadCounts;
  /** Frees per-sequence device state when a sequence ends. */
  reset?(): void;
}

export interface DeviceDecodeMethod {
  readonly id: string;
  /** Trailing prompt queries `afterPrefill` needs (0: the hook is not called). */
  readonly observationWindow: number;
  afterPrefill?(call: DeviceCompressCall): void;
  decode(call: DeviceDecodeCall): HeadCounts;
  /**
   * Optional: the decode step recorded into the model's CUDA graph, so that one capture serves every
   * position of setup's range with the outputs and counts decode() gives (without it the steps run
   * launch by launch). Called between steps, outside any capture: it may compile, allocate (through
   * setup.own for what the graph reads), upload and synchronise. null: not from this position (the
   * model runs this step through decode() and asks again at the next). What the recorded kernels read
   * of the method's own state (compacted segment lists) stays valid until reset().
   */
  graphSteps?(setup: DeviceGraphDecodeSetup): DeviceGraphDecodeSteps | null;
  /** Frees per-sequence device state (page bounds, segment lists) when a sequence ends. */
  reset?(): void;
}

/** Device time of the last call's importance estimation, separate from the attention itself. */
export interface EstimationTiming {
  /** Milliseconds between the estimation's start and end events (null until measured). */
  lastEstimationMs(): number | null;
}

export interface DeviceMethodOptions {
  /** Target sparsity in [0, 1); absent: the method's own fixed budget (as the CPU methods). */
  sparsity?: number;
  /** The method's parameters, as the CPU registry takes them (src/methods; defaults filled there). */
  params?: Record<string, unknown>;
}

/**
 * One method object serves every full-attention layer of one model (sliding layers stay dense);
 * per-layer, per-sequence state (page bounds, kept-row counts) is keyed by call.layer inside it and
 * dropped by reset() when a sequence ends.
 */
export interface DevicePrefillFactory {
  readonly methodId: string;
  /** A reason when the method cannot run on this model's shape (head dim, GQA group), else null. */
  unsupported(config: ModelConfig): string | null;
  create(rt: CudaRuntime, config: ModelConfig, options: DeviceMethodOptions): DevicePrefillMethod;
}

export interface DeviceDecodeFactory {
  readonly methodId: string;
  unsupported(config: ModelConfig): string | null;
  create(rt: CudaRuntime, config: ModelConfig, options: DeviceMethodOptions): DeviceDecodeMethod;
}
