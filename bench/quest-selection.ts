/**
 * Quest's per-step page selection on the GPU (issue 9), Llama-3.1-8B attention shape (H = 32,
 * Hkv = 8, d = 128, 16-row pages, pages shared by each GQA group), at n = 16K..128K and s = 0.5..0.95:
 *   - v3: three launches (bounds of the page the new row joined, page scores, 8-bit radix top-k
 *     over keys staged in shared memory), each part timed alone too, and the refined select alone;
 *   - v4: QuestKernels.selectStep, one launch (bounds refresh, scores, last-block refined top-k);
 * graph replays over as many copies of the page bounds as keep them out of the 50 MB L2 (a model's
 * layers each have their own), beside the same with one copy (L2-hot, as bench/sparse-decode.ts
 * timed it) and eager launches (what an uncaptured step pays). Floor: the bounds' bytes (min and max,
 * bf16, every page of every KV head) at 3.35 TB/s.
 * Validates first: at every (n, s) both versions' page lists are equal, word for word.
 *
 * Usage: node dist/bench/quest-selection.js [--lengths 16384,...] [--sparsities 0.5,...] [--repeats N]
 *        [--out FILE]. Prints a skip line without a GPU.
 */
import { writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { cudaUnavailableReason, isCudaAvailable } from '../src/backends/cuda/availability.js';
import { DeviceQuestBounds, QuestKernels, QuestStepScratch } from '../src/backends/cuda/kernels/quest.js';
import { SegmentLists } from '../src/backends/cuda/kernels/segment-decode.js';
import { DeviceLayerKvCache } from '../src/backends/cuda/kv-cache.js';
import { CudaRuntime } from '../src/backends/cuda/runtime.js';
import { type DeviceTiming, timeGraphOnDevice, timeOnDevice } from '../src/backends/cuda/timing.js';
import { questPagesFor } from '../src/methods/quest.js';
import { parseKernelBenchArgs, randomBf16Words, upload } from './gpu-bench-util.js';

const H = 32, HKV = 8, D = 128, P = 16;
const HBM_BYTES_PER_S = 3.35e12;
/** Bytes of page bounds cycled through per timing so that L2 cannot hold them. */
const ROTATION_BYTES = 256e6;

/** One layer's selection state, as the device method keeps it. */
interface Layer { bounds: DeviceQuestBounds; scratch: QuestStepScratch; lists: SegmentLists }

interface Row {
  n: number; s: number; pages: number; k: number; boundsMB: number; floorUs: number;
  v3Us: number; v4Us: number; v3HotUs: number; v4HotUs: number; v3EagerUs: number; v4EagerUs: number;
  v3BoundsUs: number; v3ScoresUs: number; v3SelectUs: number; refinedSelectUs: number;
}

function main(argv: string[]): number {
  if (!isCudaAvailable()) {
    console.log(`quest-selection bench skipped: ${cudaUnavailableReason()}`);
    return 0;
  }
  const o = parseKernelBenchArgs(argv, 10, 2 * P);
  const rt = new CudaRuntime();
  console.log(`device: ${rt.cuda.info.name} (${rt.cuda.info.multiprocessors} SMs); H=${H} Hkv=${HKV} d=${D}, page ${P}, shared pages`);
  const shape = { numHeads: H, numKvHeads: HKV, headDim: D };
  const v3 = new QuestKernels(rt, shape, P, true, { selection: 'radix8' });
  const v4 = new QuestKernels(rt, shape, P, true, { selection: 'refined', fusedStep: true });
  const q = upload(rt, randomBf16Words(H * D, 5, 2));
  const rows: Row[] = [];
  const failures: string[] = [];
  const us = (t: DeviceTiming) => t.medianMs * 1e3;

  for (const n of o.lengths) {
    const cache = new DeviceLayerKvCache(rt, HKV, D, n + P);
    for (let t = 0; t < n; t += 8192) {
      const T = Math.min(8192, n - t);
      const k = upload(rt, randomBf16Words(T * HKV * D, 11 + t + n, 2));
      const v = upload(rt, randomBf16Words(T * HKV * D, 12 + t + n, 1));
      cache.appendTokens({ k: k.ptr, v: v.ptr, rowStride: HKV * D }, T);
      rt.synchronize();
      rt.pool.release(k);
      rt.pool.release(v);
    }
    // The step at position n - 1: pages before the current one are scored.
    const rowsAfter = n, current = Math.floor((n - 1) / P);
    const bounds0 = new DeviceQuestBounds(rt, shape, P, cache.capacity);
    v3.updateBounds(bounds0, cache, rowsAfter);
    const boundsBytes = 2 * HKV * current * D * 2;
    const copies = Math.max(2, Math.ceil(ROTATION_BYTES / boundsBytes));
    const layers: Layer[] = Array.from({ length: copies }, (_, c) => {
      const bounds = c === 0 ? bounds0 : new DeviceQuestBounds(rt, shape, P, cache.capacity);
      if (c > 0) {
        const bytes = HKV * bounds.pageCapacity * D * 2;
        rt.cuda.copyDeviceAsync(bounds.pageMin.ptr, bounds0.pageMin.ptr, bytes, rt.stream);
        rt.cuda.copyDeviceAsync(bounds.pageMax.ptr, bounds0.pageMax.ptr, bytes, rt.stream);
        bounds.coveredRows = rowsAfter;
      }
      return { bounds, scratch: new QuestStepScratch(rt, v4.units, bounds.pageCapacity), lists: new SegmentLists(rt, HKV, bounds.pageCapacity) };
    });
    rt.synchronize();
    const perGraph = copies * Math.max(1, Math.ceil(20 / copies));

    for (const s of o.sparsities) {
      const k = questPagesFor(n - 1, P, s, null);
      // Each step re-folds the new row into its page, as a decode step does.
      const v3Step = (l: Layer) => {
        l.bounds.coveredRows = rowsAfter - 1;
        v3.updateBounds(l.bounds, cache, rowsAfter);
        v3.scorePages(q.ptr, l.bounds, current, l.scratch.scores.ptr, l.scratch.pageCapacity);
        v3.selectPages(l.scratch.scores.ptr, l.scratch.pageCapacity, current, k, l.lists);
      };
      const v4Step = (l: Layer) => {
        l.bounds.coveredRows = rowsAfter - 1;
        v4.selectStep({ q: q.ptr, bounds: l.bounds, cache, rows: rowsAfter, pages: current, k, scratch: l.scratch, segments: l.lists });
      };

      const graph = (body: (i: number) => void) => us(timeGraphOnDevice(rt, body, { perGraph, repeats: o.repeats }));
      const eager = (body: (i: number) => void) => us(timeOnDevice(rt, body, { warmup: copies, repeats: Math.max(o.repeats, 2 * copies) }));
      // v3 first, each part alone too: these figures come out even if v4 fails its check below.
      const v3Us = graph((i) => v3Step(layers[i % copies]));
      const v3HotUs = graph(() => v3Step(layers[0]));
      const v3EagerUs = eager((i) => v3Step(layers[i % copies]));
      const v3BoundsUs = graph((i) => {
        const l = layers[i % copies];
        l.bounds.coveredRows = rowsAfter - 1;
        v3.updateBounds(l.bounds, cache, rowsAfter);
      });
      const v3ScoresUs = graph((i) => {
        const l = layers[i % copies];
        v3.scorePages(q.ptr, l.bounds, current, l.scratch.scores.ptr, l.scratch.pageCapacity);
      });
      const v3SelectUs = graph((i) => {
        const l = layers[i % copies];
        v3.selectPages(l.scratch.scores.ptr, l.scratch.pageCapacity, current, k, l.lists);
      });
      const floorUs = (boundsBytes / HBM_BYTES_PER_S) * 1e6;
      console.log(`n=${n} s=${s}: ${k} of ${current} pages, bounds ${(boundsBytes / 1e6).toFixed(1)} MB (floor ${floorUs.toFixed(1)} us, ${copies} copies): ` +
        `v3 ${v3Us.toFixed(1)} us (bounds ${v3BoundsUs.toFixed(1)} + scores ${v3ScoresUs.toFixed(1)} + select ${v3SelectUs.toFixed(1)}), ` +
        `L2-hot ${v3HotUs.toFixed(1)} us, eager ${v3EagerUs.toFixed(1)} us`);

      // Validation: v4's lists equal v3's, word for word.
      const words = HKV * layers[0].lists.stride;
      v3Step(layers[0]);
      rt.synchronize();
      const want = new Int32Array(words);
      rt.cuda.download(want, layers[0].lists.ptr);
      rt.cuda.fill32Async(layers[0].lists.ptr, 0x7fc00000, words, rt.stream);
      v4Step(layers[0]);
      rt.synchronize();
      const got = new Int32Array(words);
      rt.cuda.download(got, layers[0].lists.ptr);
      const listWords = 4 + 2 * Math.min(k, current);
      let mismatch: string | null = null;
      for (let u = 0; u < HKV && !mismatch; u++) {
        const at = u * layers[0].lists.stride;
        for (let i = 0; i < listWords; i++) {
          if (got[at + i] !== want[at + i]) {
            mismatch = `n=${n} s=${s}: v4 list of unit ${u} differs from v3 at word ${i} (${got[at + i]} vs ${want[at + i]}); v4 not timed`;
            break;
          }
        }
      }
      if (mismatch) {
        console.error(mismatch);
        failures.push(mismatch);
        continue;
      }
      const row: Row = {
        n, s, pages: current, k, boundsMB: boundsBytes / 1e6, floorUs,
        v3Us, v4Us: graph((i) => v4Step(layers[i % copies])), v3HotUs, v4HotUs: graph(() => v4Step(layers[0])),
        v3EagerUs, v4EagerUs: eager((i) => v4Step(layers[i % copies])), v3BoundsUs, v3ScoresUs, v3SelectUs,
        refinedSelectUs: graph((i) => {
          const l = layers[i % copies];
          v4.selectPages(l.scratch.scores.ptr, l.scratch.pageCapacity, current, k, l.lists);
        }),
      };
      console.log(`n=${n} s=${s}: v4 ${row.v4Us.toFixed(1)} us = ${(row.v4Us / floorUs).toFixed(2)}x floor, ${(v3Us / row.v4Us).toFixed(2)}x faster than v3; ` +
        `L2-hot ${row.v4HotUs.toFixed(1)} us, eager ${row.v4EagerUs.toFixed(1)} us; refined select alone ${row.refinedSelectUs.toFixed(1)} us (v3's ${v3SelectUs.toFixed(1)})`);
      rows.push(row);
    }
    for (const l of layers) {
      l.bounds.release();
      l.scratch.release();
      l.lists.release();
    }
    cache.release();
    rt.pool.trim();
  }
  rt.pool.release(q);
  if (o.out) writeFileSync(o.out, JSON.stringify({ device: rt.cuda.info.name, rows, failures }, null, 1));
  rt.dispose();
  return failures.length > 0 ? 1 : 0;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (e) {
    console.error((e as Error).stack ?? String(e));
    process.exitCode = 1;
  }
}
