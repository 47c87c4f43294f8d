/**
 * Sparse-decode kernels on the GPU (issue 9), Llama-3.1-8B attention shape (H = 32, Hkv = 8, d = 128),
 * for n = 16K..128K and sparsity s = 0.5..0.95:
 *   - segment decode over Quest-like page lists ((1 - s)·n rows in 16-row pages plus the current
 *     page): µs, GB/s on the bytes read, next to a device-to-device copy of the same byte count and
 *     to a large copy (the bandwidth ceiling); graph replays, selections and cache copies rotated so
 *     that the bytes read are not served from L2; the same row count as an evicted prefix (SnapKV's
 *     one segment per head) too;
 *   - Quest selection per step (bounds of the current page, page scores, top-k): µs (graph replays);
 *   - SnapKV and Ada-SnapKV compression (window scores W = 256, pooling, selection, gather): ms;
 *   - our dense decode (DecodeAttentionKernel) at the same n.
 * Validates first: segment decode over a list covering the whole cache must equal the dense kernel.
 *
 * Usage: node dist/bench/sparse-decode.js [--lengths 16384,32768,65536,131072]
 *        [--sparsities 0.5,0.8,0.9,0.95] [--repeats N] [--out FILE] (--help). Prints a skip line without a GPU.
 */
import { writeFileSync } from 'node:fs';
import { cudaUnavailableReason, isCudaAvailable } from '../src/backends/cuda/availability.js';
import { DecodeAttentionKernel, decodeBytes } from '../src/backends/cuda/kernels/decode-attention.js';
import { DeviceQuestBounds, QuestKernels, QuestStepScratch } from '../src/backends/cuda/kernels/quest.js';
import { type RowSegment, SegmentDecodeKernel, SegmentLists, defaultSegmentTiling } from '../src/backends/cuda/kernels/segment-decode.js';
import { SnapKvKernels } from '../src/backends/cuda/kernels/snapkv.js';
import { DeviceLayerKvCache } from '../src/backends/cuda/kv-cache.js';
import { CudaRuntime } from '../src/backends/cuda/runtime.js';
import { timeGraphOnDevice, timeOnDevice } from '../src/backends/cuda/timing.js';
import { downloadBf16, poisonedBf16 } from '../src/backends/cuda/transfer.js';
import { minimumPerHead } from '../src/methods/ada-snapkv.js';
import { questPagesFor } from '../src/methods/quest.js';
import { capacityFor } from '../src/methods/snapkv-importance.js';
import { defineBenchArgs } from './bench-args.js';
import { runIfDirect } from './bench-run.js';
import { type KernelBenchOptions, kernelBenchOptions, randomBf16Words, upload } from './gpu-bench-util.js';

const H = 32, HKV = 8, D = 128, P = 16, W = 256;
const SCALE = 1 / Math.sqrt(D);
/** Bytes cycled through per timing so that L2 (50 MB on an H100) cannot hold them. */
const ROTATION_BYTES = 256e6;

/** The command line (`--help` prints it): the kernel benches' grid, lengths from 1024. */
export const SPARSE_DECODE_ARGS = defineBenchArgs('sparse-decode', 'Sparse-decode kernels (segment decode, Quest selection, SnapKV compression) against dense decode (GPU only).',
  kernelBenchOptions(10, 1024), 'node dist/bench/sparse-decode.js');

type Options = KernelBenchOptions;

export function parseSparseDecodeArgs(argv: string[]): Options {
  return SPARSE_DECODE_ARGS.parse(argv);
}

/** A cache of n + P rows holding random keys and values (appended through the real append kernel). */
function randomCache(rt: CudaRuntime, n: number, seed: number): DeviceLayerKvCache {
  const cache = new DeviceLayerKvCache(rt, HKV, D, n + P);
  const chunk = 8192;
  for (let t = 0; t < n; t += chunk) {
    const T = Math.min(chunk, n - t);
    const k = upload(rt, randomBf16Words(T * HKV * D, seed + t, 2));
    const v = upload(rt, randomBf16Words(T * HKV * D, seed + t + 1, 1));
    cache.appendTokens({ k: k.ptr, v: v.ptr, rowStride: HKV * D }, T);
    rt.synchronize();
    rt.pool.release(k);
    rt.pool.release(v);
  }
  return cache;
}

/** k distinct random pages of `pages`, ascending, as 16-row segments. */
function randomPageList(pages: number, k: number, seed: number): RowSegment[] {
  let s = seed >>> 0;
  const all = Int32Array.from({ length: pages }, (_, i) => i);
  for (let i = 0; i < k; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const j = i + (s % (pages - i));
    [all[i], all[j]] = [all[j], all[i]];
  }
  return [...all.subarray(0, k)].sort((a, b) => a - b).map((p) => ({ start: p * P, length: P }));
}

interface SegmentRow { n: number; s: number; rowsRead: number; bytes: number; us: number; gbps: number; registersUs: number; ringUs: number; path: string; evictedUs: number; copyUs: number; copyGbps: number; ratio: number; ceilingRatio: number; splits: number }
interface QuestRow { n: number; s: number; pages: number; selectUs: number; stepUs: number }
interface DenseRow { n: number; bytes: number; us: number; gbps: number }
interface SnapRow { n: number; s: number; capacity: number; snapMs: number; adaMs: number; adaKept: string }

function main(argv: string[]): number {
  // Parsed first: a bad option (or --help) is answered without a GPU.
  const o = parseSparseDecodeArgs(argv);
  if (!isCudaAvailable()) {
    console.log(`sparse-decode bench skipped: ${cudaUnavailableReason()}`);
    return 0;
  }
  const rt = new CudaRuntime();
  console.log(`device: ${rt.cuda.info.name} (${rt.cuda.info.multiprocessors} SMs); H=${H} Hkv=${HKV} d=${D}, page ${P}, window ${W}`);
  const shape = { numHeads: H, numKvHeads: HKV, headDim: D };
  const segment = new SegmentDecodeKernel(rt, shape);
  // Beside the launcher's default (v5: the bulk-copy ring for chunks of 4 steps or more, else registers),
  // each path alone on the same page lists: v3/v4's register double buffering and the 4-stage ring.
  const { threads, unroll } = defaultSegmentTiling(D, H / HKV);
  const segmentRegisters = new SegmentDecodeKernel(rt, shape, false, { threads, unroll });
  const segmentRing = new SegmentDecodeKernel(rt, shape, false, { threads, unroll, stages: 4 });
  const dense = new DecodeAttentionKernel(rt, shape);
  const quest = new QuestKernels(rt, shape, P, true);
  const snap = new SnapKvKernels(rt, shape);
  const q = upload(rt, randomBf16Words(H * D, 5, 2));
  const out = poisonedBf16(rt, H * D);

  // The bandwidth ceiling: a large device-to-device copy (read + write counted), rotated buffers.
  const big = 256 * 1024 * 1024;
  const bigBufs = [rt.pool.acquire(big), rt.pool.acquire(big), rt.pool.acquire(big)];
  const tBig = timeGraphOnDevice(rt, (i) => rt.cuda.copyDeviceAsync(bigBufs[(i + 1) % 3].ptr, bigBufs[i % 3].ptr, big, rt.stream), { perGraph: 6, repeats: o.repeats });
  const ceilingGbps = (2 * big) / (tBig.medianMs * 1e-3) / 1e9;
  for (const b of bigBufs) rt.pool.release(b);
  console.log(`copy ceiling: ${ceilingGbps.toFixed(0)} GB/s (256 MiB, read + write)`);

  const segRows: SegmentRow[] = [], questRows: QuestRow[] = [], denseRows: DenseRow[] = [], snapRows: SnapRow[] = [];
  for (const n of o.lengths) {
    const cacheBytes = decodeBytes(shape, n);
    const copies = Math.max(2, Math.ceil(ROTATION_BYTES / cacheBytes));
    const caches = Array.from({ length: copies }, (_, c) => randomCache(rt, n, 100 + 7 * c + n));
    const pages = Math.floor(n / P);

    // Validation: a list covering the whole cache equals the dense kernel.
    const whole = new SegmentLists(rt, HKV, 1);
    whole.upload(Array.from({ length: HKV }, () => [{ start: 0, length: n - 1 }]));
    const c0 = caches[0];
    segment.run({ q: q.ptr, k: c0.keys.ptr, v: c0.values.ptr, kvStride: c0.capacity, out: out.ptr, segments: whole, tailStart: n - 1, tailRows: 1, maxRows: n, scale: SCALE });
    const a = downloadBf16(rt, out, H * D);
    dense.run({ q: q.ptr, k: c0.keys.ptr, v: c0.values.ptr, out: out.ptr, kvLen: n, kvStride: c0.capacity, scale: SCALE });
    const b = downloadBf16(rt, out, H * D);
    let num = 0, den = 0;
    for (let i = 0; i < a.length; i++) { num += (a[i] - b[i]) ** 2; den += b[i] ** 2; }
    const diff = Math.sqrt(num / den);
    if (!(diff < 4e-3)) throw new Error(`n=${n}: segment decode over everything differs from dense decode by ${diff} (not timing)`);
    whole.release();

    const tDense = timeGraphOnDevice(rt, (i) => {
      const c = caches[i % copies];
      dense.run({ q: q.ptr, k: c.keys.ptr, v: c.values.ptr, out: out.ptr, kvLen: n, kvStride: c.capacity, scale: SCALE });
    }, { perGraph: 20, repeats: o.repeats });
    denseRows.push({ n, bytes: cacheBytes, us: tDense.medianMs * 1e3, gbps: cacheBytes / (tDense.medianMs * 1e-3) / 1e9 });
    console.log(`n=${n}: dense decode ${(tDense.medianMs * 1e3).toFixed(1)} us, ${(cacheBytes / (tDense.medianMs * 1e-3) / 1e9).toFixed(0)} GB/s (vs segment check diff ${diff.toExponential(1)})`);

    for (const s of o.sparsities) {
      // The rows a Quest step at position n reads: k pages plus the current (partial: 16 rows here).
      const k = Math.max(1, Math.min(pages - 1, Math.round(((1 - s) * n - P) / P)));
      const rowsRead = k * P + P;
      const bytes = 2 * HKV * rowsRead * D * 2;
      const variants = Math.min(200, Math.max(20, Math.ceil(ROTATION_BYTES / bytes)));
      const lists = Array.from({ length: variants }, (_, vi) => {
        const l = new SegmentLists(rt, HKV, k);
        l.upload(Array.from({ length: HKV }, (_, h) => randomPageList(pages - 1, k, 1000 * vi + h + n)));
        return l;
      });
      let plan = { splits: 0, chunk: 0 };
      const timePages = (kernel: SegmentDecodeKernel) => timeGraphOnDevice(rt, (i) => {
        const c = caches[i % copies];
        const p = kernel.run({
          q: q.ptr, k: c.keys.ptr, v: c.values.ptr, kvStride: c.capacity, out: out.ptr, segments: lists[i % variants],
          tailStart: (pages - 1) * P, tailRows: P, maxRows: rowsRead, scale: SCALE,
        });
        if (kernel === segment) plan = p;
      }, { perGraph: variants, repeats: o.repeats });
      const tSeg = timePages(segment);
      const tSegRegisters = timePages(segmentRegisters);
      const tSegRing = timePages(segmentRing);
      for (const l of lists) l.release();
      // The same rows as an evicted cache reads them (SnapKV: one prefix segment per head + the tail).
      const prefix = new SegmentLists(rt, HKV, 1);
      prefix.upload(Array.from({ length: HKV }, () => [{ start: 0, length: k * P }]));
      const tEvicted = timeGraphOnDevice(rt, (i) => {
        const c = caches[i % copies];
        segment.run({
          q: q.ptr, k: c.keys.ptr, v: c.values.ptr, kvStride: c.capacity, out: out.ptr, segments: prefix,
          tailStart: (pages - 1) * P, tailRows: P, maxRows: rowsRead, scale: SCALE,
        });
      }, { perGraph: 20, repeats: o.repeats });
      prefix.release();
      // A copy of the same bytes (K and V halves), sources rotated through the caches, destinations through a buffer L2 cannot hold.
      const half = bytes / 2;
      const dstSlots = Math.max(4, Math.min(variants, Math.floor(512e6 / bytes)));
      const dst = rt.pool.acquire(bytes * dstSlots);
      const slots = Math.max(1, Math.floor(cacheBytes / 2 / half));
      const tCopy = timeGraphOnDevice(rt, (i) => {
        const c = caches[i % copies];
        const off = BigInt((Math.floor(i / copies) % slots) * half);
        const d = dst.ptr + BigInt((i % dstSlots) * bytes);
        rt.cuda.copyDeviceAsync(d, c.keys.ptr + off, half, rt.stream);
        rt.cuda.copyDeviceAsync(d + BigInt(half), c.values.ptr + off, half, rt.stream);
      }, { perGraph: variants, repeats: o.repeats });
      rt.pool.release(dst);
      const gbps = bytes / (tSeg.medianMs * 1e-3) / 1e9;
      const copyGbps = (2 * bytes) / (tCopy.medianMs * 1e-3) / 1e9;
      /** % of the copy's bandwidth at a step time of ms. */
      const pct = (ms: number) => (100 * (bytes / (ms * 1e-3) / 1e9) / copyGbps).toFixed(1);
      segRows.push({
        n, s, rowsRead, bytes, us: tSeg.medianMs * 1e3, gbps, registersUs: tSegRegisters.medianMs * 1e3, ringUs: tSegRing.medianMs * 1e3, path: segment.usesRing(rowsRead) ? 'ring' : 'registers', evictedUs: tEvicted.medianMs * 1e3, copyUs: tCopy.medianMs * 1e3, copyGbps, ratio: gbps / copyGbps,
        ceilingRatio: gbps / ceilingGbps, splits: plan.splits,
      });
      console.log(`n=${n} s=${s}: segment decode ${rowsRead} rows/head ${(tSeg.medianMs * 1e3).toFixed(1)} us, ${gbps.toFixed(0)} GB/s; ` +
        `copy of the same bytes ${(tCopy.medianMs * 1e3).toFixed(1)} us, ${copyGbps.toFixed(0)} GB/s -> ${(100 * gbps / copyGbps).toFixed(1)}% ` +
        `(${(100 * gbps / ceilingGbps).toFixed(1)}% of the ceiling); ${plan.splits} splits (${segment.tiling.threads}x${segment.tiling.unroll}; default path ${segment.usesRing(rowsRead) ? 'ring' : 'registers'}; registers ${(tSegRegisters.medianMs * 1e3).toFixed(1)} us, ${pct(tSegRegisters.medianMs)}%; ring b4 ${(tSegRing.medianMs * 1e3).toFixed(1)} us, ${pct(tSegRing.medianMs)}%); as an evicted prefix ${(tEvicted.medianMs * 1e3).toFixed(1)} us; ideal (1-s) x dense ${((1 - s) * tDense.medianMs * 1e3).toFixed(1)} us`);

      // Quest: selection of one step (bounds of the page the new row joined, scores, top-k), then the whole step.
      const qk = questPagesFor(n - 1, P, s, null);
      const current = Math.floor((n - 1) / P);
      const bounds = new DeviceQuestBounds(rt, shape, P, c0.capacity);
      quest.updateBounds(bounds, c0, n);
      const scratch = new QuestStepScratch(rt, quest.units, bounds.pageCapacity);
      const selected = new SegmentLists(rt, HKV, bounds.pageCapacity);
      // The device method's step (bounds of the new row's page, scores, top-k); bench/quest-selection.ts times its parts and the one-launch variant.
      const select = () => {
        bounds.coveredRows = n - 1;
        quest.selectStep({ q: q.ptr, bounds, cache: c0, rows: n, pages: current, k: qk, scratch, segments: selected });
      };
      const tSel = timeGraphOnDevice(rt, select, { perGraph: 20, repeats: o.repeats });
      const tail = n - current * P;
      const tStep = timeGraphOnDevice(rt, () => {
        select();
        segment.run({ q: q.ptr, k: c0.keys.ptr, v: c0.values.ptr, kvStride: c0.capacity, out: out.ptr, segments: selected, tailStart: current * P, tailRows: tail, maxRows: qk * P + tail, scale: SCALE });
      }, { perGraph: 20, repeats: o.repeats });
      bounds.release();
      scratch.release();
      selected.release();
      questRows.push({ n, s, pages: qk, selectUs: tSel.medianMs * 1e3, stepUs: tStep.medianMs * 1e3 });
      console.log(`n=${n} s=${s}: quest selection (${qk} of ${current} pages) ${(tSel.medianMs * 1e3).toFixed(1)} us; whole step ${(tStep.medianMs * 1e3).toFixed(1)} us (same cache each step: L2 helps)`);
    }

    // SnapKV / Ada-SnapKV compression last: it rewrites the cache's first rows.
    const wq = upload(rt, randomBf16Words(W * H * D, 9 + n, 2));
    const settings = { observationWindow: W, kernelSize: 21, localWindow: 128, prefixTokens: 4, tokenCapacity: null };
    for (const s of o.sparsities) {
      const capacity = capacityFor({ ...settings, sparsity: s }, n);
      const minimum = minimumPerHead({ ...settings, sparsity: s }, capacity, 0.2, n);
      let adaKept = '';
      const compress = (mode: 'mean' | 'max') => {
        const c = caches[caches.length - 1];
        const pooled = snap.windowImportance({
          windowQueries: wq.ptr, windowLength: W, promptLength: n, cache: c, scale: SCALE, aggregation: mode, kernelSize: 21, prefixTokens: 4, localWindow: 128,
        });
        const kept = mode === 'mean' ? snap.selectUniform(pooled.ptr, n, capacity) : snap.selectAdaptive(pooled.ptr, n, capacity, minimum);
        // As the device methods do: the per-head counts come back, then the gather.
        const counts = snap.readCounts(kept);
        if (mode === 'max' && !adaKept) adaKept = [...counts].join('/');
        const lists = new SegmentLists(rt, HKV, 1);
        snap.compactCache(c, kept, Math.max(...counts), lists);
        snap.releaseKept(kept);
        rt.pool.release(pooled);
        lists.release();
      };
      const tSnap = timeOnDevice(rt, () => compress('mean'), { warmup: 1, repeats: 3 });
      const tAda = timeOnDevice(rt, () => compress('max'), { warmup: 1, repeats: 3 });
      snapRows.push({ n, s, capacity, snapMs: tSnap.medianMs, adaMs: tAda.medianMs, adaKept });
      console.log(`n=${n} s=${s}: SnapKV compression (capacity ${capacity}) ${tSnap.medianMs.toFixed(2)} ms; Ada-SnapKV ${tAda.medianMs.toFixed(2)} ms (kept ${adaKept})`);
    }
    rt.pool.release(wq);
    for (const c of caches) c.release();
    rt.pool.trim();
  }
  rt.pool.release(q);
  rt.pool.release(out);
  if (o.out) writeFileSync(o.out, JSON.stringify({ device: rt.cuda.info.name, ceilingGbps, dense: denseRows, segment: segRows, quest: questRows, snapkv: snapRows }, null, 1));
  rt.dispose();
  return 0;
}

runIfDirect(import.meta.url, main);
