/**
 * Sink + local prefill on the dense wgmma kernel (flash-prefill-wgmma-sink-local.ts, the method's
 * default on Hopper) against the CPU method (src/methods/sink-local.ts):
 *   - random inputs, whole prompt and chunked: outputs within bf16 tolerance of the CPU's result, exact
 *     pair counts, NaN-poisoned outputs;
 *   - every row's window start exactly: keys score lower the later they sit and the sinks lowest of all,
 *     so each row's output is (to 1e-7) the value row of its window's first key, whose index the values
 *     spell in bits; sparsities whose keep counts land on and next to halves (0.5, 0.75, 0.9, whose
 *     1 - s is 0.09999999999999998) check the kernel's rounding against Math.round's;
 *   - every sink attended by every row with its full weight: sinks score far above every other key and
 *     their value rows are one-hot, so each row's output is 1 / sinkTokens in each sink's column;
 *   - at sparsity 0 the output equals the dense wgmma kernel's bit for bit (the same tiles and masks).
 * The checks run on the default kernel and on its opt-in variants (SinkLocalWindowVariant): sinks folded,
 * persistent blocks, capped at a few so that each block walks many work items (folded and not, whole
 * and partial blocks, chunks), and the lean and bit masks.
 * Skipped, with the reason printed, where there is no CUDA device or it is not a Hopper GPU.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { WgmmaFlashPrefill, wgmmaPrefillUnsupported } from '../../src/backends/cuda/kernels/flash-prefill-wgmma.js';
import { DeviceLayerKvCache } from '../../src/backends/cuda/kv-cache.js';
import { SinkLocalDevicePrefill, sinkLocalRuleFrom } from '../../src/backends/cuda/methods/sink-local-prefill.js';
import type { CudaRuntime } from '../../src/backends/cuda/runtime.js';
import { downloadBf16, poisonedBf16, uploadAsBf16 } from '../../src/backends/cuda/transfer.js';
import { sinkLocalKeys } from '../../src/methods/sink-local.js';
import { cudaSkip } from './cuda-skip.js';
import { countNaN, randomBf16Values, randomGenerator } from './helpers.js';
import { type SinkLocalCase, type SinkLocalInputs, compareSinkLocalChunks } from './sink-local-compare.js';
import {
  DEFAULT_SINK_LOCAL_WINDOW_VARIANT, type SinkLocalWindowVariant, WgmmaSinkLocalPrefill,
} from '../../src/backends/cuda/kernels/flash-prefill-wgmma-sink-local.js';
import type { SinkLocalRule } from '../../src/methods/sink-local.js';

const skip = cudaSkip('CUDA sink-local wgmma prefill tests');

const RANDOM_CASES: SinkLocalCase[] = [
  { name: 'fixed window 100, 4 sinks, whole prompt', n: 700, H: 8, Hkv: 2, D: 128, seed: 41, options: { params: { localWindow: 100 } }, chunks: [700] },
  { name: 'target sparsity 0.8, two chunks (partial blocks)', n: 900, H: 4, Hkv: 1, D: 64, seed: 42, options: { sparsity: 0.8 }, chunks: [333, 567] },
  { name: '70 sinks, window 10, three chunks', n: 400, H: 4, Hkv: 4, D: 128, seed: 43, options: { params: { sinkTokens: 70, localWindow: 10 } }, chunks: [50, 200, 150] },
  { name: 'target sparsity 0.95, sinks in their own tile', n: 1500, H: 8, Hkv: 2, D: 128, seed: 44, options: { sparsity: 0.95 }, chunks: [1500] },
  { name: 'no sinks, target sparsity 0.5', n: 600, H: 4, Hkv: 2, D: 64, seed: 45, options: { sparsity: 0.5, params: { sinkTokens: 0 } }, chunks: [600] },
  { name: 'sparsity 0.99: little more than the sinks and the query itself', n: 300, H: 4, Hkv: 2, D: 64, seed: 46, options: { sparsity: 0.99 }, chunks: [300] },
  // More sinks than one tile holds: the blocks far from the start visit tiles 0 and 1 for them.
  { name: '200 sinks over two tiles, target sparsity 0.9', n: 1500, H: 4, Hkv: 2, D: 64, seed: 48, options: { sparsity: 0.9, params: { sinkTokens: 200 } }, chunks: [1500] },
  // 60 sinks fold into some blocks' first window tile and not others (the head left of the window is 0-127 keys).
  { name: '60 sinks, target sparsity 0.95, two chunks', n: 2000, H: 4, Hkv: 1, D: 128, seed: 49, options: { sparsity: 0.95, params: { sinkTokens: 60 } }, chunks: [777, 1223] },
  // More work items (24 row blocks x 8 heads) than the GPU has multiprocessors, uncapped persistent blocks too.
  { name: 'target sparsity 0.9, 192 work items, two chunks', n: 3000, H: 8, Hkv: 2, D: 128, seed: 50, options: { sparsity: 0.9 }, chunks: [1100, 1900] },
];

/** The window kernel's variants every check runs on. */
const VARIANTS: { label: string; variant: SinkLocalWindowVariant }[] = [
  { label: 'window kernel', variant: {} },
  { label: 'window kernel, sinks folded', variant: { foldSinks: true } },
  { label: 'window kernel, 5 persistent blocks', variant: { persistent: true, persistentBlocks: 5 } },
  { label: 'window kernel, sinks folded, 7 persistent blocks', variant: { foldSinks: true, persistent: true, persistentBlocks: 7 } },
  { label: 'window kernel, sinks folded, persistent', variant: { foldSinks: true, persistent: true } },
  { label: 'window kernel, sinks folded, lean mask', variant: { foldSinks: true, mask: 'lean' } },
  { label: 'window kernel, sinks folded, bit mask, 5 persistent blocks', variant: { foldSinks: true, mask: 'bits', persistent: true, persistentBlocks: 5 } },
  { label: 'window kernel, bit mask', variant: { mask: 'bits' } },
];

/** Bits of a key's index spelled by its value row (columns 0 .. INDEX_BITS - 1), enough for every probe length. */
const INDEX_BITS = 11;
const PROBE_D = 64;

/**
 * Inputs whose every output row is the value row of the row's first window key: the score of key r
 * (r >= sinkTokens) is -128·r (two exact bf16 components, r / 256 and r mod 256, against q = (32768,
 * 128)), so neighbours differ by 16 after the 1/8 scale (weight e^-16 ≈ 1e-7), and the sinks score
 * -2^19, below every window key. Value row r spells r in bits; column INDEX_BITS is 1 everywhere.
 */
function probeInputs(n: number, H: number, Hkv: number, sinkTokens: number): SinkLocalInputs {
  const D = PROBE_D;
  const q = new Float32Array(n * H * D), k = new Float32Array(n * Hkv * D), v = new Float32Array(n * Hkv * D);
  for (let t = 0; t < n; t++) {
    for (let h = 0; h < H; h++) {
      const o = (t * H + h) * D;
      q[o] = 32768;
      q[o + 1] = 128;
      q[o + 2] = 524288;
    }
    for (let h = 0; h < Hkv; h++) {
      const o = (t * Hkv + h) * D;
      if (t < sinkTokens) k[o + 2] = -1;
      else {
        k[o] = -(t >> 8);
        k[o + 1] = -(t & 255);
      }
      for (let b = 0; b < INDEX_BITS; b++) v[o + b] = (t >> b) & 1;
      v[o + INDEX_BITS] = 1;
    }
  }
  return { q, k, v };
}

/** Column of the sink probe's value rows that is 1 for every key (the weights' sum). */
const SINK_PROBE_ONES = PROBE_D - 1;

/**
 * Inputs whose every output row (from position sinkTokens on) weighs each sink 1 / sinkTokens and every
 * other key ~0: the sinks score 64 after the 1/8 scale (q = 512 against k = 1 in column 0), every other
 * key 0 (weight e^-64 each), and sink j's value row is one-hot in column j (sinkTokens < PROBE_D - 1).
 */
function sinkProbeInputs(n: number, H: number, Hkv: number, sinkTokens: number): SinkLocalInputs {
  const D = PROBE_D;
  if (sinkTokens >= SINK_PROBE_ONES) throw new Error(`sink probe: at most ${SINK_PROBE_ONES - 1} sinks`);
  const q = new Float32Array(n * H * D), k = new Float32Array(n * Hkv * D), v = new Float32Array(n * Hkv * D);
  for (let t = 0; t < n; t++) {
    for (let h = 0; h < H; h++) q[(t * H + h) * D] = 512;
    for (let h = 0; h < Hkv; h++) {
      const o = (t * Hkv + h) * D;
      if (t < sinkTokens) {
        k[o] = 1;
        v[o + t] = 1;
      }
      v[o + SINK_PROBE_ONES] = 1;
    }
  }
  return { q, k, v };
}

describe('CUDA sink-local prefill on the wgmma window kernel', { skip }, () => {
  let rt: CudaRuntime;
  let unsupported: string | null = null;
  before(async () => {
    const { CudaRuntime } = await import('../../src/backends/cuda/runtime.js');
    rt = new CudaRuntime();
    unsupported = wgmmaPrefillUnsupported(rt.cuda.info, 128);
    if (unsupported) console.log(`# ${unsupported}`);
  });
  after(() => rt?.dispose());

  test('the method picks the window kernel on Hopper and the Vertical-Slash one when asked', (t) => {
    if (unsupported) return t.skip(unsupported);
    const rule = sinkLocalRuleFrom({ sparsity: 0.5 });
    const shape = { numHeads: 4, numKvHeads: 2, headDim: 128 };
    // The default is the window kernel in DEFAULT_SINK_LOCAL_WINDOW_VARIANT.
    assert.equal(new SinkLocalDevicePrefill(rt, shape, rule).kernelLabel, new WgmmaSinkLocalPrefill(rt, shape, {}, DEFAULT_SINK_LOCAL_WINDOW_VARIANT).label);
    assert.match(new SinkLocalDevicePrefill(rt, shape, rule, 'window', {}).kernelLabel, /sink-local$/);
    assert.equal(new SinkLocalDevicePrefill(rt, shape, rule, 1).kernelLabel, 'vertical-slash');
    assert.match(new SinkLocalDevicePrefill(rt, shape, rule, 'window', { foldSinks: true }).kernelLabel, /sink-local-fold$/);
    assert.match(new SinkLocalDevicePrefill(rt, shape, rule, 'window', { foldSinks: true, persistent: true }).kernelLabel, /sink-local-fold-persist$/);
    assert.throws(() => new SinkLocalDevicePrefill(rt, shape, rule, 'window', { mask: 'off' }), /wrong outputs/);
  });

  for (const c of RANDOM_CASES) {
    test(`random inputs, ${c.name}: n=${c.n} H=${c.H} Hkv=${c.Hkv} D=${c.D}`, (t) => {
      if (unsupported) return t.skip(unsupported);
      const rand = randomGenerator(c.seed);
      const x = {
        q: randomBf16Values(c.n * c.H * c.D, rand, 2), k: randomBf16Values(c.n * c.Hkv * c.D, rand, 2), v: randomBf16Values(c.n * c.Hkv * c.D, rand),
      };
      const rule = sinkLocalRuleFrom(c.options);
      const shape = { numHeads: c.H, numKvHeads: c.Hkv, headDim: c.D };
      compareSinkLocalChunks(rt, c, rule, x, VARIANTS.map(({ label, variant }) => ({
        label, method: new SinkLocalDevicePrefill(rt, shape, rule, 'window', variant),
      })));
    });
  }

  /**
   * Runs one window-kernel variant over probe inputs chunk by chunk (D = PROBE_D, H 4, Hkv 2) and hands
   * every output row (position, head, its PROBE_D values) to `check`; every output element must be written.
   */
  function probeRows(
    rule: SinkLocalRule, chunks: number[], x: SinkLocalInputs, variant: SinkLocalWindowVariant,
    check: (pos: number, h: number, row: Float32Array) => void,
  ): void {
    const H = 4, Hkv = 2, n = chunks.reduce((a, b) => a + b, 0);
    const devCache = new DeviceLayerKvCache(rt, Hkv, PROBE_D, n);
    const dk = uploadAsBf16(rt, x.k), dv = uploadAsBf16(rt, x.v), dq = uploadAsBf16(rt, x.q);
    const gpu = new SinkLocalDevicePrefill(rt, { numHeads: H, numKvHeads: Hkv, headDim: PROBE_D }, rule, 'window', variant);
    try {
      let start = 0;
      for (const T of chunks) {
        devCache.appendTokens({ k: dk.ptr + BigInt(2 * start * Hkv * PROBE_D), v: dv.ptr + BigInt(2 * start * Hkv * PROBE_D), rowStride: Hkv * PROBE_D }, T);
        const dout = poisonedBf16(rt, T * H * PROBE_D);
        gpu.prefill({
          layer: 0, shape: { numHeads: H, numKvHeads: Hkv, headDim: PROBE_D, scale: 1 / Math.sqrt(PROBE_D) }, q: dq.ptr + BigInt(2 * start * H * PROBE_D),
          qRowStride: H * PROBE_D, numQueries: T, queryStart: start, cache: devCache, out: dout.ptr, isLastChunk: start + T === n,
        });
        const out = downloadBf16(rt, dout, T * H * PROBE_D);
        rt.pool.release(dout);
        assert.equal(countNaN(out), 0, 'every output element must be written');
        for (let tq = 0; tq < T; tq++) {
          for (let h = 0; h < H; h++) check(start + tq, h, out.subarray((tq * H + h) * PROBE_D, (tq * H + h + 1) * PROBE_D));
        }
        start += T;
      }
    } finally {
      gpu.reset();
      devCache.release();
      for (const b of [dk, dv, dq]) rt.pool.release(b);
    }
  }

  const PROBES: { options: SinkLocalCase['options']; chunks: number[] }[] = [
    { options: { sparsity: 0.5 }, chunks: [2048] },
    { options: { sparsity: 0.75 }, chunks: [1000, 1048] },
    { options: { sparsity: 0.9 }, chunks: [2048] },
    { options: { sparsity: 0.97, params: { sinkTokens: 130 } }, chunks: [2048] },
    { options: { params: { localWindow: 300 } }, chunks: [700, 1348] },
  ];
  for (const { label, variant } of VARIANTS) {
    for (const p of PROBES) {
      const rule = sinkLocalRuleFrom(p.options);
      test(`${label}: every row's window start: sinks ${rule.sinkTokens}, ${rule.localWindow !== null ? `window ${rule.localWindow}` : `sparsity ${rule.sparsity}`}, chunks ${p.chunks.join('+')}`, (t) => {
        if (unsupported) return t.skip(unsupported);
        const n = p.chunks.reduce((a, b) => a + b, 0);
        const keys = new Int32Array(2);
        const checkedRows = new Set<number>();
        probeRows(rule, p.chunks, probeInputs(n, 4, 2, rule.sinkTokens), variant, (pos, h, row) => {
          sinkLocalKeys(pos, rule, keys);
          if (keys[1] > pos) return;  // no window key: the row averages its sinks
          let decoded = 0;
          for (let b = 0; b < INDEX_BITS; b++) decoded += Math.round(row[b]) << b;
          assert.equal(decoded, keys[1], `position ${pos}, head ${h}: first window key`);
          assert.ok(Math.abs(row[INDEX_BITS] - 1) < 1e-2, `position ${pos}, head ${h}: weights sum to 1`);
          checkedRows.add(pos);
        });
        console.log(`#   ${checkedRows.size} rows' window starts checked`);
        assert.ok(checkedRows.size > n / 2, `only ${checkedRows.size} of ${n} rows had a window key`);
      });
    }
  }

  // Sinks 4 (the default: folded in ~97% of blocks) and 40 (folded where the first window tile's masked
  // head holds 40 keys, ~69% of blocks), chunked so that blocks start mid-tile.
  const SINK_PROBES: { options: SinkLocalCase['options']; chunks: number[] }[] = [
    { options: { sparsity: 0.9 }, chunks: [2048] },
    { options: { sparsity: 0.95, params: { sinkTokens: 40 } }, chunks: [900, 1148] },
    { options: { params: { localWindow: 200, sinkTokens: 40 } }, chunks: [2048] },
  ];
  for (const { label, variant } of VARIANTS) {
    for (const p of SINK_PROBES) {
      const rule = sinkLocalRuleFrom(p.options);
      test(`${label}: every sink attended by every row: sinks ${rule.sinkTokens}, ${rule.localWindow !== null ? `window ${rule.localWindow}` : `sparsity ${rule.sparsity}`}, chunks ${p.chunks.join('+')}`, (t) => {
        if (unsupported) return t.skip(unsupported);
        const n = p.chunks.reduce((a, b) => a + b, 0), S = rule.sinkTokens;
        let checked = 0;
        probeRows(rule, p.chunks, sinkProbeInputs(n, 4, 2, S), variant, (pos, h, row) => {
          if (pos < S) return;  // a row before the last sink sees only some of them
          for (let j = 0; j < S; j++) {
            assert.ok(Math.abs(row[j] * S - 1) < 1e-2, `position ${pos}, head ${h}: sink ${j} has weight ${row[j]}, expected 1/${S}`);
          }
          assert.ok(Math.abs(row[SINK_PROBE_ONES] - 1) < 1e-2, `position ${pos}, head ${h}: weights sum to 1`);
          checked++;
        });
        assert.equal(checked, (n - S) * 4);
      });
    }
  }

  for (const { label, variant } of VARIANTS) {
    test(`${label}: sparsity 0 gives the dense wgmma kernel's output bit for bit`, (t) => {
      if (unsupported) return t.skip(unsupported);
      const n = 777, H = 8, Hkv = 2, D = 128;
      const rand = randomGenerator(47);
      const q = randomBf16Values(n * H * D, rand, 2), k = randomBf16Values(n * Hkv * D, rand, 2), v = randomBf16Values(n * Hkv * D, rand);
      const devCache = new DeviceLayerKvCache(rt, Hkv, D, n);
      const dk = uploadAsBf16(rt, k), dv = uploadAsBf16(rt, v), dq = uploadAsBf16(rt, q);
      const sparse = poisonedBf16(rt, n * H * D), dense = poisonedBf16(rt, n * H * D);
      const gpu = new SinkLocalDevicePrefill(rt, { numHeads: H, numKvHeads: Hkv, headDim: D }, sinkLocalRuleFrom({ sparsity: 0 }), 'window', variant);
      try {
        devCache.appendTokens({ k: dk.ptr, v: dv.ptr, rowStride: Hkv * D }, n);
        const scale = 1 / Math.sqrt(D);
        gpu.prefill({
          layer: 0, shape: { numHeads: H, numKvHeads: Hkv, headDim: D, scale }, q: dq.ptr, qRowStride: H * D, numQueries: n, queryStart: 0,
          cache: devCache, out: sparse.ptr, isLastChunk: true,
        });
        new WgmmaFlashPrefill(rt, { numHeads: H, numKvHeads: Hkv, headDim: D }).run({
          q: dq.ptr, k: devCache.keys.ptr, v: devCache.values.ptr, out: dense.ptr, numQueries: n, queryStart: 0, kvLen: n,
          kvStride: devCache.capacity, scale,
        });
        const a = downloadBf16(rt, sparse, n * H * D), b = downloadBf16(rt, dense, n * H * D);
        assert.equal(countNaN(a), 0);
        assert.deepEqual(a, b);
      } finally {
        gpu.reset();
        devCache.release();
        for (const b of [dk, dv, dq, sparse, dense]) rt.pool.release(b);
      }
    });
  }
});
