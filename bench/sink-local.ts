/**
 * Sink + local prefill's window kernel (flash-prefill-wgmma-sink-local.ts) in its variants side by
 * side: dense flash prefill, the plain window kernel (no variant flag: session 7's) and each variant
 * (SinkLocalWindowVariant),
 * on bench sparse's inputs (Llama-3.1-8B heads: H 32, Hkv 8, D 128; random bf16 q/k/v; the whole prompt
 * in one call) at each n and s. Per case:
 *   call ms    one method call timed alone by events, host launch included (bench sparse's "attention"
 *              column; mask 'off' runs the kernel alone, the method refuses it), median of 2 · repeats;
 *   kernel ms  3 calls back to back between events (no host gap between launches), per call, median of
 *              2 · repeats; both in interleaved rounds, the variants' order rotated each round;
 *   / ideal    call ms over (1 − s) · dense call ms, as bench sparse;
 *   model      the tile count per block and the predicted variant / plain ratio (bench/sink-local-model.ts);
 *   diff       largest |variant − plain| over the first and last 256 rows (bf16), a check that the
 *              variant computes the same attention (the GPU tests check it against the CPU method).
 *
 * Usage: node dist/bench/sink-local.js [--lengths 16384,32768,65536] [--sparsities 0.5,0.8,0.9,0.95]
 *        [--variants plain,fold,persist,fold-persist,fold-lean,fold-bits,fold-nomask] [--repeats 5] [--out FILE]
 * Prints a skip line where there is no CUDA device, or the GPU is not a Hopper one.
 */
import { writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { cudaUnavailableReason, isCudaAvailable } from '../src/backends/cuda/availability.js';
import { BF16_NAN_BITS, fromBf16 } from '../src/backends/cuda/bf16.js';
import {
  type SinkLocalWindowVariant, WgmmaSinkLocalPrefill, sinkLocalKernelRule,
} from '../src/backends/cuda/kernels/flash-prefill-wgmma-sink-local.js';
import { wgmmaPrefillUnsupported } from '../src/backends/cuda/kernels/flash-prefill-wgmma.js';
import { ModelOpsKernels } from '../src/backends/cuda/kernels/model-ops.js';
import { DeviceLayerKvCache } from '../src/backends/cuda/kv-cache.js';
import type { DevicePrefillCall, DevicePrefillMethod } from '../src/backends/cuda/methods/contract.js';
import { densePrefillDeviceFactory } from '../src/backends/cuda/methods/dense.js';
import { SinkLocalDevicePrefill, sinkLocalRuleFrom } from '../src/backends/cuda/methods/sink-local-prefill.js';
import { CudaRuntime } from '../src/backends/cuda/runtime.js';
import { timeOnDevice } from '../src/backends/cuda/timing.js';
import { parseModelConfig } from '../src/engine/config.js';
import { MODEL_SHAPES } from './model.js';
import { predictedWindowKernelMs, windowKernelWork } from './sink-local-model.js';
import { hasNaN, measurePrefill, median } from './sparse-prefill-measure.js';

/** The variants by name: 'plain' sets no flag (the kernel of session 7), the others one or two. */
export const WINDOW_VARIANTS: Record<string, SinkLocalWindowVariant> = {
  plain: {},
  fold: { foldSinks: true },
  persist: { persistent: true },
  'fold-persist': { foldSinks: true, persistent: true },
  'fold-lean': { foldSinks: true, mask: 'lean' },
  'fold-bits': { foldSinks: true, mask: 'bits' },
  // Timing only (wrong outputs, no method call): what the mask costs at most.
  'fold-nomask': { foldSinks: true, mask: 'off' },
};

interface Options { lengths: number[]; sparsities: number[]; variants: string[]; repeats: number; out: string | null }

export function parseSinkLocalBenchArgs(argv: string[]): Options {
  const o: Options = { lengths: [16384, 32768, 65536], sparsities: [0.5, 0.8, 0.9, 0.95], variants: ['plain', 'fold'], repeats: 5, out: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    const numbers = (s: string, ok: (x: number) => boolean, what: string): number[] => s.split(',').map((x) => {
      const v = Number(x);
      if (x.trim() === '' || !ok(v)) throw new Error(`${a}: bad ${what} "${x}"`);
      return v;
    });
    if (a === '--lengths') o.lengths = numbers(next(), (v) => Number.isInteger(v) && v >= 128, 'length (an integer >= 128)');
    else if (a === '--sparsities') o.sparsities = numbers(next(), (v) => v >= 0 && v < 1, 'sparsity (in [0, 1))');
    else if (a === '--variants') {
      o.variants = next().split(',');
      const unknown = o.variants.filter((v) => !Object.hasOwn(WINDOW_VARIANTS, v));
      if (unknown.length || o.variants[0] !== 'plain') {
        throw new Error(`--variants: 'plain' first, then any of ${Object.keys(WINDOW_VARIANTS).join(', ')} (got ${o.variants.join(',')})`);
      }
    } else if (a === '--repeats') [o.repeats] = numbers(next(), (v) => Number.isInteger(v) && v >= 1, 'repeat count');
    else if (a === '--out') o.out = next();
    else throw new Error(`unknown argument ${a} (see bench/sink-local.ts)`);
  }
  return o;
}

export interface SinkLocalBenchRow {
  n: number; s: number; variant: string; denseMs: number; callMs: number; kernelMs: number; ratio: number;
  tilesPerBlock: number; sinkTiles: number; foldedBlocks: number; computedOverAttended: number;
  /** Model: this variant's predicted kernel ms over the plain kernel's. */
  predictedVsPlain: number;
  /** Measured kernel (and call) ms over the plain kernel's, and the largest output difference from its output. */
  kernelVsPlain: number; callVsPlain: number; maxDiff: number;
}

async function main(argv: string[]): Promise<number> {
  const o = parseSinkLocalBenchArgs(argv);
  if (!isCudaAvailable()) {
    console.log(`sink-local bench skipped: no CUDA device here (${cudaUnavailableReason()})`);
    return 0;
  }
  const rt = new CudaRuntime();
  const config = parseModelConfig(MODEL_SHAPES['llama3.1-8b'], 'llama3.1-8b');
  const unsupported = wgmmaPrefillUnsupported(rt.cuda.info, config.headDim);
  if (unsupported) {
    console.log(`sink-local bench skipped: ${unsupported}`);
    rt.dispose();
    return 0;
  }
  const H = config.numHeads, Hkv = config.numKvHeads, D = config.headDim;
  const shape = { numHeads: H, numKvHeads: Hkv, headDim: D, scale: config.attentionScale };
  const ops = new ModelOpsKernels(rt);
  const rows: SinkLocalBenchRow[] = [];
  const t0 = performance.now();
  console.log(`device: ${rt.cuda.info.name}; H ${H}, Hkv ${Hkv}, D ${D}; variants ${o.variants.join(', ')}; repeats ${o.repeats}`);
  let seed = 7;
  for (const n of o.lengths) {
    const q = rt.pool.acquire(n * H * D * 2);
    const outs = o.variants.map(() => rt.pool.acquire(n * H * D * 2));
    const cache = new DeviceLayerKvCache(rt, Hkv, D, n);
    try {
      ops.fillUniform({ x: q.ptr, n: n * H * D, seed: seed++, mean: 0, halfWidth: 1 });
      ops.fillUniform({ x: cache.keys.ptr, n: Hkv * n * D, seed: seed++, mean: 0, halfWidth: 1 });
      ops.fillUniform({ x: cache.values.ptr, n: Hkv * n * D, seed: seed++, mean: 0, halfWidth: 1 });
      cache.length = n;
      const callInto = (out: bigint): DevicePrefillCall => ({
        layer: 0, shape, q: q.ptr, qRowStride: H * D, numQueries: n, queryStart: 0, cache, out, isLastChunk: true,
      });
      const dense = densePrefillDeviceFactory.create(rt, config, {}) as DevicePrefillMethod;
      const denseMs = measurePrefill(rt, dense, callInto(outs[0].ptr), o.repeats).attentionMs;
      console.log(`n=${n} dense: ${denseMs.toFixed(3)} ms`);
      for (const s of o.sparsities) {
        const rule = sinkLocalRuleFrom({ sparsity: s });
        // The method for each variant, or for mask 'off' (refused by the method) the kernel alone.
        const methods = o.variants.map((name) => (WINDOW_VARIANTS[name].mask === 'off' ? null
          : new SinkLocalDevicePrefill(rt, shape, rule, 'window', WINDOW_VARIANTS[name])));
        const launchers = o.variants.map((name, v) => {
          const m = methods[v];
          if (m !== null) return (out: bigint) => { m.prefill(callInto(out)); };
          const kernel = new WgmmaSinkLocalPrefill(rt, shape, {}, WINDOW_VARIANTS[name]);
          const kernelRule = sinkLocalKernelRule(rule);
          return (out: bigint) => kernel.run({
            q: q.ptr, qRowStride: H * D, k: cache.keys.ptr, v: cache.values.ptr, out, numQueries: n, queryStart: 0, kvLen: n,
            kvStride: cache.capacity, scale: shape.scale,
          }, kernelRule);
        });
        // Each variant's first call on poisoned outputs, checked for NaN (and its kernel compiled).
        for (let v = 0; v < o.variants.length; v++) checkedCall(rt, launchers[v], outs[v].ptr, n, H * D, o.variants[v]);
        // Interleaved rounds, the variants in a rotated order each round, so that the GPU's clock and
        // temperature over the run weigh on every variant alike (round 1 timed them one after another:
        // the variants in the middle of the sequence read up to 10 % slow at 64K).
        const callMs: number[][] = o.variants.map(() => []), kernelMs: number[][] = o.variants.map(() => []);
        for (let r = 0; r < 2 * o.repeats; r++) {
          for (let k = 0; k < o.variants.length; k++) {
            const v = (k + r) % o.variants.length;
            // call: one call alone between events, host launch included (bench sparse's attention column);
            // kernel: KERNEL_BURST calls back to back (no host gap between launches), per call.
            callMs[v].push(timeOnDevice(rt, () => launchers[v](outs[v].ptr), { warmup: 0, repeats: 1 }).medianMs);
            kernelMs[v].push(timeOnDevice(rt, () => { for (let b = 0; b < KERNEL_BURST; b++) launchers[v](outs[v].ptr); }, { warmup: 0, repeats: 1 }).medianMs / KERNEL_BURST);
          }
        }
        const sampled = o.variants.map((_, v) => sampledRows(rt, outs[v].ptr, n, H * D));
        const plainWork = windowKernelWork(rule, 0, n, { blockN: 128, foldSinks: false, persistent: false });
        const plainPredicted = predictedWindowKernelMs(plainWork, H);
        for (let v = 0; v < o.variants.length; v++) {
          const variant = WINDOW_VARIANTS[o.variants[v]];
          const work = windowKernelWork(rule, 0, n, { blockN: 128, foldSinks: variant.foldSinks ?? false, persistent: variant.persistent ?? false });
          const call = median(callMs[v]), kernel = median(kernelMs[v]);
          const row: SinkLocalBenchRow = {
            n, s, variant: o.variants[v], denseMs, callMs: call, kernelMs: kernel, ratio: call / ((1 - s) * denseMs),
            tilesPerBlock: work.tiles / work.blocks, sinkTiles: work.sinkTiles, foldedBlocks: work.foldedBlocks,
            computedOverAttended: work.computedPairs / work.attendedPairs,
            predictedVsPlain: predictedWindowKernelMs(work, H) / plainPredicted,
            kernelVsPlain: kernel / median(kernelMs[0]), callVsPlain: call / median(callMs[0]), maxDiff: maxAbsDiff(sampled[v], sampled[0]),
          };
          rows.push(row);
          console.log(`n=${n} s=${s} ${row.variant.padEnd(7)}: call ${call.toFixed(3)} ms (${row.ratio.toFixed(2)}x ideal), kernel ${row.kernelMs.toFixed(3)} ms, ` +
            `vs plain ${row.kernelVsPlain.toFixed(3)} (call ${row.callVsPlain.toFixed(3)}, model ${row.predictedVsPlain.toFixed(3)}); ${row.tilesPerBlock.toFixed(2)} tiles/block, ` +
            `computed/attended ${row.computedOverAttended.toFixed(3)}, folded ${work.foldedBlocks}/${work.blocks}; max diff ${row.maxDiff.toExponential(1)}`);
        }
        for (const m of methods) m?.reset();
      }
    } finally {
      rt.synchronize();
      cache.release();
      rt.pool.release(q);
      for (const b of outs) rt.pool.release(b);
      rt.pool.trim();
    }
  }
  console.log('\n| n | s | variant | call ms | / ideal | kernel ms | vs plain | call vs plain | model | tiles / block | computed / attended | max diff |');
  console.log('| --: | --: | --- | --: | --: | --: | --: | --: | --: | --: | --: | --: |');
  for (const r of rows) {
    console.log(`| ${r.n} | ${r.s} | ${r.variant} | ${r.callMs.toFixed(3)} | ${r.ratio.toFixed(2)} | ${r.kernelMs.toFixed(3)} | ${r.kernelVsPlain.toFixed(3)} | ${r.callVsPlain.toFixed(3)} | ` +
      `${r.predictedVsPlain.toFixed(3)} | ${r.tilesPerBlock.toFixed(2)} | ${r.computedOverAttended.toFixed(3)} | ${r.maxDiff.toExponential(1)} |`);
  }
  const seconds = (performance.now() - t0) / 1000;
  console.log(`total ${seconds.toFixed(1)} s`);
  if (o.out) writeFileSync(o.out, JSON.stringify({ device: rt.cuda.info, options: o, rows, seconds }, null, 2));
  rt.dispose();
  const checked = rows.filter((r) => WINDOW_VARIANTS[r.variant].mask !== 'off');
  return checked.every((r) => Number.isFinite(r.maxDiff) && r.maxDiff < 0.05) ? 0 : 1;
}

/** Calls timed back to back for the kernel time (one event pair around them). */
const KERNEL_BURST = 3;

/** Poisons the output [n, rowElements], runs one call and throws when its first or last 64 rows hold a NaN. */
function checkedCall(rt: CudaRuntime, launch: (out: bigint) => void, out: bigint, n: number, rowElements: number, label: string): void {
  rt.cuda.fill16Async(out, BF16_NAN_BITS, n * rowElements, rt.stream);
  launch(out);
  const rows = Math.min(64, n);
  if (hasNaN(rt, out, 0, rows, rowElements) || hasNaN(rt, out, n - rows, rows, rowElements)) throw new Error(`${label}: NaN in the output rows checked`);
}

/** The first and last 256 rows of an [n, rowElements] bf16 output, as floats. */
function sampledRows(rt: CudaRuntime, ptr: bigint, n: number, rowElements: number): Float32Array {
  rt.synchronize();
  const rows = Math.min(256, n);
  const bits = new Uint16Array(2 * rows * rowElements);
  rt.cuda.download(bits.subarray(0, rows * rowElements), ptr);
  rt.cuda.download(bits.subarray(rows * rowElements), ptr + BigInt((n - rows) * rowElements * 2));
  return fromBf16(bits);
}

/** Largest |a − b| (NaN anywhere gives NaN). */
function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= m)) m = d;
  }
  return m;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv.slice(2)).then((code) => process.exit(code), (err) => {
    console.error(err);
    process.exit(1);
  });
}
