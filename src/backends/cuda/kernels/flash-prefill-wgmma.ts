/**
 * Launcher for flash-prefill-wgmma.cu: the Hopper (sm_90a, wgmma) dense causal prefill, same
 * arguments and results as the mma.sync kernel of flash-prefill.ts, for head dims 64 and 128.
 * FlashPrefill (flash-prefill.ts) decides which of the two runs; this class is the wgmma one alone.
 */
import type { DeviceInfo } from '../context.js';
import type { CudaKernel } from '../module.js';
import type { CudaRuntime } from '../runtime.js';
import type { FlashPrefillArgs, PrefillShape } from './flash-prefill.js';
import { checkedPrefillArgs, prefillScaleLog2 } from './prefill-args.js';

export const WGMMA_PREFILL_HEAD_DIMS = [64, 128] as const;
/** Query rows per block: two warpgroups of 64. */
export const WGMMA_PREFILL_BLOCK_ROWS = 128;
/** Threads per block: the two consumer warpgroups, plus v3's producer warpgroup. */
function blockThreads(t: WgmmaPrefillTiling): number {
  return t.version === 3 ? 384 : 256;
}

export interface WgmmaPrefillTiling {
  /**
   * Loop version (docs/perf.md, Prefill): 1 waits for each product before the next step; 2 runs tile
   * j - 1's P·V while tile j's scores are exponentiated; 3 is 2 with a producer warpgroup filling the
   * stages behind mbarriers and the two consumer warpgroups taking turns. Default 3.
   */
  version?: 1 | 2 | 3;
  /** K and V stages in shared memory: 2, or 3 with version 3. Default 2. */
  stages?: 2 | 3;
  /** Version 3 only: Q fragments kept in registers, S = Q·Kᵀ with A from registers. Default false. */
  qInRegisters?: boolean;
  /**
   * Version 3 only: one mbarrier arrival per consumer warp (not per thread) to release a stage.
   * Default: true for version 3 (3.5-5.6% faster on an H100, docs/perf.md), false otherwise.
   */
  warpArrivals?: boolean;
  /** Keys per K/V tile (both products' N or K extent). */
  blockN: 64 | 128;
  /** Block schedule, as PrefillTiling.order of the mma.sync kernel. Default 'global'. */
  order?: 'head' | 'global';
}

/** The fastest on an H100 (docs/perf.md, Prefill, wgmma v3 with warp arrivals, which v3 defaults to). */
export const DEFAULT_WGMMA_PREFILL_TILING: WgmmaPrefillTiling = { version: 3, blockN: 128, order: 'global', stages: 2 };

/**
 * e.g. 'wgmma3-n128g' or 'wgmma3-n128g-s3-qr-wa': loop version, keys per tile, g for the global order,
 * then the non-default options (stages, Q in registers, warp arrivals).
 */
export function wgmmaTilingLabel(t: WgmmaPrefillTiling): string {
  const stages = t.stages ?? 2;
  return `wgmma${t.version ?? 3}-n${t.blockN}${(t.order ?? 'global') === 'global' ? 'g' : ''}` +
    `${stages === 2 ? '' : `-s${stages}`}${t.qInRegisters ? '-qr' : ''}${t.warpArrivals ? '-wa' : ''}`;
}

/**
 * Why the wgmma kernel cannot run here, or null when it can: wgmma exists on compute capability 9.0
 * alone (sm_90a code runs on no other architecture), for the head dims above.
 */
export function wgmmaPrefillUnsupported(info: Pick<DeviceInfo, 'computeCapability' | 'name'>, headDim: number): string | null {
  const [major, minor] = info.computeCapability;
  if (major !== 9 || minor !== 0) return `wgmma prefill needs a compute capability 9.0 GPU (Hopper); ${info.name} is ${major}.${minor}`;
  if (!WGMMA_PREFILL_HEAD_DIMS.includes(headDim as 64 | 128)) return `wgmma prefill supports head dims ${WGMMA_PREFILL_HEAD_DIMS.join(', ')}, not ${headDim}`;
  return null;
}

/**
 * Dynamic shared memory of one block: Q tile, the stages of K and V tiles, v3's mbarriers (128 bytes
 * kept for them in every version), 1 KB of alignment slack.
 */
export function wgmmaPrefillSharedBytes(headDim: number, t: WgmmaPrefillTiling): number {
  const rowBytes = headDim * 2;
  return (WGMMA_PREFILL_BLOCK_ROWS + 2 * (t.stages ?? 2) * t.blockN) * rowBytes + 128 + 1024;
}

/**
 * A full tiling from a partial one: defaults filled in (warp arrivals on for version 3 unless turned
 * off), then checked; an error names the bad field.
 */
export function resolveWgmmaPrefillTiling(tiling: Partial<WgmmaPrefillTiling>): WgmmaPrefillTiling {
  const merged = { ...DEFAULT_WGMMA_PREFILL_TILING, ...tiling };
  const t: WgmmaPrefillTiling = { ...merged, warpArrivals: tiling.warpArrivals ?? merged.version === 3 };
  if (t.blockN !== 64 && t.blockN !== 128) throw new Error(`wgmma prefill: blockN must be 64 or 128 (got ${t.blockN})`);
  const { version = 3, stages = 2 } = t;
  if (![1, 2, 3].includes(version)) throw new Error(`wgmma prefill: version must be 1, 2 or 3 (got ${version})`);
  if (!(stages === 2 || (stages === 3 && version === 3))) throw new Error(`wgmma prefill: stages must be 2, or 3 with version 3 (got ${stages}, version ${version})`);
  if ((t.qInRegisters || t.warpArrivals) && version !== 3) throw new Error('wgmma prefill: qInRegisters and warpArrivals need version 3');
  return t;
}

export class WgmmaFlashPrefill {
  readonly tiling: WgmmaPrefillTiling;
  private kernel: CudaKernel | null = null;

  constructor(private readonly rt: CudaRuntime, readonly shape: PrefillShape, tiling: Partial<WgmmaPrefillTiling> = {}) {
    const reason = wgmmaPrefillUnsupported(rt.cuda.info, shape.headDim);
    if (reason) throw new Error(reason);
    if (!(shape.numKvHeads > 0) || shape.numHeads % shape.numKvHeads !== 0) {
      throw new Error(`wgmma prefill: ${shape.numHeads} query heads are not a multiple of ${shape.numKvHeads} KV heads`);
    }
    this.tiling = resolveWgmmaPrefillTiling(tiling);
  }

  /** Compiles (or loads from the cache) the kernel for this shape; run() calls it on first use. */
  prepare(): CudaKernel {
    const t = this.tiling;
    const shared = wgmmaPrefillSharedBytes(this.shape.headDim, t);
    if (shared > this.rt.cuda.info.maxSharedPerBlockOptin) {
      throw new Error(`wgmma prefill ${wgmmaTilingLabel(t)}: needs ${shared} B of shared memory, the device allows ${this.rt.cuda.info.maxSharedPerBlockOptin}`);
    }
    this.kernel ??= this.rt.module('flash-prefill-wgmma.cu', {
      HEAD_DIM: this.shape.headDim, BLOCK_N: t.blockN, BLOCK_ORDER: (t.order ?? 'global') === 'global' ? 1 : 0,
      WGMMA_VERSION: t.version ?? 3, KV_STAGES: t.stages ?? 2, Q_IN_REGS: t.qInRegisters ? 1 : 0, WARP_ARRIVALS: t.warpArrivals ? 1 : 0,
    }, { arch: 'sm_90a' })
      .kernel('flash_prefill_wgmma', ['ptr', 'ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'i32', 'f32']);
    return this.kernel;
  }

  run(a: FlashPrefillArgs): void {
    const { numHeads: H, numKvHeads: Hkv, headDim: D } = this.shape;
    const { qRowStride, window } = checkedPrefillArgs('wgmma prefill', this.shape, a);
    this.prepare().launch(
      {
        grid: [Math.ceil(a.numQueries / WGMMA_PREFILL_BLOCK_ROWS), H, 1],
        block: [blockThreads(this.tiling), 1, 1],
        sharedBytes: wgmmaPrefillSharedBytes(D, this.tiling),
        stream: this.rt.stream,
      },
      [a.q, a.k, a.v, a.out, a.numQueries, H, Hkv, qRowStride, a.kvStride, a.queryStart, a.kvLen, window, prefillScaleLog2(a.scale)],
    );
  }
}
