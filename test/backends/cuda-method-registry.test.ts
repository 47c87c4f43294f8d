/**
 * The GPU method registry without a GPU: option errors are the CPU registry's own (same message for
 * the same mistake), methods without a GPU implementation are refused by name, every registered GPU
 * method is a CPU method of the same phase, and dense counts equal the CPU dense method's.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { denseKeyCount } from '../../src/engine/attention.js';
import { parseModelConfig } from '../../src/engine/config.js';
import { createAttentionPlan, getMethod, listMethods } from '../../src/methods/index.js';
import type { PlanOptions } from '../../src/methods/types.js';
import { denseHeadCounts } from '../../src/backends/cuda/methods/dense.js';
import {
  checkDeviceMethod, deviceMethodIds, hasDeviceMethod, listDeviceMethods,
} from '../../src/backends/cuda/methods/index.js';
import { tinyConfigJson } from '../helpers/tiny-checkpoint.js';

const config = parseModelConfig(tinyConfigJson('llama'));

/** The CPU registry's message for these options, or null when it accepts them. */
function cpuError(methodId: string, options: PlanOptions): string | null {
  try {
    createAttentionPlan(methodId, options);
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

describe('GPU method registry', () => {
  test('option errors are exactly the CPU registry\'s', () => {
    const cases: [string, PlanOptions][] = [
      ['no_such_method', {}],
      ['dense', { sparsity: 0.5 }],
      ['block_sparse', { sparsity: 1.2 }],
      ['block_sparse', { sparsity: 0.5, params: { noSuchParam: 3 } }],
      ['quest', {}],
      ['snapkv', { sparsity: Number.NaN }],
      ['vertical_and_slash', { sparsity: -0.1 }],
    ];
    for (const [id, options] of cases) {
      const expected = cpuError(id, options);
      assert.ok(expected !== null, `the CPU registry refuses ${id} ${JSON.stringify(options)}`);
      assert.throws(() => checkDeviceMethod(config, id, options), (e: Error) => e.message === expected, `${id}: ${expected}`);
    }
  });

  test('a method without a GPU implementation is refused by name, listing the GPU methods', () => {
    const missing = listMethods().map((m) => m.id).filter((id) => !hasDeviceMethod(id));
    assert.ok(missing.length > 0, 'flexprefill_full at least has no GPU implementation');
    for (const id of missing) {
      assert.throws(() => checkDeviceMethod(config, id, { sparsity: 0.5 }), (e: Error) =>
        e.message.startsWith(`${id}: no GPU implementation yet (methods on the GPU: dense`) && e.message.includes('--backend cpu'));
    }
  });

  test('dense is always there and takes sparsity 0 or nothing', () => {
    assert.equal(deviceMethodIds()[0], 'dense');
    checkDeviceMethod(config, 'dense');
    checkDeviceMethod(config, 'dense', { sparsity: 0 });
  });

  test('every registered GPU method is a CPU method of the same phase, listed once', () => {
    const ids = deviceMethodIds();
    assert.equal(new Set(ids).size, ids.length);
    for (const entry of listDeviceMethods()) {
      assert.equal(getMethod(entry.factory.methodId).phase, entry.phase, entry.factory.methodId);
      const reason = entry.factory.unsupported(config);
      assert.ok(reason === null || (typeof reason === 'string' && reason.length > 0));
      if (reason !== null) {
        assert.throws(() => checkDeviceMethod(config, entry.factory.methodId, { sparsity: 0.5 }), (e: Error) =>
          e.message === `${entry.factory.methodId}: cannot run on the GPU for this model (${config.hfArchitecture}): ${reason}`);
      }
    }
  });

  test('dense counts are the CPU dense method\'s pair counts', () => {
    for (const [start, T, window] of [[0, 1, null], [0, 17, null], [5, 9, null], [100, 1, null], [0, 12, 4], [7, 3, 4], [30, 1, 6]] as const) {
      const c = denseHeadCounts(3, start, T, window);
      let expected = 0;
      for (let t = 0; t < T; t++) expected += denseKeyCount(start + t, window);
      assert.deepEqual(Array.from(c.attended), [expected, expected, expected]);
      assert.deepEqual(Array.from(c.dense), [expected, expected, expected]);
    }
  });
});
