import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync, truncateSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16, halfBitsToNumber, numberToHalfBits } from '../../src/engine/float-formats.js';
import { readSafetensorsHeader, SafetensorsWeights } from '../../src/engine/safetensors.js';
import { writeSafetensors, writeShardedSafetensors, type TensorToWrite } from '../../src/engine/safetensors-writer.js';
import { mulberry32 } from '../helpers/tiny-checkpoint.js';

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'sf-safetensors-'));
}

function randomTensor(name: string, shape: number[], seed: number): TensorToWrite {
  const next = mulberry32(seed);
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; i++) data[i] = (next() * 2 - 1) * 3;
  return { name, shape, data };
}

const TENSORS = [randomTensor('a.weight', [3, 5], 1), randomTensor('b.bias', [7], 2), randomTensor('c', [2, 3, 4], 3), randomTensor('scalar', [], 4)];

test('F32 round trip is exact and keeps shapes', () => {
  const dir = tempDir();
  try {
    const file = join(dir, 'model.safetensors');
    writeSafetensors(file, TENSORS, { metadata: { format: 'pt' } });
    const store = SafetensorsWeights.openFile(file);
    assert.deepEqual(store.names(), TENSORS.map((t) => t.name));
    for (const t of TENSORS) {
      const got = store.get(t.name);
      assert.deepEqual(got.shape, t.shape);
      assert.deepEqual(got.data, t.data);
    }
    assert.equal(readSafetensorsHeader(file).metadata.format, 'pt');
    // The data section starts 8-byte aligned, as the reference writer pads it.
    const headerLength = Number(readFileSync(file).readBigUInt64LE(0));
    assert.equal(headerLength % 8, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('BF16 round trip: values round to nearest, ties to even, within 2^-8 relative', () => {
  const dir = tempDir();
  try {
    const file = join(dir, 'model.safetensors');
    writeSafetensors(file, TENSORS, { dtype: 'BF16' });
    const store = SafetensorsWeights.openFile(file);
    for (const t of TENSORS) {
      const got = store.get(t.name).data;
      for (let i = 0; i < t.data.length; i++) {
        assert.ok(Math.abs(got[i] - t.data[i]) <= Math.abs(t.data[i]) * 2 ** -8, `${t.name}[${i}]`);
        assert.equal(new Uint32Array(new Float32Array([got[i]]).buffer)[0] & 0xffff, 0, 'low half zero');
      }
      assert.equal(store.location(t.name).dtype, 'BF16');
      assert.equal(store.getRaw(t.name).bytes.length, t.data.length * 2);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  // Halfway cases: 1 + 2^-8 lies between 1 and 1 + 2^-7 (even: 1); 1 + 3·2^-8 between 1 + 2^-7 and 1 + 2^-6 (even: 1 + 2^-6).
  const ties = new Float32Array([1 + 2 ** -8, 1 + 3 * 2 ** -8, -(1 + 2 ** -8), 1 + 2 ** -8 + 2 ** -20]);
  assert.deepEqual([...bf16ToF32(f32ToBf16(ties))], [1, 1 + 2 ** -6, -1, 1 + 2 ** -7]);
  assert.ok(Number.isNaN(bf16ToF32(f32ToBf16(new Float32Array([NaN])))[0]));
  assert.equal(bf16ToF32(f32ToBf16(new Float32Array([3.4e38])))[0], Infinity, 'overflow rounds to infinity');
});

test('F16: every half value survives a round trip, midpoints round to even, range edges', () => {
  for (let h = 0; h < 0x10000; h++) {
    const v = halfBitsToNumber(h);
    if (Number.isNaN(v)) continue;
    assert.equal(numberToHalfBits(v), h, `half 0x${h.toString(16)}`);
  }
  // Midpoint between two adjacent positive finite halves goes to the one with an even mantissa.
  for (let h = 0; h < 0x7bff; h += 97) {
    const mid = (halfBitsToNumber(h) + halfBitsToNumber(h + 1)) / 2;
    if (Math.fround(mid) !== mid) continue; // only exact float32 midpoints are ties
    assert.equal(numberToHalfBits(mid), h % 2 === 0 ? h : h + 1, `midpoint after 0x${h.toString(16)}`);
  }
  assert.equal(numberToHalfBits(65504), 0x7bff);
  assert.equal(numberToHalfBits(65520), 0x7c00, 'halfway past the largest half overflows');
  assert.equal(numberToHalfBits(2 ** -25), 0, 'exactly half the smallest subnormal: tie to even zero');
  assert.equal(numberToHalfBits(3 * 2 ** -25), 2, 'tie between subnormals 1 and 2: even');
  assert.equal(numberToHalfBits(-0), 0x8000);

  const dir = tempDir();
  try {
    const file = join(dir, 'model.safetensors');
    writeSafetensors(file, TENSORS, { dtype: 'F16' });
    const store = SafetensorsWeights.openFile(file);
    for (const t of TENSORS) assert.deepEqual(store.get(t.name).data, f16ToF32(f32ToF16(t.data)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('sharded round trip through model.safetensors.index.json; a missing shard is named', () => {
  const dir = tempDir();
  try {
    const shards = writeShardedSafetensors(dir, TENSORS, 3, { dtype: 'BF16' });
    assert.deepEqual(shards, ['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors']);
    const index = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8'));
    assert.equal(index.metadata.total_size, TENSORS.reduce((s, t) => s + t.data.length * 2, 0));
    const store = SafetensorsWeights.openDirectory(dir);
    assert.deepEqual(new Set(store.names()), new Set(TENSORS.map((t) => t.name)));
    for (const t of TENSORS) assert.deepEqual(store.get(t.name).data, bf16ToF32(f32ToBf16(t.data)));

    rmSync(join(dir, shards[1]));
    assert.throws(() => SafetensorsWeights.openDirectory(dir), /shard model-00002-of-00003\.safetensors listed in model\.safetensors\.index\.json is missing/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('lazy reads: opening reads only the header; each get reads only its tensor', () => {
  const dir = tempDir();
  try {
    const file = join(dir, 'model.safetensors');
    const big = { name: 'big', shape: [1024, 1024, 4], data: new Float32Array(1024 * 1024 * 4).fill(0.5) }; // 16 MiB
    const small = randomTensor('small', [8], 9);
    writeSafetensors(file, [big, small]);
    const store = SafetensorsWeights.openFile(file);

    // Corrupt the big tensor's bytes after opening: the small one still reads right, the big one
    // shows the corruption, so data comes from disk at get() time and not from a copy made at open.
    const bigLoc = store.location('big');
    const fd = openSync(file, 'r+');
    writeSync(fd, new Uint8Array(16).fill(0xff), 0, 16, bigLoc.begin);
    closeSync(fd);
    assert.deepEqual(store.get('small').data, small.data);
    assert.ok(Number.isNaN(store.get('big').data[0]));

    // Bytes read from disk (Linux /proc/self/io rchar) while fetching the small tensor: far below the big one.
    const ioPath = '/proc/self/io';
    if (existsSync(ioPath)) {
      const rchar = () => Number(/rchar: (\d+)/.exec(readFileSync(ioPath, 'utf8'))![1]);
      const before = rchar();
      store.get('small');
      const read = rchar() - before;
      assert.ok(read < 64 * 1024, `read ${read} bytes to fetch a 32-byte tensor`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('truncated file, bad header, unsupported dtype, inconsistent sizes: clear errors', () => {
  const dir = tempDir();
  try {
    const file = join(dir, 'model.safetensors');
    writeSafetensors(file, TENSORS);
    truncateSync(file, readFileSync(file).length - 10);
    assert.throws(() => SafetensorsWeights.openFile(file), /safetensors file is truncated: tensor "\w+" in .* ends at data byte \d+ but the file holds only \d+ data bytes/);
    truncateSync(file, 20);
    assert.throws(() => SafetensorsWeights.openFile(file), /safetensors file is truncated: .* header alone needs/);
    truncateSync(file, 4);
    assert.throws(() => SafetensorsWeights.openFile(file), /not a safetensors file/);

    const withHeader = (header: string, dataBytes = 0) => {
      const json = Buffer.from(header);
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(json.length));
      writeFileSync(file, Buffer.concat([len, json, Buffer.alloc(dataBytes)]));
    };
    withHeader('{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]');
    assert.throws(() => SafetensorsWeights.openFile(file), /bad safetensors header in .*: not valid JSON/);
    withHeader('{"a": {"dtype": "I64", "shape": [2], "data_offsets": [0, 16]}}', 16);
    assert.throws(() => SafetensorsWeights.openFile(file), /unsupported safetensors dtype I64 for tensor "a"/);
    withHeader('{"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}', 8);
    assert.throws(() => SafetensorsWeights.openFile(file), /spans 8 bytes but shape \[3\] of F32 needs 12/);
    withHeader('{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}', 8);
    assert.throws(() => SafetensorsWeights.openFile(file).get('b'), /missing tensor in checkpoint: b/);
    assert.throws(() => SafetensorsWeights.openFile(join(dir, 'absent.safetensors')), /safetensors file not found: .*absent\.safetensors/);
    rmSync(file);
    assert.throws(() => SafetensorsWeights.openDirectory(dir), /no weights in .*: expected model\.safetensors or model\.safetensors\.index\.json/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('writer output is deterministic byte for byte', () => {
  const dir = tempDir();
  try {
    writeSafetensors(join(dir, 'x.safetensors'), TENSORS, { dtype: 'BF16' });
    writeSafetensors(join(dir, 'y.safetensors'), TENSORS, { dtype: 'BF16' });
    assert.deepEqual(readFileSync(join(dir, 'x.safetensors')), readFileSync(join(dir, 'y.safetensors')));
    assert.throws(() => writeSafetensors(join(dir, 'z.safetensors'), [{ name: 'a', shape: [2], data: new Float32Array(3) }]), /shape \[2\] has 2 elements but data has 3/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
