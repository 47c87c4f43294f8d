import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { WasmSimdKernel, wasmSimdSupported } from '../../../src/backends/cpu/wasm-matmul.js';
import { MATMUL_SIMD_WASM_BASE64 } from '../../../src/backends/cpu/matmul-simd-wasm.js';
import { assembleWat, findRepoRoot } from '../../../bench/wat.js';
import { checkKernelAgainstReference } from './kernel-check.js';
import { TransformerModel } from '../../../src/engine/model.js';
import { densePlan } from '../../../src/methods/dense.js';
import { maxRelDiff, randomTokens, randomWeights, tinyConfig } from '../../engine/model-fixtures.js';

test('wasm SIMD matmul equals the reference within 1e-5 relative', () => {
  assert.ok(wasmSimdSupported());
  checkKernelAgainstReference(new WasmSimdKernel());
});

test('the committed wasm bytes are the assembled matmul-simd.wat (no drift)', async () => {
  const wat = readFileSync(join(findRepoRoot(), 'src/backends/cpu/matmul-simd.wat'), 'utf8');
  const bytes = await assembleWat(wat, 'matmul-simd.wat');
  assert.equal(Buffer.from(bytes).toString('base64'), MATMUL_SIMD_WASM_BASE64, 'run: npx tsx bench/assemble-wasm.ts');
});

test('a model on the wasm kernel gives the JS kernel logits (weights growing memory between products)', () => {
  const config = tinyConfig('qwen2', { hiddenSize: 32, intermediateSize: 48 });
  const weights = randomWeights(config, 12);
  const ids = randomTokens(20, config.vocabSize, 1);
  const js = new TransformerModel(config, weights).logits(ids, densePlan());
  const kernel = new WasmSimdKernel();
  const wasm = new TransformerModel(config, weights, { kernel }).logits(ids, densePlan());
  assert.ok(maxRelDiff(wasm, js) < 1e-4, `max rel diff ${maxRelDiff(wasm, js)}`);
  // A second model on the same kernel instance: its weights land after the first model's scratch.
  const again = new TransformerModel(config, weights, { kernel }).logits(ids, densePlan());
  assert.deepEqual(again, wasm);
});

test('wasm SIMD matmul over 2 threads equals the reference (every product split)', async () => {
  const kernel = new WasmSimdKernel({ threads: 2, minParallelMacs: 0 });
  try {
    checkKernelAgainstReference(kernel);
    const config = tinyConfig('llama', { hiddenSize: 32, intermediateSize: 48 });
    const weights = randomWeights(config, 3);
    const ids = randomTokens(9, config.vocabSize, 2);
    const single = new TransformerModel(config, weights, { kernel: new WasmSimdKernel() }).logits(ids, densePlan());
    const threaded = new TransformerModel(config, weights, { kernel }).logits(ids, densePlan());
    assert.deepEqual(threaded, single);
  } finally {
    await kernel.close();
  }
});
