/**
 * Host-side parts of the CUDA backend that need no GPU: bf16 conversion, the memory pool's
 * bookkeeping, the compile-cache key and hit/miss behaviour, the decode split plan.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { bf16BitsToFloat, floatToBf16Bits, fromBf16, toBf16 } from '../../src/backends/cuda/bf16.js';
import { CompileCache, type CompileRequest, cacheKey } from '../../src/backends/cuda/compile-cache.js';
import { decodeRowsPerStep, planDecode } from '../../src/backends/cuda/kernels/decode-attention.js';
import { DeviceMemoryPool, roundBlockSize } from '../../src/backends/cuda/memory-pool.js';
import { readKernelSource } from '../../src/backends/cuda/kernel-source.js';

test('bf16 rounding is to nearest even and exact values survive', () => {
  assert.equal(floatToBf16Bits(1), 0x3f80);
  assert.equal(floatToBf16Bits(-2), 0xc000);
  // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1).
  assert.equal(floatToBf16Bits(1 + 2 ** -8), 0x3f80);
  // 1 + 3*2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even).
  assert.equal(floatToBf16Bits(1 + 3 * 2 ** -8), 0x3f82);
  assert.ok(Number.isNaN(bf16BitsToFloat(floatToBf16Bits(NaN))));
  assert.equal(bf16BitsToFloat(floatToBf16Bits(Infinity)), Infinity);
  const xs = new Float32Array([0, 1.5, -3.25, 65536, 1e-3]);
  const back = fromBf16(toBf16(xs));
  for (let i = 0; i < xs.length; i++) assert.ok(Math.abs(back[i] - xs[i]) <= Math.abs(xs[i]) * 2 ** -8);
});

test('memory pool reuses freed blocks of the same size class and trims', () => {
  const allocated: bigint[] = [];
  const freed: bigint[] = [];
  let next = 0x1000n;
  const pool = new DeviceMemoryPool({
    alloc: (bytes: number) => { const p = next; next += BigInt(bytes); allocated.push(p); return p; },
    free: (p: bigint) => { freed.push(p); },
  });
  assert.equal(roundBlockSize(1), 256);
  assert.equal(roundBlockSize(3000), 4096);
  assert.equal(roundBlockSize(5 * 1024 * 1024), 6 * 1024 * 1024);
  const a = pool.acquire(3000);
  pool.release(a);
  const b = pool.acquire(4000); // same 4 KiB class
  assert.equal(b.ptr, a.ptr);
  const c = pool.acquire(10_000);
  assert.notEqual(c.ptr, a.ptr);
  assert.throws(() => pool.release({ ...a, ptr: 0xdeadn }), /did not hand out/);
  pool.release(b);
  pool.release(c);
  assert.throws(() => pool.release(c), /released twice/);
  assert.deepEqual(pool.getStats(), { inUseBytes: 0, cachedBytes: 4096 + 16384, allocations: 2, reuses: 1 });
  pool.trim();
  assert.deepEqual(new Set(freed), new Set(allocated));
});

test('compile-cache keys change with every field and hits skip the compiler', () => {
  const base: CompileRequest = { name: 'k', source: 'src', arch: 'sm_90', options: ['-DA=1'], compilerVersion: 'nvrtc-13.0' };
  const variants: CompileRequest[] = [
    { ...base, name: 'k2' }, { ...base, source: 'src2' }, { ...base, arch: 'sm_80' },
    { ...base, options: ['-DA=2'] }, { ...base, compilerVersion: 'nvrtc-13.1' },
  ];
  const keys = new Set([cacheKey(base), ...variants.map(cacheKey)]);
  assert.equal(keys.size, 1 + variants.length);
  assert.equal(cacheKey({ ...base }), cacheKey(base));

  const dir = mkdtempSync(join(tmpdir(), 'sf-cache-test-'));
  try {
    let compiles = 0;
    const cache = new CompileCache(dir, (source) => {
      compiles++;
      return { format: 'cubin', image: Buffer.from(`image of ${source}`), log: '' };
    });
    const first = cache.get(base);
    const second = cache.get(base);
    assert.equal(compiles, 1);
    assert.equal(first.hit, false);
    assert.equal(second.hit, true);
    assert.deepEqual(second.image, first.image);
    cache.get({ ...base, options: ['-DA=3'] });
    assert.equal(compiles, 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('kernel sources inline their local headers', () => {
  const src = readKernelSource('flash-prefill.cu');
  assert.ok(!/#include "/.test(src));
  assert.match(src, /mma\.sync\.aligned\.m16n8k16/);
});

test('decode plan covers the context in one wave of blocks', () => {
  const shape = { numHeads: 32, numKvHeads: 8, headDim: 128 };
  for (const n of [1, 255, 4096, 32768, 131072]) {
    const plan = planDecode(shape, n, 132, 4);
    assert.ok(plan.splits * plan.chunk >= n && (plan.splits - 1) * plan.chunk < n, `n=${n}: ${JSON.stringify(plan)}`);
    assert.equal(plan.chunk % decodeRowsPerStep(128), 0);
    assert.ok(plan.splits * shape.numKvHeads <= 132 * 4, `n=${n}: more than one wave`);
    if (n >= 32768) assert.ok(plan.splits * shape.numKvHeads >= 132 * 3, `n=${n}: too few blocks`);
  }
  assert.throws(() => planDecode(shape, 0, 132, 4), /kvLen/);
});
