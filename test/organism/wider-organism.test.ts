/**
 * Run 10's preparation (docs/organism.md, "Run 10 (prepared)"): the shape bench's checkpoints are
 * real ones our engine loads, its parameter count is the stored one, and the packed transport of a
 * resumed checkpoint (tools/organism/pack_checkpoint.py) gives the file back byte for byte.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadCheckpoint } from '../../src/engine/checkpoint.js';
import { generateTokens } from '../../src/engine/generate.js';
import { TransformerModel } from '../../src/engine/model.js';
import { TextTokenizer } from '../../src/engine/tokenizer.js';
import { writeSafetensors } from '../../src/engine/safetensors-writer.js';
import { parseShape, shapeLabel, storedParameterCount, writeShapedCheckpoint } from '../../bench/organism-shapes.js';
import { ORGANISM_DIR, REPO_ROOT } from './organism-paths.js';

const PACK = join(REPO_ROOT, 'tools', 'organism', 'pack_checkpoint.py');

function safetensorsHeader(file: string): Record<string, { dtype: string; shape: number[] }> {
  const blob = readFileSync(file);
  const n = Number(blob.readBigUInt64LE(0));
  const header = JSON.parse(blob.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[] }>;
  delete header.__metadata__;
  return header;
}

function python(args: string[]): { status: number | null; out: string } | null {
  const r = spawnSync('python3', args, { encoding: 'utf8' });
  if (r.error) return null;
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

test('parseShape reads layers x hidden x heads x kvHeads x mlp and names what is wrong', () => {
  assert.deepEqual(parseShape('8x384x6x2x1152'), { layers: 8, hidden: 384, heads: 6, kvHeads: 2, mlp: 1152 });
  assert.equal(shapeLabel(parseShape('6x256x4x2x768')), '6x256x4x2x768');
  assert.throws(() => parseShape('8x384x6x2'), /five positive integers/);
  assert.throws(() => parseShape('8x384x5x1x960'), /not a multiple of 5 heads/);
  assert.throws(() => parseShape('8x384x6x4x960'), /do not split into groups of 4 KV heads/);
});

test('storedParameterCount equals the shipped checkpoint’s stored tensors', () => {
  const tensors = safetensorsHeader(join(ORGANISM_DIR, 'model.safetensors'));
  const stored = Object.values(tensors).reduce((sum, t) => sum + t.shape.reduce((a, b) => a * b, 1), 0);
  const config = JSON.parse(readFileSync(join(ORGANISM_DIR, 'config.json'), 'utf8')) as Record<string, number>;
  const shipped = parseShape(
    [config.num_hidden_layers, config.hidden_size, config.num_attention_heads, config.num_key_value_heads, config.intermediate_size].join('x'),
  );
  assert.equal(storedParameterCount(shipped, config.vocab_size!), stored);
});

test('a shaped checkpoint is a bfloat16 HF folder with the shipped tokenizer that our engine loads and runs', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'organism-shape-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const shape = parseShape('2x128x2x1x192');
  const ckptDir = writeShapedCheckpoint(dir, ORGANISM_DIR, shape);
  const tensors = safetensorsHeader(join(ckptDir, 'model.safetensors'));
  assert.ok(Object.values(tensors).every((x) => x.dtype === 'BF16'));
  const ckpt = loadCheckpoint(ckptDir);
  assert.equal(ckpt.config.numLayers, 2);
  assert.equal(ckpt.config.hiddenSize, 128);
  assert.equal(ckpt.config.numHeads, 2);
  assert.equal(ckpt.config.numKvHeads, 1);
  assert.equal(ckpt.config.headDim, 64);
  assert.equal(ckpt.config.intermediateSize, 192);
  assert.equal(ckpt.config.vocabSize, 4096);
  assert.deepEqual(ckpt.tokenizer.encode('VAR QNLKR = 57762'), TextTokenizer.fromDirectory(ORGANISM_DIR).encode('VAR QNLKR = 57762'));
  const model = new TransformerModel(ckpt.config, ckpt.weights);
  const [r] = generateTokens(model, [ckpt.tokenizer.encode('The value 57762 is held by')], { maxNewTokens: 3 });
  assert.equal(r!.generatedTokens, 3);
  assert.ok(r!.tokenIds.every((id) => Number.isInteger(id) && id >= 0 && id < 4096));
});

test('pack_checkpoint.py packs a bfloat16 checkpoint by byte planes and unpacks it byte for byte', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'organism-pack-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const ckptDir = writeShapedCheckpoint(join(dir, 'src'), ORGANISM_DIR, parseShape('2x128x2x1x192'), 7);
  const packed = python([PACK, 'pack', ckptDir, join(dir, 'packed')]);
  if (packed === null) return t.skip('python3 is not installed');
  assert.equal(packed.status, 0, packed.out);
  assert.throws(() => readFileSync(join(dir, 'packed', 'model.safetensors')), /ENOENT/);
  assert.deepEqual(readFileSync(join(dir, 'packed', 'config.json')), readFileSync(join(ckptDir, 'config.json')));
  const unpacked = python([PACK, 'unpack', join(dir, 'packed'), join(dir, 'back')]);
  assert.equal(unpacked!.status, 0, unpacked!.out);
  assert.ok(readFileSync(join(dir, 'back', 'model.safetensors')).equals(readFileSync(join(ckptDir, 'model.safetensors'))));

  // A flipped byte in the packed low plane's stream is caught (by LZMA's own check or the SHA-256).
  const file = join(dir, 'packed', 'model.safetensors.planes.xz');
  const bytes = readFileSync(file);
  bytes[bytes.length - 40] ^= 0xff;
  writeFileSync(file, bytes);
  const bad = python([PACK, 'unpack', join(dir, 'packed'), join(dir, 'bad')]);
  assert.notEqual(bad!.status, 0, 'a corrupted pack must not unpack');
});

test('pack_checkpoint.py refuses a checkpoint that is not all bfloat16', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'organism-pack-f32-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeSafetensors(join(dir, 'model.safetensors'), [{ name: 'w', shape: [2, 2], data: new Float32Array([1, 2, 3, 4]) }], { dtype: 'F32' });
  const r = python([PACK, 'pack', dir, join(dir, 'out')]);
  if (r === null) return t.skip('python3 is not installed');
  assert.notEqual(r.status, 0);
  assert.match(r.out, /only all-BF16 files are packed/);
});
