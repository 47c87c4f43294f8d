/**
 * The driver layer: availability reporting everywhere; on a GPU machine, that failures surface as
 * CudaError with the driver's error name, NVRTC errors carry the compiler log, copies round-trip and
 * the compile cache answers the second request from disk.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cudaUnavailableReason, isCudaAvailable, probeCuda } from '../../src/backends/cuda/availability.js';
import { CudaError } from '../../src/backends/cuda/driver/check.js';
import type { CudaRuntime } from '../../src/backends/cuda/runtime.js';

const available = isCudaAvailable();
const skip = available ? false : `no CUDA device here: ${cudaUnavailableReason()}`;
if (skip) console.log(`# CUDA driver tests skipped: ${skip}`);

test('availability is reported with a reason when CUDA cannot be used', () => {
  const probe = probeCuda();
  if (probe.available) {
    assert.ok(probe.devices > 0);
    assert.equal(cudaUnavailableReason(), '');
  } else {
    assert.ok(probe.reason.length > 0, 'an unavailable backend must say why');
  }
});

describe('CUDA driver on a device', { skip }, () => {
  let rt: CudaRuntime;
  let cacheDir: string;
  before(async () => {
    const { CudaRuntime } = await import('../../src/backends/cuda/runtime.js');
    cacheDir = mkdtempSync(join(tmpdir(), 'sf-cuda-cache-'));
    rt = new CudaRuntime({ cacheDir });
  });
  after(() => {
    rt?.dispose();
    rmSync(cacheDir, { recursive: true, force: true });
  });

  test('device facts are read', () => {
    const info = rt.cuda.info;
    assert.match(info.arch, /^sm_\d+$/);
    assert.ok(info.multiprocessors > 0 && info.totalMemoryBytes > 0);
  });

  test('a failing call throws CudaError with the CUDA error name', () => {
    // 1 PiB cannot be allocated anywhere.
    assert.throws(() => rt.cuda.alloc(2 ** 50), (err: unknown) => {
      assert.ok(err instanceof CudaError);
      assert.match(err.message, /cuMemAlloc.*CUDA_ERROR_OUT_OF_MEMORY/);
      return true;
    });
  });

  test('host → device → device → host copies round-trip', () => {
    const src = new Float32Array(1000).map((_, i) => i * 0.5 - 7);
    const a = rt.pool.acquire(src.byteLength);
    const b = rt.pool.acquire(src.byteLength);
    rt.cuda.upload(a.ptr, src);
    rt.cuda.copyDeviceAsync(b.ptr, a.ptr, src.byteLength, rt.stream);
    rt.synchronize();
    const back = new Float32Array(1000);
    rt.cuda.download(back, b.ptr);
    assert.deepEqual(back, src);
    rt.pool.release(a);
    rt.pool.release(b);
  });

  test('events time device work', () => {
    const start = rt.cuda.createEvent(), end = rt.cuda.createEvent();
    const buf = rt.pool.acquire(64 << 20);
    rt.cuda.record(start, rt.stream);
    rt.cuda.fill32Async(buf.ptr, 0x3f800000, 16 << 20, rt.stream);
    rt.cuda.record(end, rt.stream);
    const ms = rt.cuda.elapsedMs(start, end);
    assert.ok(ms > 0 && ms < 1000, `elapsed ${ms} ms`);
    rt.pool.release(buf);
    rt.cuda.destroyEvent(start);
    rt.cuda.destroyEvent(end);
  });

  test('a captured graph replays its work', () => {
    const buf = rt.pool.acquire(4096);
    const exec = rt.cuda.captureGraph(rt.stream, () => rt.cuda.fill32Async(buf.ptr, 0x40490fdb, 1024, rt.stream));
    rt.cuda.fill32Async(buf.ptr, 0, 1024, rt.stream); // overwritten by the replay below
    rt.cuda.launchGraph(exec, rt.stream);
    rt.synchronize();
    const back = new Float32Array(1024);
    rt.cuda.download(back, buf.ptr);
    assert.ok(back.every((x) => Math.abs(x - Math.PI) < 1e-6));
    rt.cuda.destroyGraph(exec);
    rt.pool.release(buf);
  });

  test('NVRTC errors carry the compiler log', async () => {
    const { compileWithNvrtc, NvrtcCompileError } = await import('../../src/backends/cuda/nvrtc.js');
    assert.throws(() => compileWithNvrtc('extern "C" __global__ void f() { undefined_thing(); }', 'broken', rt.cuda.info.arch, []),
      (err: unknown) => err instanceof NvrtcCompileError && /undefined_thing/.test(err.log));
  });

  test('the compile cache serves a second runtime from disk', async () => {
    const { FlashPrefill } = await import('../../src/backends/cuda/kernels/flash-prefill.js');
    new FlashPrefill(rt, { numHeads: 2, numKvHeads: 1, headDim: 64 }).prepare();
    assert.ok(readdirSync(cacheDir).some((f) => f.startsWith('flash-prefill-') && f.endsWith('.cubin')));
    const { CudaRuntime } = await import('../../src/backends/cuda/runtime.js');
    const second = new CudaRuntime({ cacheDir });
    new FlashPrefill(second, { numHeads: 2, numKvHeads: 1, headDim: 64 }).prepare();
    assert.deepEqual(second.compileStats, { compiled: 0, cacheHits: 1 });
    second.dispose();
  });
});
