/**
 * CUDA attention benchmark: validate first, then time.
 *   prefill: dense causal flash attention, n = T queries against n keys, TFLOP/s per variant: the
 *            mma.sync kernel's tilings and, on sm_90, the wgmma kernel's; validated on sampled query
 *            rows against the CPU reference.
 *   decode:  one token over an n-row cache, achieved bandwidth next to a device-to-device copy of the
 *            same bytes, both timed as graph replays (device time); validated against the CPU reference.
 * Writes a JSON report (--out) and, with --check-dir, the inputs and each prefill variant's output at
 * the first length (DIR/<variant>/) for tools/peers/sdpa_attention.py to compare with PyTorch SDPA.
 *
 * Usage: npm run bench -- attention [options], or node dist/bench/attention.js [options]; --help lists
 *        them (ATTENTION_ARGS below). Prints a skip message where there is no CUDA device.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cudaUnavailableReason, isCudaAvailable } from '../src/backends/cuda/availability.js';
import { bf16BitsToFloat } from '../src/backends/cuda/bf16.js';
import { DecodeAttentionKernel, type DecodeTuning, decodeBytes, decodeTuningLabel } from '../src/backends/cuda/kernels/decode-attention.js';
import { FlashPrefill, type PrefillKernelChoice, type PrefillTiling, causalPrefillFlops } from '../src/backends/cuda/kernels/flash-prefill.js';
import { wgmmaPrefillUnsupported } from '../src/backends/cuda/kernels/flash-prefill-wgmma.js';
import { Cublas } from '../src/backends/cuda/cublas.js';
import { CudaRuntime } from '../src/backends/cuda/runtime.js';
import { timeGraphOnDevice, timeOnDevice } from '../src/backends/cuda/timing.js';
import { downloadBf16, poisonedBf16 } from '../src/backends/cuda/transfer.js';
import { ScoreScratch, attendRowRange } from '../src/backends/cpu/attention-kernels.js';
import { type BenchOptionsOf, defineBenchArgs, int, intList, labels, text } from './bench-args.js';
import { benchEntry, runIfDirect } from './bench-run.js';
import { randomBf16Words, upload } from './gpu-bench-util.js';

const H = 32, HKV = 8, D = 128;
const SCALE = 1 / Math.sqrt(D);
/** Dense bf16 tensor-core peak of an H100 SXM (datasheet) and its HBM3 bandwidth: the floors. */
const PEAK_TFLOPS = 990;
const PEAK_TBPS = 3.35;
/** One prefill kernel timed side by side with the others: an mma.sync tiling or a wgmma one. */
interface PrefillVariant { tiling: Partial<PrefillTiling>; choice: PrefillKernelChoice }
/**
 * Variants timed side by side, each also writing SDPA check files at the first length (one folder per
 * variant). wgmma variants run only on sm_90 (skipped with the reason elsewhere).
 */
// (v4 run of docs/perf.md also timed w8m2n64, w8m2n64g and w8m2n32: 3-35% slower, dropped; the v4 runs
// timed v3's head-by-head order w4m2n64: within noise at >= 32K, slower at 4K. The wgmma runs also timed
// v3 with 3 stages, 64-key tiles, the head-by-head order and Q in registers (wgmma3-n128g-s3,
// wgmma3-n64g, wgmma3-n128, wgmma3-n128g-qr[-wa]): none faster than the default, docs/perf.md.)
const PREFILL_VARIANTS: PrefillVariant[] = [
  { tiling: { warps: 4, mTiles: 2, blockN: 64, order: 'global' }, choice: 'mma' }, // mma.sync v4
  { tiling: {}, choice: { wgmma: { version: 1, blockN: 128, order: 'global' } } }, // wgmma v1
  { tiling: {}, choice: { wgmma: { version: 2, blockN: 128, order: 'global' } } }, // wgmma v2
  { tiling: {}, choice: { wgmma: { version: 3, blockN: 128, order: 'global', warpArrivals: false } } }, // wgmma v3 as first run
  { tiling: {}, choice: { wgmma: { version: 3, blockN: 128, order: 'global' } } }, // v3 with warp arrivals: the default
];
/**
 * Decode variants timed side by side at every length: v6 (t256u2w1c: register double buffering, fold
 * combine, the default) and the v7 candidate that was not kept: rows through a ring of 4 or 8
 * shared-memory stages filled by bulk copies (b4, b8; b8 fits one block per SM). Earlier runs also
 * timed v5's combine, the programmatic-dependent fold (pc), t128u2c, the in-kernel merges (f, fh), a
 * 6-stage ring, the ring with 128-thread blocks, L2 prefetch ahead of the loads and chunks of any row
 * count filling the wave exactly: none faster than v6 at 8K (docs/perf.md). v8: one launch of
 * thread-block clusters merging through distributed shared memory: a cluster of 16 blocks of 512
 * threads per KV head (k16, one block per SM, 128 blocks), or two clusters per KV head each serving
 * half its query heads (s2: 16 blocks of 256 threads, or 8 of 512; K and V read twice, the second
 * time mostly from L2; the v8 calls timed those too, now dropped from the list); slower than v6 at every
 * n (only 7 clusters of 16 SMs fit an H100 at once; docs/perf.md, decode v8). --decode-variants
 * LABEL,... times a subset; --decode-kv-heads 7 gives a shape whose 7 clusters fit one wave.
 */
const DECODE_VARIANTS: DecodeTuning[] = [
  { threads: 256, unroll: 2, wave: 1, merge: 'fold' },
  { threads: 256, unroll: 2, wave: 1, merge: 'fold', stages: 4 },
  { threads: 256, unroll: 2, wave: 1, merge: 'fold', stages: 8 },
  { threads: 512, unroll: 2, wave: 1, merge: 'cluster', cluster: 16 },
];

/** The command line (`--help` prints it). */
export const ATTENTION_ARGS = defineBenchArgs('bench attention', 'CUDA flash prefill / decode attention: validate against the CPU reference, then time (GPU only).', {
  lengths: intList({ describe: 'prefill lengths (none: no prefill)', default: [4096, 16384, 32768, 65536], atLeast: 1, noun: 'length', none: true }),
  'decode-lengths': intList({ describe: 'decode cache lengths (none: no decode)', default: [8192, 32768, 131072], atLeast: 1, noun: 'length', none: true }),
  out: text({ describe: 'JSON report', placeholder: 'FILE' }),
  'check-dir': text({ describe: 'inputs and each prefill variant\'s output at the first length, for tools/peers/sdpa_attention.py', placeholder: 'DIR' }),
  repeats: int({ describe: 'timed calls per case', default: 10, atLeast: 1, noun: 'repeat count' }),
  variants: labels({ describe: 'prefill variants to time, by label, e.g. w4m2n64g,wgmma2-n128g (default all)' }),
  'decode-variants': labels({ describe: 'decode variants to time, by label, e.g. t256u2w1c (default all)' }),
  'decode-kv-heads': int({ describe: 'KV heads of the decode shape, 4 query heads each', default: HKV, atLeast: 1, noun: 'KV head count' }),
});

export type AttentionBenchOptions = BenchOptionsOf<typeof ATTENTION_ARGS.table>;

export function parseAttentionArgs(argv: string[]): AttentionBenchOptions {
  return ATTENTION_ARGS.parse(argv);
}

function wordsToFloat(w: Uint16Array): Float32Array {
  const f = new Float32Array(w.length);
  for (let i = 0; i < w.length; i++) f[i] = bf16BitsToFloat(w[i]);
  return f;
}

/** Relative error of sampled rows (every head of `heads`) against the CPU reference. */
function checkPrefillRows(
  q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array, n: number, rows: number[], heads: number[],
): number {
  const scratch = new ScoreScratch();
  const ref = new Float32Array(D);
  let num = 0, den = 0;
  const g = H / HKV;
  for (const t of rows) for (const h of heads) {
    const kvh = Math.floor(h / g);
    const kh = k.subarray(kvh * n * D, (kvh + 1) * n * D);
    const vh = v.subarray(kvh * n * D, (kvh + 1) * n * D);
    attendRowRange(q, (t * H + h) * D, kh, vh, D, 0, t + 1, SCALE, null, ref, 0, scratch);
    for (let d = 0; d < D; d++) {
      const o = out[(t * H + h) * D + d];
      if (Number.isNaN(o)) return NaN;
      num += (o - ref[d]) ** 2;
      den += ref[d] ** 2;
    }
  }
  return Math.sqrt(num / den);
}

interface PrefillResult { n: number; variant: string; isDefault: boolean; ms: number; minMs: number; maxMs: number; tflops: number; floorMs: number; relErr: number }
interface DecodeResult {
  n: number; numKvHeads: number; variant: string; ms: number; eagerMs: number; bytes: number; gbps: number; copyMs: number; copyGbps: number; ratio: number;
  floorMs: number; splits: number; chunk: number; relErr: number;
  /** merge 'cluster' (v8): clusters one step launches and those resident at once; null otherwise. */
  clusters: { resident: number; launched: number } | null;
}

function benchPrefill(rt: CudaRuntime, n: number, o: AttentionBenchOptions): PrefillResult[] {
  const qw = randomBf16Words(n * H * D, 1 + n, 2);
  const kw = randomBf16Words(HKV * n * D, 2 + n, 2);
  const vw = randomBf16Words(HKV * n * D, 3 + n, 1);
  const dq = upload(rt, qw), dk = upload(rt, kw), dv = upload(rt, vw);
  const shape = { numHeads: H, numKvHeads: HKV, headDim: D };
  const flops = causalPrefillFlops(shape, n, 0);
  const results: PrefillResult[] = [];
  const qf = wordsToFloat(qw), kf = wordsToFloat(kw), vf = wordsToFloat(vw);
  const sampleRows = [0, 1, 63, 64, n >> 1, n - 65, n - 1].filter((r) => r >= 0 && r < n);
  const defaultLabel = new FlashPrefill(rt, shape).label;
  const wgmmaUnsupported = wgmmaPrefillUnsupported(rt.cuda.info, D);
  for (const pv of PREFILL_VARIANTS) {
    if (typeof pv.choice === 'object' && wgmmaUnsupported) {
      console.log(`prefill n=${n} wgmma variants skipped: ${wgmmaUnsupported}`);
      continue;
    }
    const kernel = new FlashPrefill(rt, shape, pv.tiling, pv.choice);
    const variant = kernel.label;
    if (o.variants && !o.variants.includes(variant)) continue;
    // A variant that fails (compile, launch, validation) is reported and the others still run.
    try {
      kernel.prepare();
      const out = poisonedBf16(rt, n * H * D);
      const args = { q: dq.ptr, k: dk.ptr, v: dv.ptr, out: out.ptr, numQueries: n, queryStart: 0, kvLen: n, kvStride: n, scale: SCALE };
      kernel.run(args);
      const got = downloadBf16(rt, out, n * H * D);
      const relErr = checkPrefillRows(qf, kf, vf, got, n, sampleRows, [0, 5, 31]);
      if (!(relErr < 1e-2)) throw new Error(`relative error ${relErr} (validation failed; not timing)`);
      if (o.checkDir && n === o.lengths[0]) writeCheckFiles(join(o.checkDir, variant), n, variant, qw, kw, vw, got);
      const t = timeOnDevice(rt, () => kernel.run(args), { warmup: 2, repeats: o.repeats });
      rt.pool.release(out);
      const r: PrefillResult = {
        n, variant, isDefault: variant === defaultLabel, ms: t.medianMs, minMs: t.minMs, maxMs: t.maxMs, tflops: flops / (t.medianMs * 1e-3) / 1e12,
        floorMs: (flops / (PEAK_TFLOPS * 1e12)) * 1e3, relErr,
      };
      results.push(r);
      // Printed as soon as timed, so a later variant that hangs loses nothing before it.
      console.log(`prefill n=${r.n} ${r.variant}: ${r.ms.toFixed(3)} ms (min ${r.minMs.toFixed(3)}, max ${r.maxMs.toFixed(3)}) ` +
        `${r.tflops.toFixed(1)} TFLOP/s, floor ${r.floorMs.toFixed(3)} ms, rel err ${r.relErr.toExponential(2)}`);
    } catch (err) {
      console.log(`prefill n=${n} ${variant}: FAILED: ${(err as Error).message}`);
      prefillFailures.push(`${variant} n=${n}: ${(err as Error).message}`);
      rt.synchronize();
    }
  }
  for (const b of [dq, dk, dv]) rt.pool.release(b);
  return results;
}

function writeCheckFiles(dir: string, n: number, variant: string, q: Uint16Array, k: Uint16Array, v: Uint16Array, out: Float32Array): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'q.bf16'), q);
  writeFileSync(join(dir, 'k.bf16'), k);
  writeFileSync(join(dir, 'v.bf16'), v);
  writeFileSync(join(dir, 'out.f32'), out);
  writeFileSync(join(dir, 'meta.json'), JSON.stringify({
    n, variant, numHeads: H, numKvHeads: HKV, headDim: D, scale: SCALE,
    layout: { q: '[n, H, D] bf16', k: '[Hkv, n, D] bf16', v: '[Hkv, n, D] bf16', out: '[n, H, D] f32 (our bf16 output widened)' },
  }));
}

/** Prefill and decode variants that failed in this process (the run exits non-zero when any did). */
const prefillFailures: string[] = [];
const decodeFailures: string[] = [];

function benchDecode(rt: CudaRuntime, n: number, o: AttentionBenchOptions): DecodeResult[] {
  // Llama-8B's GQA group of 4 over --decode-kv-heads KV heads (8 by default).
  const hkv = o.decodeKvHeads, heads = hkv * (H / HKV);
  const shape = { numHeads: heads, numKvHeads: hkv, headDim: D };
  const bytes = decodeBytes(shape, n);
  // Enough copies of the cache that consecutive repeats never find it in L2 (50 MB on an H100).
  const copies = Math.max(2, Math.ceil(256e6 / bytes));
  const qw = randomBf16Words(heads * D, 7, 2);
  const kw = randomBf16Words(hkv * n * D, 8 + n, 2);
  const vw = randomBf16Words(hkv * n * D, 9 + n, 1);
  const dq = upload(rt, qw);
  const caches = Array.from({ length: copies }, () => ({ k: upload(rt, kw), v: upload(rt, vw) }));
  const qf = wordsToFloat(qw), kf = wordsToFloat(kw), vf = wordsToFloat(vw);
  // The copy moves the same bytes the kernel reads (K and V of the cache) into other buffers,
  // destinations rotating like the sources so that neither side is served from L2.
  const dsts = Array.from({ length: copies }, () => rt.pool.acquire(bytes));
  const copy = (i: number) => {
    const c = caches[i % copies], d = dsts[i % copies].ptr;
    rt.cuda.copyDeviceAsync(d, c.k.ptr, bytes / 2, rt.stream);
    rt.cuda.copyDeviceAsync(d + BigInt(bytes / 2), c.v.ptr, bytes / 2, rt.stream);
  };
  const tc = timeGraphOnDevice(rt, copy, { perGraph: 20, repeats: o.repeats });
  for (const d of dsts) rt.pool.release(d);
  const copyGbps = (2 * bytes) / (tc.medianMs * 1e-3) / 1e9; // read + write
  const results: DecodeResult[] = [];
  for (const tuning of DECODE_VARIANTS) {
    const variant = decodeTuningLabel(tuning);
    if (o.decodeVariants && !o.decodeVariants.includes(variant)) continue;
    console.log(`decode n=${n} ${variant}: measuring`); // a variant that never returns is named in the log
    // A variant that fails (launch error, validation) is reported and the others still run.
    try {
      const kernel = new DecodeAttentionKernel(rt, shape, tuning);
      const clusters = kernel.clusterOccupancy();
      // Clusters launched beyond those resident at once run in a second wave.
      if (clusters) console.log(`decode n=${n} ${variant}: ${clusters.launched} clusters launched, ${clusters.resident} resident at once`);
      const out = poisonedBf16(rt, heads * D);
      const run = (i: number) => {
        const c = caches[i % copies];
        return kernel.run({ q: dq.ptr, k: c.k.ptr, v: c.v.ptr, out: out.ptr, kvLen: n, kvStride: n, scale: SCALE });
      };
      const plan = run(0);
      const got = downloadBf16(rt, out, heads * D);
      const relErr = decodeRelErr(qf, kf, vf, got, n, heads, hkv);
      if (!(relErr < 1e-2)) throw new Error(`relative error ${relErr} (validation failed; not timing)`);
      // Graph replay gives device time; the eager figure adds the host's launch cost per step.
      const t = timeGraphOnDevice(rt, run, { perGraph: 20, repeats: o.repeats });
      const eager = timeOnDevice(rt, run, { warmup: 3, repeats: Math.max(o.repeats, 20) });
      rt.pool.release(out);
      const gbps = bytes / (t.medianMs * 1e-3) / 1e9;
      results.push({
        n, numKvHeads: hkv, variant, ms: t.medianMs, eagerMs: eager.medianMs, bytes, gbps, copyMs: tc.medianMs, copyGbps, ratio: gbps / copyGbps,
        floorMs: (bytes / (PEAK_TBPS * 1e12)) * 1e3, splits: plan.splits, chunk: plan.chunk, relErr, clusters,
      });
    } catch (err) {
      console.log(`decode n=${n} ${variant}: FAILED: ${(err as Error).message}`);
      decodeFailures.push(`${variant} n=${n}: ${(err as Error).message}`);
      rt.synchronize();
    }
  }
  rt.pool.release(dq);
  for (const c of caches) { rt.pool.release(c.k); rt.pool.release(c.v); }
  return results;
}

function decodeRelErr(q: Float32Array, k: Float32Array, v: Float32Array, got: Float32Array, n: number, heads: number, hkv: number): number {
  const scratch = new ScoreScratch();
  const ref = new Float32Array(D);
  const g = heads / hkv;
  let num = 0, den = 0;
  for (let h = 0; h < heads; h++) {
    const kvh = Math.floor(h / g);
    attendRowRange(q, h * D, k.subarray(kvh * n * D, (kvh + 1) * n * D), v.subarray(kvh * n * D, (kvh + 1) * n * D),
      D, 0, n, SCALE, null, ref, 0, scratch);
    for (let d = 0; d < D; d++) {
      if (Number.isNaN(got[h * D + d])) return NaN;
      num += (got[h * D + d] - ref[d]) ** 2;
      den += ref[d] ** 2;
    }
  }
  return Math.sqrt(num / den);
}

/**
 * The matrix ceiling on this device (METHOD: measure it once rather than trust the datasheet): a
 * bf16 cuBLAS product of 8192³ on random data, fp32 accumulation.
 */
function benchGemmCeiling(rt: CudaRuntime, o: AttentionBenchOptions): { size: number; ms: number; tflops: number } {
  const size = 8192;
  const x = upload(rt, randomBf16Words(size * size, 31, 1));
  const w = upload(rt, randomBf16Words(size * size, 32, 1));
  const y = rt.pool.acquire(size * size * 2);
  const blas = new Cublas(rt.stream);
  const t = timeOnDevice(rt, () => blas.linear({ x: x.ptr, w: w.ptr, y: y.ptr, tokens: size, inFeatures: size, outFeatures: size }),
    { warmup: 3, repeats: o.repeats });
  blas.dispose();
  for (const b of [x, w, y]) rt.pool.release(b);
  return { size, ms: t.medianMs, tflops: (2 * size ** 3) / (t.medianMs * 1e-3) / 1e12 };
}

export async function main(argv: string[]): Promise<number> {
  // Parsed first: a bad option (or --help) is answered without a GPU.
  const o = parseAttentionArgs(argv);
  if (!isCudaAvailable()) {
    console.log(`attention benchmark skipped: no CUDA device here (${cudaUnavailableReason()})`);
    return 0;
  }
  const rt = new CudaRuntime();
  const info = rt.cuda.info;
  console.log(`device: ${info.name} (${info.arch}, ${info.multiprocessors} SMs, L2 ${(info.l2Bytes / 2 ** 20).toFixed(0)} MiB)`);
  const prefill: PrefillResult[] = [];
  for (const n of o.lengths) prefill.push(...benchPrefill(rt, n, o));
  const decode: DecodeResult[] = [];
  for (const n of o.decodeLengths) for (const r of benchDecode(rt, n, o)) {
    decode.push(r);
    console.log(`decode n=${r.n}${r.numKvHeads !== HKV ? ` Hkv=${r.numKvHeads}` : ''} ${r.variant}: ${(r.ms * 1e3).toFixed(1)} us (graph; eager ${(r.eagerMs * 1e3).toFixed(1)} us), ${r.gbps.toFixed(0)} GB/s read; copy ${(r.copyMs * 1e3).toFixed(1)} us, ` +
      `${r.copyGbps.toFixed(0)} GB/s (r+w); ratio ${(100 * r.ratio).toFixed(1)}%; ${r.splits}x${r.chunk}; floor ${(r.floorMs * 1e3).toFixed(1)} us; ` +
      `rel err ${r.relErr.toExponential(2)}`);
  }
  const gemm = benchGemmCeiling(rt, o);
  console.log(`ceiling: cuBLAS bf16 GEMM ${gemm.size}^3 ${gemm.ms.toFixed(3)} ms, ${gemm.tflops.toFixed(0)} TFLOP/s`);
  const report = {
    device: info, shape: { numHeads: H, numKvHeads: HKV, headDim: D, causal: true }, prefill, decode,
    ceilings: { gemm }, compile: rt.compileStats,
  };
  if (o.out) writeFileSync(o.out, JSON.stringify({ ...report, prefillFailures, decodeFailures }, null, 2));
  rt.dispose();
  return prefillFailures.length + decodeFailures.length > 0 ? 1 : 0;
}

/** Entry for bench/main.ts (`npm run bench -- attention [args]`). */
export const runAttentionBench = benchEntry(main);

runIfDirect(import.meta.url, main);
