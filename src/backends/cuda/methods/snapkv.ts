/**
 * SnapKV on the device (the CPU SnapKvDecode, src/methods/snapkv.ts, is the reference). After
 * prefill, the observation window scores the prompt keys, each KV head keeps its top `capacity` rows
 * (pooled, prefix and local window forced), and those rows move to rows [0, keep_h) of the head in
 * ascending position order. Decode steps then read [0, keep_h) ∪ [n, position] per KV head with the
 * segment-list decode (generated tokens stay where the cache appends them). Inside the model's CUDA
 * graph (graphSteps) the same kernels read p from device memory, so one capture serves every step.
 *
 * EvictedDeviceDecode is shared with Ada-SnapKV, which differs only in how rows are chosen.
 */
import { type HeadCounts, emptyCounts } from '../../../engine/attention.js';
import type { ModelConfig } from '../../../engine/model-config.js';
import { resolveOptions } from '../../../methods/options.js';
import { type SnapKvSettings, capacityFor, parseSnapKv } from '../../../methods/snapkv-importance.js';
import { snapKvMethod } from '../../../methods/snapkv.js';
import type { CudaRuntime } from '../runtime.js';
import { type SegmentGraphLaunch, SegmentDecodeKernel, SegmentLists, segmentWorkspaceBytes } from '../kernels/segment-decode.js';
import { type KeptRows, SnapKvKernels } from '../kernels/snapkv.js';
import type {
  DeviceCompressCall, DeviceDecodeCall, DeviceDecodeFactory, DeviceDecodeMethod, DeviceGraphDecodeSetup, DeviceGraphDecodeSteps,
  EstimationTiming,
} from './contract.js';
import { EstimationClock } from './estimation-clock.js';
import { segmentDecodeFactory } from './kernel-family-factories.js';
import { assertShape } from './shape-check.js';

/** One layer's state after compression. */
interface EvictedLayer {
  promptLength: number;
  /** [Hkv] prompt rows each KV head kept (at rows [0, keep[h])). */
  keep: Int32Array;
  maxKeep: number;
  segments: SegmentLists;
}

export abstract class EvictedDeviceDecode implements DeviceDecodeMethod, EstimationTiming {
  abstract readonly id: string;
  protected readonly kernels: SnapKvKernels;
  private readonly decoder: SegmentDecodeKernel;
  private readonly layers = new Map<number, EvictedLayer>();
  protected readonly clock: EstimationClock;

  constructor(protected readonly rt: CudaRuntime, protected readonly config: ModelConfig, readonly settings: SnapKvSettings) {
    const shape = { numHeads: config.numHeads, numKvHeads: config.numKvHeads, headDim: config.headDim };
    this.kernels = new SnapKvKernels(rt, shape);
    this.decoder = new SegmentDecodeKernel(rt, shape);
    this.clock = new EstimationClock(rt);
  }

  get observationWindow(): number {
    return this.settings.observationWindow;
  }

  /** The rows each KV head keeps, on the device (null: every prompt row stays). */
  protected abstract chooseRows(call: DeviceCompressCall, capacity: number): KeptRows | null;

  afterPrefill(call: DeviceCompressCall): void {
    assertShape(this.id, call.shape, this.config);
    const n = call.promptLength;
    if (call.cache.length !== n) throw new Error(`${this.id}: cache holds ${call.cache.length} rows, expected the ${n}-token prompt`);
    if (call.windowLength !== Math.min(this.settings.observationWindow, n)) {
      throw new Error(`${this.id}: expected the last ${Math.min(this.settings.observationWindow, n)} prompt queries, got ${call.windowLength}`);
    }
    this.dropLayer(call.layer);
    const Hkv = this.config.numKvHeads;
    const segments = new SegmentLists(this.rt, Hkv, 1);
    const capacity = capacityFor(this.settings, n);
    this.kernels.prepare(); // a first call compiles the module: keep that out of the estimation time
    this.clock.start();
    const kept = capacity < n ? this.chooseRows(call, capacity) : null;
    let keep: Int32Array;
    if (kept) {
      keep = this.kernels.readCounts(kept);
      this.kernels.compactCache(call.cache, kept, Math.max(...keep), segments);
      this.kernels.releaseKept(kept);
    } else {
      keep = new Int32Array(Hkv).fill(n);
      this.kernels.writeUniformSegments(n, segments);
    }
    this.clock.end();
    this.layers.set(call.layer, { promptLength: n, keep, maxKeep: Math.max(...keep), segments });
  }

  /** Pooled, forced window importance [Hkv, n] (caller releases). */
  protected importance(call: DeviceCompressCall, aggregation: 'mean' | 'max') {
    return this.kernels.windowImportance({
      windowQueries: call.windowQueries, windowLength: call.windowLength, promptLength: call.promptLength, cache: call.cache,
      scale: call.shape.scale, aggregation, kernelSize: this.settings.kernelSize, prefixTokens: this.settings.prefixTokens,
      localWindow: this.settings.localWindow,
    });
  }

  /** Prompt rows kept per KV head in the layer's last compression (null before it). */
  keptPerHead(layer: number): Int32Array | null {
    return this.layers.get(layer)?.keep ?? null;
  }

  decode(call: DeviceDecodeCall): HeadCounts {
    assertShape(this.id, call.shape, this.config);
    const state = this.layers.get(call.layer);
    if (!state) throw new Error(`${this.id}: decode before afterPrefill: the engine must call afterPrefill with the observation window`);
    const p = call.position, n = state.promptLength;
    if (p < n || call.cache.length !== p + 1) {
      throw new Error(`${this.id}: the new token at ${p} must be the last cached row (cache ${call.cache.length} rows, prompt ${n})`);
    }
    const tailRows = p + 1 - n;
    this.decoder.run({
      q: call.q, k: call.cache.keys.ptr, v: call.cache.values.ptr, kvStride: call.cache.capacity, out: call.out,
      segments: state.segments, tailStart: n, tailRows, maxRows: state.maxKeep + tailRows, scale: call.shape.scale,
    });
    return this.stepCounts(state, p);
  }

  /** Query head h of a step at p reads its KV head's kept prompt rows and the p + 1 - n decode rows. */
  private stepCounts(state: EvictedLayer, p: number): HeadCounts {
    const tailRows = p + 1 - state.promptLength;
    const counts = emptyCounts(this.config.numHeads);
    const g = this.config.numHeads / this.config.numKvHeads;
    for (let h = 0; h < this.config.numHeads; h++) {
      counts.attended[h] = state.keep[Math.floor(h / g)] + tailRows;
      counts.dense[h] = p + 1;
    }
    return counts;
  }

  /**
   * Graph steps: each layer reads its compacted lists (fixed until reset) and the tail [n, p], p read
   * on the device; the launch of each layer is fixed for its rows over the whole position range.
   */
  graphSteps(setup: DeviceGraphDecodeSetup): DeviceGraphDecodeSteps | null {
    assertShape(this.id, setup.shape, this.config);
    if (this.layers.size === 0) return null;
    const launches = new Map<number, SegmentGraphLaunch>();
    for (const [layer, state] of this.layers) {
      const n = state.promptLength;
      if (setup.firstPosition < n) throw new Error(`${this.id}: graph steps from position ${setup.firstPosition}, inside layer ${layer}'s ${n}-token prompt`);
      if (setup.capacity <= setup.firstPosition) throw new Error(`${this.id}: no position to replay (first ${setup.firstPosition}, capacity ${setup.capacity})`);
      launches.set(layer, this.decoder.planGraph(state.maxKeep + setup.firstPosition + 1 - n, state.maxKeep + setup.capacity - n));
    }
    // Layers run one after another in the stream: one workspace serves them all.
    const splits = Math.max(...[...launches.values()].map((l) => l.splits));
    const workspace = setup.own(segmentWorkspaceBytes(this.config.numHeads, this.config.headDim, splits));
    return {
      record: (call) => {
        const state = this.layers.get(call.layer), launch = launches.get(call.layer);
        if (!state || !launch) throw new Error(`${this.id}: layer ${call.layer} has no compressed prompt to decode over (afterPrefill not run)`);
        if (call.cache.capacity < setup.capacity) throw new Error(`${this.id}: cache of ${call.cache.capacity} rows for positions up to ${setup.capacity - 1}`);
        this.decoder.runGraph({
          q: call.q, k: call.cache.keys.ptr, v: call.cache.values.ptr, kvStride: call.cache.capacity, out: call.out, segments: state.segments,
          position: call.position, tailStart: state.promptLength, maxListRows: state.maxKeep, launch, workspace, scale: setup.shape.scale,
        });
      },
      counts: (layer, position) => {
        const state = this.layers.get(layer);
        if (!state) throw new Error(`${this.id}: no compressed prompt for layer ${layer}`);
        return this.stepCounts(state, position);
      },
    };
  }

  lastEstimationMs(): number | null {
    return this.clock.lastEstimationMs();
  }

  private dropLayer(layer: number): void {
    const state = this.layers.get(layer);
    if (state) state.segments.release();
    this.layers.delete(layer);
  }

  reset(): void {
    for (const layer of [...this.layers.keys()]) this.dropLayer(layer);
  }
}

export class SnapKvDeviceDecode extends EvictedDeviceDecode {
  readonly id = 'snapkv';

  protected chooseRows(call: DeviceCompressCall, capacity: number): KeptRows {
    const pooled = this.importance(call, 'mean');
    const kept = this.kernels.selectUniform(pooled.ptr, call.promptLength, capacity);
    this.rt.pool.release(pooled);
    return kept;
  }
}

export const snapKvDeviceFactory: DeviceDecodeFactory = segmentDecodeFactory('snapkv',
  (rt, config, options) => new SnapKvDeviceDecode(rt, config, parseSnapKv('snapkv', resolveOptions(snapKvMethod, options))));
