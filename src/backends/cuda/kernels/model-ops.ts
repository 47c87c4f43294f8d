/**
 * Launchers for model-ops.cu: embedding gather, gated MLP activations (SwiGLU / GeGLU-tanh) over fused
 * gate|up rows, bias add, per-head RMSNorm and RoPE inside strided rows (fused qkv projections), final
 * logit soft-capping, on-device random fill, a decode step's bias + RoPE + K/V append in one launch, and
 * a one-token linear layer (GEMV) without cuBLAS. bf16 tensors (fp32 arithmetic inside) unless stated.
 */
import type { DevicePtr } from '../context.js';
import type { CudaKernel } from '../module.js';
import type { CudaRuntime } from '../runtime.js';

const BLOCK = 256;

export type GatedActivation = 'silu' | 'gelu_tanh';
const ACTIVATION_CODE: Record<GatedActivation, number> = { silu: 0, gelu_tanh: 1 };

type Name = 'embed' | 'gatedAct' | 'biasAdd' | 'rmsNormHeads' | 'ropeHeads' | 'softcap' | 'fillUniform' | 'advancePosition' | 'ropeAppendAt' | 'gemv' | 'gemvDeep' | 'gemvFused' | 'gemvFusedDeep';

export class ModelOpsKernels {
  private readonly k: Record<Name, CudaKernel>;
  /** gemv_fused_bf16(_deep) blocks one SM holds, by kernel and dynamic shared bytes (asked once each). */
  private readonly fusedBlocksPerSM = new Map<string, number>();

  constructor(private readonly rt: CudaRuntime) {
    const mod = rt.module('model-ops.cu', {});
    this.k = {
      embed: mod.kernel('embed_rows', ['ptr', 'ptr', 'ptr', 'i32', 'f32']),
      gatedAct: mod.kernel('gated_act_rows', ['ptr', 'ptr', 'i32', 'i32', 'i32', 'i32']),
      biasAdd: mod.kernel('bias_add_rows', ['ptr', 'ptr', 'i32', 'i32']),
      rmsNormHeads: mod.kernel('rmsnorm_heads', ['ptr', 'ptr', 'i32', 'i32', 'i32', 'i32', 'f32', 'f32']),
      ropeHeads: mod.kernel('rope_heads', ['ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32', 'i32']),
      softcap: mod.kernel('softcap_f32', ['ptr', 'i32', 'f32']),
      fillUniform: mod.kernel('fill_uniform_bf16', ['ptr', 'i32', 'i32', 'f32', 'f32']),
      advancePosition: mod.kernel('advance_position', ['ptr']),
      gemv: mod.kernel('gemv_bf16', ['ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32']),
      gemvDeep: mod.kernel('gemv_bf16_deep', ['ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32']),
      gemvFused: mod.kernel('gemv_fused_bf16', ['ptr', 'ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32', 'f32', 'f32', 'i32']),
      gemvFusedDeep: mod.kernel('gemv_fused_bf16_deep', ['ptr', 'ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32', 'f32', 'f32', 'i32']),
      ropeAppendAt: mod.kernel('rope_append_at', ['ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'ptr', 'i32', 'i32', 'i32', 'i32']),
    };
  }

  private cfg(blocks: number, threads = BLOCK) {
    return { grid: [blocks, 1, 1] as [number, number, number], block: [threads, 1, 1] as [number, number, number], sharedBytes: 0, stream: this.rt.stream };
  }

  /** ids: [T] int32 on the device, each in [0, V) (the caller checks); table: [V, C]; out: [T, C] = table[ids] · scale. */
  embed(a: { ids: DevicePtr; table: DevicePtr; out: DevicePtr; tokens: number; cols: number; scale: number }): void {
    positive('embed tokens', a.tokens);
    positive('embed cols', a.cols);
    this.k.embed.launch(this.cfg(a.tokens), [a.ids, a.table, a.out, a.cols, a.scale]);
  }

  /**
   * gateUp: [rows, 2I] (gate columns, then up columns); out: [rows, I] = act(gate) · up. releaseDependents:
   * a programmatic dependent launched next (the down GEMV, which waits before reading out) may start at once.
   */
  gatedActivation(a: { gateUp: DevicePtr; out: DevicePtr; rows: number; inner: number; activation: GatedActivation; releaseDependents?: boolean }): void {
    positive('gated activation rows', a.rows);
    positive('gated activation inner', a.inner);
    const n = a.rows * a.inner;
    if (n >= 2 ** 31) throw new Error(`gated activation: ${n} elements exceed the kernel's 32-bit grid`);
    this.k.gatedAct.launch(this.cfg(Math.ceil(n / BLOCK)), [a.gateUp, a.out, a.rows, a.inner, ACTIVATION_CODE[a.activation], a.releaseDependents ? 1 : 0]);
  }

  /** y: [rows, C] += bias: [C]. */
  biasAdd(a: { y: DevicePtr; bias: DevicePtr; rows: number; cols: number }): void {
    positive('bias rows', a.rows);
    positive('bias cols', a.cols);
    this.k.biasAdd.launch(this.cfg(Math.ceil((a.rows * a.cols) / BLOCK)), [a.y, a.bias, a.rows, a.cols]);
  }

  /**
   * In place: head h of token t at x + 2·(t·rowStride + h·D) bytes, normalised over its D values and
   * scaled by (weight + weightOffset); weight: [D].
   */
  rmsNormHeads(a: { x: DevicePtr; weight: DevicePtr; tokens: number; heads: number; headDim: number; rowStride: number; eps: number; weightOffset?: number }): void {
    positive('rmsNormHeads tokens', a.tokens);
    positive('rmsNormHeads heads', a.heads);
    positive('rmsNormHeads headDim', a.headDim);
    if (a.rowStride < a.heads * a.headDim) throw new Error(`rmsNormHeads: row stride ${a.rowStride} < heads·D`);
    const rows = a.tokens * a.heads;
    this.k.rmsNormHeads.launch(this.cfg(Math.ceil(rows / 4), 128), [a.x, a.weight, a.tokens, a.heads, a.headDim, a.rowStride, a.eps, a.weightOffset ?? 0]);
  }

  /**
   * In place, rotate-half RoPE of `heads` heads per token laid out as in rmsNormHeads; positions: [T]
   * int32; invFreq: [D/2] fp32 with the scaling applied.
   */
  ropeHeads(a: { x: DevicePtr; positions: DevicePtr; invFreq: DevicePtr; tokens: number; heads: number; headDim: number; rowStride: number }): void {
    positive('rope tokens', a.tokens);
    positive('rope heads', a.heads);
    if (!(a.headDim > 0) || a.headDim % 2 !== 0) throw new Error(`rope: head dim must be even (got ${a.headDim})`);
    if (a.rowStride < a.heads * a.headDim) throw new Error(`rope: row stride ${a.rowStride} < heads·D`);
    const pairs = a.tokens * a.heads * (a.headDim / 2);
    this.k.ropeHeads.launch(this.cfg(Math.ceil(pairs / BLOCK)), [a.x, a.positions, a.invFreq, a.tokens, a.heads, a.headDim, a.rowStride]);
  }

  /** x: [n] fp32, in place: cap · tanh(x / cap). */
  softcap(a: { x: DevicePtr; n: number; cap: number }): void {
    positive('softcap n', a.n);
    if (!(a.cap > 0)) throw new Error(`softcap: cap must be positive (got ${a.cap})`);
    this.k.softcap.launch(this.cfg(Math.ceil(a.n / BLOCK)), [a.x, a.n, a.cap]);
  }

  /** pos: one int32 on the device; *pos += 1 on the stream (the last node of a captured decode step). */
  advancePosition(pos: DevicePtr): void {
    if (pos === 0n) throw new Error('advancePosition: null pointer');
    this.k.advancePosition.launch(this.cfg(1, 1), [pos]);
  }

  /**
   * One token's fused qkv row [(H + 2·Hkv)·D] in place: bias (optional, same length) added, q and k heads
   * rotated (rotate-half RoPE at the int32 position *position, invFreq: [D/2] fp32), and its K/V heads
   * written into row *position of kCache / vCache ([Hkv, capacity, D]). The same bits as biasAdd,
   * ropeHeads over q then k, and a K/V append of the row (a captured decode step's kv_append_at).
   */
  ropeAppendAt(a: {
    qkv: DevicePtr; bias: DevicePtr | null; invFreq: DevicePtr; kCache: DevicePtr; vCache: DevicePtr; position: DevicePtr;
    heads: number; kvHeads: number; headDim: number; capacity: number;
  }): void {
    positive('ropeAppendAt heads', a.heads);
    positive('ropeAppendAt kvHeads', a.kvHeads);
    positive('ropeAppendAt capacity', a.capacity);
    if (!Number.isInteger(a.headDim) || a.headDim % 2 !== 0 || a.headDim < 2 || a.headDim > 256) {
      throw new Error(`ropeAppendAt: head dim must be even and at most 256 (got ${a.headDim})`);
    }
    if (a.position === 0n || a.position % 4n !== 0n) throw new Error('ropeAppendAt: position must be an aligned int32 device pointer');
    this.k.ropeAppendAt.launch(this.cfg(a.heads + 2 * a.kvHeads, Math.max(32, a.headDim / 2)),
      [a.qkv, a.bias ?? 0n, a.invFreq, a.kCache, a.vCache, a.position, a.heads, a.kvHeads, a.headDim, a.capacity]);
  }

  /**
   * One token's linear layer: y: [N] = W: [N, K] · x: [K] (bf16 in, fp32 accumulation, y bf16 or fp32 with
   * outFloat32), as Cublas.linear with T = 1 computes it up to the order of the fp32 sums. K a multiple of
   * 8; W and x 16-byte aligned. programmatic: launched as a programmatic dependent of the kernel before
   * (which must release it, e.g. rmsNorm's releaseDependents), so its first weight loads overlap that
   * kernel; it waits for it before reading x. deep: gemv_bf16_deep, twice the weight loads in flight per
   * thread (the same bits).
   */
  gemv(a: { x: DevicePtr; w: DevicePtr; y: DevicePtr; inFeatures: number; outFeatures: number; outFloat32?: boolean; programmatic?: boolean; deep?: boolean }): void {
    positive('gemv inFeatures', a.inFeatures);
    positive('gemv outFeatures', a.outFeatures);
    if (a.inFeatures % 8 !== 0) throw new Error(`gemv: inFeatures ${a.inFeatures} is not a multiple of 8`);
    if (a.w % 16n !== 0n || a.x % 16n !== 0n) throw new Error('gemv: W and x must be 16-byte aligned');
    if (a.outFeatures >= 2 ** 31) throw new Error(`gemv: ${a.outFeatures} rows exceed the kernel's 32-bit row index`);
    (a.deep ? this.k.gemvDeep : this.k.gemv).launch({ ...this.cfg(Math.ceil(a.outFeatures / 8)), programmaticDependency: a.programmatic ?? false },
      [a.w, a.x, a.y, a.outFeatures, a.inFeatures, a.outFloat32 ? 1 : 0]);
  }

  /**
   * One token's linear layer with its neighbours folded in (gemv_fused_bf16), the same bits as the
   * separate kernels: x: [K] bf16, RMSNorm-ed first with `norm` (weight [K], as rmsNorm) when given;
   * W: [rows, K]. `out` says what is written:
   *   plain    y: [rows] = W · x (bf16, or fp32 with outFloat32)
   *   residual y: [rows] bf16 residual stream, y += bf16(W · x)      (the residual add)
   *   gated    W = fused gate|up [2·inner, K]; y: [inner] = act(gate) · up   (gatedActivation)
   * release: the kernel lets a programmatic dependent launched next start at once; programmatic: this
   * launch is one (it waits for the kernel before it before reading x or y). deep: gemv_fused_bf16_deep,
   * eight chunks a lane per batch (the same bits).
   */
  gemvFused(a: {
    w: DevicePtr; x: DevicePtr; y: DevicePtr; inFeatures: number;
    norm?: { weight: DevicePtr; eps: number; weightOffset: number };
    out: { kind: 'plain'; rows: number; outFloat32?: boolean } | { kind: 'residual'; rows: number } | { kind: 'gated'; inner: number; activation: GatedActivation };
    release?: boolean; programmatic?: boolean; deep?: boolean;
  }): void {
    const K = a.inFeatures;
    positive('gemvFused inFeatures', K);
    if (K % 8 !== 0) throw new Error(`gemvFused: inFeatures ${K} is not a multiple of 8`);
    if (a.w % 16n !== 0n || a.x % 16n !== 0n) throw new Error('gemvFused: W and x must be 16-byte aligned');
    const units = a.out.kind === 'gated' ? a.out.inner : a.out.rows;
    positive('gemvFused output rows', units);
    let flags = (a.norm ? 1 : 0) | (a.release ? 32 : 0);
    if (a.out.kind === 'residual') flags |= 2;
    if (a.out.kind === 'gated') flags |= 4 | (a.out.activation === 'gelu_tanh' ? 8 : 0);
    if (a.out.kind === 'plain' && a.out.outFloat32) flags |= 16;
    const sharedBytes = K * 2;
    // Enough blocks to fill the device once; each stages x once and walks its warps' units.
    const kernel = a.deep ? this.k.gemvFusedDeep : this.k.gemvFused;
    const key = `${a.deep ? 'deep' : 'plain'}:${sharedBytes}`;
    let perSM = this.fusedBlocksPerSM.get(key);
    if (perSM === undefined) this.fusedBlocksPerSM.set(key, perSM = Math.max(1, kernel.maxActiveBlocksPerSM(BLOCK, sharedBytes)));
    const resident = this.rt.cuda.info.multiprocessors * perSM;
    const blocks = Math.min(Math.ceil(units / 8), resident);
    kernel.launch({ ...this.cfg(blocks), sharedBytes, programmaticDependency: a.programmatic ?? false },
      [a.w, a.x, a.norm?.weight ?? 0n, a.y, units, K, a.out.kind === 'gated' ? a.out.inner : 0, a.norm?.eps ?? 0, a.norm?.weightOffset ?? 0, flags]);
  }

  /** x: [n] bf16 = mean + halfWidth · u, u uniform in [-1, 1) from a hash of (seed, index). */
  fillUniform(a: { x: DevicePtr; n: number; seed: number; mean: number; halfWidth: number }): void {
    positive('fill n', a.n);
    if (a.n >= 2 ** 31) throw new Error(`fill: ${a.n} values exceed the kernel's 32-bit index`);
    this.k.fillUniform.launch(this.cfg(Math.min(Math.ceil(a.n / BLOCK), 65535)), [a.x, a.n, a.seed | 0, a.mean, a.halfWidth]);
  }
}

function positive(what: string, n: number): void {
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${what} must be a positive integer (got ${n})`);
}
