/**
 * Launchers for elementwise.cu: RMSNorm, rotate-half RoPE, SwiGLU, residual add (alone or fused with the
 * RMSNorm after it) and row argmax.
 * bf16 tensors in and out (fp32 arithmetic inside); argmax reads fp32 logits.
 */
import type { DevicePtr } from '../context.js';
import type { CudaKernel } from '../module.js';
import type { CudaRuntime } from '../runtime.js';

const BLOCK = 256;

export class ElementwiseKernels {
  private readonly k: Record<'rmsnorm' | 'addRmsnorm' | 'rope' | 'swiglu' | 'add' | 'argmax', CudaKernel>;

  constructor(private readonly rt: CudaRuntime) {
    const mod = rt.module('elementwise.cu', {});
    this.k = {
      rmsnorm: mod.kernel('rmsnorm', ['ptr', 'ptr', 'ptr', 'i32', 'f32', 'f32', 'i32']),
      addRmsnorm: mod.kernel('add_rmsnorm', ['ptr', 'ptr', 'ptr', 'ptr', 'i32', 'f32', 'f32', 'i32']),
      rope: mod.kernel('rope_rotate_half', ['ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32']),
      swiglu: mod.kernel('swiglu', ['ptr', 'ptr', 'ptr', 'i32']),
      add: mod.kernel('add', ['ptr', 'ptr', 'ptr', 'i32']),
      argmax: mod.kernel('argmax_rows', ['ptr', 'ptr', 'i32']),
    };
  }

  private cfg(blocks: number, threads = BLOCK) {
    return { grid: [blocks, 1, 1] as [number, number, number], block: [threads, 1, 1] as [number, number, number], sharedBytes: 0, stream: this.rt.stream };
  }

  /**
   * x, out: [T, C] bf16; weight: [C] bf16. out = x / rms(x) * (weight + weightOffset)
   * (weightOffset 1 for Gemma's (1 + w) norms, else 0). releaseDependents: a programmatic dependent
   * launched next (a GEMV that waits for this kernel before reading out) may start at once.
   */
  rmsNorm(a: { x: DevicePtr; weight: DevicePtr; out: DevicePtr; rows: number; cols: number; eps: number; weightOffset?: number; releaseDependents?: boolean }): void {
    positive('rmsNorm rows', a.rows);
    positive('rmsNorm cols', a.cols);
    this.k.rmsnorm.launch(this.cfg(a.rows), [a.x, a.weight, a.out, a.cols, a.eps, a.weightOffset ?? 0, a.releaseDependents ? 1 : 0]);
  }

  /**
   * x: [T, C] bf16, in place x = x + residual (residual: [T, C]); then out: [T, C] = rmsNorm of the new x
   * with weight: [C]. The same bits as add() followed by rmsNorm(); out must not alias x or residual.
   * releaseDependents as in rmsNorm.
   */
  addRmsNorm(a: {
    x: DevicePtr; residual: DevicePtr; weight: DevicePtr; out: DevicePtr; rows: number; cols: number; eps: number; weightOffset?: number; releaseDependents?: boolean;
  }): void {
    positive('addRmsNorm rows', a.rows);
    positive('addRmsNorm cols', a.cols);
    if (a.out === a.x || a.out === a.residual) throw new Error('addRmsNorm: out must not alias x or residual');
    this.k.addRmsnorm.launch(this.cfg(a.rows), [a.x, a.residual, a.weight, a.out, a.cols, a.eps, a.weightOffset ?? 0, a.releaseDependents ? 1 : 0]);
  }

  /**
   * In place on x: [T, heads, D] bf16; positions: [T] int32; invFreq: [D/2] fp32 (RoPE scaling already
   * applied). HF rotate-half convention: pairs (i, i + D/2).
   */
  ropeRotateHalf(a: { x: DevicePtr; positions: DevicePtr; invFreq: DevicePtr; tokens: number; heads: number; headDim: number }): void {
    positive('rope tokens', a.tokens);
    positive('rope heads', a.heads);
    if (!(a.headDim > 0) || a.headDim % 2 !== 0) throw new Error(`rope: head dim must be even (got ${a.headDim})`);
    const pairs = a.tokens * a.heads * (a.headDim / 2);
    this.k.rope.launch(this.cfg(Math.ceil(pairs / BLOCK)), [a.x, a.positions, a.invFreq, a.tokens, a.heads, a.headDim]);
  }

  /** gate, up, out: [n] bf16. out = silu(gate) * up. */
  swiglu(a: { gate: DevicePtr; up: DevicePtr; out: DevicePtr; n: number }): void {
    positive('swiglu n', a.n);
    this.k.swiglu.launch(this.cfg(Math.ceil(a.n / BLOCK)), [a.gate, a.up, a.out, a.n]);
  }

  /** a, b, out: [n] bf16. out = a + b (out may alias a). */
  add(a: { a: DevicePtr; b: DevicePtr; out: DevicePtr; n: number }): void {
    positive('add n', a.n);
    this.k.add.launch(this.cfg(Math.ceil(a.n / BLOCK)), [a.a, a.b, a.out, a.n]);
  }

  /** logits: [rows, V] fp32; out: [rows] int32, the lowest index of each row's maximum. */
  argmaxRows(a: { logits: DevicePtr; out: DevicePtr; rows: number; vocab: number }): void {
    positive('argmax rows', a.rows);
    positive('argmax vocab', a.vocab);
    this.k.argmax.launch(this.cfg(a.rows, 1024), [a.logits, a.out, a.vocab]);
  }
}

function positive(what: string, n: number): void {
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${what} must be a positive integer (got ${n})`);
}
