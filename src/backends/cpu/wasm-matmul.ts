/**
 * The WebAssembly SIMD matmul kernel (matmul-simd.wat): same contract as the JS kernels in matmul.ts.
 * Weights are copied once into the module's linear memory at `prepare`; each product copies the
 * activations in and the result out (O(T·(I+O)) next to the O(T·I·O) product). Accumulation is float32
 * in 4 lanes (the JS kernels accumulate in float64).
 *
 * Limits: wasm32 memory tops out at 4 GiB, so models whose f32 weights exceed ~3.5 GiB cannot use this
 * kernel (prepare throws a clear error; choose the JS kernel). Matrices whose inner size is not a
 * multiple of 4 are handled by the blocked JS kernel.
 */
import { BlockedJsKernel, checkMatrix, checkOperands, type MatmulKernel, type PreparedMatrix } from './matmul.js';
import { MATMUL_SIMD_WASM_BASE64 } from './matmul-simd-wasm.js';

/**
 * The parts of the WebAssembly JS API this kernel uses. The project compiles without the DOM lib,
 * which is where TypeScript declares `WebAssembly`, so it is typed here and read from globalThis.
 */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports?: object) => { exports: unknown };
  validate(bytes: Uint8Array): boolean;
}
const wasmApi = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

const PAGE = 65536;
const MAX_BYTES = 4 * 1024 * 1024 * 1024 - PAGE;

interface WasmExports {
  memory: WasmMemory;
  matmul(x: number, T: number, w: number, O: number, I: number, out: number): void;
  /** Arithmetic peak probe: n iterations of 96 f32 flops in registers. */
  peak(n: number): number;
}

class WasmMatrix implements PreparedMatrix {
  constructor(readonly offset: number, readonly rows: number, readonly cols: number, readonly bias: Float32Array | undefined) {}
}

/** True when this runtime validates the SIMD module (Node ≥ 16.4 does). */
export function wasmSimdSupported(): boolean {
  try {
    return wasmApi.validate(Buffer.from(MATMUL_SIMD_WASM_BASE64, 'base64'));
  } catch {
    return false;
  }
}

export class WasmSimdKernel implements MatmulKernel {
  readonly name = 'wasm-simd';
  private readonly exports: WasmExports;
  private readonly fallback = new BlockedJsKernel();
  /** End of the weights region (bytes); the scratch region for activations follows it. */
  private weightsEnd = 0;
  private scratchStart = 0;
  private scratchBytes = 0;

  constructor() {
    const module = new wasmApi.Module(Buffer.from(MATMUL_SIMD_WASM_BASE64, 'base64'));
    this.exports = new wasmApi.Instance(module).exports as unknown as WasmExports;
  }

  private grow(toBytes: number): void {
    if (toBytes > MAX_BYTES) {
      throw new Error(`wasm-simd kernel: needs ${(toBytes / 2 ** 30).toFixed(2)} GiB of wasm memory (max 4 GiB); use the js kernel for this model`);
    }
    const mem = this.exports.memory;
    const have = mem.buffer.byteLength;
    if (toBytes > have) mem.grow(Math.ceil((toBytes - have) / PAGE));
  }

  prepare(data: Float32Array, rows: number, cols: number, bias?: Float32Array): PreparedMatrix {
    checkMatrix(data, rows, cols, bias);
    if (cols % 4 !== 0 || cols === 0) return this.fallback.prepare(data, rows, cols, bias);
    // Weights go below the scratch region; moving past it simply abandons the old scratch.
    const offset = align16(Math.max(this.weightsEnd, this.scratchStart + this.scratchBytes));
    const end = offset + data.length * 4;
    this.grow(end);
    new Float32Array(this.exports.memory.buffer, offset, data.length).set(data);
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
    const buf = this.exports.memory.buffer;
    new Float32Array(buf, xOff, T * I).set(x.subarray(0, T * I));
    this.exports.matmul(xOff, T, prepared.offset, O, I, outOff);
    out.set(new Float32Array(buf, outOff, T * O));
    if (bias) for (let t = 0; t < T; t++) for (let o = 0; o < O; o++) out[t * O + o] += bias[o];
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
  const module = new wasmApi.Module(Buffer.from(MATMUL_SIMD_WASM_BASE64, 'base64'));
  const { peak } = new wasmApi.Instance(module).exports as unknown as WasmExports;
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
