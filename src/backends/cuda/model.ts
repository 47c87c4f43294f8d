/**
 * The whole decoder-only transformer on the GPU: the same network as src/engine/model.ts (llama,
 * qwen2, qwen3, mistral, gemma3 text; HF semantics, see that file's header), with weights held once on
 * the device as bf16, GEMMs through cuBLAS (bf16 in, fp32 accumulate) and every other step a kernel.
 * Semantics shared with the CPU model come from the same places: ModelConfig (config.ts), RoPE
 * inverse frequencies with their scaling (rope.ts), HF tensor names (weight-layout.ts), the embedding
 * scale rounded to the checkpoint dtype (roundToDtype).
 *
 * Activations are row-major bf16 [T, width] for the T tokens of one forward call of one sequence.
 * Attention of every layer goes through one DeviceAttention (device-attention.ts): the dense kernels
 * today, the place where sparse methods plug in later (issue 9).
 */
import type { ModelConfig } from '../../engine/model-config.js';
import { inverseFrequencies } from '../../engine/rope.js';
import { EMBED_TOKENS, FINAL_NORM, LM_HEAD, layerPrefix } from '../../engine/weight-layout.js';
import { roundToDtype } from '../cpu/ops.js';
import { Cublas } from './cublas.js';
import type { DevicePtr } from './context.js';
import { DenseDeviceAttention, type DeviceAttention } from './device-attention.js';
import { ElementwiseKernels } from './kernels/elementwise.js';
import { ModelOpsKernels } from './kernels/model-ops.js';
import { DeviceLayerKvCache } from './kv-cache.js';
import type { DeviceBuffer } from './memory-pool.js';
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
  constructor(readonly caches: DeviceLayerKvCache[], readonly capacity: number) {}

  release(): void {
    for (const c of this.caches) c.release();
  }
}

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
    const hidden = c.hiddenSize, H = c.numHeads, Hkv = c.numKvHeads, D = c.headDim, I = c.intermediateSize;
    const qDim = H * D, kvDim = Hkv * D, qkvDim = qDim + 2 * kvDim;
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
    const take = (bytes: number): DeviceBuffer => {
      const b = pool.acquire(Math.max(16, bytes));
      scratch.push(b);
      return b;
    };
    const idsBuf = take(T * 4), posBuf = take(T * 4);
    this.uploadOrdered(idsBuf.ptr, ids);
    this.uploadOrdered(posBuf.ptr, positions);
    const x = take(T * hidden * 2), h = take(T * hidden * 2), qkv = take(T * qkvDim * 2);
    const attn = take(T * qDim * 2), proj = take(T * hidden * 2);
    const gateUp = take(T * 2 * I * 2), act = take(T * I * 2);
    const at = (buf: DeviceBuffer, elements: number): DevicePtr => buf.ptr + BigInt(elements * 2);
    const eps = c.rmsNormEps, off = this.normOffset;

    this.ops.embed({ ids: idsBuf.ptr, table: this.embedding.ptr, out: x.ptr, tokens: T, cols: hidden, scale: this.embedScale });
    for (let l = 0; l < c.numLayers; l++) {
      const w = this.layers[l];
      const sliding = c.layerTypes[l] === 'sliding';
      this.ew.rmsNorm({ x: x.ptr, weight: w.inputNorm.ptr, out: h.ptr, rows: T, cols: hidden, eps, weightOffset: off });
      this.blas.linear({ x: h.ptr, w: w.qkv.ptr, y: qkv.ptr, tokens: T, inFeatures: hidden, outFeatures: qkvDim });
      if (w.qkvBias) this.ops.biasAdd({ y: qkv.ptr, bias: w.qkvBias.ptr, rows: T, cols: qkvDim });
      const kPtr = at(qkv, qDim), vPtr = at(qkv, qDim + kvDim);
      if (w.qNorm && w.kNorm) {
        this.ops.rmsNormHeads({ x: qkv.ptr, weight: w.qNorm.ptr, tokens: T, heads: H, headDim: D, rowStride: qkvDim, eps, weightOffset: off });
        this.ops.rmsNormHeads({ x: kPtr, weight: w.kNorm.ptr, tokens: T, heads: Hkv, headDim: D, rowStride: qkvDim, eps, weightOffset: off });
      }
      const invFreq = (sliding ? this.invFreqLocal : this.invFreqGlobal).ptr;
      this.ops.ropeHeads({ x: qkv.ptr, positions: posBuf.ptr, invFreq, tokens: T, heads: H, headDim: D, rowStride: qkvDim });
      this.ops.ropeHeads({ x: kPtr, positions: posBuf.ptr, invFreq, tokens: T, heads: Hkv, headDim: D, rowStride: qkvDim });
      const cache = seq.caches[l];
      cache.appendTokens({ k: kPtr, v: vPtr, rowStride: qkvDim }, T);
      this.attention.attend({ layer: l, sliding, q: qkv.ptr, qRowStride: qkvDim, numQueries: T, queryStart: seq.position, cache, out: attn.ptr });

      this.blas.linear({ x: attn.ptr, w: w.o.ptr, y: proj.ptr, tokens: T, inFeatures: qDim, outFeatures: hidden });
      if (w.postAttnNorm) this.ew.rmsNorm({ x: proj.ptr, weight: w.postAttnNorm.ptr, out: proj.ptr, rows: T, cols: hidden, eps, weightOffset: off });
      this.ew.add({ a: x.ptr, b: proj.ptr, out: x.ptr, n: T * hidden });

      this.ew.rmsNorm({ x: x.ptr, weight: w.preMlpNorm.ptr, out: h.ptr, rows: T, cols: hidden, eps, weightOffset: off });
      this.blas.linear({ x: h.ptr, w: w.gateUp.ptr, y: gateUp.ptr, tokens: T, inFeatures: hidden, outFeatures: 2 * I });
      this.ops.gatedActivation({ gateUp: gateUp.ptr, out: act.ptr, rows: T, inner: I, activation: c.mlpActivation });
      this.blas.linear({ x: act.ptr, w: w.down.ptr, y: proj.ptr, tokens: T, inFeatures: I, outFeatures: hidden });
      if (w.postMlpNorm) this.ew.rmsNorm({ x: proj.ptr, weight: w.postMlpNorm.ptr, out: proj.ptr, rows: T, cols: hidden, eps, weightOffset: off });
      this.ew.add({ a: x.ptr, b: proj.ptr, out: x.ptr, n: T * hidden });
    }
    seq.position += T;

    let logits: DeviceBuffer | null = null;
    if (logitRows !== 'none') {
      const rows = logitRows === 'all' ? T : 1;
      const first = T - rows;
      this.ew.rmsNorm({ x: at(x, first * hidden), weight: this.finalNorm.ptr, out: h.ptr, rows, cols: hidden, eps, weightOffset: off });
      logits = pool.acquire(rows * c.vocabSize * 4);
      this.blas.linear({ x: h.ptr, w: this.lmHead.ptr, y: logits.ptr, tokens: rows, inFeatures: hidden, outFeatures: c.vocabSize, outFloat32: true });
      if (c.finalLogitSoftcap !== null) this.ops.softcap({ x: logits.ptr, n: rows * c.vocabSize, cap: c.finalLogitSoftcap });
    }
    // Stream order makes the reuse safe: later work on this stream runs after this forward's kernels.
    for (const b of scratch) pool.release(b);
    return logits;
  }

  /**
   * Host → device copy that cannot race queued work: the pool may hand out a block that kernels still
   * in the stream read, and the synchronous copy runs outside that (non-blocking) stream.
   */
  private uploadOrdered(dst: DevicePtr, data: Int32Array): void {
    this.rt.synchronize();
    this.rt.cuda.upload(dst, data);
    this.rt.cuda.check(this.rt.cuda.api.cuCtxSynchronize(), 'cuCtxSynchronize');
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
