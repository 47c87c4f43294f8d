/**
 * Launcher for vertical-slash-estimate.cu: the Vertical-Slash importance estimate on the GPU. The last
 * A queries of each query head score all keys (causal, softmax per row); the result is, per head, the
 * column sums (vertical scores) and diagonal sums (slash scores), [H, n] fp32 each, as
 * src/methods/vertical-slash-pattern.ts lastQueryScores computes them in float64 on the CPU.
 * Deterministic: the same inputs give the same bits every run (the diagonal sums are added in 64-bit
 * fixed point, see vertical-slash-estimate.cu), so one prompt selects the same diagonals every time.
 */
import type { DevicePtr } from '../context.js';
import type { CudaKernel } from '../module.js';
import type { CudaRuntime } from '../runtime.js';
import { GrowableDeviceBuffer } from '../vertical-slash-layout.js';
import type { PrefillShape } from './flash-prefill.js';

export const SUPPORTED_VERTICAL_SLASH_HEAD_DIMS = [64, 128] as const;
const LOG2E = 1.4426950408889634;
const ROWS = 64; // query rows per chunk
const TILE = 64; // keys per tile
/** sm_90's opt-in limit on dynamic shared memory per block (227 KiB). */
const MAX_SHARED_BYTES = 227 * 1024;
/** Above this A the fixed-point diagonal sums would keep fewer than 38 fraction bits (2^-38 ≈ 3.6e-12). */
export const MAX_VERTICAL_SLASH_APPROXIMATION = 1 << 24;

/**
 * Fraction bits S of the fixed-point diagonal sums for A scoring rows: a diagonal sum is at most A
 * (one softmax weight <= 1 per row), so S = 62 - ceil(log2 A) keeps A·2^S <= 2^62, a quarter of the
 * unsigned 64-bit range (weights that round a little above 1 and the per-lane rounding fit easily),
 * with the most fraction bits that bound allows (A = 512: S = 53, resolution 1.1e-16).
 */
export function slashFixedPointBits(approximation: number): number {
  const A = approximation;
  if (!Number.isInteger(A) || A < 1 || A > MAX_VERTICAL_SLASH_APPROXIMATION) {
    throw new Error(`vertical-slash estimate: approximation size must be an integer in [1, ${MAX_VERTICAL_SLASH_APPROXIMATION}] for the fixed-point diagonal sums (got ${A})`);
  }
  const ceilLog2 = 32 - Math.clz32(A - 1);
  return 62 - ceilLog2;
}

/** Launch geometry of one estimate: n keys, A scoring rows, H query heads of head dim D. */
export interface VerticalSlashEstimatePlan {
  numChunks: number;
  numTiles: number;
  splits: number;
  tilesPerSplit: number;
  rowStatsSharedBytes: number;
  /** Q and K tiles, per-warp weights, column partials, then diagLen u64 diagonal sums. */
  columnDiagSharedBytes: number;
  fixedPointBits: number;
}

export function verticalSlashEstimatePlan(n: number, approximation: number, numHeads: number, headDim: number): VerticalSlashEstimatePlan {
  const A = approximation;
  const fixedPointBits = slashFixedPointBits(A);
  const numChunks = Math.ceil(A / ROWS);
  const numTiles = Math.ceil(n / TILE);
  // Enough blocks for two waves of 132 multiprocessors, and at least 4 key tiles per split.
  const splits = Math.max(1, Math.min(Math.ceil(264 / (numChunks * numHeads)), Math.ceil(numTiles / 4)));
  const lds = headDim + 8;
  const diagLen = numChunks * ROWS + TILE - 1;
  const columnDiagSharedBytes = 2 * ROWS * lds * 2 + (4 * 16 * (TILE + 8) + 4 * TILE) * 4 + diagLen * 8;
  if (columnDiagSharedBytes > MAX_SHARED_BYTES) {
    throw new Error(`vertical-slash estimate: approximation size ${A} needs ${columnDiagSharedBytes} B of shared memory for its diagonal sums (at most ${MAX_SHARED_BYTES} B)`);
  }
  return { numChunks, numTiles, splits, tilesPerSplit: Math.ceil(numTiles / splits), rowStatsSharedBytes: 3 * ROWS * lds * 2, columnDiagSharedBytes, fixedPointBits };
}

export interface VerticalSlashScoreArgs {
  /** [n, qRowStride] bf16 queries of the whole prompt (head h at h·D); row t is position t. */
  q: DevicePtr;
  /** Elements between consecutive queries (default H·D). */
  qRowStride?: number;
  /** [Hkv, kvStride, D] bf16 keys; rows [0, n) hold positions 0..n-1. */
  k: DevicePtr;
  kvStride: number;
  n: number;
  /** A: the last A queries score the keys (1 <= A <= n). */
  approximation: number;
  scale: number;
}

/** Device outputs of one estimate, valid until the next run of the same estimator. */
export interface VerticalSlashScores {
  n: number;
  /** [H, n] fp32: summed softmax weight per key. */
  vertical: DevicePtr;
  /** [H, n] fp32: summed softmax weight per diagonal offset o = query - key. */
  slash: DevicePtr;
}

/** Checks the shape the Vertical-Slash kernels support; returns the reason it does not, or null. */
export function verticalSlashShapeProblem(shape: PrefillShape): string | null {
  const { numHeads: H, numKvHeads: Hkv, headDim: D } = shape;
  if (!SUPPORTED_VERTICAL_SLASH_HEAD_DIMS.includes(D as 64 | 128)) return `head dim ${D} unsupported (64 or 128)`;
  if (!(Hkv > 0) || H % Hkv !== 0) return `${H} query heads are not a multiple of ${Hkv} KV heads`;
  return null;
}

export function checkQueryRowStride(what: string, shape: PrefillShape, qRowStride: number): void {
  const HD = shape.numHeads * shape.headDim;
  if (!Number.isInteger(qRowStride) || qRowStride < HD || qRowStride % 8 !== 0) {
    throw new Error(`${what}: qRowStride must be an integer >= H·D and a multiple of 8 (got ${qRowStride})`);
  }
}

export class VerticalSlashEstimator {
  private kernels: { rowStats: CudaKernel; combine: CudaKernel; columnDiag: CudaKernel; slashFromFixed: CudaKernel } | null = null;
  private readonly partial: GrowableDeviceBuffer;
  private readonly stats: GrowableDeviceBuffer;
  private readonly vertical: GrowableDeviceBuffer;
  private readonly slash: GrowableDeviceBuffer;
  private readonly slashFixed: GrowableDeviceBuffer;

  constructor(private readonly rt: CudaRuntime, readonly shape: PrefillShape) {
    const problem = verticalSlashShapeProblem(shape);
    if (problem) throw new Error(`vertical-slash estimate: ${problem}`);
    this.partial = new GrowableDeviceBuffer(rt, 'vertical-slash estimate partial stats');
    this.stats = new GrowableDeviceBuffer(rt, 'vertical-slash estimate row stats');
    this.vertical = new GrowableDeviceBuffer(rt, 'vertical-slash vertical scores');
    this.slash = new GrowableDeviceBuffer(rt, 'vertical-slash slash scores');
    this.slashFixed = new GrowableDeviceBuffer(rt, 'vertical-slash fixed-point slash sums');
  }

  prepare() {
    if (!this.kernels) {
      const mod = this.rt.module('vertical-slash-estimate.cu', { HEAD_DIM: this.shape.headDim });
      this.kernels = {
        rowStats: mod.kernel('vs_row_stats', ['ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'f32']),
        combine: mod.kernel('vs_combine_stats', ['ptr', 'ptr', 'i32', 'i32', 'i32', 'f32']),
        columnDiag: mod.kernel('vs_column_diag', ['ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'f32', 'f32']),
        slashFromFixed: mod.kernel('vs_slash_from_fixed', ['ptr', 'ptr', 'i32', 'f32']),
      };
    }
    return this.kernels;
  }

  /** Enqueues the estimate on the runtime's stream. Only call when no queued work reads the last result. */
  run(a: VerticalSlashScoreArgs): VerticalSlashScores {
    const { numHeads: H, numKvHeads: Hkv, headDim: D } = this.shape;
    const { n, approximation: A } = a;
    if (!Number.isInteger(n) || n < 1 || n > a.kvStride) throw new Error(`vertical-slash estimate: need 1 <= n <= kvStride (got ${n}, ${a.kvStride})`);
    if (!Number.isInteger(A) || A < 1 || A > n) throw new Error(`vertical-slash estimate: approximation size must be in [1, n=${n}] (got ${A})`);
    for (const [name, ptr] of [['q', a.q], ['k', a.k]] as const) {
      if (ptr % 16n !== 0n) throw new Error(`vertical-slash estimate: ${name} must be 16-byte aligned`);
    }
    const qRowStride = a.qRowStride ?? H * D;
    checkQueryRowStride('vertical-slash estimate', this.shape, qRowStride);
    const plan = verticalSlashEstimatePlan(n, A, H, D);
    const { numChunks, numTiles, splits, tilesPerSplit } = plan;
    const k = this.prepare();
    const scaleLog2 = a.scale * LOG2E;
    const partial = this.partial.ensure(H * splits * A * 8);
    const stats = this.stats.ensure(H * A * 8);
    const vertical = this.vertical.ensure(H * n * 4);
    const slash = this.slash.ensure(H * n * 4);
    const slashFixed = this.slashFixed.ensure(H * n * 8);
    k.rowStats.launch(
      { grid: [numChunks, splits, H], block: [128, 1, 1], sharedBytes: plan.rowStatsSharedBytes, stream: this.rt.stream },
      [a.q, a.k, partial.ptr, n, H, Hkv, qRowStride, a.kvStride, A, tilesPerSplit, scaleLog2],
    );
    k.combine.launch(
      { grid: [Math.ceil((H * A) / 256), 1, 1], block: [256, 1, 1], sharedBytes: 0, stream: this.rt.stream },
      [partial.ptr, stats.ptr, H, A, splits, scaleLog2],
    );
    this.rt.cuda.fill32Async(slashFixed.ptr, 0, 2 * H * n, this.rt.stream);
    k.columnDiag.launch(
      { grid: [numTiles, H, 1], block: [128, 1, 1], sharedBytes: plan.columnDiagSharedBytes, stream: this.rt.stream },
      [a.q, a.k, stats.ptr, vertical.ptr, slashFixed.ptr, n, H, Hkv, qRowStride, a.kvStride, A, scaleLog2, 2 ** plan.fixedPointBits],
    );
    k.slashFromFixed.launch(
      { grid: [Math.ceil((H * n) / 256), 1, 1], block: [256, 1, 1], sharedBytes: 0, stream: this.rt.stream },
      [slashFixed.ptr, slash.ptr, H * n, 2 ** -plan.fixedPointBits],
    );
    return { n, vertical: vertical.ptr, slash: slash.ptr };
  }

  release(): void {
    for (const b of [this.partial, this.stats, this.vertical, this.slash, this.slashFixed]) b.release();
  }
}

