/**
 * Host-side logic of the wgmma prefill launcher (no GPU needed, so CI runs it): tiling defaults and
 * checks, labels, shared-memory sizes, and which devices and head dims the kernel refuses.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  DEFAULT_WGMMA_PREFILL_TILING, resolveWgmmaPrefillTiling, wgmmaPrefillSharedBytes, wgmmaPrefillUnsupported, wgmmaTilingLabel,
} from '../../src/backends/cuda/kernels/flash-prefill-wgmma.js';

test('the default tiling is version 3, 128-key tiles, global order, two stages, warp arrivals', () => {
  const t = resolveWgmmaPrefillTiling({});
  assert.deepEqual(t, { ...DEFAULT_WGMMA_PREFILL_TILING, warpArrivals: true });
  assert.equal(wgmmaTilingLabel(t), 'wgmma3-n128g-wa');
});

test('warp arrivals default on for version 3 only, and can be turned off', () => {
  assert.equal(resolveWgmmaPrefillTiling({ version: 2 }).warpArrivals, false);
  assert.equal(resolveWgmmaPrefillTiling({ version: 1, blockN: 64 }).warpArrivals, false);
  assert.equal(wgmmaTilingLabel(resolveWgmmaPrefillTiling({ warpArrivals: false })), 'wgmma3-n128g');
  assert.equal(wgmmaTilingLabel(resolveWgmmaPrefillTiling({ version: 2, order: 'head' })), 'wgmma2-n128');
  assert.equal(wgmmaTilingLabel(resolveWgmmaPrefillTiling({ stages: 3, qInRegisters: true, blockN: 64 })), 'wgmma3-n64g-s3-qr-wa');
});

test('bad tilings are refused with the field named', () => {
  assert.throws(() => resolveWgmmaPrefillTiling({ blockN: 32 as 64 }), /blockN must be 64 or 128/);
  assert.throws(() => resolveWgmmaPrefillTiling({ version: 4 as 3 }), /version must be 1, 2 or 3/);
  assert.throws(() => resolveWgmmaPrefillTiling({ version: 2, stages: 3 }), /stages must be 2, or 3 with version 3/);
  assert.throws(() => resolveWgmmaPrefillTiling({ version: 1, qInRegisters: true }), /need version 3/);
  assert.throws(() => resolveWgmmaPrefillTiling({ version: 2, warpArrivals: true }), /need version 3/);
});

test('shared memory: Q tile, K and V stages, barriers and alignment slack; 3 stages fit the 227 KB limit', () => {
  assert.equal(wgmmaPrefillSharedBytes(128, resolveWgmmaPrefillTiling({})), (128 + 4 * 128) * 256 + 128 + 1024);
  const three = wgmmaPrefillSharedBytes(128, resolveWgmmaPrefillTiling({ stages: 3 }));
  assert.equal(three, (128 + 6 * 128) * 256 + 128 + 1024);
  assert.ok(three <= 227 * 1024, `${three} B over the opt-in limit of an H100 block`);
  assert.equal(wgmmaPrefillSharedBytes(64, resolveWgmmaPrefillTiling({ blockN: 64 })), (128 + 4 * 64) * 128 + 128 + 1024);
});

test('only compute capability 9.0 and head dims 64 and 128 are taken', () => {
  const h100 = { computeCapability: [9, 0] as [number, number], name: 'H100' };
  assert.equal(wgmmaPrefillUnsupported(h100, 128), null);
  assert.equal(wgmmaPrefillUnsupported(h100, 64), null);
  assert.match(wgmmaPrefillUnsupported(h100, 256) ?? '', /head dims 64, 128, not 256/);
  assert.match(wgmmaPrefillUnsupported({ computeCapability: [8, 0], name: 'A100' }, 128) ?? '', /compute capability 9.0.*8.0/);
  assert.match(wgmmaPrefillUnsupported({ computeCapability: [10, 0], name: 'B200' }, 128) ?? '', /10.0/);
});
