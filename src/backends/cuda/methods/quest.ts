/**
 * Quest decoding on the device (the CPU QuestDecode, src/methods/quest.ts, is the reference): per
 * layer, page bounds kept up to date as rows are appended (the first step folds the whole prompt),
 * page scores of the step's query, the top pages per unit (KV group with share_pages, else query
 * head) written as segment lists, and the segment-list decode over them plus the current page.
 * Only the budget k crosses from the host (it depends on the position alone). The selection runs
 * through QuestKernels.selectStep with its default, three launches (the one-launch variant measured
 * slower at 64K-128K: docs/perf.md, "Quest page selection").
 */
import { type HeadCounts, emptyCounts } from '../../../engine/attention.js';
import type { ModelConfig } from '../../../engine/model-config.js';
import { resolveOptions } from '../../../methods/options.js';
import { questMethod, questPagesFor } from '../../../methods/quest.js';
import type { CudaRuntime } from '../runtime.js';
import { DeviceQuestBounds, QuestKernels, QuestStepScratch } from '../kernels/quest.js';
import { SegmentDecodeKernel, SegmentLists } from '../kernels/segment-decode.js';
import type { DeviceDecodeCall, DeviceDecodeFactory, DeviceDecodeMethod, DeviceMethodOptions, EstimationTiming } from './contract.js';
import { EstimationClock } from './estimation-clock.js';
import { segmentDecodeFactory } from './kernel-family-factories.js';
import { assertShape } from './shape-check.js';

export interface QuestSettings {
  pageSize: number;
  sparsity: number | null;
  tokenBudget: number | null;
  sharePages: boolean;
}

/** One layer's per-sequence state. */
interface QuestLayerState {
  bounds: DeviceQuestBounds;
  /** Page scores of the current step and the selection's arrival counters. */
  scratch: QuestStepScratch;
  segments: SegmentLists;
}

export class QuestDeviceDecode implements DeviceDecodeMethod, EstimationTiming {
  readonly id = 'quest';
  readonly observationWindow = 0;
  private readonly kernels: QuestKernels;
  private readonly decoder: SegmentDecodeKernel;
  private readonly layers = new Map<number, QuestLayerState>();
  private readonly clock: EstimationClock;

  constructor(private readonly rt: CudaRuntime, private readonly config: ModelConfig, readonly settings: QuestSettings) {
    const shape = { numHeads: config.numHeads, numKvHeads: config.numKvHeads, headDim: config.headDim };
    this.kernels = new QuestKernels(rt, shape, settings.pageSize, settings.sharePages);
    this.decoder = new SegmentDecodeKernel(rt, shape, !settings.sharePages);
    this.clock = new EstimationClock(rt);
  }

  private stateOf(call: DeviceDecodeCall): QuestLayerState {
    let state = this.layers.get(call.layer);
    if (!state) {
      const bounds = new DeviceQuestBounds(this.rt, this.kernels.shape, this.settings.pageSize, call.cache.capacity);
      state = {
        bounds,
        scratch: new QuestStepScratch(this.rt, this.kernels.units, bounds.pageCapacity),
        segments: new SegmentLists(this.rt, this.kernels.units, bounds.pageCapacity),
      };
      this.layers.set(call.layer, state);
    }
    return state;
  }

  decode(call: DeviceDecodeCall): HeadCounts {
    const { position: p, cache } = call;
    assertShape(this.id, call.shape, this.config);
    if (cache.length !== p + 1) throw new Error(`${this.id}: expects a full cache holding positions 0..${p} (it holds ${cache.length} rows)`);
    const state = this.stateOf(call);
    if (state.bounds.coveredRows > p + 1) throw new Error(`${this.id}: layer ${call.layer} saw a later position before ${p}: reset() between sequences`);
    const P = this.settings.pageSize;
    const current = Math.floor(p / P);
    const k = questPagesFor(p, P, this.settings.sparsity, this.settings.tokenBudget);
    const pagesRead = Math.min(k, current);

    this.kernels.prepare(); // a first call compiles the module: keep that out of the estimation time
    this.clock.start();
    this.kernels.selectStep({ q: call.q, bounds: state.bounds, cache, rows: p + 1, pages: current, k, scratch: state.scratch, segments: state.segments });
    this.clock.end();

    const tailRows = p - current * P + 1;
    this.decoder.run({
      q: call.q, k: cache.keys.ptr, v: cache.values.ptr, kvStride: cache.capacity, out: call.out, segments: state.segments,
      tailStart: current * P, tailRows, maxRows: pagesRead * P + tailRows, scale: call.shape.scale,
    });
    const counts = emptyCounts(this.config.numHeads);
    counts.attended.fill(pagesRead * P + tailRows);
    counts.dense.fill(p + 1);
    return counts;
  }

  lastEstimationMs(): number | null {
    return this.clock.lastEstimationMs();
  }

  /** Drops every layer's bounds, scores and lists (stream order keeps queued kernels safe). */
  reset(): void {
    for (const s of this.layers.values()) {
      s.bounds.release();
      s.scratch.release();
      s.segments.release();
    }
    this.layers.clear();
  }
}

/** The CPU method's parameters and budget rule, defaults filled by its descriptor. */
export function questSettings(options: DeviceMethodOptions): QuestSettings {
  const resolved = resolveOptions(questMethod, options);
  const pageSize = resolved.params.pageSize as number;
  const tokenBudget = typeof resolved.params.tokenBudget === 'number' ? resolved.params.tokenBudget : null;
  if (tokenBudget !== null && tokenBudget % pageSize !== 0) {
    throw new Error(`quest: tokenBudget (${tokenBudget}) must be a multiple of pageSize (${pageSize})`);
  }
  return { pageSize, sparsity: resolved.sparsity, tokenBudget, sharePages: resolved.params.sharePages as boolean };
}

// The segment decode's group limit applies even without share_pages (where every query head is its
// own unit and any group size would run): the default shares one kernel block per group.
export const questDeviceFactory: DeviceDecodeFactory = segmentDecodeFactory('quest',
  (rt, config, options) => new QuestDeviceDecode(rt, config, questSettings(options)));
