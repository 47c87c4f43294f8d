/**
 * GPU sink + local prefill (src/backends/cuda/methods/sink-local-prefill.ts, the Vertical-Slash kernel
 * with a per-row window) against the CPU method (src/methods/sink-local.ts) on the same bf16-rounded
 * inputs, whole prompt and chunked: outputs within bf16 tolerance of the CPU's float64 result, exact
 * pair counts, NaN-poisoned outputs. Skipped, with the reason printed, where there is no CUDA device.
 */
import { after, before, describe, test } from 'node:test';
import { SinkLocalDevicePrefill, sinkLocalRuleFrom } from '../../src/backends/cuda/methods/sink-local-prefill.js';
import type { CudaRuntime } from '../../src/backends/cuda/runtime.js';
import { randomBf16Values, randomGenerator } from './helpers.js';
import { type SinkLocalCase, compareSinkLocalChunks } from './sink-local-compare.js';
import { cudaSkip } from './cuda-skip.js';

const skip = cudaSkip('CUDA sink-local prefill tests');

const CASES: SinkLocalCase[] = [
  { name: 'fixed window 100, 4 sinks, whole prompt', n: 700, H: 8, Hkv: 2, D: 128, seed: 31, options: { params: { localWindow: 100 } }, chunks: [700] },
  { name: 'target sparsity 0.8, two chunks (partial blocks)', n: 900, H: 4, Hkv: 1, D: 64, seed: 32, options: { sparsity: 0.8 }, chunks: [333, 567] },
  { name: '70 sinks, window 10, three chunks', n: 400, H: 4, Hkv: 4, D: 128, seed: 33, options: { params: { sinkTokens: 70, localWindow: 10 } }, chunks: [50, 200, 150] },
];

describe('CUDA sink-local prefill vs the CPU method', { skip }, () => {
  let rt: CudaRuntime;
  before(async () => {
    const { CudaRuntime } = await import('../../src/backends/cuda/runtime.js');
    rt = new CudaRuntime();
  });
  after(() => rt?.dispose());

  for (const c of CASES) {
    test(`${c.name}: n=${c.n} H=${c.H} Hkv=${c.Hkv} D=${c.D}`, () => {
      const rand = randomGenerator(c.seed);
      const x = {
        q: randomBf16Values(c.n * c.H * c.D, rand, 2), k: randomBf16Values(c.n * c.Hkv * c.D, rand, 2), v: randomBf16Values(c.n * c.Hkv * c.D, rand),
      };
      const rule = sinkLocalRuleFrom(c.options);
      const shape = { numHeads: c.H, numKvHeads: c.Hkv, headDim: c.D };
      compareSinkLocalChunks(rt, c, rule, x, [
        { label: 'mTiles 1', method: new SinkLocalDevicePrefill(rt, shape, rule, 1) },
        { label: 'mTiles 2', method: new SinkLocalDevicePrefill(rt, shape, rule, 2) },
      ]);
    });
  }
});
