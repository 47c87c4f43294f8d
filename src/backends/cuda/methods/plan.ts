/**
 * A pair of GPU method objects (prefill, decode) behind the model's one DeviceAttention interface, so
 * CudaTransformerModel runs any method unchanged — what the CPU engine does with an AttentionPlan
 * (src/engine/model.ts):
 *   - sliding-window layers always run dense windowed attention (counted as dense);
 *   - prompt chunks go to the prefill method, single new tokens to the decode method;
 *   - the last W prompt queries of every full-attention layer are kept on the device
 *     (W = decode.observationWindow), and decode.afterPrefill runs once per layer between the prompt
 *     and the first decode step;
 *   - the HeadCounts of every call add up to the engine's AttentionCounts for the sequence;
 *   - decode steps the model replays from a captured CUDA graph are booked as attend() books them:
 *     dense decode through denseDecodeSteps, a method with graph steps through methodDecodeSteps.
 *
 * Which calls belong to the prompt: after startSequence(n) the plan knows (positions < n are prompt,
 * the chunk reaching n ends it, and afterPrefill runs right there, inside prefill time as on the CPU).
 * Without it (e.g. model.logits() over one chunk), a call of T > 1 queries, or the first position, is
 * a prompt chunk that may end the prompt, a later single token a decode step, and afterPrefill runs on
 * the first decode step, with the cache shown at the prompt's length for the hook's duration.
 */
import { addHeadCounts, emptyAttentionCounts, type AttentionCounts } from '../../../engine/forward-state.js';
import type { ModelConfig } from '../../../engine/model-config.js';
import { DenseDeviceAttention, type DeviceAttention, type DeviceAttentionCall } from '../device-attention.js';
import type { DeviceLayerKvCache } from '../kv-cache.js';
import type { CudaRuntime } from '../runtime.js';
import type { DeviceAttentionShape, DeviceGraphDecodeSetup, GraphDecodeAttention, GraphDecodeSource } from './contract.js';
import { DenseDeviceDecode, denseHeadCounts } from './dense.js';
import type { DeviceMethodPair } from './index.js';
import { DeviceQueryWindow, type QueryWindowStore } from './query-window.js';

/** The plan's device-side helpers, injectable so the dispatch logic can be tested without a GPU. */
export interface PlanParts {
  /** Dense windowed attention for sliding-window layers. */
  sliding: DeviceAttention;
  /** A store of the last `capacity` prompt queries ([≤capacity, H·D] rows) of one layer. */
  newWindow(capacity: number, rowElements: number): QueryWindowStore;
}

/** What the plan remembers of one layer during a sequence. */
interface LayerProgress {
  /** Prompt positions [0, prefilled) have gone through this layer. */
  prefilled: number;
  /** The decode method's afterPrefill ran (or has nothing to run): the prompt is closed. */
  promptClosed: boolean;
}

/** The per-sequence state the plan adds on top of the model's (exposed for tests and logs). */
export interface PlanSequenceState {
  /** Declared prompt length (startSequence), or null when inferred from the calls. */
  promptLength: number | null;
  /** Per layer: prompt positions seen, and whether the prompt was closed (afterPrefill done). */
  layers: readonly Readonly<LayerProgress>[];
}

export class PlanDeviceAttention implements DeviceAttention {
  private methods: DeviceMethodPair;
  private readonly shape: DeviceAttentionShape;
  private readonly fullLayer: boolean[];
  private windows: (QueryWindowStore | null)[] = [];
  private progress: LayerProgress[] = [];
  private counts: AttentionCounts;
  private promptLength: number | null = null;
  /** denseDecodeSteps' answer for the current method pair (made once per pair, asked every step). */
  private denseBooking: ((position: number) => void) | null = null;
  /** methodDecodeSteps' answer for the current method pair (a decode method with graphSteps), else null. */
  private methodGraph: GraphDecodeSource | null = null;
  /** Counts the sequences (reset): method graph steps prepared in an earlier one are no longer current. */
  private sequenceEpoch = 0;

  /** The plan on the GPU: the model's dense kernels for sliding layers, query windows in device memory. */
  static onDevice(rt: CudaRuntime, config: ModelConfig, methods: DeviceMethodPair): PlanDeviceAttention {
    return new PlanDeviceAttention(config, methods, {
      sliding: new DenseDeviceAttention(rt, config),
      newWindow: (capacity, rowElements) => new DeviceQueryWindow(rt, capacity, rowElements),
    });
  }

  constructor(private readonly config: ModelConfig, methods: DeviceMethodPair, private readonly parts: PlanParts) {
    if (config.layerTypes.length !== config.numLayers) throw new Error(`attention plan: ${config.layerTypes.length} layer types for ${config.numLayers} layers`);
    this.methods = methods;
    this.shape = { numHeads: config.numHeads, numKvHeads: config.numKvHeads, headDim: config.headDim, scale: config.attentionScale };
    this.fullLayer = config.layerTypes.map((t) => t !== 'sliding');
    this.counts = emptyAttentionCounts(config.numLayers, config.numHeads);
    this.startState();
  }

  /** "prefill/decode" method ids, e.g. "block_sparse/dense". */
  get id(): string {
    return `${this.methods.prefill.id}/${this.methods.decode.id}`;
  }

  /** The prompt must arrive as one chunk (the prefill method estimates importance over all of it). */
  get requiresWholePrompt(): boolean {
    return this.methods.prefill.requiresWholePrompt;
  }

  /** Switches to another method pair (between sequences); the current sequence's state is dropped. */
  use(methods: DeviceMethodPair): void {
    this.reset();
    for (const w of this.windows) w?.release();
    this.methods = methods;
    this.startState();
  }

  /** Ends the current sequence (methods free their per-sequence state) and starts an undeclared one. */
  reset(): void {
    this.sequenceEpoch++;
    this.methods.prefill.reset?.();
    this.methods.decode.reset?.();
    for (const w of this.windows) w?.clear();
    this.progress = this.fullLayer.map(() => ({ prefilled: 0, promptClosed: false }));
    this.counts = emptyAttentionCounts(this.config.numLayers, this.config.numHeads);
    this.promptLength = null;
  }

  /** Resets and declares the next sequence's prompt length n: positions < n are prompt. */
  startSequence(promptLength: number): void {
    if (!Number.isInteger(promptLength) || promptLength < 1) throw new Error(`attention plan: prompt length must be a positive integer (got ${promptLength})`);
    this.reset();
    this.promptLength = promptLength;
  }

  /** A copy of the sequence's pair counts so far ([L·H] per phase, layer-major). */
  sequenceCounts(): AttentionCounts {
    const c = this.counts;
    const copy = (p: AttentionCounts['prefill']) => ({ attended: p.attended.slice(), dense: p.dense.slice() });
    return { numLayers: c.numLayers, numHeads: c.numHeads, prefill: copy(c.prefill), decode: copy(c.decode) };
  }

  sequenceState(): PlanSequenceState {
    return { promptLength: this.promptLength, layers: this.progress.map((p) => ({ ...p })) };
  }

  /** Frees the query windows (the method objects hold no more than their per-sequence state). */
  dispose(): void {
    this.reset();
    for (const w of this.windows) w?.release();
    this.windows = [];
  }

  /**
   * With dense decode the model replays a captured CUDA graph for each step instead of calling
   * attend(); the callback books the step's pairs as attend() would (sliding layers windowed).
   */
  denseDecodeSteps(): ((position: number) => void) | null {
    return this.denseBooking;
  }

  /**
   * With a decode method that records its own graph steps (DeviceDecodeMethod.graphSteps), the
   * model's captured step runs them in full-attention layers; each replay is booked as attend() would
   * book it. null for dense decode (denseDecodeSteps) and for methods without graph steps.
   */
  methodDecodeSteps(): GraphDecodeSource | null {
    return this.methodGraph;
  }

  /** The method's graph steps from setup.firstPosition on, once every full layer's prompt is closed; else null. */
  private prepareMethodSteps(setup: Omit<DeviceGraphDecodeSetup, 'shape'>): GraphDecodeAttention | null {
    // An undeclared prompt closes (afterPrefill) inside the first decode step: that step runs eagerly.
    if (this.progress.some((p, l) => this.fullLayer[l] && !p.promptClosed)) return null;
    const method = this.methods.decode;
    const steps = method.graphSteps?.({ ...setup, shape: this.shape }) ?? null;
    if (!steps) return null;
    const epoch = this.sequenceEpoch;
    const H = this.shape.numHeads;
    return {
      record: (call) => {
        if (!this.fullLayer[call.layer]) throw new Error(`attention plan: layer ${call.layer} is a sliding layer; the model's dense kernels serve it`);
        steps.record(call);
      },
      book: (position) => {
        for (let l = 0; l < this.config.numLayers; l++) {
          const counts = this.fullLayer[l] ? steps.counts(l, position) : denseHeadCounts(H, position, 1, this.config.slidingWindow);
          addHeadCounts(this.counts.decode, l, H, counts);
        }
      },
      isCurrent: () => this.sequenceEpoch === epoch && this.methods.decode === method,
    };
  }

  private bookDenseDecodeStep(position: number): void {
    const H = this.shape.numHeads;
    for (let l = 0; l < this.config.numLayers; l++) {
      const window = this.fullLayer[l] ? null : this.config.slidingWindow;
      addHeadCounts(this.counts.decode, l, H, denseHeadCounts(H, position, 1, window));
    }
  }

  attend(call: DeviceAttentionCall): void {
    const prompt = this.isPromptCall(call);
    const phase = prompt ? this.counts.prefill : this.counts.decode;
    if (call.sliding) {
      this.parts.sliding.attend(call);
      addHeadCounts(phase, call.layer, this.shape.numHeads, denseHeadCounts(this.shape.numHeads, call.queryStart, call.numQueries, this.config.slidingWindow));
      return;
    }
    if (prompt) this.prefill(call);
    else this.decode(call);
  }

  private startState(): void {
    const W = this.methods.decode.observationWindow;
    if (!Number.isInteger(W) || W < 0) throw new Error(`attention plan: decode method ${this.methods.decode.id} has a bad observation window ${W}`);
    const rowElements = this.shape.numHeads * this.shape.headDim;
    this.windows = this.fullLayer.map((full) => (full && W > 0 ? this.parts.newWindow(W, rowElements) : null));
    this.progress = this.fullLayer.map(() => ({ prefilled: 0, promptClosed: false }));
    const dense = this.methods.decode instanceof DenseDeviceDecode;
    this.denseBooking = dense ? (position) => this.bookDenseDecodeStep(position) : null;
    this.methodGraph = !dense && this.methods.decode.graphSteps ? { prepare: (setup) => this.prepareMethodSteps(setup) } : null;
  }

  private isPromptCall(call: DeviceAttentionCall): boolean {
    const n = this.promptLength;
    if (n !== null) {
      if (call.queryStart < n) {
        if (call.queryStart + call.numQueries > n) {
          throw new Error(`attention plan: a call of positions ${call.queryStart}..${call.queryStart + call.numQueries - 1} crosses the declared prompt end ${n}`);
        }
        return true;
      }
      if (call.numQueries !== 1) throw new Error(`attention plan: decode takes one token per step (got ${call.numQueries} at position ${call.queryStart})`);
      return false;
    }
    return call.numQueries > 1 || call.queryStart === 0;
  }

  private layerProgress(layer: number): LayerProgress {
    const p = this.progress[layer];
    if (!p) throw new Error(`attention plan: layer ${layer} outside the model's ${this.config.numLayers} layers`);
    return p;
  }

  private prefill(call: DeviceAttentionCall): void {
    const progress = this.layerProgress(call.layer);
    if (progress.promptClosed) throw new Error(`attention plan: layer ${call.layer} got prompt positions after its prompt was closed (reset between sequences)`);
    if (call.queryStart !== progress.prefilled) {
      throw new Error(`attention plan: layer ${call.layer} prompt chunk starts at ${call.queryStart}, expected ${progress.prefilled}`);
    }
    const end = call.queryStart + call.numQueries;
    // Undeclared prompts: each chunk may be the last (model.logits() sends the whole prompt at once).
    const isLastChunk = this.promptLength === null || end === this.promptLength;
    const method = this.methods.prefill;
    if (method.requiresWholePrompt && (call.queryStart !== 0 || !isLastChunk)) {
      throw new Error(
        `attention plan: ${method.id} needs the whole prompt in one chunk (got positions ${call.queryStart}..${end - 1}` +
          `${this.promptLength === null ? '' : ` of ${this.promptLength}`}); prefill with a chunk size of at least the prompt length`,
      );
    }
    const counts = method.prefill({
      layer: call.layer, shape: this.shape, q: call.q, qRowStride: call.qRowStride, numQueries: call.numQueries,
      queryStart: call.queryStart, cache: call.cache, out: call.out, isLastChunk,
    });
    addHeadCounts(this.counts.prefill, call.layer, this.shape.numHeads, counts);
    this.windows[call.layer]?.push(call.q, call.qRowStride, call.numQueries, call.queryStart);
    progress.prefilled = end;
    if (this.promptLength !== null && isLastChunk) this.closePrompt(call.layer, call.cache);
  }

  private decode(call: DeviceAttentionCall): void {
    const progress = this.layerProgress(call.layer);
    if (!progress.promptClosed) {
      if (progress.prefilled === 0) throw new Error(`attention plan: layer ${call.layer} got a decode step before any prompt`);
      if (call.queryStart !== progress.prefilled) {
        throw new Error(`attention plan: layer ${call.layer}'s first decode step is at ${call.queryStart}, the prompt ended at ${progress.prefilled}`);
      }
      // The model appended this step's k/v before attending; the hook must see the prompt alone.
      const cache = call.cache;
      const appended = cache.length;
      cache.length = progress.prefilled;
      try {
        this.closePrompt(call.layer, cache);
      } finally {
        cache.length = appended;
      }
    }
    const counts = this.methods.decode.decode({ layer: call.layer, shape: this.shape, q: call.q, position: call.queryStart, cache: call.cache, out: call.out });
    addHeadCounts(this.counts.decode, call.layer, this.shape.numHeads, counts);
  }

  /** Runs the decode method's afterPrefill on this layer's prompt (once) and closes the prompt. */
  private closePrompt(layer: number, cache: DeviceLayerKvCache): void {
    const progress = this.layerProgress(layer);
    const method = this.methods.decode;
    const window = this.windows[layer];
    if (method.afterPrefill && window) {
      if (cache.length !== progress.prefilled) throw new Error(`attention plan: layer ${layer} cache holds ${cache.length} rows after a ${progress.prefilled}-token prompt`);
      method.afterPrefill({
        layer, shape: this.shape, windowQueries: window.contiguous(), windowLength: window.length, promptLength: progress.prefilled, cache,
      });
    }
    progress.promptClosed = true;
  }
}
