/**
 * A decode method's graph-replayed step, as the model runs it (DeviceDecodeMethod.graphSteps: one capture
 * of every layer's step at one position, replayed), in µs per layer step. The eager step of a bench
 * (decode() back to back) also pays the host's launches, and where the host issues a step more slowly than
 * the device runs it (Quest at 16K-32K, session 7) it measures the host; the graph step is the device's.
 * bench/quest-step.ts reports it per variant; bench sparse's decode rows can report it beside the eager step.
 */
import type { DevicePtr } from '../src/backends/cuda/context.js';
import type { DeviceLayerKvCache } from '../src/backends/cuda/kv-cache.js';
import type { DeviceBuffer } from '../src/backends/cuda/memory-pool.js';
import type { DeviceAttentionShape, DeviceDecodeMethod } from '../src/backends/cuda/methods/contract.js';
import type { CudaRuntime } from '../src/backends/cuda/runtime.js';
import { timeOnDevice } from '../src/backends/cuda/timing.js';

export interface GraphStepSetting {
  shape: DeviceAttentionShape;
  /** One cache per layer (layer = index), each holding the rows decoded so far (length = next position). */
  caches: DeviceLayerKvCache[];
  /** The step's query, [H, D] bf16, and its output, [H, D] bf16. */
  q: DevicePtr;
  out: DevicePtr;
  /**
   * One eager step on `layer` at its cache's next row: the caller's own step, which appends the row (its k/v
   * are already in the cache) and calls decode(). Used to bring every layer to the same length first.
   */
  eagerStep(layer: number): void;
  /** Timed replays: max(5, ceil(repeats / 4)). */
  repeats: number;
}

/**
 * µs per layer step of the method's graph step at the position every layer reaches after eager steps to
 * the longest cache's length (graphSteps starts where every layer's state ends); null where the method
 * has no graph step there (no graphSteps, or it declines the position). Leaves each cache one row longer.
 */
export function timeGraphStep(rt: CudaRuntime, method: DeviceDecodeMethod, s: GraphStepSetting): number | null {
  if (!method.graphSteps) return null;
  if (!Number.isInteger(s.repeats) || s.repeats < 1) throw new Error(`graph step: repeats must be a positive integer (got ${s.repeats})`);
  const L = s.caches.length;
  const first = Math.max(...s.caches.map((c) => c.length));
  for (let l = 0; l < L; l++) while (s.caches[l].length < first) s.eagerStep(l);
  const roomless = s.caches.findIndex((c) => c.capacity < first + 1);
  if (roomless >= 0) throw new Error(`graph step: layer ${roomless}'s cache holds ${s.caches[roomless].capacity} rows, the replayed position ${first} needs ${first + 1}`);
  const owned: DeviceBuffer[] = [];
  const position = rt.pool.acquire(16);
  owned.push(position);
  try {
    const steps = method.graphSteps({
      shape: s.shape, firstPosition: first, capacity: first + 1, own: (bytes) => {
        const b = rt.pool.acquire(bytes);
        owned.push(b);
        return b.ptr;
      },
    });
    if (!steps) return null;
    for (const c of s.caches) c.length = first + 1; // row `first` holds the caller's k/v already
    rt.synchronize();
    rt.cuda.upload(position.ptr, Int32Array.of(first));
    const exec = rt.cuda.captureGraph(rt.stream, () => {
      for (let l = 0; l < L; l++) steps.record({ layer: l, q: s.q, position: position.ptr, cache: s.caches[l], out: s.out });
    });
    try {
      return (timeOnDevice(rt, () => rt.cuda.launchGraph(exec, rt.stream), { warmup: 2, repeats: Math.max(5, Math.ceil(s.repeats / 4)) }).medianMs * 1e3) / L;
    } finally {
      rt.synchronize();
      rt.cuda.destroyGraph(exec);
    }
  } finally {
    rt.synchronize();
    for (const b of owned) rt.pool.release(b);
  }
}
