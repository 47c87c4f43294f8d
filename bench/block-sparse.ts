/**
 * Block-Sparse prefill on the GPU, timed against our dense flash prefill: validate, then time.
 * Shape: Llama-3.1-8B attention (H = 32, Hkv = 8, D = 128), one sequence, causal, bf16 in / fp32 acc,
 * query and key chunks of C = 16 rows (the SPEC's c) or `--chunk 64` (one list per 64-row warpgroup of
 * the wgmma kernel: t, the lists, the attended pairs and the validation all follow C).
 * For each n and target sparsity s: t from the method's closed form, the GPU estimation (pooling,
 * pooled scores, top-t: BlockSparseEstimator) writes the chunk lists from the data itself, then the
 * attention (union + block_sparse_prefill, or steps + block_sparse_prefill_wgmma) runs for each variant. Two data sets:
 *   random  q, k uniform: every query chunk ranks key chunks independently (least overlap between the
 *           four chunks of a CTA: the kernel's worst case)
 *   shared  q uniform + 0.5: key chunks with a large pooled sum win for every query chunk (heavy-hitter
 *           chunks, as real attention has sinks and vertical stripes: most overlap)
 * Printed per row: kernel ms, estimation ms, dense ms, the ideal (1 − s_achieved)·dense and the ratio of
 * kernel (and kernel + estimation) to it. Validation (first length only): sampled rows of the output
 * against a float64 softmax over the keys the downloaded lists select; outputs are poisoned first.
 *
 * Usage: node dist/bench/block-sparse.js [options] (--help lists them: BLOCK_SPARSE_ARGS). Prints a skip
 *        message where there is no CUDA device. wgmma variants need a compute capability 9.0 GPU; their
 *        validation line is followed by a work line (steps per CTA, computed / attended blocks, bytes per
 *        attended pair). wgmma labels may carry ablation flags (-dpv, -lm, -ot: block-sparse-prefill-wgmma.ts).
 *        After each cell a "# cell" line gives every variant's time against the first variant's.
 *        --validate-once: validate each variant at its first cell only (the work lines stay at every
 *        cell of the first length), for short device calls with many variants. A work line is printed
 *        once per tiling and cell: ablation flags do not change the step lists.
 *        --split-steps: for each wgmma variant also time its two launches apart (the steps kernel alone,
 *        then the attention alone over the lists it wrote): a "split" line per variant and cell, and
 *        stepsMs / attendMs in the JSON rows.
 */
import { writeFileSync } from 'node:fs';
import { cudaUnavailableReason, isCudaAvailable } from '../src/backends/cuda/availability.js';
import { selectedKeysOf, selectionFromLists } from '../src/backends/cuda/block-sparse-layout.js';
import { wgmmaComputedSteps, wgmmaEntryMask } from '../src/backends/cuda/block-sparse-wgmma-layout.js';
import { BlockSparseEstimator } from '../src/backends/cuda/kernels/block-sparse-estimate.js';
import {
  BlockSparseFlashPrefill, type BlockSparseKernelOptions, type DeviceChunkLists, allocateChunkLists, downloadChunkLists, releaseChunkLists,
} from '../src/backends/cuda/kernels/block-sparse-prefill.js';
import { type BlockSparseWgmmaPrefill, blockSparseWgmmaLabel, parseBlockSparseWgmmaLabel } from '../src/backends/cuda/kernels/block-sparse-prefill-wgmma.js';
import { FlashPrefill } from '../src/backends/cuda/kernels/flash-prefill.js';
import { ModelOpsKernels } from '../src/backends/cuda/kernels/model-ops.js';
import type { DeviceBuffer } from '../src/backends/cuda/memory-pool.js';
import { CudaRuntime } from '../src/backends/cuda/runtime.js';
import { timeOnDevice } from '../src/backends/cuda/timing.js';
import { downloadBf16, poisonedBf16 } from '../src/backends/cuda/transfer.js';
import { exactBlockSparsePairs, topChunksForSparsity } from '../src/methods/block-sparse.js';
import { BenchArgsError, type BenchOption, type BenchOptionsOf, defineBenchArgs, flag, int, labels } from './bench-args.js';
import { runIfDirect } from './bench-run.js';
import { type HostInputs, kernelBenchOptions, sampledRowsError } from './gpu-bench-util.js';

const H = 32, HKV = 8, D = 128;
/** Chunk sizes --chunk takes: the SPEC's 16, and 64 (a 64-row warpgroup's rows share one list). */
export const BENCH_CHUNK_SIZES = [16, 64] as const;
export type BenchChunkSize = (typeof BENCH_CHUNK_SIZES)[number];
const DEFAULT_CHUNK: BenchChunkSize = 16;
const SCALE = 1 / Math.sqrt(D);
/**
 * Kernel variants timed side by side, by label: mma.sync `h<heads per CTA>m<16-row tiles per warp>`, or
 * the Hopper kernel `wgmma-[c3-]n<keys per step>-s<stages>` (block-sparse-prefill-wgmma.ts; c3: three
 * consumer warpgroups, 192-row CTAs; a `-kv` suffix: the KV-head-major block order), or `auto`: the
 * launcher's own choice with no option (on Hopper the wgmma tiling chunkListsAreSparse picks per run), or
 * `auto-kv`: that choice in the KV-head-major block order, or `auto-lm`: the automatic choice with lean
 * masks on lists of 64-row chunks (autoLeanMask; with --chunk 16 it runs what `auto` runs). --variants picks.
 */
const DEFAULT_VARIANTS = ['h1m1', 'h1m2', 'h4m2'];

/** The kernel options a variant label names; an error for a label that names none. */
export function blockSparseVariantOptions(label: string): BlockSparseKernelOptions {
  if (label === 'auto') return {};
  if (label === 'auto-kv') return { autoCtaOrder: 'kv' };
  if (label === 'auto-heads') return { autoCtaOrder: 'heads' };
  if (label === 'auto-lm') return { autoLeanMask: true };
  const mma = /^h(\d+)m(\d+)$/.exec(label);
  if (mma) return { headsPerCta: Number(mma[1]), mTiles: Number(mma[2]) };
  const wgmma = parseBlockSparseWgmmaLabel(label);
  if (wgmma) return { wgmma };
  throw new Error(`--variants: ${label} is neither h<heads>m<tiles> (mma.sync) nor wgmma-[c3-]n<64|128>-s<2-4>[-kv] nor auto, auto-kv, auto-heads or auto-lm`);
}

/** `--variants a,b`: labels, empty items dropped, each refused before any work unless blockSparseVariantOptions reads it. */
function variantLabels(): BenchOption<string[]> {
  const base = labels({ describe: 'kernel variants timed side by side (h<heads>m<tiles>, wgmma-[c3-]n<64|128>-s<2-4>[-kv][-flags], auto, auto-kv, auto-heads, auto-lm)', default: DEFAULT_VARIANTS });
  return {
    ...base, convert: (raw, flag) => {
      const variants = base.convert(raw, flag);
      for (const v of variants) {
        try {
          blockSparseVariantOptions(v);
        } catch (e) {
          throw new BenchArgsError((e as Error).message.replace(/^--variants:/, `${flag}:`));
        }
      }
      return variants;
    },
  };
}

/**
 * The command line (`--help` prints it): the kernel benches' grid (lengths of at least one chunk, checked
 * against --chunk in parseBlockSparseBenchArgs), the variants, the chunk size and the two switches.
 */
export const BLOCK_SPARSE_ARGS = defineBenchArgs('block-sparse', 'Block-Sparse prefill kernels on the GPU against dense flash, validated first (GPU only).', {
  ...kernelBenchOptions(5, Math.min(...BENCH_CHUNK_SIZES)),
  variants: variantLabels(),
  chunk: int({ describe: 'rows per query / key chunk (t, the lists, the attended pairs and the validation follow it)', placeholder: 'C', default: DEFAULT_CHUNK, oneOf: BENCH_CHUNK_SIZES, noun: 'chunk size' }),
  'validate-once': flag('validate each variant at its first cell only'),
  'split-steps': flag('also time each wgmma variant\'s steps kernel and attention apart'),
}, 'node dist/bench/block-sparse.js');

export type BlockSparseBenchOptions = Omit<BenchOptionsOf<typeof BLOCK_SPARSE_ARGS.table>, 'chunk'> & { chunk: BenchChunkSize };

/** The bench's options; BenchArgsError for a bad line (a length shorter than one chunk included). */
export function parseBlockSparseBenchArgs(argv: readonly string[]): BlockSparseBenchOptions {
  const o = BLOCK_SPARSE_ARGS.parse(argv);
  const chunk = o.chunk as BenchChunkSize; // oneOf above admits exactly these values
  const short = o.lengths.find((n) => n < chunk);
  if (short !== undefined) throw new BenchArgsError(`--lengths: bad length (an integer >= ${chunk}, one --chunk) "${short}"`);
  return { ...o, chunk };
}

/**
 * One line per cell: each variant's kernel ms and its change against the cell's first variant. The chunk
 * size is named only when it is not the SPEC's 16, so c = 16 lines read as before session 8.
 */
export function cellSummaryLine(cellRows: (Omit<BlockSparseBenchRow, 'chunkSize'> & { chunkSize?: number })[]): string {
  if (cellRows.length === 0) throw new Error('cellSummaryLine: no rows');
  const [first] = cellRows;
  const parts = cellRows.map((r, i) => `${r.variant} ${r.kernelMs.toFixed(3)}` +
    (i === 0 ? '' : ` (${r.kernelMs >= first.kernelMs ? '+' : ''}${((r.kernelMs / first.kernelMs - 1) * 100).toFixed(1)}%)`));
  const chunk = first.chunkSize === undefined || first.chunkSize === DEFAULT_CHUNK ? '' : ` c=${first.chunkSize}`;
  return `# cell n=${first.n}${chunk} ${first.data} s=${first.requested}: ${parts.join(', ')}`;
}
const DATA_SETS = [{ name: 'random', qMean: 0 }, { name: 'shared', qMean: 0.5 }] as const;

export interface BlockSparseBenchRow {
  n: number; chunkSize: number; data: string; requested: number; achieved: number; topChunks: number; variant: string;
  kernelMs: number; estimationMs: number; denseMs: number; idealMs: number; ratio: number; ratioWithEstimation: number;
  /** --split-steps, wgmma variants: the steps kernel alone and the attention alone (ms, medians). */
  stepsMs?: number; attendMs?: number;
}

/** Relative error of sampled (query, head) rows against a float64 softmax over the selected keys. */
function validateRows(
  rt: CudaRuntime, n: number, x: HostInputs, out: DeviceBuffer, lists: DeviceChunkLists,
): number {
  const of = downloadBf16(rt, out, n * H * D);
  const sel = selectionFromLists(downloadChunkLists(rt, lists));
  return sampledRowsError(x, n, of, { H, Hkv: HKV, D, scale: SCALE }, [0, 17, 1000, Math.floor(n / 2) + 5, n - 1], [0, 5, 31],
    (h, t) => selectedKeysOf(sel, h, t));
}

/**
 * What the wgmma kernel's step lists of the last run ask of it (the quantities docs/perf.md's
 * prediction and the rows-per-CTA table rest on, for the kernel's consumer count): steps per CTA, the
 * share of them each warpgroup computes, the 64-row × 16-key blocks computed per attended one (compute
 * overhead) and the K/V bytes gathered per attended pair.
 */
function wgmmaWorkLine(kernel: BlockSparseWgmmaPrefill, n: number, chunk: number, t: number): string {
  const { entries, stepCounts, geometry: geo } = kernel.downloadSteps();
  const ctas = stepCounts.length;
  let steps = 0, computed = 0, tiles = 0;
  for (let c = 0; c < ctas; c++) {
    const list = [...entries.subarray(c * geo.stepStride, c * geo.stepStride + stepCounts[c] * geo.subTiles)];
    steps += stepCounts[c];
    computed += wgmmaComputedSteps(list, geo.subTiles, geo.consumers).reduce((a, b) => a + b, 0);
    tiles += list.filter((e) => wgmmaEntryMask(e, geo.consumers) !== 0).length;
  }
  const attendedPairs = (exactBlockSparsePairs(n, chunk, t) * H);
  const computedBlocks = computed * geo.subTiles; // 64-row x 16-key blocks
  return `${geo.consumers} consumers: ${(steps / ctas).toFixed(1)} steps/CTA, warpgroups compute ${(computed / (geo.consumers * steps)).toFixed(3)} of them, ` +
    `computed/attended ${((computedBlocks * 64 * 16) / attendedPairs).toFixed(2)}, ` +
    `K/V bytes per attended pair ${((tiles * 16 * 2 * D * 2) / attendedPairs).toFixed(1)}`;
}

export function runBlockSparseBench(argv: string[]): BlockSparseBenchRow[] {
  // Arguments first, so that a bad one is refused on a machine without a GPU too.
  const o = parseBlockSparseBenchArgs(argv);
  const { variants, chunk: C, validateOnce, splitSteps } = o;
  if (!isCudaAvailable()) {
    console.log(`block-sparse bench skipped: no CUDA device here (${cudaUnavailableReason()}); ` +
      `would run ${variants.join(',')} at c ${C}, n ${o.lengths.join(',')}, s ${o.sparsities.join(',')}${validateOnce ? ', validate once' : ''}${splitSteps ? ', split steps' : ''}`);
    return [];
  }
  const validated = new Set<string>();
  const rt = new CudaRuntime();
  console.log(`# device: ${rt.cuda.info.name}; H=${H} Hkv=${HKV} D=${D} c=${C}; median of ${o.repeats} event-timed runs`);
  const ops = new ModelOpsKernels(rt);
  const shape = { numHeads: H, numKvHeads: HKV, headDim: D };
  const dense = new FlashPrefill(rt, shape);
  const estimator = new BlockSparseEstimator(rt, shape, C);
  const rows: BlockSparseBenchRow[] = [];
  const timing = { warmup: 1, repeats: o.repeats };
  for (const n of o.lengths) {
    const q = rt.pool.acquire(n * H * D * 2), k = rt.pool.acquire(HKV * n * D * 2), v = rt.pool.acquire(HKV * n * D * 2);
    ops.fillUniform({ x: k.ptr, n: HKV * n * D, seed: 2 * n + 1, mean: 0, halfWidth: 1 });
    ops.fillUniform({ x: v.ptr, n: HKV * n * D, seed: 3 * n + 2, mean: 0, halfWidth: 1 });
    const out = poisonedBf16(rt, n * H * D);
    const common = { q: q.ptr, k: k.ptr, v: v.ptr, out: out.ptr, numQueries: n, kvLen: n, kvStride: n, scale: SCALE };
    ops.fillUniform({ x: q.ptr, n: n * H * D, seed: n, mean: 0, halfWidth: 1 });
    const denseMs = timeOnDevice(rt, () => dense.run({ ...common, queryStart: 0 }), timing).medianMs;
    console.log(`# n=${n}: dense flash ${denseMs.toFixed(3)} ms`);
    for (const data of DATA_SETS) {
      ops.fillUniform({ x: q.ptr, n: n * H * D, seed: n, mean: data.qMean, halfWidth: 1 });
      const host: HostInputs | null = n === o.lengths[0]
        ? { q: downloadBf16(rt, q, n * H * D), k: downloadBf16(rt, k, HKV * n * D), v: downloadBf16(rt, v, HKV * n * D) }
        : null;
      for (const s of o.sparsities) {
        const t = topChunksForSparsity(n, C, s);
        const achieved = 1 - exactBlockSparsePairs(n, C, t) / ((n * (n + 1)) / 2);
        const lists = allocateChunkLists(rt, H, n, C, t);
        const estimateArgs = { q: q.ptr, k: k.ptr, kvStride: n, numTokens: n, lists };
        const estimationMs = timeOnDevice(rt, () => estimator.run(estimateArgs), timing).medianMs;
        const phases = estimator.runTimedPhases(estimateArgs);
        console.log(`#   n=${n} ${data.name} s=${s}: estimation ${estimationMs.toFixed(3)} ms = pool ${phases.poolMs.toFixed(3)} + ` +
          `scores ${phases.scoresMs.toFixed(3)} + select ${phases.selectMs.toFixed(3)} ms (one timed run)`);
        const cellRows: BlockSparseBenchRow[] = [];
        const workLinesDone = new Set<string>(); // plain tilings whose step lists this cell has counted
        for (const variant of variants) {
          const kernel = new BlockSparseFlashPrefill(rt, shape, blockSparseVariantOptions(variant));
          if (host) {
            rt.cuda.fill16Async(out.ptr, 0x7fc0, n * H * D, rt.stream);
            kernel.run({ ...common, lists });
            if (!validateOnce || !validated.has(variant)) {
              const err = validateRows(rt, n, host, out, lists);
              if (!(err < 1e-2)) throw new Error(`validation failed: n=${n} ${data.name} s=${s} ${variant}: relative error ${err}`);
              console.log(`#   validated ${data.name} s=${s} ${variant}: sampled rows rel err ${err.toExponential(2)}`);
              validated.add(variant);
            }
            const plainTiling = kernel.wgmma ? blockSparseWgmmaLabel({ ...kernel.wgmma.tiling, ablation: undefined }) : null;
            if (kernel.wgmma && plainTiling && !workLinesDone.has(plainTiling)) {
              console.log(`#   ${variant} work: ${wgmmaWorkLine(kernel.wgmma, n, C, t)}`);
              workLinesDone.add(plainTiling);
            }
          }
          const kernelMs = timeOnDevice(rt, () => kernel.run({ ...common, lists }), timing).medianMs;
          let split: { stepsMs: number; attendMs: number } | undefined;
          const w = kernel.wgmma;
          if (splitSteps && w) {
            // The last timed run's kernel (the automatic choice, for auto labels) and its lists.
            const args = { ...common, lists };
            const stepsMs = timeOnDevice(rt, () => w.buildSteps(args), timing).medianMs;
            const attendMs = timeOnDevice(rt, () => w.attend(args), timing).medianMs;
            split = { stepsMs, attendMs };
            console.log(`#   ${variant} split: steps kernel ${stepsMs.toFixed(3)} ms + attention ${attendMs.toFixed(3)} ms ` +
              `(whole run ${kernelMs.toFixed(3)} ms; ${blockSparseWgmmaLabel(w.tiling)})`);
          }
          rt.synchronize();
          kernel.release();
          const idealMs = (1 - achieved) * denseMs;
          const row = {
            n, chunkSize: C, data: data.name, requested: s, achieved, topChunks: t, variant, kernelMs, estimationMs, denseMs, idealMs,
            ratio: kernelMs / idealMs, ratioWithEstimation: (kernelMs + estimationMs) / idealMs, ...(split ?? {}),
          };
          rows.push(row);
          cellRows.push(row);
          console.log(`  n=${n} c=${C} ${data.name.padEnd(6)} s=${s} (achieved ${achieved.toFixed(3)}, t=${t}) ${variant}: ` +
            `kernel ${kernelMs.toFixed(3)} ms, estimation ${estimationMs.toFixed(3)} ms, dense ${denseMs.toFixed(3)} ms, ` +
            `ideal ${idealMs.toFixed(3)} ms, kernel/ideal ${row.ratio.toFixed(2)}, (kernel+est)/ideal ${row.ratioWithEstimation.toFixed(2)}`);
        }
        console.log(cellSummaryLine(cellRows));
        releaseChunkLists(rt, lists);
      }
    }
    rt.synchronize();
    for (const b of [q, k, v, out]) rt.pool.release(b);
    estimator.release();
    rt.pool.trim();
  }
  console.log('\n| n | data | s (achieved) | t | variant | kernel ms | estimation ms | dense ms | (1−s)·dense | kernel / ideal | (kernel+est) / ideal |');
  console.log('| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of rows) {
    console.log(`| ${r.n} | ${r.data} | ${r.requested} (${r.achieved.toFixed(3)}) | ${r.topChunks} | ${r.variant} | ${r.kernelMs.toFixed(2)} | ` +
      `${r.estimationMs.toFixed(2)} | ${r.denseMs.toFixed(2)} | ${r.idealMs.toFixed(2)} | ${r.ratio.toFixed(2)} | ${r.ratioWithEstimation.toFixed(2)} |`);
  }
  if (o.out) writeFileSync(o.out, JSON.stringify({ device: rt.cuda.info.name, shape: { H, Hkv: HKV, D, chunkSize: C }, rows }, null, 1));
  rt.dispose();
  return rows;
}

runIfDirect(import.meta.url, (argv) => void runBlockSparseBench(argv));
