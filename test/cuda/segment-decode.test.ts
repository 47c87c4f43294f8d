/**
 * GPU correctness of the segment-list decode (segment-decode.cu) against the CPU float64 reference on
 * the same bf16 inputs: Quest-like page lists plus a current page, evicted prompts plus decode tokens,
 * empty segments and lists, one selection per query head, a list covering everything (equal to our
 * dense decode kernel), enough rows for many splits, and the sink + local decode method against the
 * CPU one. Outputs are poisoned with NaN first.
 * Skipped, with the reason printed, where there is no CUDA device.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { DecodeAttentionKernel } from '../../src/backends/cuda/kernels/decode-attention.js';
import {
  type RowSegment, SEGMENT_TILING_V2, SegmentDecodeKernel, type SegmentDecodeTiling, SegmentLists, defaultSegmentTiling, encodeSegmentLists,
  planSegmentDecode, segmentRowsPerStep,
} from '../../src/backends/cuda/kernels/segment-decode.js';
import type { CudaRuntime } from '../../src/backends/cuda/runtime.js';
import { downloadBf16, poisonedBf16, uploadAsBf16 } from '../../src/backends/cuda/transfer.js';
import { countNaN, randomBf16Values, randomGenerator, relativeError } from './helpers.js';
import { appendRandom, attentionConfig, checkDecodeStep, referenceRangeDecode, twinCaches } from './sparse-decode-helpers.js';
import { cudaSkip } from './cuda-skip.js';
import { sinkLocalDecodeDeviceFactory } from '../../src/backends/cuda/methods/sink-local-decode.js';
import type { DecodeAttention } from '../../src/engine/attention.js';
import { resolveOptions } from '../../src/methods/options.js';
import { sinkLocalDecodeMethod } from '../../src/methods/sink-local.js';

const skip = cudaSkip('CUDA segment decode tests');

const TOLERANCE = 1e-2;

describe('segment lists (host side)', () => {
  test('encoding: count, list rows, uniform length, then (first row, first logical row) pairs', () => {
    const words = encodeSegmentLists([[{ start: 32, length: 16 }, { start: 0, length: 0 }, { start: 80, length: 5 }], [], [{ start: 48, length: 16 }, { start: 0, length: 16 }]], 3);
    assert.deepEqual([...words], [
      3, 21, 0, 0, 32, 0, 0, 16, 80, 16,
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
      2, 32, 16, 0, 48, 0, 0, 16, 0, 0,
    ]);
    assert.throws(() => encodeSegmentLists([[{ start: 0, length: 1 }, { start: 4, length: 1 }]], 1), /room for 1/);
    assert.throws(() => encodeSegmentLists([[{ start: -1, length: 1 }]], 1), /not a valid row range/);
  });
  test('plan: one wave of chunks, each a multiple of the loop step', () => {
    for (const tiling of [SEGMENT_TILING_V2, defaultSegmentTiling(128, 4)]) {
      const plan = planSegmentDecode(128, 8, 10_000, 132, 4, tiling);
      assert.equal(plan.chunk % segmentRowsPerStep(128, tiling), 0);
      assert.ok(plan.splits * 8 <= 132 * 4 && plan.splits * plan.chunk >= 10_000);
      assert.deepEqual(planSegmentDecode(64, 8, 1, 132, 4, tiling), { chunk: segmentRowsPerStep(64, tiling), splits: 1 });
    }
  });
  test('tiling: 256 threads where the slot buffers fit, else 128', () => {
    assert.deepEqual(defaultSegmentTiling(128, 4), { threads: 256, unroll: 2, stages: 4, ringMinSteps: 4 });
    assert.deepEqual(defaultSegmentTiling(128, 8), SEGMENT_TILING_V2);
    assert.deepEqual(defaultSegmentTiling(64, 1), { threads: 256, unroll: 2, stages: 4, ringMinSteps: 4 });
    assert.deepEqual(defaultSegmentTiling(64, 8), SEGMENT_TILING_V2);
  });
});

interface Case {
  name: string;
  H: number; Hkv: number; D: number;
  /** Cache rows (kvStride). */
  rows: number;
  perQueryHead?: boolean;
  /** Per unit: the listed segments. */
  lists: (unit: number, rand: () => number) => RowSegment[];
  tail: [number, number]; // [start, rows]
  seed: number;
}

/** k distinct pages of 16 rows out of `pages`, ascending. */
function randomPages(rand: () => number, pages: number, k: number): RowSegment[] {
  const all = Array.from({ length: pages }, (_, i) => i);
  for (let i = pages - 1; i > 0; i--) {
    const j = Math.floor(((rand() + 1) / 2) * (i + 1)) % (i + 1);
    [all[i], all[j]] = [all[j], all[i]];
  }
  return all.slice(0, k).sort((a, b) => a - b).map((p) => ({ start: p * 16, length: 16 }));
}

const cases: Case[] = [
  { name: 'Quest pages, GQA 4, D=128', H: 32, Hkv: 8, D: 128, rows: 4100, lists: (_u, r) => randomPages(r, 256, 40), tail: [4096, 4], seed: 1 },
  { name: 'Quest pages per query head', H: 16, Hkv: 4, D: 128, rows: 2000, perQueryHead: true, lists: (_u, r) => randomPages(r, 120, 17), tail: [1984, 16], seed: 2 },
  {
    name: 'evicted prompt of uneven heads + decode tokens, D=64, no GQA', H: 8, Hkv: 8, D: 64, rows: 3000,
    lists: (u) => [{ start: 0, length: [1, 700, 2500, 33, 64, 129, 1000, 2999 - 10][u] }], tail: [2990, 10], seed: 3,
  },
  {
    name: 'empty segments and an empty list', H: 8, Hkv: 2, D: 128, rows: 600,
    lists: (u) => (u === 0 ? [] : [{ start: 5, length: 0 }, { start: 100, length: 37 }, { start: 300, length: 0 }, { start: 400, length: 3 }]),
    tail: [590, 10], seed: 4,
  },
  { name: 'sink + window, GQA 8', H: 64, Hkv: 8, D: 128, rows: 9000, lists: () => [{ start: 0, length: 4 }], tail: [8000, 1000], seed: 5 },
  // Chunks of 4+ loop steps: the default tiling's ring path.
  { name: 'long: 1000 pages of 30K, D=128 GQA 4', H: 8, Hkv: 2, D: 128, rows: 30_000, lists: (_u, r) => randomPages(r, 1874, 1000), tail: [29_984, 16], seed: 7 },
  { name: 'long: 90% of 40K in pages (many splits), D=64 GQA 2', H: 8, Hkv: 4, D: 64, rows: 40_000, lists: (_u, r) => randomPages(r, 2499, 250), tail: [39_984, 16], seed: 6 },
];

describe('CUDA segment decode', { skip }, () => {
  let rt: CudaRuntime;
  before(async () => {
    const { CudaRuntime } = await import('../../src/backends/cuda/runtime.js');
    rt = new CudaRuntime();
  });
  after(() => rt?.dispose());

  /**
   * The launcher's default tiling (ring from 4 steps where it has one), its two paths alone (register
   * double buffering; the bulk-copy ring for every chunk), and v2's where it differs: all must be right.
   */
  const tilingsFor = (c: Case): SegmentDecodeTiling[] => {
    const group = c.perQueryHead ? 1 : c.H / c.Hkv;
    const d = defaultSegmentTiling(c.D, group);
    const paths: SegmentDecodeTiling[] = [{ threads: d.threads, unroll: d.unroll }, { threads: d.threads, unroll: d.unroll, stages: 4 }];
    return d.threads === SEGMENT_TILING_V2.threads ? [d, paths[1]] : [d, ...paths, SEGMENT_TILING_V2];
  };
  const tilingLabel = (t: SegmentDecodeTiling) =>
    `${t.threads} threads x ${t.unroll}${t.stages ? `, ring of ${t.stages}${t.ringMinSteps ? ` from ${t.ringMinSteps} steps` : ''}` : ''}`;
  for (const c of cases) for (const tiling of tilingsFor(c)) {
    test(`${c.name} (${tilingLabel(tiling)})`, () => {
      const rand = randomGenerator(c.seed);
      const units = c.perQueryHead ? c.H : c.Hkv;
      const lists = Array.from({ length: units }, (_, u) => c.lists(u, rand));
      const q = randomBf16Values(c.H * c.D, rand, 2);
      const k = randomBf16Values(c.Hkv * c.rows * c.D, rand, 2);
      const v = randomBf16Values(c.Hkv * c.rows * c.D, rand);
      const perHead = (x: Float32Array) => Array.from({ length: c.Hkv }, (_, h) => x.subarray(h * c.rows * c.D, (h + 1) * c.rows * c.D));
      const scale = 1 / Math.sqrt(c.D);
      const ranges = (u: number): Array<[number, number]> => [
        ...lists[u].map((s): [number, number] => [s.start, s.start + s.length]), [c.tail[0], c.tail[0] + c.tail[1]],
      ];
      const ref = referenceRangeDecode(q, perHead(k), perHead(v), c.H, c.Hkv, c.D, scale, ranges, c.perQueryHead);

      const kernel = new SegmentDecodeKernel(rt, { numHeads: c.H, numKvHeads: c.Hkv, headDim: c.D }, c.perQueryHead ?? false, tiling);
      const segments = new SegmentLists(rt, units, Math.max(1, ...lists.map((l) => l.length)));
      segments.upload(lists);
      const dq = uploadAsBf16(rt, q), dk = uploadAsBf16(rt, k), dv = uploadAsBf16(rt, v);
      const dout = poisonedBf16(rt, c.H * c.D);
      const maxRows = Math.max(...lists.map((l) => l.reduce((a, s) => a + s.length, 0))) + c.tail[1];
      try {
        const plan = kernel.run({
          q: dq.ptr, k: dk.ptr, v: dv.ptr, kvStride: c.rows, out: dout.ptr, segments, tailStart: c.tail[0], tailRows: c.tail[1], maxRows, scale,
        });
        const out = downloadBf16(rt, dout, c.H * c.D);
        assert.equal(countNaN(out), 0, 'every output element must be written');
        const err = relativeError(out, ref);
        console.log(`#   ${plan.splits} splits of ${plan.chunk}${kernel.usesRing(maxRows) ? ' (ring)' : ''}: rel err ${err.toExponential(2)}`);
        assert.ok(err < TOLERANCE, `relative error ${err} over ${TOLERANCE}`);
      } finally {
        for (const b of [dq, dk, dv, dout]) rt.pool.release(b);
        segments.release();
      }
    });
  }

  for (const [label, sparsity, localWindow] of [['s = 0.9', 0.9, undefined], ['fixed window 100', undefined, 100]] as const) {
    test(`sink + local decode (${label}) matches the CPU method, which evicts`, () => {
      const H = 16, Hkv = 4, D = 128, n = 1200, steps = 6;
      const rand = randomGenerator(8);
      const caches = twinCaches(rt, Hkv, D, n + steps);
      appendRandom(rt, caches, n, rand);
      const params = { sinkTokens: 4, ...(localWindow !== undefined ? { localWindow } : {}) };
      const options = { ...(sparsity !== undefined ? { sparsity } : {}), params };
      const gpu = sinkLocalDecodeDeviceFactory.create(rt, attentionConfig(H, Hkv, D), options);
      const cpu = sinkLocalDecodeMethod.create(resolveOptions(sinkLocalDecodeMethod, options)).decode as DecodeAttention;
      for (let s = 0; s < steps; s++) checkDecodeStep(rt, caches, cpu, gpu, H, Hkv, D, 0, rand, TOLERANCE);
      assert.ok(caches.cpu.lengths[0] < caches.device.length, 'the CPU method evicted rows the device method leaves in place');
      gpu.reset?.();
      caches.device.release();
    });
  }

  test('a list covering the whole cache equals our dense decode kernel', () => {
    const H = 32, Hkv = 8, D = 128, n = 5000, scale = 1 / Math.sqrt(D);
    const rand = randomGenerator(7);
    const q = randomBf16Values(H * D, rand, 2);
    const k = randomBf16Values(Hkv * n * D, rand, 2);
    const v = randomBf16Values(Hkv * n * D, rand);
    const dq = uploadAsBf16(rt, q), dk = uploadAsBf16(rt, k), dv = uploadAsBf16(rt, v);
    const shape = { numHeads: H, numKvHeads: Hkv, headDim: D };
    const segments = new SegmentLists(rt, Hkv, 1);
    segments.upload(Array.from({ length: Hkv }, () => [{ start: 0, length: n - 1 }]));
    const sparseOut = poisonedBf16(rt, H * D), denseOut = poisonedBf16(rt, H * D);
    new SegmentDecodeKernel(rt, shape).run({
      q: dq.ptr, k: dk.ptr, v: dv.ptr, kvStride: n, out: sparseOut.ptr, segments, tailStart: n - 1, tailRows: 1, maxRows: n, scale,
    });
    new DecodeAttentionKernel(rt, shape).run({ q: dq.ptr, k: dk.ptr, v: dv.ptr, out: denseOut.ptr, kvLen: n, kvStride: n, scale });
    const a = downloadBf16(rt, sparseOut, H * D), b = downloadBf16(rt, denseOut, H * D);
    for (const x of [dq, dk, dv, sparseOut, denseOut]) rt.pool.release(x);
    segments.release();
    const err = relativeError(a, b);
    console.log(`#   segment vs dense kernel: rel diff ${err.toExponential(2)}`);
    assert.ok(err < 4e-3, `segment decode over everything differs from dense decode by ${err}`);
  });
});
