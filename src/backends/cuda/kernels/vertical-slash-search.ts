/**
 * Launcher for vertical-slash-search.cu: the Vertical-Slash family's count searches for a target
 * sparsity on the device: each score row ranked once (vs_rank_rows), then the whole search in one
 * cooperative launch (vs_count_search) and one small download per layer.
 *   counts(): Vertical-Slash's rule (vertical-slash-counts.ts chooseVerticalSlashCounts), the same
 *             probes in the same order, every probe's exact layer pairs counted on the device;
 *   alpha():  FlexPrefill's alpha bisection (flexprefill.ts thresholdNearestTarget) over the coverage
 *             curves of kernels/flexprefill-coverage.cu.
 * The host versions stay (VerticalSlashIndexBuilder.countPairs probes them one round trip at a time):
 * the tests hold the two to the same answers.
 */
import { causalPairs } from '../../../methods/options.js';
import { FORCED_COLUMNS, FORCED_DIAGONALS } from '../../../methods/vertical-slash-prefill.js';
import type { DevicePtr } from '../context.js';
import type { CudaKernel } from '../module.js';
import type { CudaRuntime } from '../runtime.js';
import { GrowableDeviceBuffer } from '../vertical-slash-layout.js';
import { doubleHalves } from './flexprefill-coverage.js';
import type { VerticalSlashScores } from './vertical-slash-estimate.js';
import { PATTERN_BLOCK } from './vertical-slash-index.js';

const THREADS = 512;
const RANK_THREADS = 1024;
// State buffer: totals u64[3] at 0, changed u32[3] at 24, barrier u32 at 36, result f64[5] at 40,
// then counts and selected i32[2H] each.
const CHANGED_AT = 24;
const BARRIER_AT = 36;
const RESULT_AT = 40;
const RESULT_WORDS = 5;
const COUNTS_AT = RESULT_AT + 8 * RESULT_WORDS;

/** Whether the forced floor alone already meets ('meets') or exceeds ('exceeds') the budget. */
export type FloorStatus = 'below' | 'meets' | 'exceeds';

export interface SearchOutcome {
  floor: FloorStatus;
  /** Exact layer pairs of the floor probe (forced counts, or alpha 0). */
  floorPairs: number;
  /** Probes the search ran (a probe with the previous probe's counts reuses its pair total). */
  probes: number;
}

export interface CountSearchOutcome extends SearchOutcome {
  verticalSize: number;
  slashSize: number;
}

export interface AlphaSearchOutcome extends SearchOutcome {
  alpha: number;
}

export class VerticalSlashCountSearch {
  private kernels: { rank: CudaKernel; search: CudaKernel } | null = null;
  private readonly buf: Record<'keysA' | 'keysB' | 'valsA' | 'valsB' | 'selV' | 'selS' | 'state', GrowableDeviceBuffer>;

  constructor(private readonly rt: CudaRuntime, readonly numHeads: number) {
    if (!(numHeads > 0)) throw new Error(`vertical-slash count search: numHeads must be positive (got ${numHeads})`);
    const names = ['keysA', 'keysB', 'valsA', 'valsB', 'selV', 'selS', 'state'] as const;
    this.buf = Object.fromEntries(names.map((k) => [k, new GrowableDeviceBuffer(rt, `vertical-slash search ${k}`)])) as VerticalSlashCountSearch['buf'];
  }

  private prepare() {
    if (!this.kernels) {
      const mod = this.rt.module('vertical-slash-search.cu', {});
      this.kernels = {
        rank: mod.kernel('vs_rank_rows', ['ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32', 'i32']),
        search: mod.kernel('vs_count_search', [
          'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr',
          'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32',
        ]),
      };
    }
    return this.kernels;
  }

  /** Vertical-Slash: the column and diagonal counts (every head the same) for target sparsity s. Synchronises. */
  counts(scores: VerticalSlashScores, sparsity: number): CountSearchOutcome {
    const r = this.run(scores, sparsity, 0, 0n, 1);
    return { ...r.outcome, verticalSize: r.result[0], slashSize: r.result[1] };
  }

  /**
   * FlexPrefill: the alpha whose per-head sizes (from `curves`, [2H, n] float64: FlexPrefillCoverage)
   * land closest to target sparsity s; alpha 0 when the floor meets it. Synchronises.
   */
  alpha(scores: VerticalSlashScores, curves: DevicePtr, sparsity: number, minBudget: number): AlphaSearchOutcome {
    if (!Number.isInteger(minBudget) || minBudget < 1) throw new Error(`vertical-slash count search: minBudget must be a positive integer (got ${minBudget})`);
    const r = this.run(scores, sparsity, 1, curves, minBudget);
    return { ...r.outcome, alpha: r.result[0] };
  }

  private run(scores: VerticalSlashScores, sparsity: number, mode: 0 | 1, curves: DevicePtr, minBudget: number) {
    const H = this.numHeads, n = scores.n;
    if (!Number.isInteger(n) || n < 1) throw new Error(`vertical-slash count search: n must be a positive integer (got ${n})`);
    if (!(sparsity >= 0 && sparsity < 1)) throw new Error(`vertical-slash count search: sparsity must be in [0, 1) (got ${sparsity})`);
    if (H * n > 2 ** 31) throw new Error(`vertical-slash count search: ${H * n} scores exceed the kernel's 32-bit rows`);
    const { rank, search } = this.prepare();
    const numBlocks = Math.ceil(n / PATTERN_BLOCK);
    const resident = search.maxActiveBlocksPerSM(THREADS) * this.rt.cuda.info.multiprocessors;
    if (resident < 1) throw new Error('vertical-slash count search: the kernel does not fit a multiprocessor');
    // Enough blocks for one selection per row and the walk, never more than can be resident at once.
    const grid = Math.min(resident, Math.max(2 * H, H * Math.ceil(numBlocks / THREADS)));
    // Earlier work on the stream may still read these buffers (growing frees them).
    this.rt.synchronize();
    const rows = 2 * H * n * 4;
    const keysA = this.buf.keysA.ensure(rows), keysB = this.buf.keysB.ensure(rows);
    const valsA = this.buf.valsA.ensure(rows), valsB = this.buf.valsB.ensure(rows);
    const ranks = keysB.ptr; // written after the sort's last read of it
    const selV = this.buf.selV.ensure(H * n * 4), selS = this.buf.selS.ensure(H * n * 4);
    const state = this.buf.state.ensure(COUNTS_AT + 16 * H);
    const stream = this.rt.stream;
    rank.launch({ grid: [2 * H, 1, 1], block: [RANK_THREADS, 1, 1], sharedBytes: 0, stream }, [
      scores.vertical, scores.slash, keysA.ptr, keysB.ptr, valsA.ptr, valsB.ptr, ranks, n, H, FORCED_COLUMNS, FORCED_DIAGONALS,
    ]);
    this.rt.cuda.fill32Async(state.ptr, 0, COUNTS_AT / 4, stream);
    const countsPtr = state.ptr + BigInt(COUNTS_AT), selectedPtr = countsPtr + BigInt(8 * H);
    this.rt.cuda.fill32Async(countsPtr, 0xffffffff, 4 * H, stream); // counts and selected: -1
    const [targetHi, targetLo] = doubleHalves((1 - sparsity) * H * causalPairs(n));
    search.launch({ grid: [grid, 1, 1], block: [THREADS, 1, 1], sharedBytes: 0, stream, cooperative: true }, [
      ranks, curves, selV.ptr, selS.ptr, countsPtr, selectedPtr, state.ptr, state.ptr + BigInt(CHANGED_AT),
      state.ptr + BigInt(BARRIER_AT), state.ptr + BigInt(RESULT_AT), n, H, numBlocks, mode, targetHi, targetLo, minBudget, FORCED_COLUMNS, FORCED_DIAGONALS,
    ]);
    this.rt.synchronize();
    const result = new Float64Array(RESULT_WORDS);
    this.rt.cuda.download(result, state.ptr + BigInt(RESULT_AT));
    const floor: FloorStatus = result[2] === 2 ? 'exceeds' : result[2] === 1 ? 'meets' : 'below';
    return { result, outcome: { floor, floorPairs: result[4], probes: result[3] } };
  }

  release(): void {
    for (const b of Object.values(this.buf)) b.release();
  }
}
