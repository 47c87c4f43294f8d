/**
 * Launcher for block-sparse-prefill-wgmma.cu: the Hopper (sm_90a, wgmma) block-sparse causal prefill,
 * same arguments and results as BlockSparseFlashPrefill's mma.sync kernel (block-sparse-prefill.ts)
 * over the same device chunk lists, head dims 64 and 128. Each run launches block_sparse_wgmma_steps
 * (the CTAs' step lists into a workspace this object keeps, block-sparse-wgmma-layout.ts) and then
 * block_sparse_prefill_wgmma. BlockSparseFlashPrefill runs it on Hopper (AUTO_BLOCK_SPARSE_WGMMA_TILING
 * unless given a `wgmma` tiling). CTAs of two consumer warpgroups (128 query rows) or three (192 rows,
 * `consumers: 3`, 64-key steps only; docs/perf.md, "More query rows per CTA"), their blocks in one of two
 * orders (`ctaOrder`; docs/perf.md, "Session 5"). Ablation flags (`ablation`, sessions 7-8) each change one
 * thing inside the attention step; a tiling without them is the kernel as it was. Since session 8 the
 * automatic tilings of block-sparse-prefill.ts carry two flag sets that won their cells (128-row CTAs
 * maskFirst + entBallot, 192-row CTAs maskSelect + entBallot); a tiling named here carries only its own.
 */
import { type WgmmaConsumers, type WgmmaCtaOrder, type WgmmaStepGeometry, wgmmaCtaRows, wgmmaStepGeometry } from '../block-sparse-wgmma-layout.js';
import type { DeviceBuffer } from '../memory-pool.js';
import type { CudaKernel } from '../module.js';
import type { CudaRuntime } from '../runtime.js';
import { checkBlockSparsePrefillArgs, growWorkspace } from './block-sparse-launch.js';
import type { BlockSparsePrefillArgs } from './block-sparse-prefill.js';
import { wgmmaPrefillUnsupported } from './flash-prefill-wgmma.js';
import type { PrefillShape } from './flash-prefill.js';

export type { WgmmaCtaOrder };

const LOG2E = 1.4426950408889634;
const STEPS_THREADS = 256;
/** Largest key tile an entry holds at three consumers (keyTile | 12-bit mask << 20). */
const MAX_KEY_TILES_C3 = 1 << 20;
/** ownTurns packs two step counts into one int (stepsBoth | paired << 16). */
const MAX_STEPS_OWN_TURNS = 1 << 16;

/**
 * Changes of one thing each inside the attention step (the kernel's DEFER_PV, LEAN_MASK, OWN_TURNS, IDLE_WARPS, ALL_COMPUTE,
 * KV_SKEW, EARLY_K, CONTIG_FILL, ENT_GLOBAL, ENT_AHEAD, MASK_SELECT, MASK_FIRST, ENT_BALLOT, STEPS_FLAT, FLAT_CAUSAL, PERSISTENT, WORK_COUNTER; its
 * header says what each does). All off: the kernel as it was. Results are the same under every flag.
 */
export interface WgmmaAblation {
  /** A skipped step keeps the pending P·V while its step is fewer than `stages` steps back. */
  deferPv?: boolean;
  /** No per-sub-tile masking where the warp's slot selected every sub-tile, all left of its diagonal. */
  leanMask?: boolean;
  /** Turns also in the paired own steps (two consumers only). */
  ownTurns?: boolean;
  /** A warp whose slot selected nothing in a computed step skips its masks and softmax. */
  idleWarps?: boolean;
  /** Diagnostic: every warpgroup computes every step (more compute, the same gathers); not with deferPv / ownTurns. */
  allCompute?: boolean;
  /** The producer fills K of step i + 1 before V of step i (the order the consumers use them in). */
  kvSkew?: boolean;
  /** A skipped step releases its K stage before flushing the pending P·V. */
  earlyK?: boolean;
  /** A step of consecutive selected key tiles is filled with dense flash's copy (no per-row entry work). */
  contigFill?: boolean;
  /** The consumers read the step entries from global memory one step ahead (no shared entry stage). */
  entGlobal?: boolean;
  /** The producer prefetches the next step's entries into L1 before it fills this one (not with kvSkew). */
  entAhead?: boolean;
  /**
   * Per step one warp-uniform test whether any key reaches the warp's diagonal or the cache end; where none
   * does, the unselected sub-tiles are set to -inf by selects instead of the per-sub-tile branches.
   */
  maskSelect?: boolean;
  /**
   * The selection by selects on every computed step outside any branch, the causal compares only in steps
   * that reach the warp's diagonal or the cache end (not with maskSelect or leanMask).
   */
  maskFirst?: boolean;
  /**
   * (With maskSelect or maskFirst, not with entGlobal.) Each consumer lane reads one step entry and two warp votes and a
   * max reduction decode them, instead of every lane folding all of them bit by bit before the wgmma issue.
   */
  entBallot?: boolean;
  /**
   * (The steps kernel only: the step lists are the same.) One flat index over every slot's list entries, four
   * loads in flight a thread, instead of the slots one after another (a count load, then that slot's entries).
   */
  stepsFlat?: boolean;
  /**
   * (With maskSelect.) maskSelect's causal steps without a branch per sub-tile: the selection by selects, then
   * the causal compares on every sub-tile (as maskFirst's causal block).
   */
  flatCausal?: boolean;
  /**
   * (KV-head-major order only; not with kvSkew, ownTurns, allCompute, entGlobal, deferPv.) At most one CTA per SM,
   * each running the launch's work items one after another with two Q tiles, so an item's Q load and first
   * gathers overlap the previous item's last steps and output store.
   */
  persistent?: boolean;
  /**
   * (With persistent.) The persistent CTAs draw their items from an atomic ticket in the launch's block order
   * instead of the static round-robin (item j on CTA j mod CTAs), so CTAs whose items were long draw fewer.
   */
  workCounter?: boolean;
}
const ABLATION_FLAGS = [
  { key: 'deferPv', define: 'DEFER_PV', suffix: 'dpv' },
  { key: 'leanMask', define: 'LEAN_MASK', suffix: 'lm' },
  { key: 'ownTurns', define: 'OWN_TURNS', suffix: 'ot' },
  { key: 'idleWarps', define: 'IDLE_WARPS', suffix: 'iw' },
  { key: 'allCompute', define: 'ALL_COMPUTE', suffix: 'ac' },
  { key: 'kvSkew', define: 'KV_SKEW', suffix: 'sk' },
  { key: 'earlyK', define: 'EARLY_K', suffix: 'ek' },
  { key: 'contigFill', define: 'CONTIG_FILL', suffix: 'cf' },
  { key: 'entGlobal', define: 'ENT_GLOBAL', suffix: 'eg' },
  { key: 'entAhead', define: 'ENT_AHEAD', suffix: 'ea' },
  { key: 'maskSelect', define: 'MASK_SELECT', suffix: 'ms' },
  { key: 'maskFirst', define: 'MASK_FIRST', suffix: 'mf' },
  { key: 'entBallot', define: 'ENT_BALLOT', suffix: 'eb' },
  { key: 'stepsFlat', define: 'STEPS_FLAT', suffix: 'sf' },
  { key: 'flatCausal', define: 'FLAT_CAUSAL', suffix: 'fc' },
  { key: 'persistent', define: 'PERSISTENT', suffix: 'ps' },
  { key: 'workCounter', define: 'WORK_COUNTER', suffix: 'wc' },
] as const;


export interface BlockSparseWgmmaTiling {
  /** Keys per step (4 or 8 sub-tiles of 16): the N of S = Q·Kᵀ and the K extent of P·V. */
  blockN: 64 | 128;
  /** K and V stages in shared memory (2-4; 128-key steps with D = 128 fit 3 at most). */
  stages: 2 | 3 | 4;
  /**
   * Consumer warpgroups of 64 query rows per CTA: 2 (128-row CTAs) or 3 (192 rows: each gathered K/V
   * tile serves 12 query chunks instead of 8; 152 registers a consumer thread, so 64-key steps only).
   */
  consumers: WgmmaConsumers;
  /** Block order of the attention grid (see WgmmaCtaOrder); left out: 'heads', the default. */
  ctaOrder?: WgmmaCtaOrder;
  /** Opt-in ablation flags (left out or all false: the kernel as it was). */
  ablation?: WgmmaAblation;
}

/** A checked tiling: every field but `ablation` filled in; `ablation` present only with a flag set. */
export type ResolvedWgmmaTiling = Required<Omit<BlockSparseWgmmaTiling, 'ablation'>> & { ablation?: WgmmaAblation };

/** 64-key steps (a warpgroup skips at that grain) three stages deep (gathered tiles: more in flight). */
export const DEFAULT_BLOCK_SPARSE_WGMMA_TILING: ResolvedWgmmaTiling = { blockN: 64, stages: 3, consumers: 2, ctaOrder: 'heads' };

/**
 * e.g. 'wgmma-n64-s3' (two consumers), 'wgmma-c3-n64-s2' (three), 'wgmma-c3-n64-s3-kv' (KV-head-major
 * order), 'wgmma-n128-s2-kv-dpv-lm' (ablation flags: -dpv deferPv, -lm leanMask, -ot ownTurns, -iw idleWarps,
 * -ac allCompute, -sk kvSkew, -ek earlyK, -cf contigFill, -eg entGlobal, -ea entAhead, -ms maskSelect, -mf maskFirst, -eb entBallot, -sf stepsFlat, -fc flatCausal, -ps persistent, -wc workCounter).
 */
export function blockSparseWgmmaLabel(t: BlockSparseWgmmaTiling): string {
  const flags = ABLATION_FLAGS.filter((f) => t.ablation?.[f.key] === true).map((f) => `-${f.suffix}`).join('');
  return `wgmma-${t.consumers === 2 ? '' : `c${t.consumers}-`}n${t.blockN}-s${t.stages}${t.ctaOrder === 'kv' ? '-kv' : ''}${flags}`;
}

/** Labels as blockSparseWgmmaLabel writes them: the flags' suffixes in ABLATION_FLAGS order, each at most once. */
const LABEL_PATTERN = new RegExp(`^wgmma-(?:c(\\d+)-)?n(\\d+)-s(\\d+)(-kv)?${ABLATION_FLAGS.map((f) => `(-${f.suffix})?`).join('')}$`);
/** LABEL_PATTERN's group of ABLATION_FLAGS[0] (1-4: consumers, keys per step, stages, order). */
const FIRST_FLAG_GROUP = 5;

/** The tiling a label names (the inverse of blockSparseWgmmaLabel), or null when it names none. */
export function parseBlockSparseWgmmaLabel(label: string): ResolvedWgmmaTiling | null {
  const m = LABEL_PATTERN.exec(label);
  if (!m) return null;
  const ablation = Object.fromEntries(ABLATION_FLAGS.map((f, i) => [f.key, m[FIRST_FLAG_GROUP + i] !== undefined])) as WgmmaAblation;
  return resolveBlockSparseWgmmaTiling({
    blockN: Number(m[2]) as 64, stages: Number(m[3]) as 2, consumers: (m[1] === undefined ? 2 : Number(m[1])) as WgmmaConsumers,
    ctaOrder: m[4] === undefined ? 'heads' : 'kv',
    ablation,
  });
}

/** The set flags only, or undefined when none is set (so a tiling without flags equals the plain one). */
function normaliseAblation(a: WgmmaAblation | undefined): WgmmaAblation | undefined {
  if (a === undefined) return undefined;
  const out: WgmmaAblation = {};
  for (const key of Object.keys(a) as (keyof WgmmaAblation)[]) {
    const value: unknown = a[key];
    if (!ABLATION_FLAGS.some((f) => f.key === key)) throw new Error(`block-sparse wgmma: unknown ablation flag ${String(key)}`);
    if (typeof value !== 'boolean' && value !== undefined) throw new Error(`block-sparse wgmma: ablation flag ${key} must be a boolean (got ${String(value)})`);
    if (value === true) out[key] = true;
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

/** The kernel's -D defines of a tiling's ablation flags (none for the plain kernel: its cache key stays). */
export function wgmmaAblationDefines(t: BlockSparseWgmmaTiling): Record<string, number> {
  return Object.fromEntries(ABLATION_FLAGS.filter((f) => t.ablation?.[f.key] === true).map((f) => [f.define, 1]));
}

/** Defaults filled in, then checked; an error names the bad field. */
export function resolveBlockSparseWgmmaTiling(t: Partial<BlockSparseWgmmaTiling>): ResolvedWgmmaTiling {
  const { ablation: _given, ...plain } = t;
  const ablation = normaliseAblation(t.ablation);
  const r: ResolvedWgmmaTiling = {
    ...DEFAULT_BLOCK_SPARSE_WGMMA_TILING, ...plain, ctaOrder: t.ctaOrder ?? DEFAULT_BLOCK_SPARSE_WGMMA_TILING.ctaOrder, ...(ablation ? { ablation } : {}),
  };
  if (r.blockN !== 64 && r.blockN !== 128) throw new Error(`block-sparse wgmma: blockN must be 64 or 128 (got ${r.blockN})`);
  if (![2, 3, 4].includes(r.stages)) throw new Error(`block-sparse wgmma: stages must be 2, 3 or 4 (got ${r.stages})`);
  if (r.consumers !== 2 && r.consumers !== 3) throw new Error(`block-sparse wgmma: consumers must be 2 or 3 (got ${r.consumers})`);
  if (r.ctaOrder !== 'heads' && r.ctaOrder !== 'kv') throw new Error(`block-sparse wgmma: ctaOrder must be 'heads' or 'kv' (got ${String(r.ctaOrder)})`);
  if (r.consumers === 3 && r.blockN !== 64) {
    throw new Error('block-sparse wgmma: 3 consumers take blockN 64 only (128-key steps serialise the wgmma chain at 152 registers)');
  }
  if (r.ablation?.ownTurns && r.consumers !== 2) throw new Error('block-sparse wgmma: ownTurns pairs the own steps of 2 consumers only');
  if (r.ablation?.entAhead && r.ablation.kvSkew) throw new Error('block-sparse wgmma: entAhead is written for the plain fill order, not with kvSkew');
  if (r.ablation?.entBallot && ((!r.ablation.maskSelect && !r.ablation.maskFirst) || r.ablation.entGlobal)) {
    throw new Error('block-sparse wgmma: entBallot needs maskSelect or maskFirst (a step-level causal test) and reads the shared entry stage, so not with entGlobal');
  }
  if (r.ablation?.maskFirst && (r.ablation.maskSelect || r.ablation.leanMask)) {
    throw new Error('block-sparse wgmma: maskFirst replaces the mask code that maskSelect and leanMask change: not with either');
  }
  if (r.ablation?.flatCausal && !r.ablation.maskSelect) throw new Error('block-sparse wgmma: flatCausal changes maskSelect\'s causal steps: it needs maskSelect');
  if (r.ablation?.persistent && (r.ctaOrder !== 'kv' || r.ablation.kvSkew || r.ablation.ownTurns || r.ablation.allCompute || r.ablation.entGlobal || r.ablation.deferPv)) {
    throw new Error('block-sparse wgmma: persistent is written for the KV-head-major order (ctaOrder kv) and not with kvSkew, ownTurns, allCompute, entGlobal or deferPv');
  }
  if (r.ablation?.workCounter && !r.ablation.persistent) throw new Error('block-sparse wgmma: workCounter hands out a persistent CTA\'s items: it needs persistent');
  if (r.ablation?.allCompute && (r.ablation.deferPv || r.ablation.ownTurns)) throw new Error('block-sparse wgmma: allCompute skips no step, so it takes neither deferPv nor ownTurns');
  return r;
}

/**
 * Dynamic shared memory of one CTA: the Q tile (64 · consumers rows), the K and V stages, the mbarriers
 * (1 + 4 per stage), the stages' entries, 1 KB of alignment slack (swizzle atoms are 1024-byte aligned).
 * A persistent CTA holds two Q tiles and three more barriers (the second tile's full, both tiles' empty); with
 * workCounter two more (each tile's item drawn) and the two drawn items (8 bytes).
 */
export function blockSparseWgmmaSharedBytes(headDim: number, t: BlockSparseWgmmaTiling): number {
  const rowBytes = headDim * 2;
  const persistent = t.ablation?.persistent === true;
  const qTiles = persistent ? 2 : 1;
  const itemWords = persistent && t.ablation?.workCounter === true ? 3 : 0;
  return (qTiles * wgmmaCtaRows(t.consumers) + 2 * t.stages * t.blockN) * rowBytes + 8 * (1 + 4 * t.stages + (persistent ? 3 : 0) + itemWords) +
    4 * t.stages * (t.blockN / 16) + 1024;
}

/**
 * The attention launch's grid: [CTA rows, heads], or for a persistent tiling one CTA per SM up to the work items
 * (each CTA runs items blockIdx.x, blockIdx.x + gridDim.x, ... of that grid's block order).
 */
export function blockSparseWgmmaAttendGrid(t: BlockSparseWgmmaTiling, numCtaRows: number, numHeads: number, multiprocessors: number): [number, number, number] {
  return t.ablation?.persistent ? [Math.min(numCtaRows * numHeads, multiprocessors), 1, 1] : [numCtaRows, numHeads, 1];
}

export class BlockSparseWgmmaPrefill {
  readonly tiling: ResolvedWgmmaTiling;
  private kernels: { union: CudaKernel; attend: CudaKernel } | null = null;
  private steps: DeviceBuffer | null = null;
  private stepCounts: DeviceBuffer | null = null;
  /** workCounter tilings: the kernel's [ticket, CTAs done] pair, zeroed once; each launch's last CTA resets it. */
  private workCounters: DeviceBuffer | null = null;
  /** Geometry of the last run (for tests that read the step lists back). */
  lastGeometry: WgmmaStepGeometry | null = null;

  /**
   * `maxPersistentCtas` (persistent tilings; tests): launch at most this many CTAs, so a small prompt's CTAs
   * each run many items (the Q tiles' reuse and the stage ring across items); left out: one an SM.
   */
  constructor(
    private readonly rt: CudaRuntime, readonly shape: PrefillShape, tiling: Partial<BlockSparseWgmmaTiling> = {},
    private readonly limits: { maxPersistentCtas?: number } = {},
  ) {
    const cap = limits.maxPersistentCtas;
    if (cap !== undefined && !(Number.isInteger(cap) && cap >= 1)) throw new Error(`block-sparse wgmma: maxPersistentCtas must be a positive integer (got ${cap})`);
    const reason = wgmmaPrefillUnsupported(rt.cuda.info, shape.headDim);
    if (reason) throw new Error(`block-sparse ${reason}`);
    if (!(shape.numKvHeads > 0) || shape.numHeads % shape.numKvHeads !== 0) {
      throw new Error(`block-sparse wgmma: ${shape.numHeads} query heads are not a multiple of ${shape.numKvHeads} KV heads`);
    }
    this.tiling = resolveBlockSparseWgmmaTiling(tiling);
  }

  /** Compiles (or loads from the cache) both kernels; run() calls it on first use. */
  prepare(): { union: CudaKernel; attend: CudaKernel } {
    const t = this.tiling;
    const shared = blockSparseWgmmaSharedBytes(this.shape.headDim, t);
    if (shared > this.rt.cuda.info.maxSharedPerBlockOptin) {
      throw new Error(`block-sparse ${blockSparseWgmmaLabel(t)}: needs ${shared} B of shared memory, the device allows ${this.rt.cuda.info.maxSharedPerBlockOptin}`);
    }
    if (!this.kernels) {
      // CTA_ORDER only when not the default, so the default's compile-cache key stays what it was.
      const defines = {
        HEAD_DIM: this.shape.headDim, BLOCK_N: t.blockN, KV_STAGES: t.stages, CONSUMERS: t.consumers, ...(t.ctaOrder === 'kv' ? { CTA_ORDER: 1 } : {}),
        ...wgmmaAblationDefines(t),
      };
      const mod = this.rt.module('block-sparse-prefill-wgmma.cu', defines, { arch: 'sm_90a' });
      this.kernels = {
        union: mod.kernel('block_sparse_wgmma_steps', ['ptr', 'ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32']),
        attend: mod.kernel('block_sparse_prefill_wgmma', [
          'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'f32', ...(t.ablation?.workCounter ? ['ptr' as const] : []),
        ]),
      };
    }
    return this.kernels;
  }

  run(a: BlockSparsePrefillArgs): void {
    this.buildSteps(a);
    this.attend(a);
  }

  /**
   * The first of run's two launches alone: block_sparse_wgmma_steps writes the CTAs' step lists into the
   * workspace (the bench times it apart from the attention; attend() then reads them).
   */
  buildSteps(a: BlockSparsePrefillArgs): void {
    const { numHeads: H } = this.shape;
    checkBlockSparsePrefillArgs('block-sparse wgmma', this.shape, a);
    const T = a.numQueries;
    const l = a.lists;
    const { blockN, consumers } = this.tiling;
    const geo = wgmmaStepGeometry(T, H, l.stride, l.chunkSize, blockN, consumers);
    if (consumers === 3 && geo.numQueryTiles > MAX_KEY_TILES_C3) {
      throw new Error(`block-sparse wgmma: 3 consumers hold key tiles below 2^20 (${16 * MAX_KEY_TILES_C3} tokens); the prompt has ${T}`);
    }
    if (this.tiling.ablation?.ownTurns && geo.stepStride / geo.subTiles >= MAX_STEPS_OWN_TURNS) {
      throw new Error(`block-sparse wgmma: ownTurns packs step counts below 2^16; this prompt's CTAs may take ${geo.stepStride / geo.subTiles}`);
    }
    this.lastGeometry = geo;
    const ctas = H * geo.numCtaRows;
    this.steps = growWorkspace(this.rt, this.steps, ctas * geo.stepStride * 4);
    this.stepCounts = growWorkspace(this.rt, this.stepCounts, ctas * 2 * 4);
    const k = this.prepare();
    const grid: [number, number, number] = [geo.numCtaRows, H, 1];
    const tilesPerWord = consumers === 2 ? 4 : 2; // 8-bit slot masks, or 16-bit ones for 12 slots
    const words = Math.floor((geo.numQueryTiles - 1) / tilesPerWord) + 1;
    k.union.launch(
      { grid, block: [STEPS_THREADS, 1, 1], sharedBytes: words * 4, stream: this.rt.stream },
      [l.lists.ptr, l.counts.ptr, this.steps.ptr, this.stepCounts.ptr, l.stride, l.numChunks, l.chunkSize / 16,
        geo.numQueryTiles, a.kvLen, geo.stepStride],
    );
  }

  /** The second launch alone: the attention over the step lists the last buildSteps (with the same args) wrote. */
  attend(a: BlockSparsePrefillArgs): void {
    const { numHeads: H, numKvHeads: Hkv, headDim: D } = this.shape;
    const qRowStride = checkBlockSparsePrefillArgs('block-sparse wgmma', this.shape, a);
    const geo = this.lastGeometry;
    if (!geo || !this.steps || !this.stepCounts) throw new Error('block-sparse wgmma: attend() before buildSteps()');
    const now = wgmmaStepGeometry(a.numQueries, H, a.lists.stride, a.lists.chunkSize, this.tiling.blockN, this.tiling.consumers);
    if (now.numCtaRows !== geo.numCtaRows || now.stepStride !== geo.stepStride || now.numHeads !== geo.numHeads) {
      throw new Error('block-sparse wgmma: attend() with another prompt or list shape than the last buildSteps()');
    }
    const k = this.prepare();
    const grid = blockSparseWgmmaAttendGrid(this.tiling, geo.numCtaRows, H, Math.min(this.rt.cuda.info.multiprocessors, this.limits.maxPersistentCtas ?? Infinity));
    const T = a.numQueries;
    const { consumers } = this.tiling;
    k.attend.launch(
      { grid, block: [128 * (consumers + 1), 1, 1], sharedBytes: blockSparseWgmmaSharedBytes(D, this.tiling), stream: this.rt.stream },
      [a.q, a.k, a.v, a.out, this.steps.ptr, this.stepCounts.ptr, T, H, Hkv, qRowStride, a.kvStride, a.kvLen, geo.stepStride, a.scale * LOG2E,
        ...(this.tiling.ablation?.workCounter ? [this.zeroedWorkCounters().ptr] : [])],
    );
  }

  /** The work counters, allocated and zeroed (in stream order) on first use; the kernel leaves them zeroed. */
  private zeroedWorkCounters(): DeviceBuffer {
    if (!this.workCounters) {
      this.workCounters = this.rt.pool.acquire(8);
      this.rt.cuda.fill32Async(this.workCounters.ptr, 0, 2, this.rt.stream);
    }
    return this.workCounters;
  }

  /**
   * The last run's step lists (waits for the stream): entries [H · numCtaRows, stepStride], steps per
   * CTA, how many of those lead with tiles all warpgroups use, and (ownTurns only) how many own steps
   * of each warpgroup follow in pairs.
   */
  downloadSteps(): { entries: Int32Array; stepCounts: Int32Array; stepsBoth: Int32Array; pairedOwnSteps: Int32Array | null; geometry: WgmmaStepGeometry } {
    const geo = this.lastGeometry;
    if (!geo || !this.steps || !this.stepCounts) throw new Error('block-sparse wgmma: no run yet');
    this.rt.synchronize();
    const ctas = geo.numHeads * geo.numCtaRows;
    const entries = new Int32Array(ctas * geo.stepStride), counts = new Int32Array(2 * ctas);
    this.rt.cuda.download(entries, this.steps.ptr);
    this.rt.cuda.download(counts, this.stepCounts.ptr);
    const packed = this.tiling.ablation?.ownTurns === true; // stepsBoth | paired << 16
    return {
      entries, geometry: geo,
      stepCounts: Int32Array.from({ length: ctas }, (_, c) => counts[2 * c]),
      stepsBoth: Int32Array.from({ length: ctas }, (_, c) => (packed ? counts[2 * c + 1] & 0xffff : counts[2 * c + 1])),
      pairedOwnSteps: packed ? Int32Array.from({ length: ctas }, (_, c) => counts[2 * c + 1] >>> 16) : null,
    };
  }

  /** Returns the workspace to the pool (after the stream's work is done). */
  release(): void {
    for (const b of [this.steps, this.stepCounts, this.workCounters]) if (b) this.rt.pool.release(b);
    this.steps = this.stepCounts = this.workCounters = null;
  }

}
