/**
 * The attention step of one layer of the GPU model, behind one interface: the model hands over the
 * layer's queries (inside the fused qkv rows) and its device KV cache (the new tokens already
 * appended) and gets [T, H, D] outputs back. DenseDeviceAttention runs the dense kernels; any method
 * of the GPU method registry runs through PlanDeviceAttention (methods/plan.ts), which chooses per
 * layer and phase the way the CPU engine's AttentionPlan does (sliding layers stay dense).
 */
import type { ModelConfig } from '../../engine/model-config.js';
import type { DevicePtr } from './context.js';
import { DecodeAttentionKernel } from './kernels/decode-attention.js';
import { FlashPrefill, SUPPORTED_PREFILL_HEAD_DIMS } from './kernels/flash-prefill.js';
import { SmallHeadAttention } from './kernels/small-head-attention.js';
import type { DeviceLayerKvCache } from './kv-cache.js';
import type { GraphDecodeSource } from './methods/contract.js';
import type { CudaRuntime } from './runtime.js';

export interface DeviceAttentionCall {
  layer: number;
  /** A sliding-window layer (config.slidingWindow applies). */
  sliding: boolean;
  /** Query t, head h at q + 2·(t·qRowStride + h·D) bytes. */
  q: DevicePtr;
  qRowStride: number;
  /** T: 1 in a decode step. */
  numQueries: number;
  /** Position of query 0; the cache holds rows [0, queryStart + T). */
  queryStart: number;
  cache: DeviceLayerKvCache;
  /** [T, H, D] bf16 output. */
  out: DevicePtr;
}

export interface DeviceAttention {
  readonly id: string;
  attend(call: DeviceAttentionCall): void;
  /**
   * Non-null when decode steps are plain dense attention, so the model may replay a captured CUDA
   * graph instead of calling attend() per layer; the model then calls the returned function once per
   * replayed step with the step's position, for the bookkeeping attend() would have done (pair counts).
   */
  denseDecodeSteps?(): ((position: number) => void) | null;
  /**
   * Non-null when the decode method records its own steps into the model's graph (a sparse method
   * with DeviceDecodeMethod.graphSteps): the model prepares them before each capture and books each
   * replay through them; sliding layers stay the model's dense kernels.
   */
  methodDecodeSteps?(): GraphDecodeSource | null;
}

const DECODE_MAX_GROUP = 8;

const bookNothing = (): void => {};

/**
 * Dense causal attention: flash prefill for chunks (T > 1), split-K decode for T = 1, and the simple
 * small-head kernel for head dims those two do not cover (or GQA groups decode does not).
 */
export class DenseDeviceAttention implements DeviceAttention {
  readonly id = 'dense';
  private readonly flash: FlashPrefill | null;
  private readonly decode: DecodeAttentionKernel | null;
  private readonly small: SmallHeadAttention;
  private readonly scale: number;
  private readonly window: number | null;

  constructor(rt: CudaRuntime, c: ModelConfig) {
    const shape = { numHeads: c.numHeads, numKvHeads: c.numKvHeads, headDim: c.headDim };
    const flashHeadDim = (SUPPORTED_PREFILL_HEAD_DIMS as readonly number[]).includes(c.headDim);
    this.flash = flashHeadDim ? new FlashPrefill(rt, shape) : null;
    this.decode = flashHeadDim && c.numHeads / c.numKvHeads <= DECODE_MAX_GROUP ? new DecodeAttentionKernel(rt, shape) : null;
    this.small = new SmallHeadAttention(rt, shape);
    this.scale = c.attentionScale;
    this.window = c.slidingWindow;
  }

  /** Dense decode books nothing per step: a replayed graph runs exactly the kernels attend() would. */
  denseDecodeSteps(): (position: number) => void {
    return bookNothing;
  }

  /** Which kernel serves each phase (for logs). */
  describe(): string {
    return `prefill ${this.flash ? 'flash' : 'small-head'}, decode ${this.decode ? 'split-K' : 'small-head'}`;
  }

  attend(a: DeviceAttentionCall): void {
    const cache = a.cache;
    const kvLen = a.queryStart + a.numQueries;
    if (cache.length !== kvLen) throw new Error(`attention layer ${a.layer}: cache holds ${cache.length} rows, expected ${kvLen}`);
    const slidingWindow = a.sliding ? this.window : null;
    if (a.numQueries === 1 && this.decode) {
      this.decode.run({ q: a.q, k: cache.keys.ptr, v: cache.values.ptr, out: a.out, kvLen, kvStride: cache.capacity, scale: this.scale, slidingWindow });
      return;
    }
    const args = {
      q: a.q, qRowStride: a.qRowStride, k: cache.keys.ptr, v: cache.values.ptr, out: a.out,
      numQueries: a.numQueries, queryStart: a.queryStart, kvLen, kvStride: cache.capacity, scale: this.scale, slidingWindow,
    };
    if (this.flash) this.flash.run(args);
    else this.small.run(args);
  }
}
