/**
 * The whole decoder-only transformer on the GPU: the same network as src/engine/model.ts (llama,
 * qwen2, qwen3, mistral, gemma3 text; HF semantics, see that file's header), with weights held once on
 * the device as bf16, GEMMs through cuBLAS (bf16 in, fp32 accumulate) and every other step a kernel.
 * Semantics shared with the CPU model come from the same places: ModelConfig (config.ts), RoPE
 * inverse frequencies with their scaling (rope.ts), HF tensor names (weight-layout.ts), the embedding
 * scale rounded to the checkpoint dtype (roundToDtype).
 *
 * Activations are row-major bf16 [T, width] for the T tokens of one forward call of one sequence.
 * Attention of every layer goes through one DeviceAttention (device-attention.ts): the dense kernels,
 * or a method plan (methods/plan.ts) running the sparse GPU methods (issue 9).
 */
import type { ModelConfig } from '../../engine/model-config.js';
import { inverseFrequencies } from '../../engine/rope.js';
import { EMBED_TOKENS, FINAL_NORM, LM_HEAD, layerPrefix } from '../../engine/weight-layout.js';
import { roundToDtype } from '../cpu/ops.js';
import { Cublas, type LinearArgs } from './cublas.js';
import type { DevicePtr } from './context.js';
import { DecodeGraph, decodeGraphUnsupported } from './decode-graph.js';
import { DenseDeviceAttention, type DeviceAttention } from './device-attention.js';
import { DecodeAttentionKernel, decodeWorkspaceBytes } from './kernels/decode-attention.js';
import { ElementwiseKernels } from './kernels/elementwise.js';
import { ModelOpsKernels } from './kernels/model-ops.js';
import { DeviceLayerKvCache } from './kv-cache.js';
import type { DeviceBuffer } from './memory-pool.js';
import type { GraphDecodeAttention } from './methods/contract.js';
import type { CudaRuntime } from './runtime.js';
import type { DeviceWeightSource } from './weight-source.js';

interface DeviceLayerWeights {
  inputNorm: DeviceBuffer;
  /** Fused [(H + 2·Hkv)·D, hidden]: q rows, then k rows, then v rows. */
  qkv: DeviceBuffer;
  /** [(H + 2·Hkv)·D] (qwen2), else null. */
  qkvBias: DeviceBuffer | null;
  o: DeviceBuffer;
  qNorm: DeviceBuffer | null;
  kNorm: DeviceBuffer | null;
  postAttnNorm: DeviceBuffer | null;
  preMlpNorm: DeviceBuffer;
  postMlpNorm: DeviceBuffer | null;
  /** Fused [2·I, hidden]: gate rows then up rows. */
  gateUp: DeviceBuffer;
  down: DeviceBuffer;
}

/** One sequence's device state: a KV cache per layer and the next position. */
export class CudaSequence {
  position = 0;
  /** The captured decode step of this sequence (CudaTransformerModel.decodeGreedy), if any. */
  decodeGraph: DecodeGraph | null = null;
  /** The sparse decode method's part of decodeGraph (its full-attention layers), null with dense decode. */
  decodeGraphSteps: GraphDecodeAttention | null = null;
  constructor(readonly caches: DeviceLayerKvCache[], readonly capacity: number) {}

  /** Drops the captured decode step (waits for the stream first); the next graph step captures again. */
  dropDecodeGraph(): void {
    this.decodeGraph?.dispose();
    this.decodeGraph = null;
    this.decodeGraphSteps = null;
  }

  /** Frees the caches and the captured decode step (waits for the stream first when one exists). */
  release(): void {
    this.dropDecodeGraph();
    for (const c of this.caches) c.release();
  }
}

/** Device pointers of one forward call's activations (T tokens). */
interface ForwardBuffers {
  ids: DevicePtr; // [T] int32
  positions: DevicePtr; // [T] int32
  x: DevicePtr; // [T, hidden] residual stream
  h: DevicePtr; // [T, hidden] normed
  qkv: DevicePtr; // [T, (H + 2·Hkv)·D]
  attn: DevicePtr; // [T, H·D]
  proj: DevicePtr; // [T, hidden]
  gateUp: DevicePtr; // [T, 2I]
  act: DevicePtr; // [T, I]
}

/** How one layer's new K/V rows reach the cache and how its attention runs, per forward kind. */
interface LayerAttentionStep {
  /** k, v: the new tokens' rows inside the fused qkv rows (row stride qkvDim). */
  append(layer: number, k: DevicePtr, v: DevicePtr): void;
  /**
   * One token's bias (or null), RoPE of q and k, and K/V append in one launch (the captured decode step
   * with fuseSmallNodes); absent where the forward appends at host-known rows.
   */
  ropeAppend?(layer: number, qkv: DevicePtr, bias: DevicePtr | null, invFreq: DevicePtr): void;
  attend(layer: number, sliding: boolean, qkv: DevicePtr, out: DevicePtr): void;
}

/**
 * What each node (or node group) of a forward is, so a captured decode step can keep a subset of them:
 * bench/decode-step-breakdown.ts times each kind alone, replayed in a graph of every layer's nodes of
 * that kind. 'attention' is the split-K partial and its combine (or a method's recorded step);
 * 'add_norm' and 'rope_append' are the fused nodes of CudaTransformerModel.fuseSmallNodes.
 */
export const STEP_NODE_KINDS = [
  'embed', 'norm', 'qkv_gemm', 'qkv_bias', 'head_norm', 'rope', 'kv_append', 'rope_append', 'attention', 'o_gemm',
  'residual_add', 'add_norm', 'gate_up_gemm', 'gated_act', 'down_gemm', 'lm_head', 'softcap', 'argmax', 'advance_position',
] as const;
export type StepNodeKind = (typeof STEP_NODE_KINDS)[number];
/** Whether a node of this kind is queued; the model's own forwards keep every node. */
export type StepNodeFilter = (kind: StepNodeKind) => boolean;
const KEEP_ALL: StepNodeFilter = () => true;

/** cuBLAS workspace the model's handle uses (the size cuBLAS recommends on Hopper); fixed, so GEMMs can be captured. */
const CUBLAS_WORKSPACE_BYTES = 32 * 1024 * 1024;

/** Which rows of a forward call get logits. */
export type DeviceLogitRows = 'all' | 'last' | 'none';

export class CudaTransformerModel {
  readonly config: ModelConfig;
  readonly attention: DeviceAttention;
  private readonly ew: ElementwiseKernels;
  private readonly ops: ModelOpsKernels;
  private readonly blas: Cublas;
  private readonly owned: DeviceBuffer[] = [];
  private readonly layers: DeviceLayerWeights[] = [];
  private readonly embedding: DeviceBuffer; // [V, hidden]
  private readonly lmHead: DeviceBuffer; // [V, hidden] (the embedding when tied)
  private readonly finalNorm: DeviceBuffer;
  private readonly embedScale: number;
  private readonly normOffset: number;
  /** [D/2] fp32 inverse frequencies of full and sliding layers. */
  private readonly invFreqGlobal: DeviceBuffer;
  private readonly invFreqLocal: DeviceBuffer;

  /** Uploads (or generates) every weight once; `source` is read here and not kept. */
  constructor(readonly rt: CudaRuntime, config: ModelConfig, source: DeviceWeightSource, attention?: DeviceAttention) {
    checkRunnable(config);
    this.config = config;
    const c = config;
    const hidden = c.hiddenSize, D = c.headDim, I = c.intermediateSize;
    const qDim = c.numHeads * D, kvDim = c.numKvHeads * D, qkvDim = qDim + 2 * kvDim;
    this.ew = new ElementwiseKernels(rt);
    this.ops = new ModelOpsKernels(rt);
    this.blas = new Cublas(rt.stream);
    this.attention = attention ?? new DenseDeviceAttention(rt, c);
    const workspace = this.own(CUBLAS_WORKSPACE_BYTES);
    this.blas.setWorkspace(workspace.ptr, workspace.bytes);

    /** One device tensor filled from the source's parts, each [rows_i, cols], stacked along rows. */
    const stacked = (parts: { name: string; rows: number }[], cols: number): DeviceBuffer => {
      const rows = parts.reduce((s, p) => s + p.rows, 0);
      const buf = this.own(rows * cols * 2);
      let offset = 0;
      for (const p of parts) {
        source.write(p.name, [p.rows, cols], buf.ptr + BigInt(offset * 2));
        offset += p.rows * cols;
      }
      return buf;
    };
    const vector = (name: string, n: number): DeviceBuffer => {
      const buf = this.own(n * 2);
      source.write(name, [n], buf.ptr);
      return buf;
    };

    this.embedding = stacked([{ name: EMBED_TOKENS, rows: c.vocabSize }], hidden);
    this.lmHead = c.tieWordEmbeddings && !source.has(LM_HEAD) ? this.embedding : stacked([{ name: LM_HEAD, rows: c.vocabSize }], hidden);
    this.finalNorm = vector(FINAL_NORM, hidden);
    for (let l = 0; l < c.numLayers; l++) {
      const p = layerPrefix(l);
      const a = `${p}self_attn.`;
      const biasParts = [[`${a}q_proj.bias`, qDim], [`${a}k_proj.bias`, kvDim], [`${a}v_proj.bias`, kvDim]] as const;
      const hasBias = c.attentionBias || biasParts.some(([n]) => source.has(n));
      let qkvBias: DeviceBuffer | null = null;
      if (hasBias) {
        qkvBias = this.own(qkvDim * 2);
        let off = 0;
        for (const [name, n] of biasParts) {
          if (source.has(name) || c.attentionBias) source.write(name, [n], qkvBias.ptr + BigInt(off * 2));
          else this.rt.cuda.fill16Async(qkvBias.ptr + BigInt(off * 2), 0, n, rt.stream);
          off += n;
        }
      }
      this.layers.push({
        inputNorm: vector(`${p}input_layernorm.weight`, hidden),
        qkv: stacked([{ name: `${a}q_proj.weight`, rows: qDim }, { name: `${a}k_proj.weight`, rows: kvDim }, { name: `${a}v_proj.weight`, rows: kvDim }], hidden),
        qkvBias,
        o: stacked([{ name: `${a}o_proj.weight`, rows: hidden }], qDim),
        qNorm: c.qkNorm ? vector(`${a}q_norm.weight`, D) : null,
        kNorm: c.qkNorm ? vector(`${a}k_norm.weight`, D) : null,
        postAttnNorm: c.sandwichNorms ? vector(`${p}post_attention_layernorm.weight`, hidden) : null,
        preMlpNorm: vector(c.sandwichNorms ? `${p}pre_feedforward_layernorm.weight` : `${p}post_attention_layernorm.weight`, hidden),
        postMlpNorm: c.sandwichNorms ? vector(`${p}post_feedforward_layernorm.weight`, hidden) : null,
        gateUp: stacked([{ name: `${p}mlp.gate_proj.weight`, rows: I }, { name: `${p}mlp.up_proj.weight`, rows: I }], hidden),
        down: stacked([{ name: `${p}mlp.down_proj.weight`, rows: hidden }], I),
      });
    }
    this.embedScale = roundToDtype(c.embeddingScale, c.torchDtype);
    this.normOffset = c.normPlusOne ? 1 : 0;
    this.invFreqGlobal = this.uploadF32(Float32Array.from(inverseFrequencies(c.rope, D)));
    this.invFreqLocal = this.uploadF32(Float32Array.from(inverseFrequencies(c.ropeLocal, D)));
    rt.synchronize();
  }

  private own(bytes: number): DeviceBuffer {
    const buf = this.rt.pool.acquire(Math.max(16, bytes));
    this.owned.push(buf);
    return buf;
  }

  private uploadF32(values: Float32Array): DeviceBuffer {
    const buf = this.own(values.byteLength);
    this.rt.cuda.upload(buf.ptr, values);
    return buf;
  }

  /** Bytes of weights held on the device. */
  get weightBytes(): number {
    return this.owned.reduce((s, b) => s + b.bytes, 0);
  }

  /** A fresh sequence whose caches hold up to `capacity` positions (prompt plus generated tokens). */
  newSequence(capacity: number): CudaSequence {
    if (!Number.isInteger(capacity) || capacity < 1) throw new Error(`sequence capacity must be a positive integer (got ${capacity})`);
    const c = this.config;
    return new CudaSequence(Array.from({ length: c.numLayers }, () => new DeviceLayerKvCache(this.rt, c.numKvHeads, c.headDim, capacity)), capacity);
  }

  /**
   * Runs `tokens` at positions seq.position, seq.position + 1, ... through every layer, appending to
   * the caches. Returns fp32 logits [rows, V] on the device for the requested rows (the caller
   * releases the buffer to rt.pool), or null for 'none'. Work is queued on rt.stream.
   */
  forward(seq: CudaSequence, tokens: ArrayLike<number>, logitRows: DeviceLogitRows): DeviceBuffer | null {
    const c = this.config;
    const T = tokens.length;
    if (T === 0) throw new Error('forward: no tokens');
    if (seq.position + T > seq.capacity) throw new Error(`forward: ${seq.position} + ${T} positions exceed the sequence capacity ${seq.capacity}`);
    const ids = new Int32Array(T);
    const positions = new Int32Array(T);
    for (let t = 0; t < T; t++) {
      const id = tokens[t];
      if (!Number.isInteger(id) || id < 0 || id >= c.vocabSize) throw new Error(`token id ${id} outside the vocabulary [0, ${c.vocabSize})`);
      ids[t] = id;
      positions[t] = seq.position + t;
    }
    const pool = this.rt.pool;
    const scratch: DeviceBuffer[] = [];
    const b = this.forwardBuffers(T, (bytes) => {
      const buf = pool.acquire(Math.max(16, bytes));
      scratch.push(buf);
      return buf;
    });
    this.uploadOrdered(b.ids, ids);
    this.uploadOrdered(b.positions, positions);
    const queryStart = seq.position;
    const qkvDim = (c.numHeads + 2 * c.numKvHeads) * c.headDim;
    this.encodeLayers(b, T, {
      append: (l, k, v) => seq.caches[l].appendTokens({ k, v, rowStride: qkvDim }, T),
      attend: (l, sliding, qkv, out) =>
        this.attention.attend({ layer: l, sliding, q: qkv, qRowStride: qkvDim, numQueries: T, queryStart, cache: seq.caches[l], out }),
    });
    seq.position += T;

    let logits: DeviceBuffer | null = null;
    if (logitRows !== 'none') {
      const rows = logitRows === 'all' ? T : 1;
      logits = pool.acquire(rows * c.vocabSize * 4);
      this.encodeLogits(b, T - rows, rows, logits.ptr);
    }
    // Stream order makes the reuse safe: later work on this stream runs after this forward's kernels.
    for (const buf of scratch) pool.release(buf);
    return logits;
  }

  /** The activation buffers of a T-token forward, each from `take` (pool scratch, or a graph's own). */
  private forwardBuffers(T: number, take: (bytes: number) => DeviceBuffer): ForwardBuffers {
    const c = this.config;
    const qDim = c.numHeads * c.headDim, qkvDim = qDim + 2 * c.numKvHeads * c.headDim;
    const hidden = c.hiddenSize, I = c.intermediateSize;
    return {
      ids: take(T * 4).ptr, positions: take(T * 4).ptr, x: take(T * hidden * 2).ptr, h: take(T * hidden * 2).ptr,
      qkv: take(T * qkvDim * 2).ptr, attn: take(T * qDim * 2).ptr, proj: take(T * hidden * 2).ptr,
      gateUp: take(T * 2 * I * 2).ptr, act: take(T * I * 2).ptr,
    };
  }

  /**
   * Queues the embedding and every layer for T tokens whose ids and positions are already in `b`
   * (device memory); K/V appends and attention go through `step` (host-driven or device-driven).
   */
  private encodeLayers(b: ForwardBuffers, T: number, step: LayerAttentionStep, keep: StepNodeFilter = KEEP_ALL): void {
    const c = this.config;
    const hidden = c.hiddenSize, H = c.numHeads, Hkv = c.numKvHeads, D = c.headDim, I = c.intermediateSize;
    const qDim = H * D, kvDim = Hkv * D, qkvDim = qDim + 2 * kvDim;
    const at = (ptr: DevicePtr, elements: number): DevicePtr => ptr + BigInt(elements * 2);
    const eps = c.rmsNormEps, off = this.normOffset;

    if (keep('embed')) this.ops.embed({ ids: b.ids, table: this.embedding.ptr, out: b.x, tokens: T, cols: hidden, scale: this.embedScale });
    // Folded: each one-token GEMV does the RMSNorm before it, and the residual add or the gated
    // activation after it (Gemma's sandwich norms keep the separate kernels).
    const fold = T === 1 && this.foldsIntoGemv;
    const fuse = this.fuseSmallNodes || fold;
    // Programmatic GEMVs: the kernel before each GEMV releases it at its start, so its first weight loads overlap.
    const pdl = T === 1 && this.gemvForOneToken && this.programmaticGemv;
    for (let l = 0; l < c.numLayers; l++) {
      const w = this.layers[l];
      const sliding = c.layerTypes[l] === 'sliding';
      if (fold) {
        if (keep('qkv_gemm')) {
          this.ops.gemvFused({ w: w.qkv.ptr, x: b.x, y: b.qkv, inFeatures: hidden, norm: { weight: w.inputNorm.ptr, eps, weightOffset: off }, out: { kind: 'plain', rows: qkvDim }, release: pdl, programmatic: pdl, deep: this.deepGemvLoads });
        }
      } else {
        // Fused: the previous layer's last residual add already left this layer's normed input in b.h.
        if (!(fuse && l > 0) && keep('norm')) this.ew.rmsNorm({ x: b.x, weight: w.inputNorm.ptr, out: b.h, rows: T, cols: hidden, eps, weightOffset: off, releaseDependents: pdl });
        if (keep('qkv_gemm')) this.linear({ x: b.h, w: w.qkv.ptr, y: b.qkv, tokens: T, inFeatures: hidden, outFeatures: qkvDim }, pdl);
      }
      const kPtr = at(b.qkv, qDim), vPtr = at(b.qkv, qDim + kvDim);
      const invFreq = (sliding ? this.invFreqLocal : this.invFreqGlobal).ptr;
      // The bias comes before the q/k norms, so the fused launch takes it only where there are none.
      const ropeAppend = fuse && step.ropeAppend && !(w.qkvBias && w.qNorm) ? step.ropeAppend : null;
      if (w.qkvBias && !ropeAppend && keep('qkv_bias')) this.ops.biasAdd({ y: b.qkv, bias: w.qkvBias.ptr, rows: T, cols: qkvDim });
      if (w.qNorm && w.kNorm && keep('head_norm')) {
        this.ops.rmsNormHeads({ x: b.qkv, weight: w.qNorm.ptr, tokens: T, heads: H, headDim: D, rowStride: qkvDim, eps, weightOffset: off });
        this.ops.rmsNormHeads({ x: kPtr, weight: w.kNorm.ptr, tokens: T, heads: Hkv, headDim: D, rowStride: qkvDim, eps, weightOffset: off });
      }
      if (ropeAppend) {
        if (keep('rope_append')) ropeAppend(l, b.qkv, w.qkvBias?.ptr ?? null, invFreq);
      } else {
        if (keep('rope')) {
          this.ops.ropeHeads({ x: b.qkv, positions: b.positions, invFreq, tokens: T, heads: H, headDim: D, rowStride: qkvDim });
          this.ops.ropeHeads({ x: kPtr, positions: b.positions, invFreq, tokens: T, heads: Hkv, headDim: D, rowStride: qkvDim });
        }
        if (keep('kv_append')) step.append(l, kPtr, vPtr);
      }
      if (keep('attention')) step.attend(l, sliding, b.qkv, b.attn);

      if (fold) {
        // After attention, whose kernels do not release it early: a programmatic launch starts as they exit.
        if (keep('o_gemm')) this.ops.gemvFused({ w: w.o.ptr, x: b.attn, y: b.x, inFeatures: qDim, out: { kind: 'residual', rows: hidden }, release: pdl, programmatic: pdl, deep: this.deepGemvLoads });
        if (keep('gate_up_gemm')) {
          this.ops.gemvFused({
            w: w.gateUp.ptr, x: b.x, y: b.act, inFeatures: hidden, norm: { weight: w.preMlpNorm.ptr, eps, weightOffset: off },
            out: { kind: 'gated', inner: I, activation: c.mlpActivation }, release: pdl, programmatic: pdl, deep: this.deepGemvLoads,
          });
        }
        if (keep('down_gemm')) this.ops.gemvFused({ w: w.down.ptr, x: b.act, y: b.x, inFeatures: I, out: { kind: 'residual', rows: hidden }, release: pdl, programmatic: pdl, deep: this.deepGemvLoads });
        continue;
      }
      // After attention, whose kernels do not release it early: it starts as they exit.
      if (keep('o_gemm')) this.linear({ x: b.attn, w: w.o.ptr, y: b.proj, tokens: T, inFeatures: qDim, outFeatures: hidden }, pdl);
      if (w.postAttnNorm && keep('norm')) this.ew.rmsNorm({ x: b.proj, weight: w.postAttnNorm.ptr, out: b.proj, rows: T, cols: hidden, eps, weightOffset: off });
      if (fuse) {
        if (keep('add_norm')) this.ew.addRmsNorm({ x: b.x, residual: b.proj, weight: w.preMlpNorm.ptr, out: b.h, rows: T, cols: hidden, eps, weightOffset: off, releaseDependents: pdl });
      } else {
        if (keep('residual_add')) this.ew.add({ a: b.x, b: b.proj, out: b.x, n: T * hidden });
        if (keep('norm')) this.ew.rmsNorm({ x: b.x, weight: w.preMlpNorm.ptr, out: b.h, rows: T, cols: hidden, eps, weightOffset: off, releaseDependents: pdl });
      }
      if (keep('gate_up_gemm')) this.linear({ x: b.h, w: w.gateUp.ptr, y: b.gateUp, tokens: T, inFeatures: hidden, outFeatures: 2 * I }, pdl);
      if (keep('gated_act')) this.ops.gatedActivation({ gateUp: b.gateUp, out: b.act, rows: T, inner: I, activation: c.mlpActivation, releaseDependents: pdl });
      if (keep('down_gemm')) this.linear({ x: b.act, w: w.down.ptr, y: b.proj, tokens: T, inFeatures: I, outFeatures: hidden }, pdl);
      if (w.postMlpNorm && keep('norm')) this.ew.rmsNorm({ x: b.proj, weight: w.postMlpNorm.ptr, out: b.proj, rows: T, cols: hidden, eps, weightOffset: off });
      const nextNorm = fuse && l + 1 < c.numLayers ? this.layers[l + 1].inputNorm.ptr : null;
      if (nextNorm !== null) {
        if (keep('add_norm')) this.ew.addRmsNorm({ x: b.x, residual: b.proj, weight: nextNorm, out: b.h, rows: T, cols: hidden, eps, weightOffset: off, releaseDependents: pdl });
      } else if (keep('residual_add')) {
        this.ew.add({ a: b.x, b: b.proj, out: b.x, n: T * hidden });
      }
    }
  }

  /** Whether one-token forwards take the folded GEMVs (foldIntoGemv): widths in whole 16-byte chunks, no sandwich norms. */
  private get foldsIntoGemv(): boolean {
    const c = this.config;
    return this.gemvForOneToken && this.foldIntoGemv && !c.sandwichNorms &&
      [c.hiddenSize, c.intermediateSize, c.numHeads * c.headDim].every((n) => n % 8 === 0);
  }

  /**
   * A linear layer: one token through the model's own GEMV when gemvForOneToken is set (a programmatic
   * dependent of the kernel before it when `programmatic`), else cuBLAS.
   */
  private linear(a: LinearArgs, programmatic = false): void {
    // gemv_bf16 reads 16-byte chunks: other widths and alignments stay with cuBLAS.
    if (a.tokens === 1 && this.gemvForOneToken && a.inFeatures % 8 === 0 && a.x % 16n === 0n && a.w % 16n === 0n) {
      this.ops.gemv({ x: a.x, w: a.w, y: a.y, inFeatures: a.inFeatures, outFeatures: a.outFeatures, outFloat32: a.outFloat32, programmatic, deep: this.deepGemvLoads });
    } else {
      this.blas.linear(a);
    }
  }

  /** Final norm, LM head (fp32) and soft-capping of rows [first, first + rows) into logits [rows, V]. */
  private encodeLogits(b: ForwardBuffers, first: number, rows: number, logits: DevicePtr, keep: StepNodeFilter = KEEP_ALL): void {
    const c = this.config, hidden = c.hiddenSize;
    const pdl = rows === 1 && this.gemvForOneToken && this.programmaticGemv;
    if (rows === 1 && this.foldsIntoGemv && (first * hidden) % 8 === 0) {
      if (keep('lm_head')) {
        this.ops.gemvFused({
          w: this.lmHead.ptr, x: b.x + BigInt(first * hidden * 2), y: logits, inFeatures: hidden, norm: { weight: this.finalNorm.ptr, eps: c.rmsNormEps, weightOffset: this.normOffset },
          out: { kind: 'plain', rows: c.vocabSize, outFloat32: true }, release: pdl, programmatic: pdl, deep: this.deepGemvLoads,
        });
      }
    } else {
      if (keep('norm')) this.ew.rmsNorm({ x: b.x + BigInt(first * hidden * 2), weight: this.finalNorm.ptr, out: b.h, rows, cols: hidden, eps: c.rmsNormEps, weightOffset: this.normOffset, releaseDependents: pdl });
      if (keep('lm_head')) this.linear({ x: b.h, w: this.lmHead.ptr, y: logits, tokens: rows, inFeatures: hidden, outFeatures: c.vocabSize, outFloat32: true }, pdl);
    }
    if (c.finalLogitSoftcap !== null && keep('softcap')) this.ops.softcap({ x: logits, n: rows * c.vocabSize, cap: c.finalLogitSoftcap });
  }

  /**
   * Why decode steps of this model cannot be captured in a graph, or null when they can: with dense
   * decode, or a sparse decode method that records its steps (SnapKV, Ada-SnapKV, sink+local).
   */
  get decodeGraphUnsupported(): string | null {
    const capturable = (this.attention.denseDecodeSteps?.() ?? null) !== null || (this.attention.methodDecodeSteps?.() ?? null) !== null;
    return decodeGraphUnsupported(this.config, capturable);
  }

  /** Set false to force the launch-per-kernel decode path (benchmarks compare the two). */
  useDecodeGraph = true;
  /**
   * Opt-in (until measured, docs/perf.md): fewer, fused small kernels, the same bits: each residual add
   * with the RMSNorm after it (add_rmsnorm; every forward), and in a captured decode step the q|k|v bias,
   * RoPE and K/V append in one launch (rope_append_at). Applies to forwards queued after a change and to
   * decode graphs captured after it (a sequence's graph is kept: seq.dropDecodeGraph() to recapture).
   */
  fuseSmallNodes = false;
  /**
   * Forwards of one token (decode steps) run their linear layers through model-ops.cu's gemv_bf16
   * instead of cuBLAS (same math, fp32 sums in another order). On by default since session 10 (rule R2
   * in docs/perf.md: the decode step 8.5-8.9% faster at the Llama-3.1-8B / Qwen2.5-7B shapes, every
   * GEMM shape faster than cuBLAS at T = 1); false gives cuBLAS back. Applies to forwards queued and
   * graphs captured after a change.
   */
  gemvForOneToken = true;
  /** Opt-in, with gemvForOneToken: the GEMVs keep twice the weight loads in flight (gemv_bf16_deep, gemv_fused_bf16_deep; same bits). */
  deepGemvLoads = false;
  /**
   * Opt-in, with gemvForOneToken: each one-token GEMV is a programmatic dependent launch of the kernel
   * before it, which releases it at its own start (the RMSNorms and the gated activation), so the GEMV's
   * first weight loads stream while that kernel runs; it waits for it before reading its input.
   */
  programmaticGemv = false;
  /**
   * With gemvForOneToken: one-token forwards fold the RMSNorms into the GEMV after them and the
   * residual adds and the gated activation into the GEMV before them (model-ops.cu gemv_fused_bf16),
   * and a captured step's bias + RoPE + append into one launch: per layer the qkv, o, gate|up and down
   * GEMVs, that launch and attention. The same bits as gemvForOneToken alone. Not with Gemma's sandwich
   * norms (those keep the separate kernels). Opt-in: round 2 of session 10 measured the decode step
   * -3.0% / -2.0% at the Llama-3.1-8B / Qwen2.5-7B shapes against the bracketing gemv default, but with
   * it on, the whole GPU suite found a captured SnapKV step on a q|k|v-bias (qwen2) model leaving the
   * next step's logits 4.5e-3 (rel L2) away from eager decoding, where every other method and model
   * stayed bit-exact; the graph-only part it turns on is the fused bias + RoPE + append launch. Off
   * until that is found (docs/perf.md, session 10).
   */
  foldIntoGemv = false;
  /** Why the last graph capture failed (the model then decodes without graphs), or null. */
  decodeGraphFailure: string | null = null;
  private graphDecode: DecodeAttentionKernel | null = null;

  /**
   * One greedy decode step: feeds `token` at seq.position and returns the argmax of the next-token
   * logits. With dense attention, or a sparse decode method that records its steps (and head dims the
   * split-K kernel serves), the step replays a CUDA graph captured once per sequence, whose kernels
   * read the position from device memory (every decode method of the GPU registry records its steps);
   * otherwise (small head dims, a method without graph steps), or while the method cannot be captured
   * yet (an undeclared prompt's first step, Quest's first step that folds the prompt into its page
   * bounds, a sink still growing), it is forward + argmax.
   */
  decodeGreedy(seq: CudaSequence, token: number): number {
    if (this.useDecodeGraph && this.decodeGraphFailure === null && this.decodeGraphUnsupported === null) {
      if (!Number.isInteger(token) || token < 0 || token >= this.config.vocabSize) throw new Error(`token id ${token} outside the vocabulary [0, ${this.config.vocabSize})`);
      if (seq.position + 1 > seq.capacity) throw new Error(`decode: position ${seq.position} is past the sequence capacity ${seq.capacity}`);
      // A method graph recorded in an earlier sequence of the attention reads state that is gone.
      if (seq.decodeGraphSteps && !seq.decodeGraphSteps.isCurrent()) seq.dropDecodeGraph();
      try {
        seq.decodeGraph ??= this.captureDecodeStep(seq);
      } catch (err) {
        // Launch-per-kernel decoding stays correct; the reason is kept for logs and benchmarks.
        this.decodeGraphFailure = (err as Error).message;
      }
      if (seq.decodeGraph) {
        const next = seq.decodeGraph.step(token, seq.position);
        if (seq.decodeGraphSteps) seq.decodeGraphSteps.book(seq.position);
        else this.attention.denseDecodeSteps?.()?.(seq.position);
        seq.position += 1;
        for (const cache of seq.caches) cache.length += 1;
        return next;
      }
    }
    const logits = this.forward(seq, [token], 'last')!;
    const next = this.argmaxRows(logits)[0];
    this.rt.pool.release(logits);
    return next;
  }

  /**
   * Captures one decode step of `seq` (T = 1): embedding of the id in the graph's id slot, every layer
   * with RoPE, the K/V append and attention at the position in its position slot (split-K dense, or
   * in full-attention layers the decode method's recorded step), logits, the argmax written back into
   * the id slot, and the position advanced, so consecutive replays need no host writes. Buffers and
   * the split plans (sized for the sequence's capacity) belong to the graph. null: the decode method
   * cannot be captured from this position (the step runs launch by launch).
   */
  private captureDecodeStep(seq: CudaSequence, keep: StepNodeFilter = KEEP_ALL): DecodeGraph | null {
    const c = this.config;
    const shape = { numHeads: c.numHeads, numKvHeads: c.numKvHeads, headDim: c.headDim };
    this.graphDecode ??= new DecodeAttentionKernel(this.rt, shape);
    const decode = this.graphDecode;
    const window = c.slidingWindow;
    const splitsFull = decode.planForCapacity(seq.capacity);
    const splitsLocal = window !== null ? decode.planForCapacity(seq.capacity, window) : splitsFull;
    const methodSource = (this.attention.denseDecodeSteps?.() ?? null) === null ? (this.attention.methodDecodeSteps?.() ?? null) : null;
    const graph = new DecodeGraph(this.rt, c.vocabSize);
    try {
      // The method's full-layer steps, prepared (compiled, planned, uploaded) before the capture begins.
      const methodSteps = methodSource?.prepare({ firstPosition: seq.position, capacity: seq.capacity, own: (bytes) => graph.own(bytes).ptr }) ?? null;
      if (methodSource && !methodSteps) {
        graph.dispose();
        return null;
      }
      const b = this.forwardBuffers(1, (bytes) => graph.own(bytes));
      const workspace = graph.own(decodeWorkspaceBytes(shape, Math.max(splitsFull, splitsLocal)));
      const logits = graph.own(c.vocabSize * 4);
      graph.capture(b.ids, b.positions, () => {
        this.encodeLayers(b, 1, {
          append: (l, k, v) => graph.appendAt(seq.caches[l], k, v, b.positions),
          ropeAppend: (l, qkv, bias, invFreq) => {
            const cache = seq.caches[l];
            this.ops.ropeAppendAt({
              qkv, bias, invFreq, kCache: cache.keys.ptr, vCache: cache.values.ptr, position: b.positions,
              heads: c.numHeads, kvHeads: c.numKvHeads, headDim: c.headDim, capacity: cache.capacity,
            });
          },
          // One token: query head h sits at qkv + 2·h·D, as the decode kernel reads it.
          attend: (l, sliding, qkv, out) => {
            const cache = seq.caches[l];
            if (methodSteps && !sliding) {
              methodSteps.record({ layer: l, q: qkv, position: b.positions, cache, out });
              return;
            }
            decode.runDeviceLength({
              q: qkv, k: cache.keys.ptr, v: cache.values.ptr, out, lengthFrom: b.positions, lengthOffset: 1, kvStride: cache.capacity,
              scale: c.attentionScale, slidingWindow: sliding ? window : null, splits: sliding ? splitsLocal : splitsFull,
              workspace: workspace.ptr,
            });
          },
        }, keep);
        this.encodeLogits(b, 0, 1, logits.ptr, keep);
        if (keep('argmax')) this.ew.argmaxRows({ logits: logits.ptr, out: b.ids, rows: 1, vocab: c.vocabSize });
        if (keep('advance_position')) this.ops.advancePosition(b.positions);
      });
      if (keep === KEEP_ALL) seq.decodeGraphSteps = methodSteps;
      return graph;
    } catch (err) {
      graph.dispose();
      throw err;
    }
  }

  /**
   * Benchmarks: one decode step of `seq` captured with only the nodes `keep` accepts (every layer's),
   * over buffers of its own; the sequence keeps its own graph and position. The caller replays it
   * (step() once to fill the slots, then replayAsync() under events) and disposes it. Without
   * 'advance_position' every replay runs at the same position; a kept kv_append rewrites that row.
   */
  captureDecodeStepSubset(seq: CudaSequence, keep: StepNodeFilter): DecodeGraph {
    if (this.decodeGraphUnsupported !== null) throw new Error(`decode step subset: ${this.decodeGraphUnsupported}`);
    // A method's prepare() would re-plan its state for the subset; only the dense step is taken apart.
    if ((this.attention.denseDecodeSteps?.() ?? null) === null) throw new Error('decode step subset: dense attention only');
    return this.captureDecodeStep(seq, keep)!;
  }

  /**
   * Host → device copy that cannot race queued work: the pool may hand out a block that kernels still
   * in the stream read, and the synchronous copy runs outside that (non-blocking) stream. (That the
   * copy has landed before later kernels read it is upload's own guarantee.)
   */
  private uploadOrdered(dst: DevicePtr, data: Int32Array): void {
    this.rt.synchronize();
    this.rt.cuda.upload(dst, data);
  }

  /** Prefill `prompt` into a fresh sequence in chunks; returns the last token's fp32 logits [V] on the device. */
  prefill(seq: CudaSequence, prompt: ArrayLike<number>, chunkSize: number): DeviceBuffer {
    if (prompt.length === 0) throw new Error('prefill: the prompt is empty');
    if (seq.position !== 0) throw new Error('prefill: the sequence already holds a prompt');
    if (!Number.isInteger(chunkSize) || chunkSize < 1) throw new Error(`prefill: chunk size must be a positive integer, got ${chunkSize}`);
    let logits: DeviceBuffer | null = null;
    for (let start = 0; start < prompt.length; start += chunkSize) {
      const end = Math.min(prompt.length, start + chunkSize);
      logits = this.forward(seq, Array.prototype.slice.call(prompt, start, end) as number[], end === prompt.length ? 'last' : 'none');
    }
    return logits as DeviceBuffer;
  }

  /** Greedy pick of each row of device logits [rows, V] (argmax on the device; waits for the stream). */
  argmaxRows(logits: DeviceBuffer, rows = 1): Int32Array {
    const out = this.rt.pool.acquire(Math.max(16, rows * 4));
    this.ew.argmaxRows({ logits: logits.ptr, out: out.ptr, rows, vocab: this.config.vocabSize });
    this.rt.synchronize();
    const ids = new Int32Array(rows);
    this.rt.cuda.download(ids, out.ptr);
    this.rt.pool.release(out);
    return ids;
  }

  /** Logits [n, V] of every position of `inputIds` from one forward over a fresh sequence (tests). */
  logits(inputIds: ArrayLike<number>, chunkSize = inputIds.length): Float32Array {
    const n = inputIds.length, V = this.config.vocabSize;
    const seq = this.newSequence(n);
    const out = new Float32Array(n * V);
    try {
      for (let start = 0; start < n; start += chunkSize) {
        const end = Math.min(n, start + chunkSize);
        const buf = this.forward(seq, Array.prototype.slice.call(inputIds, start, end) as number[], 'all') as DeviceBuffer;
        this.rt.synchronize();
        this.rt.cuda.download(out.subarray(start * V, end * V), buf.ptr);
        this.rt.pool.release(buf);
      }
    } finally {
      this.rt.synchronize();
      seq.release();
    }
    return out;
  }

  /** Frees the weights and the cuBLAS handle (the runtime stays). */
  dispose(): void {
    this.rt.synchronize();
    for (const b of this.owned.splice(0)) this.rt.pool.release(b);
    this.blas.dispose();
  }
}

/** What this backend cannot run yet, as one clear error. */
function checkRunnable(c: ModelConfig): void {
  const problems: string[] = [];
  if (c.numHeads % c.numKvHeads !== 0) problems.push(`num heads ${c.numHeads} not a multiple of KV heads ${c.numKvHeads}`);
  if (c.layerTypes.length !== c.numLayers) problems.push(`${c.layerTypes.length} layer types for ${c.numLayers} layers`);
  if (c.layerTypes.includes('sliding') && !(c.slidingWindow !== null && c.slidingWindow > 0)) problems.push('sliding layers without a positive sliding window');
  if (c.headDim % 8 !== 0) problems.push(`head dim ${c.headDim} is not a multiple of 8 (16-byte KV rows)`);
  if (c.attnLogitSoftcap !== null) problems.push('attention logit soft-capping is not implemented on the GPU');
  if (problems.length) throw new Error(`the CUDA backend cannot run this model: ${problems.join('; ')}`);
}
