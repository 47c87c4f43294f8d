/**
 * The decoder-only transformer of every supported architecture (llama, qwen2, qwen3, mistral, gemma3
 * text) as one flat sequence of layer calls, with Hugging Face semantics:
 *
 *   x = embed(tokens) · embeddingScale            (Gemma: sqrt(hidden), rounded to the checkpoint dtype)
 *   per layer:
 *     h = norm_in(x); q,k,v = proj(h) (+bias: qwen2); qkNorm per head (qwen3, gemma3); RoPE(q, k)
 *     append k, v to the cache; a = attention(q, cache) via the AttentionPlan; o = o_proj(a)
 *     llama-style:  x += o;            x += mlp(norm_post_attn(x))
 *     gemma3:       x += norm_post_attn(o); x += norm_post_ff(mlp(norm_pre_ff(x)))
 *   logits = lm_head(norm(x)) (tied to the embedding when configured; optional tanh soft-capping)
 *
 * Attention goes only through the AttentionPlan (the model never knows which method runs). Layers of
 * type 'sliding' (Gemma 3's local layers, Mistral's window) always run the dense windowed path: the
 * sparse methods of the study act on full-attention layers only, since a sliding layer already reads
 * at most `slidingWindow` keys. Their counts are still recorded (attended = dense).
 *
 * Activations are row-major [N, width] over the N tokens of all sequences in the call, so the linear
 * layers of a batched decode step read each weight matrix once for the whole batch.
 */
import type { AttentionPlan, AttentionShape, DecodeAttention, PrefillAttention } from './attention.js';
import type { ModelConfig } from './model-config.js';
import type { WeightStore } from './weights.js';
import { RopeTable } from './rope.js';
import { SequenceState, addHeadCounts } from './forward-state.js';
import { DenseDecode, DensePrefill } from '../methods/dense.js';
import type { MatmulKernel, PreparedMatrix } from '../backends/cpu/matmul.js';
import { createMatmulKernel } from '../backends/cpu/kernels.js';
import {
  addInPlace, gatedActivation, geluTanh, rmsNormRows, roundToDtype, silu,
} from '../backends/cpu/ops.js';

interface LayerWeights {
  inputNorm: Float32Array;
  /** Fused [(H + 2·Hkv)·D, hidden]: q rows, then k rows, then v rows. */
  qkv: PreparedMatrix;
  o: PreparedMatrix;
  qNorm: Float32Array | null;
  kNorm: Float32Array | null;
  /** gemma3: applied to the attention output before the residual add. */
  postAttnNorm: Float32Array | null;
  /** The norm in front of the MLP (llama's post_attention_layernorm, gemma3's pre_feedforward_layernorm). */
  preMlpNorm: Float32Array;
  /** gemma3: applied to the MLP output before the residual add. */
  postMlpNorm: Float32Array | null;
  /** Fused [2·I, hidden]: gate rows then up rows. */
  gateUp: PreparedMatrix;
  down: PreparedMatrix;
}

export interface ModelOptions {
  /**
   * Matmul kernel for the linear layers (default: wasm SIMD where supported and the weights fit its
   * 4 GiB memory, else blocked JS).
   */
  kernel?: MatmulKernel;
}

/** One sequence's share of a forward call. */
export interface ForwardItem {
  state: SequenceState;
  /** Token ids to process, placed at positions state.position, state.position + 1, ... */
  tokens: ArrayLike<number>;
  /** Prefill only: this chunk ends the prompt. */
  isLastChunk?: boolean;
}

export type Phase = 'prefill' | 'decode';

/** Rows per MLP block inside one forward (bounds the [rows, 2·intermediate] buffer). */
const MLP_ROW_BLOCK = 512;
/** Which rows get logits: every token's, only each item's last token's, or none (inner prefill chunks). */
export type LogitRows = 'all' | 'last' | 'none';

export class TransformerModel {
  readonly config: ModelConfig;
  readonly kernel: MatmulKernel;
  private readonly layers: LayerWeights[];
  private readonly embedding: Float32Array; // [V, hidden]
  private readonly lmHead: PreparedMatrix; // [V, hidden]
  private readonly finalNorm: Float32Array;
  private readonly embedScale: number;
  private readonly ropeGlobal: RopeTable;
  private readonly ropeLocal: RopeTable;
  private readonly shapes: AttentionShape[];
  private readonly slidingPrefill = new DensePrefill();
  private readonly slidingDecode = new DenseDecode();

  constructor(config: ModelConfig, weights: WeightStore, options: ModelOptions = {}) {
    validateConfig(config);
    this.config = config;
    this.kernel = options.kernel ?? createMatmulKernel('auto', 4 * linearParameterCount(config));
    const c = config;
    const loader = new WeightLoader(weights);
    const hidden = c.hiddenSize;
    const D = c.headDim;
    this.embedding = loader.tensor('model.embed_tokens.weight', [c.vocabSize, hidden]);
    this.embedScale = roundToDtype(c.embeddingScale, c.torchDtype);
    this.finalNorm = this.normWeight(loader, 'model.norm.weight', hidden);
    const lmData = c.tieWordEmbeddings && !weights.has('lm_head.weight')
      ? this.embedding
      : loader.tensor('lm_head.weight', [c.vocabSize, hidden]);
    this.lmHead = this.kernel.prepare(lmData, c.vocabSize, hidden);

    this.layers = [];
    for (let l = 0; l < c.numLayers; l++) {
      const p = `model.layers.${l}`;
      const qRows = c.numHeads * D, kvRows = c.numKvHeads * D;
      const q = loader.linear(`${p}.self_attn.q_proj`, qRows, hidden, c.attentionBias);
      const k = loader.linear(`${p}.self_attn.k_proj`, kvRows, hidden, c.attentionBias);
      const v = loader.linear(`${p}.self_attn.v_proj`, kvRows, hidden, c.attentionBias);
      const o = loader.linear(`${p}.self_attn.o_proj`, hidden, qRows, false);
      const gate = loader.linear(`${p}.mlp.gate_proj`, c.intermediateSize, hidden, false);
      const up = loader.linear(`${p}.mlp.up_proj`, c.intermediateSize, hidden, false);
      const down = loader.linear(`${p}.mlp.down_proj`, hidden, c.intermediateSize, false);
      const qkvBias = q.bias || k.bias || v.bias
        ? concat([q.bias ?? new Float32Array(qRows), k.bias ?? new Float32Array(kvRows), v.bias ?? new Float32Array(kvRows)])
        : undefined;
      this.layers.push({
        inputNorm: this.normWeight(loader, `${p}.input_layernorm.weight`, hidden),
        qkv: this.kernel.prepare(concat([q.weight, k.weight, v.weight]), qRows + 2 * kvRows, hidden, qkvBias),
        o: this.kernel.prepare(o.weight, hidden, qRows, o.bias),
        qNorm: c.qkNorm ? this.normWeight(loader, `${p}.self_attn.q_norm.weight`, D) : null,
        kNorm: c.qkNorm ? this.normWeight(loader, `${p}.self_attn.k_norm.weight`, D) : null,
        postAttnNorm: c.sandwichNorms ? this.normWeight(loader, `${p}.post_attention_layernorm.weight`, hidden) : null,
        preMlpNorm: this.normWeight(
          loader, c.sandwichNorms ? `${p}.pre_feedforward_layernorm.weight` : `${p}.post_attention_layernorm.weight`, hidden,
        ),
        postMlpNorm: c.sandwichNorms ? this.normWeight(loader, `${p}.post_feedforward_layernorm.weight`, hidden) : null,
        gateUp: this.kernel.prepare(
          concat([gate.weight, up.weight]), 2 * c.intermediateSize, hidden,
          gate.bias || up.bias ? concat([gate.bias ?? new Float32Array(c.intermediateSize), up.bias ?? new Float32Array(c.intermediateSize)]) : undefined,
        ),
        down: this.kernel.prepare(down.weight, hidden, c.intermediateSize, down.bias),
      });
    }
    this.ropeGlobal = new RopeTable(c.rope, D);
    this.ropeLocal = new RopeTable(c.ropeLocal, D);
    this.shapes = c.layerTypes.map((t) => ({
      numHeads: c.numHeads,
      numKvHeads: c.numKvHeads,
      headDim: D,
      scale: c.attentionScale,
      slidingWindow: t === 'sliding' ? c.slidingWindow : null,
      logitSoftcap: c.attnLogitSoftcap,
    }));
  }

  /** Norm weights with Gemma's (1 + w) folded in, in float32 as transformers computes it. */
  private normWeight(loader: WeightLoader, name: string, width: number): Float32Array {
    const w = loader.tensor(name, [width]);
    return this.config.normPlusOne ? w.map((v) => Math.fround(1 + v)) : w;
  }

  isSlidingLayer(layer: number): boolean {
    return this.config.layerTypes[layer] === 'sliding';
  }

  attentionShape(layer: number): AttentionShape {
    return this.shapes[layer];
  }

  /** A fresh sequence (empty cache) ready for prefill under `plan`. */
  newSequence(plan: AttentionPlan): SequenceState {
    const c = this.config;
    const windowLayers = c.layerTypes.map((t) => t !== 'sliding');
    return new SequenceState(c.numLayers, c.numHeads, c.numKvHeads, c.headDim, windowLayers, plan.decode.observationWindow);
  }

  /**
   * Feed the prompt to a fresh sequence in chunks of `chunkSize` tokens (the whole prompt as one chunk
   * when the prefill method needs it), then run the decode method's afterPrefill hook.
   * Returns [V] logits of the last prompt token.
   */
  prefill(state: SequenceState, prompt: ArrayLike<number>, plan: AttentionPlan, chunkSize = 512): Float32Array {
    if (prompt.length === 0) throw new Error('prefill: the prompt is empty');
    if (state.prefillDone || state.position !== 0) throw new Error('prefill: the sequence already holds a prompt');
    if (!(chunkSize >= 1)) throw new Error(`prefill: chunk size must be ≥ 1, got ${chunkSize}`);
    const n = prompt.length;
    const step = plan.prefill.requiresWholePrompt ? n : Math.floor(chunkSize);
    let logits: Float32Array | null = null;
    for (let start = 0; start < n; start += step) {
      const end = Math.min(n, start + step);
      const tokens = Array.prototype.slice.call(prompt, start, end) as number[];
      const isLastChunk = end === n;
      const [out] = this.forward([{ state, tokens, isLastChunk }], plan, 'prefill', isLastChunk ? 'last' : 'none');
      if (isLastChunk) logits = out;
    }
    this.finishPrefill(state, plan);
    return logits as Float32Array;
  }

  /**
   * Run the decode method's afterPrefill hook on every full-attention layer (once) and mark the
   * prompt complete. `prefill` calls it; a sequence forked from a finished prefill
   * (SequenceState.fork) calls it with the decode method it continues under.
   */
  finishPrefill(state: SequenceState, plan: AttentionPlan): void {
    if (state.prefillDone) throw new Error('finishPrefill: the afterPrefill hooks already ran for this sequence');
    const hook = plan.decode.afterPrefill;
    if (hook) {
      for (let l = 0; l < this.config.numLayers; l++) {
        const win = state.windows[l];
        if (!win) continue;
        hook.call(plan.decode, {
          layer: l,
          shape: this.shapes[l],
          windowQueries: win.view(),
          windowLength: win.length,
          windowStart: win.start,
          cache: state.cache.layers[l],
        });
      }
    }
    state.prefillDone = true;
  }

  /**
   * One decode step for several sequences at once: each gets one token. Returns [V] logits per sequence.
   * The linear layers run on the stacked [B, hidden] activations, so weights are read once per step.
   */
  decodeStep(states: SequenceState[], tokens: number[], plan: AttentionPlan): Float32Array[] {
    if (states.length !== tokens.length) throw new Error(`decodeStep: ${states.length} sequences but ${tokens.length} tokens`);
    for (const s of states) if (!s.prefillDone) throw new Error('decodeStep: prefill the sequence first');
    return this.forward(states.map((state, i) => ({ state, tokens: [tokens[i]] })), plan, 'decode', 'last');
  }

  /**
   * Logits of every position of `inputIds` ([n, V] row-major) from one dense forward pass over a fresh
   * cache: the reference the golden tests compare with transformers.
   */
  logits(inputIds: ArrayLike<number>, plan: AttentionPlan): Float32Array {
    const state = this.newSequence(plan);
    const [out] = this.forward([{ state, tokens: inputIds, isLastChunk: true }], plan, 'prefill', 'all');
    return out;
  }

  /**
   * The forward pass over the tokens of several sequences. Returns, per item, logits [rows, V] for the
   * requested rows (an empty array for 'none').
   */
  forward(items: ForwardItem[], plan: AttentionPlan, phase: Phase, logitRows: LogitRows): Float32Array[] {
    const c = this.config;
    const hidden = c.hiddenSize, H = c.numHeads, Hkv = c.numKvHeads, D = c.headDim, inter = c.intermediateSize;
    const qDim = H * D, kvDim = Hkv * D, qkvDim = qDim + 2 * kvDim;
    const rowStart: number[] = [];
    const positions: number[] = [];
    for (const it of items) {
      if (phase === 'decode' && it.tokens.length !== 1) throw new Error('decode: one token per sequence per step');
      rowStart.push(positions.length);
      for (let t = 0; t < it.tokens.length; t++) positions.push(it.state.position + t);
    }
    const N = positions.length;
    if (N === 0) throw new Error('forward: no tokens');

    const x = new Float32Array(N * hidden); // [N, hidden] residual stream
    let r = 0;
    for (const it of items) {
      for (let t = 0; t < it.tokens.length; t++, r++) {
        const id = it.tokens[t];
        if (!Number.isInteger(id) || id < 0 || id >= c.vocabSize) throw new Error(`token id ${id} outside the vocabulary [0, ${c.vocabSize})`);
        const src = id * hidden;
        for (let i = 0; i < hidden; i++) x[r * hidden + i] = this.embedding[src + i] * this.embedScale;
      }
    }

    const h = new Float32Array(N * hidden);
    const qkv = new Float32Array(N * qkvDim);
    const q = new Float32Array(N * qDim); // [N, H, D]
    const k = new Float32Array(N * kvDim); // [N, Hkv, D]
    const v = new Float32Array(N * kvDim);
    const attn = new Float32Array(N * qDim); // [N, H, D]
    const proj = new Float32Array(N * hidden);
    // The MLP runs in row blocks so a whole-prompt forward (methods that need the whole prompt in one
    // chunk) does not hold [N, 2·intermediate] activations at once.
    const mlpRows = Math.min(N, MLP_ROW_BLOCK);
    const gateUp = new Float32Array(mlpRows * 2 * inter);
    const act = new Float32Array(mlpRows * inter);
    const activation = c.mlpActivation === 'gelu_tanh' ? geluTanh : silu;

    for (let l = 0; l < c.numLayers; l++) {
      const w = this.layers[l];
      const sliding = this.isSlidingLayer(l);
      rmsNormRows(x, N, hidden, w.inputNorm, c.rmsNormEps, h);
      this.kernel.matmul(h, N, w.qkv, qkv);
      for (let t = 0; t < N; t++) {
        const src = t * qkvDim;
        q.set(qkv.subarray(src, src + qDim), t * qDim);
        k.set(qkv.subarray(src + qDim, src + qDim + kvDim), t * kvDim);
        v.set(qkv.subarray(src + qDim + kvDim, src + qkvDim), t * kvDim);
      }
      if (w.qNorm && w.kNorm) {
        rmsNormRows(q, N * H, D, w.qNorm, c.rmsNormEps, q);
        rmsNormRows(k, N * Hkv, D, w.kNorm, c.rmsNormEps, k);
      }
      const rope = sliding ? this.ropeLocal : this.ropeGlobal;
      rope.apply(q, N, H, positions);
      rope.apply(k, N, Hkv, positions);

      for (let i = 0; i < items.length; i++) {
        this.attend(items[i], l, rowStart[i], plan, phase, sliding, q, k, v, attn);
      }

      this.kernel.matmul(attn, N, w.o, proj);
      if (w.postAttnNorm) rmsNormRows(proj, N, hidden, w.postAttnNorm, c.rmsNormEps, proj);
      addInPlace(x, proj, N * hidden);

      rmsNormRows(x, N, hidden, w.preMlpNorm, c.rmsNormEps, h);
      for (let r0 = 0; r0 < N; r0 += mlpRows) {
        const rows = Math.min(mlpRows, N - r0);
        this.kernel.matmul(h.subarray(r0 * hidden, (r0 + rows) * hidden), rows, w.gateUp, gateUp);
        gatedActivation(gateUp, rows, inter, activation, act);
        this.kernel.matmul(act, rows, w.down, proj.subarray(r0 * hidden, (r0 + rows) * hidden));
      }
      if (w.postMlpNorm) rmsNormRows(proj, N, hidden, w.postMlpNorm, c.rmsNormEps, proj);
      addInPlace(x, proj, N * hidden);
    }

    for (const it of items) it.state.cache.nextPosition += it.tokens.length;
    return items.map((it, i) => this.logitsOf(x, rowStart[i], it.tokens.length, logitRows));
  }

  /** Attention of one item's rows in layer l through the plan (or the dense windowed path). */
  private attend(
    item: ForwardItem, l: number, row0: number, plan: AttentionPlan, phase: Phase, sliding: boolean,
    q: Float32Array, k: Float32Array, v: Float32Array, attn: Float32Array,
  ): void {
    const c = this.config;
    const H = c.numHeads, kvRow = c.numKvHeads * c.headDim, qRow = H * c.headDim;
    const T = item.tokens.length;
    const { state } = item;
    const start = state.position;
    const cache = state.cache.layers[l];
    cache.append(k.subarray(row0 * kvRow, (row0 + T) * kvRow), v.subarray(row0 * kvRow, (row0 + T) * kvRow), T, start);
    const queries = q.subarray(row0 * qRow, (row0 + T) * qRow);
    const out = attn.subarray(row0 * qRow, (row0 + T) * qRow);
    const shape = this.shapes[l];
    if (phase === 'prefill') {
      const method: PrefillAttention = sliding ? this.slidingPrefill : plan.prefill;
      const counts = method.prefill({
        layer: l, shape, queries, numQueries: T, queryStart: start, cache, out, isLastChunk: item.isLastChunk ?? true,
      });
      addHeadCounts(state.counts.prefill, l, H, counts);
      state.windows[l]?.push(queries, T, start);
    } else {
      const method: DecodeAttention = sliding ? this.slidingDecode : plan.decode;
      const counts = method.decode({ layer: l, shape, query: queries, position: start, cache, out });
      addHeadCounts(state.counts.decode, l, H, counts);
    }
  }

  private logitsOf(x: Float32Array, row0: number, T: number, which: LogitRows): Float32Array {
    if (which === 'none') return new Float32Array(0);
    const c = this.config;
    const hidden = c.hiddenSize;
    const first = which === 'all' ? row0 : row0 + T - 1;
    const rows = which === 'all' ? T : 1;
    const normed = new Float32Array(rows * hidden);
    rmsNormRows(x.subarray(first * hidden, (first + rows) * hidden), rows, hidden, this.finalNorm, c.rmsNormEps, normed);
    const logits = new Float32Array(rows * c.vocabSize);
    this.kernel.matmul(normed, rows, this.lmHead, logits);
    const cap = c.finalLogitSoftcap;
    if (cap !== null) for (let i = 0; i < logits.length; i++) logits[i] = cap * Math.tanh(logits[i] / cap);
    return logits;
  }
}

/** Parameters of the matrices the kernel holds (all linear layers and the LM head). */
export function linearParameterCount(c: ModelConfig): number {
  const D = c.headDim;
  const perLayer = c.hiddenSize * (2 * c.numHeads * D + 2 * c.numKvHeads * D) + 3 * c.hiddenSize * c.intermediateSize;
  return c.numLayers * perLayer + c.vocabSize * c.hiddenSize;
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function validateConfig(c: ModelConfig): void {
  const problems: string[] = [];
  if (c.numHeads % c.numKvHeads !== 0) problems.push(`num heads ${c.numHeads} not a multiple of KV heads ${c.numKvHeads}`);
  if (c.layerTypes.length !== c.numLayers) problems.push(`${c.layerTypes.length} layer types for ${c.numLayers} layers`);
  if (c.layerTypes.includes('sliding') && !(c.slidingWindow !== null && c.slidingWindow > 0)) {
    problems.push('sliding layers without a positive sliding window');
  }
  if (c.headDim % 2 !== 0) problems.push(`head dim ${c.headDim} is odd (RoPE needs pairs)`);
  if (problems.length) throw new Error(`model config cannot run: ${problems.join('; ')}`);
}

/** Reads tensors from the store once, checking each shape against the config. */
class WeightLoader {
  constructor(private readonly store: WeightStore) {}

  tensor(name: string, shape: number[]): Float32Array {
    const t = this.store.get(name);
    const same = t.shape.length === shape.length && t.shape.every((d, i) => d === shape[i]);
    if (!same) throw new Error(`tensor ${name} has shape [${t.shape}], the config implies [${shape}]`);
    return t.data;
  }

  /** A Linear layer's weight [out, in] and its bias when present (or required). */
  linear(prefix: string, out: number, inp: number, biasRequired: boolean): { weight: Float32Array; bias: Float32Array | undefined } {
    const weight = this.tensor(`${prefix}.weight`, [out, inp]);
    const hasBias = biasRequired || this.store.has(`${prefix}.bias`);
    return { weight, bias: hasBias ? this.tensor(`${prefix}.bias`, [out]) : undefined };
  }
}
