/**
 * Launcher for small-head-attention.cu: dense causal (optionally windowed) attention for head dims the
 * flash prefill and split-K decode kernels do not serve (e.g. the tiny test checkpoints' 16). Same
 * arguments as FlashPrefill.run; decode is the case numQueries = 1, queryStart = kvLen - 1.
 */
import type { CudaKernel } from '../module.js';
import type { CudaRuntime } from '../runtime.js';
import type { FlashPrefillArgs, PrefillShape } from './flash-prefill.js';

const MAX_HEAD_DIM = 256;
const NO_WINDOW = 1 << 30;
const LOG2E = 1.4426950408889634;

export class SmallHeadAttention {
  private kernel: CudaKernel | null = null;

  constructor(private readonly rt: CudaRuntime, readonly shape: PrefillShape) {
    const { numHeads: H, numKvHeads: Hkv, headDim: D } = shape;
    if (!(D > 0) || D % 2 !== 0 || D > MAX_HEAD_DIM) throw new Error(`small-head attention: head dim ${D} must be even and at most ${MAX_HEAD_DIM}`);
    if (!(Hkv > 0) || H % Hkv !== 0) throw new Error(`small-head attention: ${H} query heads are not a multiple of ${Hkv} KV heads`);
  }

  run(a: FlashPrefillArgs): void {
    const { numHeads: H, numKvHeads: Hkv, headDim: D } = this.shape;
    const T = a.numQueries;
    if (!(T > 0)) throw new Error(`small-head attention: numQueries must be positive (got ${T})`);
    if (a.queryStart < 0 || a.kvLen < a.queryStart + 1 || a.kvLen > a.kvStride) {
      throw new Error(`small-head attention: need 0 <= queryStart < kvLen <= kvStride (got ${a.queryStart}, ${a.kvLen}, ${a.kvStride})`);
    }
    const qRowStride = a.qRowStride ?? H * D;
    if (qRowStride < H * D) throw new Error(`small-head attention: qRowStride ${qRowStride} < H·D`);
    const window = a.slidingWindow ?? NO_WINDOW;
    if (!Number.isInteger(window) || window < 1) throw new Error(`small-head attention: sliding window must be a positive integer (got ${window})`);
    this.kernel ??= this.rt.module('small-head-attention.cu', {}).kernel('small_head_attention',
      ['ptr', 'ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'f32']);
    this.kernel.launch(
      { grid: [T, H, 1], block: [32, 1, 1], sharedBytes: 0, stream: this.rt.stream },
      [a.q, a.k, a.v, a.out, H, Hkv, D, qRowStride, a.kvStride, a.queryStart, a.kvLen, window, a.scale * LOG2E],
    );
  }
}
