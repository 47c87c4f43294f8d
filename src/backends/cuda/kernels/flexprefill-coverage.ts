/**
 * Launcher for flexprefill-coverage.cu: FlexPrefill's per-head budget rule on the device. From the
 * Vertical-Slash estimate's [H, n] column and diagonal scores it builds each row's coverage curve
 * (scores sorted descending, float64 prefix sums scaled by 1/A: the CPU's sortedPrefixSumsOfFloat32,
 * bit for bit) and answers, per alpha, every head's column and diagonal counts (the CPU's coverCount
 * and min_budget / forcing clamps). Only the 2H counts come back to the host, never the scores.
 */
import { FORCED_COLUMNS, FORCED_DIAGONALS } from '../../../methods/vertical-slash-prefill.js';
import type { DevicePtr } from '../context.js';
import type { CudaKernel } from '../module.js';
import type { CudaRuntime } from '../runtime.js';
import { GrowableDeviceBuffer } from '../vertical-slash-layout.js';
import type { VerticalSlashScores } from './vertical-slash-estimate.js';
import type { VerticalSlashCounts } from './vertical-slash-index.js';

const CURVE_THREADS = 1024;
const SIZE_THREADS = 128;

/** A double as the (hi, lo) 32-bit halves the kernels reassemble with __hiloint2double. */
export function doubleHalves(x: number): [number, number] {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x, true);
  return [view.getInt32(4, true), view.getInt32(0, true)];
}

export class FlexPrefillCoverage {
  private kernels: { curves: CudaKernel; sizes: CudaKernel } | null = null;
  private readonly buf: Record<'keysA' | 'keysB' | 'prefix' | 'counts', GrowableDeviceBuffer>;
  private n = 0;

  constructor(private readonly rt: CudaRuntime, readonly numHeads: number) {
    if (!(numHeads > 0)) throw new Error(`flexprefill coverage: numHeads must be positive (got ${numHeads})`);
    const names = ['keysA', 'keysB', 'prefix', 'counts'] as const;
    this.buf = Object.fromEntries(names.map((k) => [k, new GrowableDeviceBuffer(rt, `flexprefill coverage ${k}`)])) as FlexPrefillCoverage['buf'];
  }

  private prepare() {
    if (!this.kernels) {
      const mod = this.rt.module('flexprefill-coverage.cu', {});
      this.kernels = {
        curves: mod.kernel('fp_coverage_curves', ['ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32', 'i32']),
        sizes: mod.kernel('fp_cover_sizes', ['ptr', 'ptr', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32']),
      };
    }
    return this.kernels;
  }

  /**
   * Enqueues the 2H coverage curves of these scores (rows: the H column heads, then the H diagonal
   * heads), each prefix sum scaled by `scale` (1/A). Valid until the next build.
   */
  build(scores: VerticalSlashScores, scale: number): void {
    const H = this.numHeads, n = scores.n;
    if (!Number.isInteger(n) || n < 1) throw new Error(`flexprefill coverage: n must be a positive integer (got ${n})`);
    if (!(scale > 0)) throw new Error(`flexprefill coverage: scale must be positive (got ${scale})`);
    if (2 * H * n > 2 ** 31) throw new Error(`flexprefill coverage: ${2 * H * n} scores exceed the kernels' 32-bit rows`);
    const k = this.prepare();
    // Earlier work on the stream may still read the previous curves (growing frees them).
    this.rt.synchronize();
    const keysA = this.buf.keysA.ensure(2 * H * n * 4), keysB = this.buf.keysB.ensure(2 * H * n * 4);
    const prefix = this.buf.prefix.ensure(2 * H * n * 8);
    this.buf.counts.ensure(2 * H * 4);
    const [hi, lo] = doubleHalves(scale);
    k.curves.launch(
      { grid: [2 * H, 1, 1], block: [CURVE_THREADS, 1, 1], sharedBytes: 0, stream: this.rt.stream },
      [scores.vertical, scores.slash, keysA.ptr, keysB.ptr, prefix.ptr, n, H, hi, lo],
    );
    this.n = n;
  }

  /** Device [2H, n] float64 curves of the last build (rows: column heads, then diagonal heads). */
  get curvesPtr(): DevicePtr {
    if (this.n === 0) throw new Error('flexprefill coverage: curves requested before build');
    return this.buf.prefix.current.ptr;
  }

  /** Device [2H] int32 counts of the last sizes() call: the H column counts, then the H diagonal counts. */
  get countsPtr(): DevicePtr {
    return this.buf.counts.current.ptr;
  }

  /** Enqueues the per-head counts for one alpha into countsPtr (no synchronisation). */
  enqueueSizes(alpha: number, minBudget: number): void {
    const H = this.numHeads, n = this.n;
    if (n === 0) throw new Error('flexprefill coverage: sizes requested before build');
    if (!Number.isInteger(minBudget) || minBudget < 1) throw new Error(`flexprefill coverage: minBudget must be a positive integer (got ${minBudget})`);
    const [hi, lo] = doubleHalves(alpha);
    this.prepare().sizes.launch(
      { grid: [Math.ceil((2 * H) / SIZE_THREADS), 1, 1], block: [SIZE_THREADS, 1, 1], sharedBytes: 0, stream: this.rt.stream },
      [this.buf.prefix.current.ptr, this.buf.counts.current.ptr, n, H, hi, lo, minBudget, FORCED_COLUMNS, FORCED_DIAGONALS],
    );
  }

  /** Per-head counts for one alpha (the CPU's sizesFor), downloaded. Synchronises. */
  sizes(alpha: number, minBudget: number): VerticalSlashCounts {
    const H = this.numHeads;
    this.enqueueSizes(alpha, minBudget);
    this.rt.synchronize();
    const both = new Int32Array(2 * H);
    this.rt.cuda.download(both, this.buf.counts.current.ptr);
    return { vertical: both.slice(0, H), slash: both.slice(H) };
  }

  /** The last build's curves, [2H] rows of n (tests). Synchronises. */
  downloadCurves(): Float64Array[] {
    const H = this.numHeads, n = this.n;
    this.rt.synchronize();
    const all = new Float64Array(2 * H * n);
    this.rt.cuda.download(all, this.buf.prefix.current.ptr);
    return Array.from({ length: 2 * H }, (_, r) => all.slice(r * n, (r + 1) * n));
  }

  release(): void {
    for (const b of Object.values(this.buf)) b.release();
    this.n = 0;
  }
}
