/**
 * Vertical-Slash prefill on the GPU, timed against our dense flash prefill: validate, then time.
 * Shape: Llama-3.1-8B attention (H = 32, Hkv = 8, D = 128), one sequence, causal, bf16 in / fp32 acc,
 * uniform random q, k, v made on the device (the estimate then picks scattered diagonals: each costs a
 * 64-wide range through the whole prompt, the pattern's expensive case).
 * For each n and target sparsity s: the counts come from the method's own search (one common count
 * for columns and diagonals, then columns; each probe's pairs counted on the device); then
 *   estimation  the last-256-query estimate plus the selection and index build with those counts
 *   kernel      the sparse attention over that index
 *   dense       FlashPrefill over the whole causal triangle
 * and the ratio of kernel (and kernel + estimation) to the ideal (1 − s_achieved)·dense, s_achieved from
 * the exact attended pairs. Then sink + local (4 sinks, the per-query window of s) through the same
 * kernel with its per-row window, kernel only (its index is a host-built range per block). Validation (first length only): sampled rows of the output against a
 * float64 softmax over the keys the downloaded index lists; outputs are poisoned first.
 *
 * --wgmma 3 (stage counts, comma-separated) also times the Hopper wgmma kernel
 * (vertical-slash-prefill-wgmma.ts) with those stages, validated and timed as the mma.sync row tilings,
 * sink + local included (on a GPU that is not Hopper the flag is refused). --mma 1 (row tilings,
 * default 1,2) picks the mma.sync tilings timed beside it.
 *
 * Usage: node dist/bench/vertical-slash.js [--lengths 16384,32768,65536,131072]
 *        [--sparsities 0.5,0.8,0.9,0.95] [--repeats N] [--wgmma 2,3,4] [--mma 1,2] [--out FILE] (--help). Prints a skip message
 *        without a GPU.
 */
import { writeFileSync } from 'node:fs';
import { cudaUnavailableReason, isCudaAvailable } from '../src/backends/cuda/availability.js';
import { FlashPrefill } from '../src/backends/cuda/kernels/flash-prefill.js';
import { ModelOpsKernels } from '../src/backends/cuda/kernels/model-ops.js';
import { VerticalSlashEstimator } from '../src/backends/cuda/kernels/vertical-slash-estimate.js';
import {
  type DeviceVerticalSlashIndex, VerticalSlashIndexBuilder, downloadVerticalSlashLayout,
} from '../src/backends/cuda/kernels/vertical-slash-index.js';
import {
  type VerticalSlashKernelChoice, VerticalSlashFlashPrefill, type VerticalSlashRowTiles,
} from '../src/backends/cuda/kernels/vertical-slash-prefill.js';
import type { VerticalSlashWgmmaTiling } from '../src/backends/cuda/kernels/vertical-slash-prefill-wgmma.js';
import type { DeviceBuffer } from '../src/backends/cuda/memory-pool.js';
import { CudaRuntime } from '../src/backends/cuda/runtime.js';
import { timeOnDevice } from '../src/backends/cuda/timing.js';
import { downloadBf16, poisonedBf16 } from '../src/backends/cuda/transfer.js';
import { SinkLocalDevicePrefill } from '../src/backends/cuda/methods/sink-local-prefill.js';
import { chooseVerticalSlashCounts } from '../src/backends/cuda/vertical-slash-counts.js';
import { defineBenchArgs, intList } from './bench-args.js';
import { runIfDirect } from './bench-run.js';
import { type HostInputs, kernelBenchOptions, sampledRowsError } from './gpu-bench-util.js';

const H = 32, HKV = 8, D = 128, A = 256;
const SCALE = 1 / Math.sqrt(D);
/** Attention kernel row tilings timed side by side (rows per warp / 16). */
const ROW_TILES: VerticalSlashRowTiles[] = [1, 2];

export interface VerticalSlashBenchRow {
  n: number; requested: number; achieved: number; verticalSize: number; slashSize: number;
  /** 'm1', 'm2' (mma.sync rows per warp / 16) or 'wgmma-s3' (the Hopper kernel's stages). */
  kernel: string;
  kernelMs: number; estimationMs: number; searchMs: number; denseMs: number; idealMs: number; ratio: number; ratioWithEstimation: number;
}

/** Relative error of sampled (query, head) rows against a float64 softmax over the listed keys. */
function validateRows(rt: CudaRuntime, n: number, x: HostInputs, out: DeviceBuffer, index: DeviceVerticalSlashIndex): number {
  const got = downloadBf16(rt, out, n * H * D);
  const layout = downloadVerticalSlashLayout(rt, index);
  return sampledRowsError(x, n, got, { H, Hkv: HKV, D, scale: SCALE }, [0, 63, 64, 1000, Math.floor(n / 2) + 5, n - 1], [0, 5, 31], (h, t) => {
    const m = Math.floor(t / 64);
    const keys: number[] = [...layout.columns[h][m]];
    const r = layout.ranges[h][m];
    for (let i = 0; i < r.length; i += 2) for (let key = r[i]; key < Math.min(r[i + 1], t + 1); key++) keys.push(key);
    return keys;
  });
}

/** The command line (`--help` prints it): the kernel benches' grid, the wgmma stage counts and the mma.sync row tilings. */
export const VERTICAL_SLASH_ARGS = defineBenchArgs('vertical-slash', 'Vertical-Slash prefill kernels on the GPU against dense flash, validated first (GPU only).', {
  ...kernelBenchOptions(3, A),
  wgmma: intList({ describe: 'also time the Hopper wgmma kernel with these stage counts', placeholder: 'STAGES,...', default: [], defaultText: null, oneOf: [2, 3, 4], noun: 'stage count' }),
  mma: intList({ describe: 'mma.sync row tilings timed', placeholder: 'TILES,...', default: ROW_TILES, oneOf: [1, 2], noun: 'row tiling' }),
}, 'node dist/bench/vertical-slash.js');

export function parseVerticalSlashArgs(argv: string[]) {
  const { wgmma, mma, ...kernel } = VERTICAL_SLASH_ARGS.parse(argv);
  // oneOf above admits exactly these values.
  return { ...kernel, wgmmaStages: wgmma as VerticalSlashWgmmaTiling['stages'][], rowTiles: mma as VerticalSlashRowTiles[] };
}

export function runVerticalSlashBench(argv: string[]): VerticalSlashBenchRow[] {
  // Arguments first, so a bad one is refused on a machine without a GPU too.
  const { wgmmaStages, rowTiles, ...o } = parseVerticalSlashArgs(argv);
  if (!isCudaAvailable()) {
    console.log(`vertical-slash bench skipped: no CUDA device here (${cudaUnavailableReason()})`);
    return [];
  }
  const rt = new CudaRuntime();
  console.log(`# device: ${rt.cuda.info.name}; H=${H} Hkv=${HKV} D=${D} A=${A}; median of ${o.repeats} event-timed runs`);
  const ops = new ModelOpsKernels(rt);
  const shape = { numHeads: H, numKvHeads: HKV, headDim: D };
  const dense = new FlashPrefill(rt, shape);
  const estimator = new VerticalSlashEstimator(rt, shape);
  const builder = new VerticalSlashIndexBuilder(rt, H);
  const choices: VerticalSlashKernelChoice[] = [...rowTiles, ...wgmmaStages.map((stages) => ({ wgmma: { stages } }))];
  const kernels = choices.map((choice) => new VerticalSlashFlashPrefill(rt, shape, choice));
  const rows: VerticalSlashBenchRow[] = [];
  const sinkLocalRows: { n: number; requested: number; achieved: number; kernel: string; kernelMs: number; denseMs: number; idealMs: number; ratio: number }[] = [];
  const timing = { warmup: 1, repeats: o.repeats };
  for (const n of o.lengths) {
    const q = rt.pool.acquire(n * H * D * 2), k = rt.pool.acquire(HKV * n * D * 2), v = rt.pool.acquire(HKV * n * D * 2);
    ops.fillUniform({ x: q.ptr, n: n * H * D, seed: n, mean: 0, halfWidth: 2 });
    ops.fillUniform({ x: k.ptr, n: HKV * n * D, seed: 2 * n + 1, mean: 0, halfWidth: 2 });
    ops.fillUniform({ x: v.ptr, n: HKV * n * D, seed: 3 * n + 2, mean: 0, halfWidth: 1 });
    const out = poisonedBf16(rt, n * H * D);
    const denseMs = timeOnDevice(rt, () => dense.run({ q: q.ptr, k: k.ptr, v: v.ptr, out: out.ptr, numQueries: n, queryStart: 0, kvLen: n, kvStride: n, scale: SCALE }), timing).medianMs;
    console.log(`# n=${n}: dense flash ${denseMs.toFixed(3)} ms`);
    const host: HostInputs | null = n === o.lengths[0]
      ? { q: downloadBf16(rt, q, n * H * D), k: downloadBf16(rt, k, HKV * n * D), v: downloadBf16(rt, v, HKV * n * D) }
      : null;
    const estimateArgs = { q: q.ptr, k: k.ptr, kvStride: n, n, approximation: A, scale: SCALE };
    const scores = estimator.run(estimateArgs);
    for (const s of o.sparsities) {
      const t0 = performance.now();
      const choice = chooseVerticalSlashCounts(n, H, s, (kv, ks) =>
        builder.countPairs(scores, { vertical: new Int32Array(H).fill(kv), slash: new Int32Array(H).fill(ks) }).reduce((a, b) => a + b, 0));
      const searchMs = performance.now() - t0;
      const counts = { vertical: new Int32Array(H).fill(choice.verticalSize), slash: new Int32Array(H).fill(choice.slashSize) };
      let index = builder.build(scores, counts);
      const estimationMs = timeOnDevice(rt, () => {
        estimator.run(estimateArgs);
        index = builder.build(scores, counts);
      }, timing).medianMs;
      const achieved = 1 - index.pairs.reduce((a, b) => a + b, 0) / (H * (n * (n + 1)) / 2);
      for (const kernel of kernels) {
        const run = () => kernel.run({ q: q.ptr, k: k.ptr, v: v.ptr, kvStride: n, out: out.ptr, numQueries: n, index, scale: SCALE });
        if (host) {
          rt.cuda.fill16Async(out.ptr, 0x7fc0, n * H * D, rt.stream);
          run();
          const err = validateRows(rt, n, host, out, index);
          if (!(err < 1e-2)) throw new Error(`validation failed: n=${n} s=${s} ${kernel.label}: relative error ${err}`);
          console.log(`#   validated s=${s} ${kernel.label}: sampled rows rel err ${err.toExponential(2)}`);
        }
        const kernelMs = timeOnDevice(rt, run, timing).medianMs;
        const idealMs = (1 - achieved) * denseMs;
        const row: VerticalSlashBenchRow = {
          n, requested: s, achieved, verticalSize: choice.verticalSize, slashSize: choice.slashSize, kernel: kernel.label, kernelMs,
          estimationMs, searchMs, denseMs, idealMs, ratio: kernelMs / idealMs, ratioWithEstimation: (kernelMs + estimationMs) / idealMs,
        };
        rows.push(row);
        console.log(`  n=${n} s=${s} (achieved ${achieved.toFixed(3)}, counts ${choice.verticalSize}/${choice.slashSize}, ` +
          `${index.totalColumns} listed columns) ${kernel.label}: kernel ${kernelMs.toFixed(3)} ms, estimation ${estimationMs.toFixed(3)} ms, ` +
          `search ${searchMs.toFixed(0)} ms, dense ${denseMs.toFixed(3)} ms, kernel/ideal ${row.ratio.toFixed(2)}, ` +
          `(kernel+est)/ideal ${row.ratioWithEstimation.toFixed(2)}`);
      }
    }
    // Sink + local (4 sinks, per-query window for s) through the same kernel with a per-row window.
    for (const s of o.sparsities) {
      const sinkLocal = new SinkLocalDevicePrefill(rt, shape, { sinkTokens: 4, localWindow: null, sparsity: s });
      const prepared = sinkLocal.prepareIndex(0, n);
      const achieved = 1 - prepared.pairs.attended / prepared.pairs.dense;
      const args = { q: q.ptr, k: k.ptr, v: v.ptr, kvStride: n, out: out.ptr, numQueries: n, scale: SCALE };
      const idealMs = (1 - achieved) * denseMs;
      // The method's own kernel (the default), then each wgmma variant over the same prepared index.
      const runs: [string, () => void][] = [['default', () => sinkLocal.runPrepared(args, prepared)],
        ...kernels.filter((kn) => kn.label.startsWith('wgmma')).map((kn): [string, () => void] =>
          [kn.label, () => kn.run({ ...args, index: prepared.index, rowWindow: prepared.rowWindow })])];
      for (const [label, run] of runs) {
        const kernelMs = timeOnDevice(rt, run, timing).medianMs;
        sinkLocalRows.push({ n, requested: s, achieved, kernel: label, kernelMs, denseMs, idealMs, ratio: kernelMs / idealMs });
        console.log(`  sink-local n=${n} s=${s} (achieved ${achieved.toFixed(3)}) ${label}: kernel ${kernelMs.toFixed(3)} ms, ideal ${idealMs.toFixed(3)} ms, ` +
          `kernel/ideal ${(kernelMs / idealMs).toFixed(2)}`);
      }
      sinkLocal.reset();
    }
    rt.synchronize();
    for (const b of [q, k, v, out]) rt.pool.release(b);
    estimator.release();
    builder.release();
    rt.pool.trim();
  }
  console.log('\n| n | s (achieved) | counts v/s | kernel | kernel ms | estimation ms | dense ms | (1−s)·dense | kernel / ideal | (kernel+est) / ideal |');
  console.log('| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of rows) {
    console.log(`| ${r.n} | ${r.requested} (${r.achieved.toFixed(3)}) | ${r.verticalSize}/${r.slashSize} | ${r.kernel} | ${r.kernelMs.toFixed(2)} | ` +
      `${r.estimationMs.toFixed(2)} | ${r.denseMs.toFixed(2)} | ${r.idealMs.toFixed(2)} | ${r.ratio.toFixed(2)} | ${r.ratioWithEstimation.toFixed(2)} |`);
  }
  console.log('\n| sink-local n | s (achieved) | kernel | kernel ms | dense ms | (1−s)·dense | kernel / ideal |');
  console.log('| ---: | --- | --- | ---: | ---: | ---: | ---: |');
  for (const r of sinkLocalRows) {
    console.log(`| ${r.n} | ${r.requested} (${r.achieved.toFixed(3)}) | ${r.kernel} | ${r.kernelMs.toFixed(2)} | ${r.denseMs.toFixed(2)} | ${r.idealMs.toFixed(2)} | ${r.ratio.toFixed(2)} |`);
  }
  if (o.out) writeFileSync(o.out, JSON.stringify({ device: rt.cuda.info.name, shape: { H, Hkv: HKV, D, A }, rows, sinkLocalRows }, null, 1));
  rt.dispose();
  return rows;
}

runIfDirect(import.meta.url, (argv) => void runVerticalSlashBench(argv));
