/**
 * Device timing with events: warm-up launches first (module load and compilation stay out), then
 * each repeat is bracketed by its own pair of events; the median is reported with the spread.
 */
import type { CudaRuntime } from './runtime.js';

export interface DeviceTiming {
  medianMs: number;
  minMs: number;
  maxMs: number;
  repeats: number;
}

/**
 * A count of iterations must be a whole number: a fractional one sizes the event list by
 * `length: repeats + 1` (rounded down) while the loop runs to the next whole number, recording into an
 * event that was never created (CUDA_ERROR_INVALID_HANDLE, seen in session 8's Quest bench).
 */
function assertCount(fn: string, name: string, value: number, min: number): void {
  if (!Number.isInteger(value) || value < min) throw new Error(`${fn}: ${name} must be an integer >= ${min}, got ${value}`);
}

export function timeOnDevice(rt: CudaRuntime, body: (iteration: number) => void, options: { warmup?: number; repeats?: number } = {}): DeviceTiming {
  const warmup = options.warmup ?? 3;
  const repeats = options.repeats ?? 10;
  assertCount('timeOnDevice', 'warmup', warmup, 0);
  assertCount('timeOnDevice', 'repeats', repeats, 1);
  for (let i = 0; i < warmup; i++) body(i);
  rt.synchronize();
  const events = Array.from({ length: repeats + 1 }, () => rt.cuda.createEvent());
  rt.cuda.record(events[0], rt.stream);
  for (let i = 0; i < repeats; i++) {
    body(warmup + i);
    rt.cuda.record(events[i + 1], rt.stream);
  }
  const times: number[] = [];
  for (let i = 0; i < repeats; i++) times.push(rt.cuda.elapsedMs(events[i], events[i + 1]));
  for (const e of events) rt.cuda.destroyEvent(e);
  const sorted = [...times].sort((a, b) => a - b);
  return { medianMs: sorted[Math.floor(sorted.length / 2)], minMs: sorted[0], maxMs: sorted[sorted.length - 1], repeats };
}

/**
 * Device time per iteration without host launch gaps: `perGraph` iterations are captured into one
 * graph, which is replayed and timed with events; each repeat's time is divided by `perGraph`.
 * For kernels of tens of microseconds, where the host's enqueue cost would otherwise be measured.
 */
export function timeGraphOnDevice(
  rt: CudaRuntime, body: (iteration: number) => void, options: { perGraph?: number; warmup?: number; repeats?: number } = {},
): DeviceTiming {
  const perGraph = options.perGraph ?? 20;
  assertCount('timeGraphOnDevice', 'perGraph', perGraph, 1);
  for (let i = 0; i < perGraph; i++) body(i); // warm: modules loaded, pool blocks cached before capture
  rt.synchronize();
  const exec = rt.cuda.captureGraph(rt.stream, () => {
    for (let i = 0; i < perGraph; i++) body(i);
  });
  try {
    const t = timeOnDevice(rt, () => rt.cuda.launchGraph(exec, rt.stream), { warmup: options.warmup ?? 2, repeats: options.repeats ?? 10 });
    return { medianMs: t.medianMs / perGraph, minMs: t.minMs / perGraph, maxMs: t.maxMs / perGraph, repeats: t.repeats };
  } finally {
    rt.synchronize();
    rt.cuda.destroyGraph(exec);
  }
}
