/**
 * The Quest benches' layers: copies of one set of page bounds, each with its own step scratch and segment
 * lists, so that steps over successive copies read bounds that are out of L2 (a model's layers each have
 * their own), as in a decode step of a many-layer model.
 */
import { DeviceQuestBounds, type QuestScratchOptions, type QuestShape, QuestStepScratch } from '../src/backends/cuda/kernels/quest.js';
import { SegmentLists } from '../src/backends/cuda/kernels/segment-decode.js';
import type { CudaRuntime } from '../src/backends/cuda/runtime.js';

/** Bytes of bounds the copies span together: more than the H100's 50 MB L2 many times over. */
export const ROTATION_BYTES = 256e6;

export interface QuestLayer { bounds: DeviceQuestBounds; scratch: QuestStepScratch; lists: SegmentLists }

/**
 * Copies of `bounds0` (covering `rows` rows, its first `scoredPages` pages scored by a step) until together they
 * span ROTATION_BYTES, at least two; copy 0 is bounds0 itself.
 */
export function rotatedQuestLayers(
  rt: CudaRuntime, shape: QuestShape, bounds0: DeviceQuestBounds, cacheCapacity: number, rows: number, scoredPages: number,
  units: number, scratchOptions: QuestScratchOptions,
): QuestLayer[] {
  const boundsBytes = 2 * shape.numKvHeads * scoredPages * shape.headDim * 2;
  const copies = Math.max(2, Math.ceil(ROTATION_BYTES / boundsBytes));
  return Array.from({ length: copies }, (_, c) => {
    const bounds = c === 0 ? bounds0 : new DeviceQuestBounds(rt, shape, bounds0.pageSize, cacheCapacity);
    if (c > 0) {
      const bytes = shape.numKvHeads * bounds.pageCapacity * shape.headDim * 2;
      rt.cuda.copyDeviceAsync(bounds.pageMin.ptr, bounds0.pageMin.ptr, bytes, rt.stream);
      rt.cuda.copyDeviceAsync(bounds.pageMax.ptr, bounds0.pageMax.ptr, bytes, rt.stream);
      bounds.coveredRows = rows;
    }
    return {
      bounds, scratch: new QuestStepScratch(rt, units, bounds.pageCapacity, scratchOptions), lists: new SegmentLists(rt, shape.numKvHeads, bounds.pageCapacity),
    };
  });
}

export function releaseQuestLayers(layers: readonly QuestLayer[]): void {
  for (const l of layers) {
    l.bounds.release();
    l.scratch.release();
    l.lists.release();
  }
}
