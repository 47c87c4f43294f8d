/**
 * bench/decode-step-breakdown.ts without a GPU: its command line and the bytes each node kind reads (the
 * TB/s column's numerator), checked against the shapes' matrix sizes written out.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DECODE_BREAKDOWN_ARGS, nodeReadBytes } from '../../bench/decode-step-breakdown.js';
import { MODEL_SHAPES } from '../../bench/model.js';
import { parseModelConfig } from '../../src/engine/config.js';

test('decode-step-breakdown: options parse, bad ones are named', () => {
  const o = DECODE_BREAKDOWN_ARGS.parse(['--shapes', 'qwen2.5-7b', '--contexts', '4096,16384', '--repeats', '7']);
  assert.deepEqual(o.shapes, ['qwen2.5-7b']);
  assert.deepEqual(o.contexts, [4096, 16384]);
  assert.equal(o.repeats, 7);
  assert.equal(o.steps, 32);
  assert.deepEqual(o.variants, ['default']);
  assert.deepEqual(DECODE_BREAKDOWN_ARGS.parse(['--variants', 'default,fold-pdl-deep,default']).variants, ['default', 'fold-pdl-deep', 'default']);
  assert.throws(() => DECODE_BREAKDOWN_ARGS.parse(['--variants', 'fast']), /--variants/);
  assert.throws(() => DECODE_BREAKDOWN_ARGS.parse(['--repeats', '0']), /--repeats/);
  assert.throws(() => DECODE_BREAKDOWN_ARGS.parse(['--shapes', 'gpt2']), /--shapes/);
});

test('decode-step-breakdown: bytes read per node at the Llama-3.1-8B shape', () => {
  const c = parseModelConfig(MODEL_SHAPES['llama3.1-8b'], 'llama');
  assert.equal(nodeReadBytes(c, 'qkv_gemm', 4096), (4096 + 2 * 1024) * 4096 * 2);
  assert.equal(nodeReadBytes(c, 'o_gemm', 4096), 4096 * 4096 * 2);
  assert.equal(nodeReadBytes(c, 'gate_up_gemm', 4096), 2 * 14336 * 4096 * 2);
  assert.equal(nodeReadBytes(c, 'down_gemm', 4096), 4096 * 14336 * 2);
  assert.equal(nodeReadBytes(c, 'lm_head', 4096), 128256 * 4096 * 2);
  // K and V of 8 KV heads over the prompt and the step's own row.
  assert.equal(nodeReadBytes(c, 'attention', 4096), 2 * 8 * 4097 * 128 * 2);
  assert.equal(nodeReadBytes(c, 'norm', 4096), null);
});
