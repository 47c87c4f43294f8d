/**
 * The block-sparse wgmma kernel at s = 0 (every causal 16-row chunk selected) against dense flash with the
 * same step shape: dense wgmma v3 with 128-key steps (our default dense prefill, the ideal's base) and with
 * 64-key steps (the 192-row block-sparse tiling's shape: three consumers fit 64-key steps only). Session 8
 * left the 192-row kernel at 1.13 × dense whole run and named 64-key steps as one remaining piece; this bench
 * splits that ratio into the step shape (dense n64 / dense n128) and the block-sparse kernel's own cost
 * (kernel / dense n64), in one process on the same data. Shape: Llama-3.1-8B attention (H 32, Hkv 8, D 128),
 * causal, bf16 in / fp32 acc. Order per length: dense n128, dense n64, the block-sparse variants, dense n128
 * again (the drift). Each block-sparse output is checked against dense n128's (every element, first length
 * only; at s = 0 they attend the same keys). The lists hold every chunk (n / 16 per head and chunk), so
 * lengths stay at 32K or below (64K would need 2 GB of lists). Each variant also runs on empty lists (every
 * count 0: no step in any CTA), which leaves the per-CTA cost that no step carries: the two launches, the
 * CTA's start, its Q tile's load and its output's store (zeros); at high s, where a CTA has few steps, that
 * is a large share of the kernel.
 *
 * Usage: node dist/bench/block-sparse-dense-steps.js [--lengths 16384] [--repeats 5]
 *        [--variants wgmma-c3-n64-s3-kv-ms-eb,...] [--out FILE] (--help lists them). Prints a skip
 *        message where there is no CUDA device.
 */
import { writeFileSync } from 'node:fs';
import { cudaUnavailableReason, isCudaAvailable } from '../src/backends/cuda/availability.js';
import { BlockSparseEstimator } from '../src/backends/cuda/kernels/block-sparse-estimate.js';
import { BlockSparseFlashPrefill, allocateChunkLists, releaseChunkLists } from '../src/backends/cuda/kernels/block-sparse-prefill.js';
import { parseBlockSparseWgmmaLabel } from '../src/backends/cuda/kernels/block-sparse-prefill-wgmma.js';
import { FlashPrefill } from '../src/backends/cuda/kernels/flash-prefill.js';
import { ModelOpsKernels } from '../src/backends/cuda/kernels/model-ops.js';
import { CudaRuntime } from '../src/backends/cuda/runtime.js';
import { timeOnDevice } from '../src/backends/cuda/timing.js';
import { downloadBf16, poisonedBf16 } from '../src/backends/cuda/transfer.js';
import { BenchArgsError, defineBenchArgs, int, intList, labels, text } from './bench-args.js';
import { runIfDirect } from './bench-run.js';

const H = 32, HKV = 8, D = 128, C = 16;
const SCALE = 1 / Math.sqrt(D);
/** Lists of every chunk take H · (n / 16)² · 4 bytes: 0.5 GB at 32K. */
const MAX_LENGTH = 32768;

export const DENSE_STEPS_ARGS = defineBenchArgs('block-sparse-dense-steps', 'The block-sparse wgmma kernel at s = 0 against dense flash with 128- and 64-key steps (GPU only).', {
  lengths: intList({ describe: `prompt lengths (at most ${MAX_LENGTH}: every chunk's lists)`, default: [16384], atLeast: C, noun: 'length' }),
  repeats: int({ describe: 'timed calls per kernel', default: 5, atLeast: 1, noun: 'repeat count' }),
  variants: labels({ describe: 'block-sparse wgmma labels (wgmma-[c3-]n<64|128>-s<2-4>[-kv][-flags])', default: ['wgmma-c3-n64-s3-kv-ms-eb'] }),
  out: text({ describe: 'JSON report', placeholder: 'FILE' }),
}, 'node dist/bench/block-sparse-dense-steps.js');

export type DenseStepsOptions = ReturnType<typeof parseDenseStepsArgs>;

/** The options; BenchArgsError for a length past MAX_LENGTH or a label that names no wgmma tiling. */
export function parseDenseStepsArgs(argv: readonly string[]) {
  const o = DENSE_STEPS_ARGS.parse(argv);
  const long = o.lengths.find((n) => n > MAX_LENGTH);
  if (long !== undefined) throw new BenchArgsError(`--lengths: bad length (at most ${MAX_LENGTH}: lists of every chunk) "${long}"`);
  for (const v of o.variants) {
    let tiling;
    try {
      tiling = parseBlockSparseWgmmaLabel(v);
    } catch (e) {
      throw new BenchArgsError(`--variants: ${v}: ${(e as Error).message}`); // flags that do not go together
    }
    if (!tiling) throw new BenchArgsError(`--variants: ${v} is not a block-sparse wgmma label (wgmma-[c3-]n<64|128>-s<2-4>[-kv][-flags])`);
  }
  return o;
}

export interface DenseStepsRow {
  n: number; kernel: string; ms: number;
  /** ms over the first dense n128 timing of the length, and over dense n64's. */
  vsDense128: number; vsDense64: number;
  /** Block-sparse rows (not on empty lists) at the first length: relative difference from dense n128's output. */
  relDiff?: number;
}

/** ‖a − b‖ / ‖b‖ over every element. */
function relativeDifference(a: Float32Array, b: Float32Array): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / den);
}

export function runDenseStepsBench(argv: string[]): DenseStepsRow[] {
  const o = parseDenseStepsArgs(argv);
  if (!isCudaAvailable()) {
    console.log(`block-sparse-dense-steps bench skipped: no CUDA device here (${cudaUnavailableReason()}); would run ${o.variants.join(',')} at n ${o.lengths.join(',')}`);
    return [];
  }
  const rt = new CudaRuntime();
  console.log(`# device: ${rt.cuda.info.name}; H=${H} Hkv=${HKV} D=${D} c=${C}, s = 0; median of ${o.repeats} event-timed runs`);
  const ops = new ModelOpsKernels(rt);
  const shape = { numHeads: H, numKvHeads: HKV, headDim: D };
  const dense128 = new FlashPrefill(rt, shape);
  const dense64 = new FlashPrefill(rt, shape, {}, { wgmma: { version: 3, blockN: 64, order: 'global' } });
  const estimator = new BlockSparseEstimator(rt, shape, C);
  const timing = { warmup: 1, repeats: o.repeats };
  const rows: DenseStepsRow[] = [];
  for (const n of o.lengths) {
    const q = rt.pool.acquire(n * H * D * 2), k = rt.pool.acquire(HKV * n * D * 2), v = rt.pool.acquire(HKV * n * D * 2);
    ops.fillUniform({ x: q.ptr, n: n * H * D, seed: n, mean: 0, halfWidth: 1 });
    ops.fillUniform({ x: k.ptr, n: HKV * n * D, seed: 2 * n + 1, mean: 0, halfWidth: 1 });
    ops.fillUniform({ x: v.ptr, n: HKV * n * D, seed: 3 * n + 2, mean: 0, halfWidth: 1 });
    const out = poisonedBf16(rt, n * H * D);
    const common = { q: q.ptr, k: k.ptr, v: v.ptr, out: out.ptr, numQueries: n, kvLen: n, kvStride: n, scale: SCALE };
    const first = n === o.lengths[0];
    const time = (run: () => void) => timeOnDevice(rt, run, timing).medianMs;
    const d128 = time(() => dense128.run({ ...common, queryStart: 0 }));
    const reference = first ? downloadBf16(rt, out, n * H * D) : null;
    const d64 = time(() => dense64.run({ ...common, queryStart: 0 }));
    const row = (kernel: string, ms: number, relDiff?: number): DenseStepsRow => {
      const r = { n, kernel, ms, vsDense128: ms / d128, vsDense64: ms / d64, ...(relDiff === undefined ? {} : { relDiff }) };
      rows.push(r);
      console.log(`  n=${n} ${kernel}: ${ms.toFixed(3)} ms, ${r.vsDense128.toFixed(3)} x dense n128, ${r.vsDense64.toFixed(3)} x dense n64` +
        (relDiff === undefined ? '' : `, rel diff vs dense n128 ${relDiff.toExponential(2)}`));
      return r;
    };
    row('dense-n128', d128);
    row('dense-n64', d64);
    const numChunks = Math.ceil(n / C);
    const lists = allocateChunkLists(rt, H, n, C, numChunks);
    estimator.run({ q: q.ptr, k: k.ptr, kvStride: n, numTokens: n, lists }); // t = every chunk: all causal chunks
    const empty = allocateChunkLists(rt, H, n, C, 1);
    rt.cuda.fill16Async(empty.counts.ptr, 0, 2 * H * numChunks, rt.stream); // int32 counts of 0
    for (const label of o.variants) {
      const tiling = parseBlockSparseWgmmaLabel(label);
      if (!tiling) throw new Error(`not a wgmma label: ${label}`); // parseDenseStepsArgs checked them
      const kernel = new BlockSparseFlashPrefill(rt, shape, { wgmma: tiling });
      let relDiff: number | undefined;
      if (reference) {
        rt.cuda.fill16Async(out.ptr, 0x7fc0, n * H * D, rt.stream);
        kernel.run({ ...common, lists });
        relDiff = relativeDifference(downloadBf16(rt, out, n * H * D), reference);
        if (!(relDiff < 2e-3)) throw new Error(`${label} at s = 0 differs from dense n128 by ${relDiff} (n=${n})`);
      }
      row(label, time(() => kernel.run({ ...common, lists })), relDiff);
      row(`${label} on empty lists`, time(() => kernel.run({ ...common, lists: empty })));
      rt.synchronize();
      kernel.release();
    }
    row('dense-n128 again', time(() => dense128.run({ ...common, queryStart: 0 })));
    rt.synchronize();
    releaseChunkLists(rt, lists);
    releaseChunkLists(rt, empty);
    for (const b of [q, k, v, out]) rt.pool.release(b);
    rt.pool.trim();
  }
  estimator.release();
  if (o.out) writeFileSync(o.out, JSON.stringify({ device: rt.cuda.info.name, shape: { H, Hkv: HKV, D, chunkSize: C }, rows }, null, 1));
  rt.dispose();
  return rows;
}

runIfDirect(import.meta.url, (argv) => void runDenseStepsBench(argv));
