/**
 * The Hopper wgmma prefill kernel (flash-prefill-wgmma.cu) against the CPU reference, with the checks
 * of the mma.sync kernel's tests (test/cuda/attention.test.ts): random bf16 inputs, output poisoned
 * with NaN, T not a multiple of the 128-row block, GQA groups, later chunks of a prompt, spare cache
 * rows, sliding windows, q read out of wider fused-projection rows. Also: FlashPrefill's kernel choice.
 * Needs a compute capability 9.0 GPU; skipped with the reason elsewhere.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { cudaUnavailableReason, isCudaAvailable } from '../../src/backends/cuda/availability.js';
import { FlashPrefill, PREFILL_WGMMA_BY_DEFAULT } from '../../src/backends/cuda/kernels/flash-prefill.js';
import {
  WgmmaFlashPrefill, type WgmmaPrefillTiling, wgmmaPrefillUnsupported, wgmmaTilingLabel,
} from '../../src/backends/cuda/kernels/flash-prefill-wgmma.js';
import type { CudaRuntime } from '../../src/backends/cuda/runtime.js';
import { downloadBf16, poisonedBf16, uploadAsBf16 } from '../../src/backends/cuda/transfer.js';
import { countNaN, randomBf16Values, randomGenerator, referenceCausalAttention, relativeError } from './helpers.js';

const available = isCudaAvailable();
const skip = available ? false : `no CUDA device here: ${cudaUnavailableReason()}`;
if (skip) console.log(`# CUDA wgmma prefill tests skipped: ${skip}`);

// bf16 operands, P rounded to bf16 before P·V: errors land between 1e-3 and 1e-2.
const TOLERANCE = 1e-2;

interface Case {
  T: number; H: number; Hkv: number; D: 64 | 128; queryStart: number; extraRows: number; tiling: WgmmaPrefillTiling; seed: number;
  window?: number;
  /** Extra elements per q row beyond H·D (q as the leading part of fused qkv rows). */
  qRowPad?: number;
}

const N128: WgmmaPrefillTiling = { version: 2, blockN: 128, order: 'global' };
const N64: WgmmaPrefillTiling = { version: 2, blockN: 64, order: 'global' };
const N128H: WgmmaPrefillTiling = { version: 2, blockN: 128, order: 'head' };
// v1's loop (each product waited for; warpgroups skip tiles they cannot see) on the harder shapes.
const V1N128: WgmmaPrefillTiling = { version: 1, blockN: 128, order: 'global' };
const V1N64: WgmmaPrefillTiling = { version: 1, blockN: 64, order: 'global' };
// v3 (producer warpgroup, mbarriers, warpgroups taking turns); warp arrivals are v3's default, the
// per-thread arrivals of the first v3 stay covered by the tilings that turn them off.
const V3N128: WgmmaPrefillTiling = { version: 3, blockN: 128, order: 'global' };
const V3N64: WgmmaPrefillTiling = { version: 3, blockN: 64, order: 'global', warpArrivals: false };
const V3N128H: WgmmaPrefillTiling = { version: 3, blockN: 128, order: 'head', warpArrivals: false };
const V3N128S3: WgmmaPrefillTiling = { version: 3, blockN: 128, order: 'global', stages: 3, warpArrivals: false };
const V3N64S3: WgmmaPrefillTiling = { version: 3, blockN: 64, order: 'global', stages: 3 };
const V3QR: WgmmaPrefillTiling = { version: 3, blockN: 128, order: 'global', qInRegisters: true, warpArrivals: false };
const V3WA: WgmmaPrefillTiling = { version: 3, blockN: 128, order: 'global', warpArrivals: true };
const V3QRWA64: WgmmaPrefillTiling = { version: 3, blockN: 64, order: 'global', qInRegisters: true, warpArrivals: true };

const cases: Case[] = [
  { T: 256, H: 8, Hkv: 2, D: 128, queryStart: 0, extraRows: 0, tiling: N128, seed: 1 },
  { T: 301, H: 4, Hkv: 1, D: 128, queryStart: 0, extraRows: 13, tiling: N128, seed: 2 }, // odd T, spare cache rows
  { T: 77, H: 6, Hkv: 3, D: 64, queryStart: 250, extraRows: 5, tiling: N128, seed: 3 }, // a later chunk, one partial block
  { T: 130, H: 4, Hkv: 4, D: 64, queryStart: 0, extraRows: 0, tiling: N64, seed: 4 }, // no GQA
  { T: 1000, H: 4, Hkv: 2, D: 128, queryStart: 24, extraRows: 0, tiling: N64, seed: 5 },
  { T: 1, H: 8, Hkv: 2, D: 128, queryStart: 500, extraRows: 0, tiling: N128, seed: 6 }, // one query at the end of a cache
  { T: 5, H: 4, Hkv: 1, D: 64, queryStart: 0, extraRows: 0, tiling: N64, seed: 7 }, // fewer rows than a warp's tile
  { T: 1500, H: 4, Hkv: 1, D: 128, queryStart: 0, extraRows: 0, tiling: N128H, seed: 8 }, // many blocks, head order
  { T: 700, H: 8, Hkv: 2, D: 128, queryStart: 0, extraRows: 0, tiling: N64, seed: 9, qRowPad: 4 * 128 }, // fused qkv rows
  // Sliding windows: narrower than a tile, unaligned, after a prompt chunk.
  { T: 400, H: 8, Hkv: 4, D: 128, queryStart: 0, extraRows: 0, tiling: N128, seed: 10, window: 37 },
  { T: 300, H: 4, Hkv: 2, D: 64, queryStart: 700, extraRows: 0, tiling: N64, seed: 11, window: 512 },
  { T: 257, H: 4, Hkv: 1, D: 128, queryStart: 129, extraRows: 2, tiling: N128, seed: 12, window: 200 },
  { T: 513, H: 4, Hkv: 2, D: 128, queryStart: 40, extraRows: 3, tiling: V1N128, seed: 13 },
  { T: 333, H: 4, Hkv: 1, D: 64, queryStart: 0, extraRows: 0, tiling: V1N64, seed: 14, window: 100 },
  { T: 300, H: 4, Hkv: 2, D: 128, queryStart: 0, extraRows: 0, tiling: V1N64, seed: 15 },
  { T: 256, H: 8, Hkv: 2, D: 128, queryStart: 0, extraRows: 0, tiling: V3N128, seed: 16 },
  { T: 301, H: 4, Hkv: 1, D: 128, queryStart: 0, extraRows: 13, tiling: V3N128, seed: 17 },
  { T: 77, H: 6, Hkv: 3, D: 64, queryStart: 250, extraRows: 5, tiling: V3N128, seed: 18 },
  { T: 1, H: 8, Hkv: 2, D: 128, queryStart: 500, extraRows: 0, tiling: V3N64, seed: 19 },
  { T: 1500, H: 4, Hkv: 1, D: 128, queryStart: 0, extraRows: 0, tiling: V3N128H, seed: 20 },
  { T: 700, H: 8, Hkv: 2, D: 128, queryStart: 0, extraRows: 0, tiling: V3N64, seed: 21, qRowPad: 4 * 128 },
  { T: 400, H: 8, Hkv: 4, D: 128, queryStart: 0, extraRows: 0, tiling: V3N128, seed: 22, window: 37 },
  { T: 300, H: 4, Hkv: 2, D: 64, queryStart: 700, extraRows: 0, tiling: V3N64, seed: 23, window: 512 },
  { T: 1000, H: 4, Hkv: 2, D: 128, queryStart: 24, extraRows: 0, tiling: V3N64, seed: 24 },
  // Three stages: a stage index that wraps at 3, over many tiles.
  { T: 1500, H: 4, Hkv: 1, D: 128, queryStart: 300, extraRows: 7, tiling: V3N128S3, seed: 25 },
  { T: 999, H: 4, Hkv: 2, D: 64, queryStart: 0, extraRows: 0, tiling: V3N64S3, seed: 26, window: 300 },
  { T: 130, H: 4, Hkv: 2, D: 128, queryStart: 0, extraRows: 0, tiling: V3N128S3, seed: 27 },
  // Q in registers, warp arrivals.
  { T: 1000, H: 4, Hkv: 2, D: 128, queryStart: 24, extraRows: 3, tiling: V3QR, seed: 28 },
  { T: 77, H: 6, Hkv: 3, D: 64, queryStart: 250, extraRows: 5, tiling: V3QR, seed: 29, window: 100 },
  { T: 1000, H: 4, Hkv: 2, D: 128, queryStart: 0, extraRows: 0, tiling: V3WA, seed: 30 },
  { T: 700, H: 8, Hkv: 2, D: 64, queryStart: 0, extraRows: 0, tiling: V3QRWA64, seed: 31, qRowPad: 4 * 64 },
];

describe('CUDA wgmma prefill kernel', { skip }, () => {
  let rt: CudaRuntime;
  let unsupported: string | null = null;
  before(async () => {
    const { CudaRuntime } = await import('../../src/backends/cuda/runtime.js');
    rt = new CudaRuntime();
    unsupported = wgmmaPrefillUnsupported(rt.cuda.info, 128);
    console.log(`# device: ${rt.cuda.info.name} (${rt.cuda.info.arch})${unsupported ? `: ${unsupported}` : ''}`);
  });
  after(() => rt?.dispose());

  for (const c of cases) {
    const label = `T=${c.T} H=${c.H} Hkv=${c.Hkv} D=${c.D} start=${c.queryStart}${c.window ? ` window=${c.window}` : ''}` +
      `${c.qRowPad ? ` qRowStride=+${c.qRowPad}` : ''} ${wgmmaTilingLabel(c.tiling)}`;
    test(`wgmma prefill ${label}`, (t) => {
      if (unsupported) return t.skip(unsupported);
      const rand = randomGenerator(c.seed);
      const kvLen = c.queryStart + c.T;
      const kvStride = kvLen + c.extraRows;
      const q = randomBf16Values(c.T * c.H * c.D, rand, 2);
      const k = randomBf16Values(c.Hkv * kvStride * c.D, rand, 2);
      const v = randomBf16Values(c.Hkv * kvStride * c.D, rand);
      const scale = 1 / Math.sqrt(c.D);
      const ref = referenceCausalAttention(q, k, v, c.T, c.H, c.Hkv, c.D, kvStride, c.queryStart, kvLen, scale, c.window ?? null);

      // q rows qRowStride apart; the padding holds NaN, which must never be read.
      const qRowStride = c.H * c.D + (c.qRowPad ?? 0);
      const qRows = new Float32Array(c.T * qRowStride).fill(NaN);
      for (let r = 0; r < c.T; r++) qRows.set(q.subarray(r * c.H * c.D, (r + 1) * c.H * c.D), r * qRowStride);

      const kernel = new WgmmaFlashPrefill(rt, { numHeads: c.H, numKvHeads: c.Hkv, headDim: c.D }, c.tiling);
      const dq = uploadAsBf16(rt, qRows), dk = uploadAsBf16(rt, k), dv = uploadAsBf16(rt, v);
      const dout = poisonedBf16(rt, c.T * c.H * c.D);
      try {
        kernel.run({
          q: dq.ptr, qRowStride, k: dk.ptr, v: dv.ptr, out: dout.ptr, numQueries: c.T, queryStart: c.queryStart, kvLen, kvStride, scale,
          slidingWindow: c.window,
        });
        const out = downloadBf16(rt, dout, c.T * c.H * c.D);
        assert.equal(countNaN(out), 0, 'every output element must be written');
        const err = relativeError(out, ref);
        console.log(`#   rel err ${err.toExponential(2)}`);
        assert.ok(err < TOLERANCE, `relative error ${err} over ${TOLERANCE}`);
      } finally {
        for (const b of [dq, dk, dv, dout]) rt.pool.release(b);
      }
    });
  }

  test('FlashPrefill: wgmma on request, mma.sync for explicit tilings and D = 256, auto as PREFILL_WGMMA_BY_DEFAULT says', (t) => {
    if (unsupported) return t.skip(unsupported);
    const shape = { numHeads: 8, numKvHeads: 2, headDim: 128 };
    assert.equal(new FlashPrefill(rt, shape, {}, { wgmma: { blockN: 64 } }).label, 'wgmma3-n64g-wa');
    assert.equal(new FlashPrefill(rt, shape, {}, { wgmma: { warpArrivals: false } }).label, 'wgmma3-n128g');
    assert.equal(new FlashPrefill(rt, shape, {}, { wgmma: { version: 2, blockN: 128 } }).label, 'wgmma2-n128g');
    assert.equal(new FlashPrefill(rt, shape, { warps: 4, mTiles: 2, blockN: 64 }).wgmma, null);
    assert.equal(new FlashPrefill(rt, shape, {}, 'mma').wgmma, null);
    assert.equal(new FlashPrefill(rt, { ...shape, headDim: 256 }).wgmma, null);
    assert.equal(new FlashPrefill(rt, shape).wgmma !== null, PREFILL_WGMMA_BY_DEFAULT);
    assert.throws(() => new FlashPrefill(rt, { ...shape, headDim: 256 }, {}, { wgmma: {} }), /head dims 64, 128/);
    assert.throws(() => new FlashPrefill(rt, shape, {}, { wgmma: { version: 2, stages: 3 } }), /stages must be 2, or 3 with version 3/);
    assert.throws(() => new FlashPrefill(rt, shape, {}, { wgmma: { version: 2, qInRegisters: true } }), /need version 3/);
    assert.equal(new FlashPrefill(rt, shape, {}, { wgmma: { qInRegisters: true, warpArrivals: true } }).label, 'wgmma3-n128g-qr-wa');
  });
});
