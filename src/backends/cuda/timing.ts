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

export function timeOnDevice(rt: CudaRuntime, body: (iteration: number) => void, options: { warmup?: number; repeats?: number } = {}): DeviceTiming {
  const warmup = options.warmup ?? 3;
  const repeats = options.repeats ?? 10;
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
