/**
 * The WebAssembly SIMD matmul kernel (matmul-simd.wat): same contract as the JS kernels in matmul.ts.
 * Weights are copied once into the module's linear memory at `prepare`; each product copies the
 * activations in and the result out (O(T·(I+O)) next to the O(T·I·O) product). Accumulation is float32
 * in 4 lanes (the JS kernels accumulate in float64).
 *
 * Threads: the memory is a shared WebAssembly.Memory, so worker threads instantiate the same module
 * over the same bytes (the weights exist once). A product is split by weight rows: the calling thread
 * and each worker compute a contiguous slice of output columns, so each thread streams its own part of
 * W (decode is memory-bound; prefill compute-bound: both scale with cores). Calls stay synchronous: the
 * caller posts the slices through a shared Int32Array, computes its own slice, then Atomics.wait()s for
 * the workers. Products too small to amortise the wake-up run on the calling thread alone.
 *
 * Limits: wasm32 memory tops out at 4 GiB, so models whose f32 weights exceed ~3.5 GiB cannot use this
 * kernel (prepare throws a clear error; choose the JS kernel). Matrices whose inner size is not a
 * multiple of 4 are handled by the blocked JS kernel.
 */
import { Worker } from 'node:worker_threads';
import { BlockedJsKernel, checkMatrix, checkOperands, type MatmulKernel, type PreparedMatrix } from './matmul.js';
import { MATMUL_SIMD_WASM_BASE64 } from './matmul-simd-wasm.js';

/**
 * The parts of the WebAssembly JS API this kernel uses. The project compiles without the DOM lib,
 * which is where TypeScript declares `WebAssembly`, so it is typed here and read from globalThis.
 */
interface WasmMemory {
  readonly buffer: ArrayBufferLike;
  grow(pages: number): number;
}
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports?: object) => { exports: unknown };
  Memory: new (descriptor: { initial: number; maximum: number; shared: boolean }) => WasmMemory;
  validate(bytes: Uint8Array): boolean;
}
const wasmApi = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

const PAGE = 65536;
const MAX_PAGES = 65536;
const MAX_BYTES = MAX_PAGES * PAGE - PAGE;
/** Below this many multiply-adds a product runs on the calling thread only (wake-ups cost ~10-50 µs). */
const DEFAULT_MIN_PARALLEL_MACS = 1 << 18;

interface WasmExports {
  matmul(x: number, T: number, w: number, O: number, I: number, out: number, ldo: number): void;
  /** Arithmetic peak probe: n iterations of 96 f32 flops in registers. */
  peak(n: number): number;
}

class WasmMatrix implements PreparedMatrix {
  constructor(readonly offset: number, readonly rows: number, readonly cols: number, readonly bias: Float32Array | undefined) {}
}

let compiled: object | null = null;
function simdModule(): object {
  compiled ??= new wasmApi.Module(Buffer.from(MATMUL_SIMD_WASM_BASE64, 'base64'));
  return compiled;
}

function instantiate(memory: WasmMemory): WasmExports {
  return new wasmApi.Instance(simdModule(), { env: { memory } }).exports as unknown as WasmExports;
}

/** True when this runtime validates the SIMD + shared-memory module (Node ≥ 16.4 does). */
export function wasmSimdSupported(): boolean {
  try {
    return wasmApi.validate(Buffer.from(MATMUL_SIMD_WASM_BASE64, 'base64'));
  } catch {
    return false;
  }
}

// Control block per worker slot (Int32 words): [sequence, x, T, w, O, I, out, ldo]; one shared
// done-counter after the slots. A worker waits for its sequence word to change, runs the product,
// adds 1 to the counter. Sequence −1 tells it to exit.
const SLOT_WORDS = 8;
const WORKER_SOURCE = `
const { workerData } = require('node:worker_threads');
const { module, memory, control, slot, doneIndex } = workerData;
const { matmul } = new WebAssembly.Instance(module, { env: { memory } }).exports;
const base = slot * ${SLOT_WORDS};
let seen = 0;
for (;;) {
  Atomics.wait(control, base, seen);
  seen = Atomics.load(control, base);
  if (seen < 0) break;
  matmul(control[base + 1], control[base + 2], control[base + 3], control[base + 4], control[base + 5], control[base + 6], control[base + 7]);
  Atomics.add(control, doneIndex, 1);
  Atomics.notify(control, doneIndex);
}
`;

export interface WasmKernelOptions {
  /** Threads computing each product, the calling one included (default 1). */
  threads?: number;
  /** Products with fewer multiply-adds than this run on the calling thread only. */
  minParallelMacs?: number;
}

export class WasmSimdKernel implements MatmulKernel {
  readonly name: string;
  readonly threads: number;
  private readonly memory: WasmMemory;
  private readonly exports: WasmExports;
  private readonly fallback = new BlockedJsKernel();
  private readonly workers: Worker[] = [];
  private readonly control: Int32Array;
  private readonly doneIndex: number;
  private readonly minParallelMacs: number;
  private sequence = 0;
  /** End of the weights region (bytes); the scratch region for activations follows it. */
  private weightsEnd = 0;
  private scratchStart = 0;
  private scratchBytes = 0;

  constructor(options: WasmKernelOptions = {}) {
    const threads = Math.floor(options.threads ?? 1);
    if (!(threads >= 1)) throw new Error(`wasm-simd kernel: threads must be ≥ 1, got ${options.threads}`);
    this.threads = threads;
    this.name = threads > 1 ? `wasm-simd×${threads}` : 'wasm-simd';
    this.minParallelMacs = options.minParallelMacs ?? DEFAULT_MIN_PARALLEL_MACS;
    this.memory = new wasmApi.Memory({ initial: 1, maximum: MAX_PAGES, shared: true });
    this.exports = instantiate(this.memory);
    this.doneIndex = (threads - 1) * SLOT_WORDS;
    this.control = new Int32Array(new SharedArrayBuffer((this.doneIndex + 1) * 4));
    for (let slot = 0; slot < threads - 1; slot++) {
      const worker = new Worker(WORKER_SOURCE, {
        eval: true,
        workerData: { module: simdModule(), memory: this.memory, control: this.control, slot, doneIndex: this.doneIndex },
      });
      // Idle workers sleep in Atomics.wait; they must not keep the process alive.
      worker.unref();
      this.workers.push(worker);
    }
  }

  /** Stop the worker threads (the kernel is unusable afterwards for parallel products). */
  async close(): Promise<void> {
    for (let slot = 0; slot < this.workers.length; slot++) {
      Atomics.store(this.control, slot * SLOT_WORDS, -1);
      Atomics.notify(this.control, slot * SLOT_WORDS);
    }
    await Promise.all(this.workers.map((w) => w.terminate()));
    this.workers.length = 0;
  }

  private grow(toBytes: number): void {
    if (toBytes > MAX_BYTES) {
      throw new Error(`wasm-simd kernel: needs ${(toBytes / 2 ** 30).toFixed(2)} GiB of wasm memory (max 4 GiB); use the js-blocked kernel for this model`);
    }
    const have = this.memory.buffer.byteLength;
    if (toBytes > have) this.memory.grow(Math.ceil((toBytes - have) / PAGE));
  }

  prepare(data: Float32Array, rows: number, cols: number, bias?: Float32Array): PreparedMatrix {
    checkMatrix(data, rows, cols, bias);
    if (cols % 4 !== 0 || cols === 0) return this.fallback.prepare(data, rows, cols, bias);
    // Weights go after everything allocated so far; the old scratch region is simply abandoned.
    const offset = align16(Math.max(this.weightsEnd, this.scratchStart + this.scratchBytes));
    const end = offset + data.length * 4;
    this.grow(end);
    new Float32Array(this.memory.buffer, offset, data.length).set(data);
    this.weightsEnd = end;
    this.scratchStart = 0;
    this.scratchBytes = 0;
    return new WasmMatrix(offset, rows, cols, bias);
  }

  /** Scratch for x and out (bytes each), after all weights; grows geometrically. */
  private scratch(xBytes: number, outBytes: number): [number, number] {
    const need = align16(xBytes) + align16(outBytes);
    if (this.scratchStart === 0 || need > this.scratchBytes) {
      this.scratchStart = align16(this.weightsEnd);
      this.scratchBytes = Math.max(need, this.scratchBytes * 2, 1 << 16);
      this.grow(this.scratchStart + this.scratchBytes);
    }
    return [this.scratchStart, this.scratchStart + align16(xBytes)];
  }

  matmul(x: Float32Array, T: number, prepared: PreparedMatrix, out: Float32Array): void {
    if (!(prepared instanceof WasmMatrix)) {
      this.fallback.matmul(x, T, prepared, out);
      return;
    }
    checkOperands(x, T, prepared, out);
    const { rows: O, cols: I, bias } = prepared;
    const [xOff, outOff] = this.scratch(T * I * 4, T * O * 4);
    new Float32Array(this.memory.buffer, xOff, T * I).set(x.subarray(0, T * I));
    this.run(xOff, T, prepared.offset, O, I, outOff);
    out.set(new Float32Array(this.memory.buffer, outOff, T * O));
    if (bias) for (let t = 0; t < T; t++) for (let o = 0; o < O; o++) out[t * O + o] += bias[o];
  }

  /** out[T, O] over byte offsets; split across threads by weight rows when worth it. */
  private run(x: number, T: number, w: number, O: number, I: number, out: number): void {
    const parts = this.workers.length + 1;
    if (parts === 1 || T * O * I < this.minParallelMacs || O < 8 * parts) {
      this.exports.matmul(x, T, w, O, I, out, O);
      return;
    }
    // Slices of whole 4-row tiles; the calling thread takes the first.
    const tiles = Math.ceil(O / 4);
    const bounds = Array.from({ length: parts + 1 }, (_, p) => Math.min(O, 4 * Math.round((tiles * p) / parts)));
    const ctl = this.control;
    Atomics.store(ctl, this.doneIndex, 0);
    this.sequence = (this.sequence + 1) & 0x3fffffff;
    for (let k = 1; k < parts; k++) {
      const base = (k - 1) * SLOT_WORDS;
      const o0 = bounds[k];
      ctl[base + 1] = x;
      ctl[base + 2] = T;
      ctl[base + 3] = w + o0 * I * 4;
      ctl[base + 4] = bounds[k + 1] - o0;
      ctl[base + 5] = I;
      ctl[base + 6] = out + o0 * 4;
      ctl[base + 7] = O;
      Atomics.store(ctl, base, this.sequence);
      Atomics.notify(ctl, base);
    }
    this.exports.matmul(x, T, w, bounds[1], I, out, O);
    for (;;) {
      const done = Atomics.load(ctl, this.doneIndex);
      if (done === parts - 1) break;
      Atomics.wait(ctl, this.doneIndex, done);
    }
  }
}

function align16(n: number): number {
  return (n + 15) & ~15;
}

/**
 * Measured wasm SIMD arithmetic peak of one core in GFLOP/s (register-only multiply-add chains): the
 * best of rounds of ~50 ms over `seconds`, so the first rounds (baseline compiler, before V8 tiers
 * the module up) do not count.
 */
export function measureWasmSimdPeak(seconds = 0.5): number {
  const { peak } = instantiate(new wasmApi.Memory({ initial: 1, maximum: 1, shared: true }));
  let iters = 1e4;
  let best = 0;
  const start = performance.now();
  while ((performance.now() - start) / 1000 < seconds) {
    const t0 = performance.now();
    peak(iters);
    const dt = (performance.now() - t0) / 1000;
    best = Math.max(best, (iters * PEAK_FLOPS_PER_ITERATION) / dt / 1e9);
    if (dt < 0.05) iters = Math.min(2 ** 31 - 1, iters * 2);
  }
  return best;
}

const PEAK_FLOPS_PER_ITERATION = 96;
