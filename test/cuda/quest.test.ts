/**
 * Quest on the GPU against the CPU QuestDecode (src/methods/quest.ts) on the same bf16 rows: page
 * bounds after the prompt and after appended tokens, the selected pages (shared by a GQA group and
 * per query head), decode outputs and counts over steps that cross a page boundary (the last page
 * partial), and a budget covering everything (equal to our dense decode kernel). Skipped, with the
 * reason printed, where there is no CUDA device.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { fromBf16 } from '../../src/backends/cuda/bf16.js';
import { DeviceQuestBounds, QuestKernels } from '../../src/backends/cuda/kernels/quest.js';
import { SEGMENT_HEADER_WORDS, SegmentLists } from '../../src/backends/cuda/kernels/segment-decode.js';
import type { EstimationTiming } from '../../src/backends/cuda/methods/contract.js';
import { questDeviceFactory } from '../../src/backends/cuda/methods/quest.js';
import type { CudaRuntime } from '../../src/backends/cuda/runtime.js';
import { downloadBf16, poisonedBf16, uploadAsBf16 } from '../../src/backends/cuda/transfer.js';
import { QuestDecode, QuestPageBounds, questPagesFor } from '../../src/methods/quest.js';
import { randomBf16Values, randomGenerator, relativeError } from './helpers.js';
import { appendRandom, attentionConfig, checkDecodeStep, cpuShape, denseDecodeOutput, twinCaches } from './sparse-decode-helpers.js';
import { cudaSkip } from './cuda-skip.js';

const skip = cudaSkip('CUDA Quest tests');

const TOLERANCE = 1e-2;

function downloadInt32(rt: CudaRuntime, ptr: bigint, count: number): Int32Array {
  rt.synchronize();
  const out = new Int32Array(count);
  rt.cuda.download(out, ptr);
  return out;
}

describe('CUDA Quest', { skip }, () => {
  let rt: CudaRuntime;
  before(async () => {
    const { CudaRuntime } = await import('../../src/backends/cuda/runtime.js');
    rt = new CudaRuntime();
  });
  after(() => rt?.dispose());

  test('bounds equal the CPU bounds after the prompt and after appends', () => {
    const Hkv = 4, D = 64, P = 16, capacity = 600;
    const rand = randomGenerator(31);
    const caches = twinCaches(rt, Hkv, D, capacity);
    appendRandom(rt, caches, 517, rand);
    const kernels = new QuestKernels(rt, { numHeads: 8, numKvHeads: Hkv, headDim: D }, P, true);
    const bounds = new DeviceQuestBounds(rt, kernels.shape, P, capacity);
    const cpu = new QuestPageBounds(Hkv, D, P);
    const check = (rows: number) => {
      kernels.updateBounds(bounds, caches.device, rows);
      cpu.extend(caches.cpu, rows);
      const pages = Math.ceil(rows / P);
      const words = bounds.pageCapacity * D * Hkv;
      rt.synchronize();
      const mn = new Uint16Array(words), mx = new Uint16Array(words);
      rt.cuda.download(mn, bounds.pageMin.ptr);
      rt.cuda.download(mx, bounds.pageMax.ptr);
      const gmn = fromBf16(mn), gmx = fromBf16(mx);
      for (let h = 0; h < Hkv; h++) {
        const at = h * bounds.pageCapacity * D;
        assert.deepEqual(gmn.subarray(at, at + pages * D), cpu.pageMin[h].subarray(0, pages * D), `min, head ${h}, ${rows} rows`);
        assert.deepEqual(gmx.subarray(at, at + pages * D), cpu.pageMax[h].subarray(0, pages * D), `max, head ${h}, ${rows} rows`);
      }
    };
    check(517); // the prompt: 32 full pages and a partial one of 5 rows
    for (let i = 0; i < 13; i++) {
      appendRandom(rt, caches, 1, rand);
      check(caches.cpu.length); // crosses into page 33 at row 528
    }
    bounds.release();
    caches.device.release();
  });

  for (const sharePages of [true, false]) {
    test(`selected pages equal the CPU choice (${sharePages ? 'shared by the GQA group' : 'per query head'})`, () => {
      const H = 16, Hkv = 4, D = 128, P = 16, n = 3001;
      const rand = randomGenerator(sharePages ? 41 : 42);
      const caches = twinCaches(rt, Hkv, D, n);
      appendRandom(rt, caches, n, rand);
      const q = randomBf16Values(H * D, rand, 2);
      const dq = uploadAsBf16(rt, q);
      const kernels = new QuestKernels(rt, { numHeads: H, numKvHeads: Hkv, headDim: D }, P, sharePages);
      // The same selection with the keys read from global memory in every pass (long contexts).
      const unstaged = new QuestKernels(rt, kernels.shape, P, sharePages, 0);
      const bounds = new DeviceQuestBounds(rt, kernels.shape, P, n);
      kernels.updateBounds(bounds, caches.device, n);
      const cpuBounds = new QuestPageBounds(Hkv, D, P);
      cpuBounds.extend(caches.cpu, n);
      const cpu = new QuestDecode(P, 0.9, null, sharePages);
      const pages = Math.floor((n - 1) / P);
      const scores = rt.pool.acquire(kernels.units * bounds.pageCapacity * 4);
      const lists = new SegmentLists(rt, kernels.units, bounds.pageCapacity);
      const g = H / Hkv;
      for (const [k, selector] of [[1, kernels], [7, unstaged], [64, kernels], [64, unstaged], [pages - 1, kernels]] as const) {
        kernels.scorePages(dq.ptr, bounds, pages, scores.ptr, bounds.pageCapacity);
        selector.selectPages(scores.ptr, bounds.pageCapacity, pages, k, lists);
        const words = downloadInt32(rt, lists.ptr, kernels.units * lists.stride);
        for (let u = 0; u < kernels.units; u++) {
          const w = words.subarray(u * lists.stride);
          assert.equal(w[0], k, `unit ${u}: ${w[0]} pages listed, wanted ${k}`);
          assert.equal(w[1], k * P);
          assert.equal(w[2], P, 'pages are a uniform list');
          const got = Array.from({ length: k }, (_, i) => w[SEGMENT_HEADER_WORDS + 2 * i] / P);
          for (let i = 0; i < k; i++) assert.equal(w[SEGMENT_HEADER_WORDS + 1 + 2 * i], i * P, 'logical rows follow the list order');
          const want = Array.from(sharePages
            ? cpu.choosePages(q, u * g, g, D, cpuBounds, u, pages, k).subarray(0, k)
            : cpu.choosePages(q, u, 1, D, cpuBounds, Math.floor(u / g), pages, k).subarray(0, k));
          assert.deepEqual(got, want, `unit ${u}, k = ${k}`);
        }
      }
      for (const b of [dq, scores]) rt.pool.release(b);
      lists.release();
      bounds.release();
      caches.device.release();
    });
  }

  interface StepCase { name: string; H: number; Hkv: number; D: number; n: number; steps: number; sparsity?: number; tokenBudget?: number; sharePages: boolean; seed: number }
  const stepCases: StepCase[] = [
    { name: 's = 0.8, GQA 4 sharing pages', H: 16, Hkv: 4, D: 128, n: 2000, steps: 20, sparsity: 0.8, sharePages: true, seed: 51 },
    { name: 'token budget 256, per query head, D = 64', H: 8, Hkv: 2, D: 64, n: 1500, steps: 12, tokenBudget: 256, sharePages: false, seed: 52 },
    { name: 's = 0.95 on a short prompt (budget below one page)', H: 8, Hkv: 8, D: 128, n: 300, steps: 5, sparsity: 0.95, sharePages: true, seed: 53 },
  ];
  for (const c of stepCases) {
    test(`decode steps match the CPU method: ${c.name}`, () => {
      const rand = randomGenerator(c.seed);
      const caches = twinCaches(rt, c.Hkv, c.D, c.n + c.steps);
      appendRandom(rt, caches, c.n, rand);
      const params = { sharePages: c.sharePages, ...(c.tokenBudget !== undefined ? { tokenBudget: c.tokenBudget } : {}) };
      const config = attentionConfig(c.H, c.Hkv, c.D);
      const gpu = questDeviceFactory.create(rt, config, { ...(c.sparsity !== undefined ? { sparsity: c.sparsity } : {}), params });
      const cpu = new QuestDecode(16, c.sparsity ?? null, c.tokenBudget ?? null, c.sharePages);
      const shape = cpuShape(c.H, c.Hkv, c.D);
      let last: { p: number; q: Float32Array; ref: Float32Array } | null = null;
      for (let s = 0; s < c.steps; s++) {
        // No eviction: the device row count is the CPU cache's length too.
        const { p, q, ref, counts, err } = checkDecodeStep(rt, caches, cpu, gpu, c.H, c.Hkv, c.D, 0, rand, TOLERANCE);
        if (s === c.steps - 1) console.log(`#   last step ${p}: ${counts.attended[0]} of ${p + 1} rows, rel err ${err.toExponential(2)}`);
        last = { p, q, ref };
      }
      const estimationMs = (gpu as unknown as EstimationTiming).lastEstimationMs();
      assert.ok(estimationMs !== null && estimationMs > 0, `estimation time ${estimationMs}`);
      // reset() drops the bounds: the same step again rebuilds them from the whole cache.
      gpu.reset?.();
      if (last) {
        const dq = uploadAsBf16(rt, last.q);
        const dout = poisonedBf16(rt, c.H * c.D);
        gpu.decode({ layer: 0, shape, q: dq.ptr, position: last.p, cache: caches.device, out: dout.ptr });
        const again = downloadBf16(rt, dout, c.H * c.D);
        rt.pool.release(dq);
        rt.pool.release(dout);
        assert.ok(relativeError(again, last.ref) < TOLERANCE, 'the step after reset() matches the CPU');
      }
      gpu.reset?.();
      caches.device.release();
    });
  }

  test('a budget covering everything (s = 0) equals our dense decode, with the last page partial', () => {
    const H = 32, Hkv = 8, D = 128, n = 4103;
    const rand = randomGenerator(61);
    const caches = twinCaches(rt, Hkv, D, n + 1);
    appendRandom(rt, caches, n + 1, rand);
    const p = n;
    assert.equal(questPagesFor(p, 16, 0, null), Math.floor(p / 16), 's = 0 reads every page');
    const gpu = questDeviceFactory.create(rt, attentionConfig(H, Hkv, D), { sparsity: 0, params: {} });
    const q = randomBf16Values(H * D, rand, 2);
    const dq = uploadAsBf16(rt, q);
    const a = poisonedBf16(rt, H * D);
    const counts = gpu.decode({ layer: 3, shape: cpuShape(H, Hkv, D), q: dq.ptr, position: p, cache: caches.device, out: a.ptr });
    const gb = denseDecodeOutput(rt, H, Hkv, D, dq.ptr, caches.device, p + 1);
    const ga = downloadBf16(rt, a, H * D);
    for (const x of [dq, a]) rt.pool.release(x);
    assert.equal(counts.attended[0], p + 1);
    const err = relativeError(ga, gb);
    assert.ok(err < 4e-3, `quest at s = 0 differs from dense decode by ${err}`);
    gpu.reset?.();
    caches.device.release();
  });
});
