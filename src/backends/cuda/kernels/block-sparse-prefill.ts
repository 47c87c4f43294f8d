/**
 * Launcher for block-sparse-prefill.cu: causal attention of the whole prompt (T queries at positions
 * 0 .. T-1) over per-(query head, query chunk) lists of key chunks (device chunk lists,
 * block-sparse-layout.ts), bf16 in, fp32 accumulate, bf16 out. Each run launches block_sparse_union
 * (the CTAs' union lists into a workspace this object keeps) and then block_sparse_prefill, or, with
 * the `wgmma` option, the Hopper kernel of block-sparse-prefill-wgmma.ts.
 */
import {
  CTA_WARPS, type ChunkLists, type CtaGeometry, DEVICE_TILE, ctaGeometry,
} from '../block-sparse-layout.js';
import type { DeviceInfo, DevicePtr } from '../context.js';
import type { DeviceBuffer } from '../memory-pool.js';
import type { CudaKernel } from '../module.js';
import type { CudaRuntime } from '../runtime.js';
import { checkBlockSparsePrefillArgs, growWorkspace } from './block-sparse-launch.js';
import {
  type BlockSparseWgmmaTiling, BlockSparseWgmmaPrefill, type WgmmaCtaOrder, blockSparseWgmmaLabel, resolveBlockSparseWgmmaTiling,
} from './block-sparse-prefill-wgmma.js';
import type { PrefillShape } from './flash-prefill.js';
import { wgmmaPrefillUnsupported } from './flash-prefill-wgmma.js';

export const SUPPORTED_BLOCK_SPARSE_HEAD_DIMS = [64, 128] as const;
const LOG2E = 1.4426950408889634;

/** Device chunk lists: lists [H, B, stride] int32 and counts [H, B] int32 (block-sparse-layout.ts). */
export interface DeviceChunkLists {
  numHeads: number;
  numTokens: number;
  chunkSize: number;
  numChunks: number;
  stride: number;
  lists: DeviceBuffer;
  counts: DeviceBuffer;
}

/** Device buffers sized for lists of this shape (contents undefined until written). */
export function allocateChunkLists(rt: CudaRuntime, numHeads: number, numTokens: number, chunkSize: number, stride: number): DeviceChunkLists {
  const numChunks = Math.ceil(numTokens / chunkSize);
  return {
    numHeads, numTokens, chunkSize, numChunks, stride,
    lists: rt.pool.acquire(Math.max(4, numHeads * numChunks * stride * 4)),
    counts: rt.pool.acquire(Math.max(4, numHeads * numChunks * 4)),
  };
}

export function uploadChunkLists(rt: CudaRuntime, host: ChunkLists): DeviceChunkLists {
  const d = allocateChunkLists(rt, host.numHeads, host.numTokens, host.chunkSize, host.stride);
  rt.cuda.upload(d.lists.ptr, host.lists);
  rt.cuda.upload(d.counts.ptr, host.counts);
  return d;
}

/** Waits for the stream and reads the lists back (tests compare them with the CPU selection). */
export function downloadChunkLists(rt: CudaRuntime, d: DeviceChunkLists): ChunkLists {
  rt.synchronize();
  const lists = new Int32Array(d.numHeads * d.numChunks * d.stride);
  const counts = new Int32Array(d.numHeads * d.numChunks);
  rt.cuda.download(lists, d.lists.ptr);
  rt.cuda.download(counts, d.counts.ptr);
  return { numHeads: d.numHeads, numTokens: d.numTokens, chunkSize: d.chunkSize, numChunks: d.numChunks, stride: d.stride, lists, counts };
}

export function releaseChunkLists(rt: CudaRuntime, d: DeviceChunkLists): void {
  rt.pool.release(d.lists);
  rt.pool.release(d.counts);
}

export interface BlockSparsePrefillArgs {
  /** [T, H, D] bf16 queries (rows qRowStride apart); query t sits at position t. */
  q: DevicePtr;
  /** Elements between consecutive tokens' queries (default H·D). */
  qRowStride?: number;
  /** [Hkv, kvStride, D] bf16 keys; row r holds position r. */
  k: DevicePtr;
  /** [Hkv, kvStride, D] bf16 values. */
  v: DevicePtr;
  /** [T, H, D] bf16 output. */
  out: DevicePtr;
  lists: DeviceChunkLists;
  numQueries: number; // T = lists.numTokens
  kvLen: number; // >= T
  kvStride: number;
  scale: number;
}

/** Bytes of dynamic shared memory per CTA: the slots' Q tiles and two stages of 64 K and V rows. */
export function blockSparseSharedBytes(headDim: number, mTiles: number): number {
  return (CTA_WARPS * mTiles * DEVICE_TILE + 4 * 4 * DEVICE_TILE) * (headDim + 8) * 2;
}

export interface BlockSparseKernelOptions {
  /** Query heads of one KV group per CTA (1, 2 or 4; must divide the group): they share K/V loads. */
  headsPerCta?: number;
  /** 16-row query tiles per warp (1 or 2): with 2 each K/V fragment a warp reads serves two tiles. */
  mTiles?: number;
  /**
   * Runs the Hopper wgmma kernel (block-sparse-prefill-wgmma.ts) with this tiling instead of the
   * mma.sync one (then headsPerCta and mTiles must be left out). With none of the three options, the
   * kernel is chosen by `blockSparseKernelChoice`.
   */
  wgmma?: Partial<BlockSparseWgmmaTiling>;
  /**
   * Block order of the automatic wgmma tilings: 'kv' (the default since session 5: KV-head-major, so the
   * K/V a block gathers is still in L2 for the next heads of its group; docs/perf.md, block-sparse
   * "Session 5": 5–21% faster on random lists at 64K–128K, within ±3% at 16K–32K) or 'heads' (the order
   * before, bench label `auto-heads`). A `wgmma` tiling names its own order instead.
   */
  autoCtaOrder?: WgmmaCtaOrder;
  /**
   * Lean masks (the wgmma kernel's LEAN_MASK, label suffix -lm) in both automatic tilings (true) or in
   * neither (false) on lists whose chunks span whole 64-row warpgroups (autoTakesLeanMask); left out:
   * per tiling as AUTO_LEAN_MASK_ON_WARPGROUP_CHUNKS says. Results are the same bit for bit either way;
   * only the time differs.
   */
  autoLeanMask?: boolean;
  /**
   * Persistent CTAs drawing their items from a work counter (the wgmma kernel's PERSISTENT + WORK_COUNTER, label
   * suffix -ps-wc) in an automatic tiling on sparse lists (autoTakesPersistent: chunkListsAreSparse, KV-head-major
   * order) when true, never when false; left out: per tiling as AUTO_PERSISTENT_ON_SPARSE_LISTS says. Bit for bit either way.
   */
  autoPersistent?: boolean;
  /**
   * The steps kernel's flat index (STEPS_FLAT, -sf) in an automatic tiling on lists of chunks smaller than a 64-row
   * warpgroup (autoTakesStepsFlat) when true, never when false; left out: as AUTO_STEPS_FLAT_ON_SMALL_CHUNKS says.
   */
  autoStepsFlat?: boolean;
}

/**
 * The wgmma tilings that run when no kernel option is given, on a Hopper GPU, for head dims 64/128,
 * picked per run by how dense the chunk lists are and how large the grid is (autoTakes192RowTiling;
 * docs/perf.md, Block-sparse prefill). Lists of more than AUTO_SPARSE_MAX_LIST_SHARE of the chunks (s below ≈ 0.65):
 * 128-key steps two stages deep, 128-row CTAs (session 3: fastest or tied in 14 of 16 benchmark rows,
 * 1.1–2.0× the mma.sync kernel in all 16). Sparser lists: 192-row CTAs (three consumer warpgroups),
 * 64-key steps three deep (session 4: 2.5–10% faster than that at s = 0.8–0.95 on both data sets at
 * 16K and 64K but one row within 2%; at s = 0.5 faster at 16K, slower at 64K; at 32K 4–8% faster in all
 * six s ≥ 0.8 rows, at 128K 2–14% faster at s = 0.8–0.9). Except very sparse lists over long contexts
 * (at most AUTO_VERY_SPARSE_MAX_LIST_SHARE of the chunks, over more than AUTO_VERY_SPARSE_MIN_TOKENS
 * tokens: the bench's s = 0.95 at 128K), which go back to 128-row CTAs: there the 192-row kernel was 16.5%
 * slower on random selections (82.4 against 70.7 ms, in one process, each tiling timed twice) and only
 * 2.3% faster on shared ones; at 64K s = 0.95 it still won (4.0% and 1.3%).
 */
export const AUTO_CTA_ORDER: WgmmaCtaOrder = 'kv';
/**
 * Each automatic tiling runs with the ablation flags that won its own cells by the rule written before the
 * numbers (session 8, bsmask; docs/perf.md block-sparse, "Session 8: the mask loop"), results bit for bit
 * the plain tilings': 128-row CTAs with maskFirst + entBallot (-mf-eb: selects outside any branch, entries by
 * warp votes; 16K -1.1 ... -6.3 %, 64K s = 0.5 -7.4 / -7.6 %); 192-row CTAs with maskSelect + entBallot
 * (-ms-eb; 16K -3.2 ... -9.9 % in 10 of 10 cells over two calls, 64K -2.4 ... -5.1 % in 4 of 4; -mf-eb
 * was ahead at 16K but +8.5 % in one 64K cell). H100, 32 heads, c = 16; at c = 64 the 192-row lean variant
 * (-lm-ms-eb) measured -0.7 ... -1.8 % against -lm.
 */
export const AUTO_BLOCK_SPARSE_WGMMA_TILING: BlockSparseWgmmaTiling = {
  blockN: 128, stages: 2, consumers: 2, ctaOrder: AUTO_CTA_ORDER, ablation: { maskFirst: true, entBallot: true },
};
export const AUTO_SPARSE_BLOCK_SPARSE_WGMMA_TILING: BlockSparseWgmmaTiling = {
  blockN: 64, stages: 3, consumers: 3, ctaOrder: AUTO_CTA_ORDER, ablation: { maskSelect: true, entBallot: true },
};
/**
 * An automatic tiling in the block order the launcher runs it in. `persistent` (one CTA per SM running items in
 * order) is written for the KV-head-major order only, so the heads order drops it, and `workCounter` with it (it hands
 * out a persistent CTA's items; today no automatic flag set has either).
 */
export function autoTilingInOrder(base: BlockSparseWgmmaTiling, order: WgmmaCtaOrder): BlockSparseWgmmaTiling {
  if (order === 'kv' || !base.ablation?.persistent) return { ...base, ctaOrder: order };
  const { persistent: _dropped, workCounter: _droppedToo, ...flags } = base.ablation;
  return { ...base, ctaOrder: order, ablation: flags };
}
export const AUTO_SPARSE_MAX_LIST_SHARE = 0.2;
/** Between the measured 64K (192 rows won) and 128K (lost): the long-context side of the exception. */
export const AUTO_VERY_SPARSE_MIN_TOKENS = 65536;
/** Between the bench's s = 0.9 (t = 420 of 8192 at 128K: 192 rows won by 9%) and s = 0.95 (207: lost). */
export const AUTO_VERY_SPARSE_MAX_LIST_SHARE = 1 / 32;

/**
 * Whether lists of `stride` chunks per row out of `numChunks`, over `numTokens` tokens, take the
 * sparse-lists (192-row) tiling (see above): at most a fifth of the chunks, and in the heads-major
 * order not at most 1/32 of them over more than 64K tokens. The KV-head-major order has no such
 * exception: there the 192-row kernel won at 128K s = 0.95 too (61.6 against 63.7 ms random, 25.6
 * against 26.4 shared; docs/perf.md, block-sparse "Session 5"), the 192-row kernel's L2 misses having
 * been what it lost to.
 */
export function chunkListsAreSparse(lists: Pick<DeviceChunkLists, 'stride' | 'numChunks' | 'numTokens'>, order: WgmmaCtaOrder = AUTO_CTA_ORDER): boolean {
  const verySparseLongContext = order === 'heads' && lists.numTokens > AUTO_VERY_SPARSE_MIN_TOKENS &&
    lists.stride <= AUTO_VERY_SPARSE_MAX_LIST_SHARE * lists.numChunks;
  return lists.stride <= AUTO_SPARSE_MAX_LIST_SHARE * lists.numChunks && !verySparseLongContext;
}

/**
 * Dense-ish lists (more than a fifth of the chunks) in the KV-head-major order take the 192-row tiling
 * too when its grid holds at least this many waves (CTAs per multiprocessor). Session 7 (docs/perf.md,
 * block-sparse "Session 7"): there c3-n64-s3 beat n128-s2 in all 12 cells of s <= 0.5 at 32 heads,
 * 16K-128K, random and shared lists (by 1.0-6.1%; 21-171 waves). Smaller grids (the model organism's
 * 4 heads: 2.6 waves at 16K) were not measured that way and keep 128-row CTAs.
 */
export const AUTO_DENSE_KV_192_MIN_WAVES = 16;

/**
 * Whether the automatic choice runs the 192-row tiling (AUTO_SPARSE_BLOCK_SPARSE_WGMMA_TILING) on these
 * lists for numHeads query heads on a GPU of `multiprocessors` SMs: sparse lists always
 * (chunkListsAreSparse), dense-ish ones in the KV-head-major order on grids of at least
 * AUTO_DENSE_KV_192_MIN_WAVES waves.
 */
export function autoTakes192RowTiling(
  lists: Pick<DeviceChunkLists, 'stride' | 'numChunks' | 'numTokens'>, numHeads: number, multiprocessors: number,
  order: WgmmaCtaOrder = AUTO_CTA_ORDER,
): boolean {
  if (chunkListsAreSparse(lists, order)) return true;
  const ctas = numHeads * Math.ceil(lists.numTokens / 192);
  return order === 'kv' && ctas >= AUTO_DENSE_KV_192_MIN_WAVES * multiprocessors;
}

/** The two automatic wgmma tilings: 128-row CTAs (dense-ish lists) and 192-row CTAs (autoTakes192RowTiling). */
export type AutoRowTiling = 'rows128' | 'rows192';

/**
 * Which automatic tiling takes lean masks on lists of whole-warpgroup chunks unless told (autoLeanMask).
 * -lm saved 6.7% at s = 0 (every warp-step clean) and cost 2% at c = 16, s = 0.5 (docs/perf.md,
 * block-sparse "Session 7, second round"). Session 8, c = 64 (bench/block-sparse.ts --chunk 64, H100,
 * 16 cells): 192-row CTAs 2–10% faster in 15 of 16 cells (the 16th in a drifting cell), 128-row CTAs
 * faster in 10 of 16 only (none on random lists at s >= 0.8). Round 2 (the rule written before it,
 * docs/perf.md block-sparse "Session 8"): 192-row CTAs with lean masks faster than plain in 12 of 12
 * cells (16K–128K, random and shared lists, s = 0.5 / 0.9; −3.8 … −10.5%, mean −7.1%), so they are the default there.
 * 128-row CTAs stay plain.
 */
export const AUTO_LEAN_MASK_ON_WARPGROUP_CHUNKS: Readonly<Record<AutoRowTiling, boolean>> = { rows128: false, rows192: true };
/** Query rows of one consumer warpgroup of the wgmma kernel (its CTAs start on multiples of it). */
const WARPGROUP_ROWS = 64;
/**
 * Which automatic tiling runs persistent CTAs with a work counter (-ps-wc) on sparse lists unless told (autoPersistent).
 * Session 10 (docs/perf.md, block-sparse "Session 10"), 192-row CTAs: round 1 at 16K -2 ... -11 % in all 12 cells with
 * s >= 0.5 but +0.3 ... +11 % at s = 0, hence sparse lists only (chunkListsAreSparse); rule R1, written before round 2,
 * on round 2's 64K cells at s = 0.9 / 0.95 (c = 16 and c = 64 lean, random and shared): mean -0.6 % (asked <= 0), no cell
 * slower than 1 % + its drift (c = 64: -1.2 ... -3.5 % in 4 of 4; c = 16: -1.5 / -0.8 random, +5.5 / +1.5 shared in cells
 * whose base drifted 10.4 / 5.2 %). 192-row CTAs only (the 128-row tiling was not measured).
 */
export const AUTO_PERSISTENT_ON_SPARSE_LISTS: Readonly<Record<AutoRowTiling, boolean>> = { rows128: false, rows192: true };
/**
 * Which automatic tiling runs the steps kernel's flat index (-sf) on lists of chunks smaller than a warpgroup (c = 16)
 * unless told (autoStepsFlat). Session 10 (docs/perf.md, block-sparse "Session 10", rule R2 written before round 2):
 * the steps kernel alone 8.8-43.8 % faster in all 8 c = 16 cells at 16K (round 1) and 14.7-22.4 % in all 4 at 64K
 * s = 0.9 / 0.95 (round 2, mean -18.4 %), but 17-18 % slower at c = 64 s = 0, hence small chunks only. The attention
 * kernel is byte-identical with and without it. 192-row CTAs only (the 128-row tiling was not measured).
 */
export const AUTO_STEPS_FLAT_ON_SMALL_CHUNKS: Readonly<Record<AutoRowTiling, boolean>> = { rows128: false, rows192: true };

/**
 * Whether an automatic tiling runs lean masks on these lists: when enabled for it (autoLeanMask, default
 * AUTO_LEAN_MASK_ON_WARPGROUP_CHUNKS[tiling]) and the chunk size is a multiple of 64. Then the 64 rows of every
 * consumer warpgroup lie in one query chunk and share its list, so each off-diagonal key tile a warpgroup
 * computes is selected by all four of its warps: every off-diagonal warp-step is clean except the padded
 * last step of a class, and the per-sub-tile mask loop that LEAN_MASK skips would only re-test them.
 * At c = 16 or 32 the four 16-row slots choose apart and most warp-steps are partial, where the branch
 * costs ≈ 2% and saves nothing.
 */
export function autoTakesLeanMask(lists: Pick<DeviceChunkLists, 'chunkSize'>, tiling: AutoRowTiling, autoLeanMask?: boolean): boolean {
  const enabled = autoLeanMask ?? AUTO_LEAN_MASK_ON_WARPGROUP_CHUNKS[tiling];
  return enabled && lists.chunkSize % WARPGROUP_ROWS === 0;
}

/**
 * Whether an automatic tiling runs persistent CTAs with a work counter on these lists: when enabled for it
 * (autoPersistent, default AUTO_PERSISTENT_ON_SPARSE_LISTS), in the KV-head-major order (persistent is written for it
 * only) and on sparse lists (chunkListsAreSparse: there items are short, and the overlap of an item's Q load and
 * first gathers with the previous item's last steps pays; at s = 0 it cost up to 6 %).
 */
export function autoTakesPersistent(
  lists: Pick<DeviceChunkLists, 'stride' | 'numChunks' | 'numTokens'>, tiling: AutoRowTiling, order: WgmmaCtaOrder, autoPersistent?: boolean,
): boolean {
  const enabled = autoPersistent ?? AUTO_PERSISTENT_ON_SPARSE_LISTS[tiling];
  return enabled && order === 'kv' && chunkListsAreSparse(lists, order);
}

/** Whether an automatic tiling runs the flat steps kernel on these lists: when enabled for it and the chunks are below 64 rows. */
export function autoTakesStepsFlat(lists: Pick<DeviceChunkLists, 'chunkSize'>, tiling: AutoRowTiling, autoStepsFlat?: boolean): boolean {
  const enabled = autoStepsFlat ?? AUTO_STEPS_FLAT_ON_SMALL_CHUNKS[tiling];
  return enabled && lists.chunkSize % WARPGROUP_ROWS !== 0;
}

/** The per-run choices on top of an automatic tiling's own flags (each leaves the results bit for bit the same). */
export interface AutoVariant {
  leanMask: boolean;
  persistent: boolean;
  stepsFlat: boolean;
}

/**
 * An automatic tiling (already in its block order) with a variant's flags: lean masks where leanMaskVariant takes
 * them, persistent with its work counter, the flat steps kernel.
 */
export function autoVariantTiling(t: BlockSparseWgmmaTiling, v: AutoVariant): BlockSparseWgmmaTiling {
  const lean = v.leanMask ? leanMaskVariant(t) ?? t : t;
  const extra = { ...(v.persistent ? { persistent: true, workCounter: true } : {}), ...(v.stepsFlat ? { stepsFlat: true } : {}) };
  return Object.keys(extra).length > 0 ? { ...lean, ablation: { ...lean.ablation, ...extra } } : lean;
}

/**
 * The tiling with lean masks added to its own ablation flags, or null where its flags exclude them
 * (maskFirst replaces the mask code that leanMask skips: no per-sub-tile branch is left to leave out).
 */
export function leanMaskVariant<T extends Partial<BlockSparseWgmmaTiling>>(t: T): T | null {
  if (t.ablation?.maskFirst) return null;
  return { ...t, ablation: { ...t.ablation, leanMask: true } };
}

/**
 * Which kernel a BlockSparseFlashPrefill with these options runs: an explicit option decides; with
 * none, wgmma with the automatic tiling (per run, by the lists) where the device and head dim allow
 * it (the reason it does not, otherwise).
 */
export function blockSparseKernelChoice(
  info: Pick<DeviceInfo, 'computeCapability' | 'name'>, headDim: number, options: BlockSparseKernelOptions,
): { kernel: 'wgmma'; tiling: Partial<BlockSparseWgmmaTiling> | 'auto' } | { kernel: 'mma'; reason: string } {
  if (options.wgmma) return { kernel: 'wgmma', tiling: options.wgmma };
  if (options.headsPerCta !== undefined || options.mTiles !== undefined) return { kernel: 'mma', reason: 'mma.sync tiling given' };
  const unsupported = wgmmaPrefillUnsupported(info, headDim);
  return unsupported === null ? { kernel: 'wgmma', tiling: 'auto' } : { kernel: 'mma', reason: unsupported };
}

/** The variant the benchmark found fastest (docs/perf.md, "Block-sparse prefill (issue 9)"). */
export const DEFAULT_BLOCK_SPARSE_KERNEL: Required<Pick<BlockSparseKernelOptions, 'headsPerCta' | 'mTiles'>> = { headsPerCta: 1, mTiles: 1 };

export class BlockSparseFlashPrefill {
  readonly headsPerCta: number;
  readonly mTiles: number;
  /** The kernel a `wgmma` option names (null: the automatic choice or mma.sync). */
  private readonly namedWgmma: BlockSparseWgmmaPrefill | null;
  /**
   * The automatic choice's kernels by label (null without the automatic choice): each row tiling in the automatic
   * order with the per-run variant flags (autoVariantFor), made on first use.
   */
  private readonly autoWgmma: Map<string, BlockSparseWgmmaPrefill> | null;
  private readonly autoOrder: WgmmaCtaOrder;
  private readonly autoLeanMask: boolean | undefined;
  private readonly autoPersistent: boolean | undefined;
  private readonly autoStepsFlat: boolean | undefined;
  private lastWgmma: BlockSparseWgmmaPrefill | null;
  private kernels: { union: CudaKernel; attend: CudaKernel } | null = null;
  private unionEntries: DeviceBuffer | null = null;
  private unionCounts: DeviceBuffer | null = null;
  /** Geometry of the last run (for tests that read the union back). */
  lastGeometry: CtaGeometry | null = null;

  constructor(private readonly rt: CudaRuntime, readonly shape: PrefillShape, options: BlockSparseKernelOptions = {}) {
    const { numHeads: H, numKvHeads: Hkv, headDim: D } = shape;
    if (!SUPPORTED_BLOCK_SPARSE_HEAD_DIMS.includes(D as 64 | 128)) throw new Error(`block-sparse prefill: head dim ${D} unsupported (64 or 128)`);
    if (!(Hkv > 0) || H % Hkv !== 0) throw new Error(`block-sparse prefill: ${H} query heads are not a multiple of ${Hkv} KV heads`);
    if (options.wgmma && (options.headsPerCta !== undefined || options.mTiles !== undefined)) {
      throw new Error('block-sparse prefill: headsPerCta and mTiles belong to the mma.sync kernel; the wgmma kernel takes one head and 128 or 192 rows per CTA');
    }
    const tilingNamed = options.wgmma !== undefined || options.headsPerCta !== undefined || options.mTiles !== undefined;
    if (options.autoCtaOrder !== undefined && tilingNamed) {
      throw new Error('block-sparse prefill: autoCtaOrder applies to the automatic wgmma tilings only (a wgmma tiling names its own ctaOrder)');
    }
    for (const key of ['autoLeanMask', 'autoPersistent', 'autoStepsFlat'] as const) {
      if (options[key] !== undefined && tilingNamed) {
        throw new Error(`block-sparse prefill: ${key} applies to the automatic wgmma tilings only (a wgmma tiling names its own ablation flags)`);
      }
    }
    const choice = blockSparseKernelChoice(rt.cuda.info, D, options);
    this.autoOrder = options.autoCtaOrder ?? AUTO_CTA_ORDER;
    this.autoLeanMask = options.autoLeanMask;
    this.autoPersistent = options.autoPersistent;
    this.autoStepsFlat = options.autoStepsFlat;
    this.namedWgmma = choice.kernel === 'wgmma' && choice.tiling !== 'auto' ? new BlockSparseWgmmaPrefill(rt, shape, choice.tiling) : null;
    this.autoWgmma = choice.kernel === 'wgmma' && choice.tiling === 'auto' ? new Map() : null;
    this.lastWgmma = this.namedWgmma ?? (this.autoWgmma ? this.autoKernel('rows128', { leanMask: false, persistent: false, stepsFlat: false }) : null);
    this.headsPerCta = options.headsPerCta ?? DEFAULT_BLOCK_SPARSE_KERNEL.headsPerCta;
    this.mTiles = options.mTiles ?? DEFAULT_BLOCK_SPARSE_KERNEL.mTiles;
    // Validates headsPerCta against the group and mTiles.
    ctaGeometry({ numTokens: 1, numHeads: H, numKvHeads: Hkv, headsPerCta: this.headsPerCta, mTiles: this.mTiles, listStride: 1, chunkSize: DEVICE_TILE });
  }

  /**
   * The wgmma kernel of the last run (before any: the one a `wgmma` option names, or the automatic
   * choice's dense-lists one), or null when this launcher runs the mma.sync kernel.
   */
  get wgmma(): BlockSparseWgmmaPrefill | null {
    return this.lastWgmma;
  }

  /**
   * Compiles (or loads) every kernel this launcher may run, so none compiles inside a timed run. Given the
   * lists' chunk size, the automatic choice's lean-mask kernels are left out where autoTakesLeanMask can
   * never pick them (chunks not a multiple of 64); a kernel not prepared compiles on its first run.
   */
  prepare(chunkSize?: number): { union: CudaKernel; attend: CudaKernel } {
    if (this.namedWgmma) return this.namedWgmma.prepare();
    if (this.autoWgmma) {
      // Lean masks and the flat steps kernel follow the chunk size; persistent CTAs follow the lists' sparsity (both may run).
      const chunkChoices = (takes: (c: number) => boolean) => (chunkSize === undefined ? [false, takes(16), takes(64)] : [takes(chunkSize)]);
      const mayRun = new Set<BlockSparseWgmmaPrefill>();
      for (const tiling of ['rows128', 'rows192'] as const) {
        const persistentChoices = [false, (this.autoPersistent ?? AUTO_PERSISTENT_ON_SPARSE_LISTS[tiling]) && this.autoOrder === 'kv'];
        for (const leanMask of chunkChoices((c) => autoTakesLeanMask({ chunkSize: c }, tiling, this.autoLeanMask))) {
          for (const stepsFlat of chunkChoices((c) => autoTakesStepsFlat({ chunkSize: c }, tiling, this.autoStepsFlat))) {
            for (const persistent of persistentChoices) mayRun.add(this.autoKernel(tiling, { leanMask, persistent, stepsFlat }));
          }
        }
      }
      return [...mayRun].map((k) => k.prepare())[0];
    }
    if (!this.kernels) {
      const mod = this.rt.module('block-sparse-prefill.cu', { HEAD_DIM: this.shape.headDim, HEADS_PER_CTA: this.headsPerCta, M_TILES: this.mTiles });
      this.kernels = {
        union: mod.kernel('block_sparse_union', ['ptr', 'ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32']),
        attend: mod.kernel('block_sparse_prefill', ['ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'f32']),
      };
    }
    return this.kernels;
  }

  run(a: BlockSparsePrefillArgs): void {
    const kernel = this.namedWgmma ?? (this.autoWgmma ? this.autoKernelFor(a.lists) : null);
    if (kernel) {
      this.lastWgmma = kernel;
      kernel.run(a);
      return;
    }
    const { numHeads: H, numKvHeads: Hkv, headDim: D } = this.shape;
    const qRowStride = checkBlockSparsePrefillArgs('block-sparse prefill', this.shape, a);
    const T = a.numQueries;
    const l = a.lists;
    const geo = ctaGeometry({ numTokens: T, numHeads: H, numKvHeads: Hkv, headsPerCta: this.headsPerCta, mTiles: this.mTiles, listStride: l.stride, chunkSize: l.chunkSize });
    this.lastGeometry = geo;
    const ctas = geo.numHeadGroups * geo.numCtaRows;
    this.unionEntries = growWorkspace(this.rt, this.unionEntries, ctas * geo.unionStride * 4);
    this.unionCounts = growWorkspace(this.rt, this.unionCounts, ctas * 4);
    const k = this.prepare();
    const grid: [number, number, number] = [geo.numCtaRows, geo.numHeadGroups, 1];
    const words = Math.floor((geo.numQueryTiles - 1) / (32 / geo.slots)) + 1; // one slot mask per key tile
    k.union.launch(
      { grid, block: [32 * CTA_WARPS, 1, 1], sharedBytes: words * 4, stream: this.rt.stream },
      [l.lists.ptr, l.counts.ptr, this.unionEntries.ptr, this.unionCounts.ptr, l.stride, l.numChunks, l.chunkSize / DEVICE_TILE,
        geo.numQueryTiles, a.kvLen, geo.unionStride],
    );
    k.attend.launch(
      { grid, block: [32 * CTA_WARPS, 1, 1], sharedBytes: blockSparseSharedBytes(D, this.mTiles), stream: this.rt.stream },
      [a.q, a.k, a.v, a.out, this.unionEntries.ptr, this.unionCounts.ptr, T, H, Hkv, qRowStride, a.kvStride, a.kvLen,
        geo.numQueryTiles, geo.unionStride, a.scale * LOG2E],
    );
  }

  /** The automatic choice's kernel for these lists: the row tiling, then the variant flags they take. */
  private autoKernelFor(lists: DeviceChunkLists): BlockSparseWgmmaPrefill {
    const tiling: AutoRowTiling = autoTakes192RowTiling(lists, this.shape.numHeads, this.rt.cuda.info.multiprocessors, this.autoOrder) ? 'rows192' : 'rows128';
    return this.autoKernel(tiling, {
      leanMask: autoTakesLeanMask(lists, tiling, this.autoLeanMask),
      persistent: autoTakesPersistent(lists, tiling, this.autoOrder, this.autoPersistent),
      stepsFlat: autoTakesStepsFlat(lists, tiling, this.autoStepsFlat),
    });
  }

  /** The automatic kernel of a row tiling and variant (made on first use; compiled on its first run or prepare). */
  private autoKernel(tiling: AutoRowTiling, v: AutoVariant): BlockSparseWgmmaPrefill {
    if (!this.autoWgmma) throw new Error('block-sparse prefill: no automatic wgmma choice in this launcher');
    const base = autoTilingInOrder(tiling === 'rows192' ? AUTO_SPARSE_BLOCK_SPARSE_WGMMA_TILING : AUTO_BLOCK_SPARSE_WGMMA_TILING, this.autoOrder);
    const t = resolveBlockSparseWgmmaTiling(autoVariantTiling(base, v));
    const label = blockSparseWgmmaLabel(t);
    let kernel = this.autoWgmma.get(label);
    if (!kernel) {
      kernel = new BlockSparseWgmmaPrefill(this.rt, this.shape, t);
      this.autoWgmma.set(label, kernel);
    }
    return kernel;
  }

  /** The last run's CTA unions: entries [ctas, unionStride] and counts [ctas] (waits for the stream). */
  downloadUnion(): { entries: Int32Array; counts: Int32Array; geometry: CtaGeometry } {
    if (this.wgmma) throw new Error('block-sparse prefill: the wgmma kernel keeps step lists, not unions (wgmma.downloadSteps)');
    const geo = this.lastGeometry;
    if (!geo || !this.unionEntries || !this.unionCounts) throw new Error('block-sparse prefill: no run yet');
    this.rt.synchronize();
    const ctas = geo.numHeadGroups * geo.numCtaRows;
    const entries = new Int32Array(ctas * geo.unionStride), counts = new Int32Array(ctas);
    this.rt.cuda.download(entries, this.unionEntries.ptr);
    this.rt.cuda.download(counts, this.unionCounts.ptr);
    return { entries, counts, geometry: geo };
  }

  /** Returns the workspace to the pool (after the stream's work is done). */
  release(): void {
    for (const k of [this.namedWgmma, ...(this.autoWgmma?.values() ?? [])]) k?.release();
    for (const b of [this.unionEntries, this.unionCounts]) if (b) this.rt.pool.release(b);
    this.unionEntries = this.unionCounts = null;
  }

}
