/**
 * Device time of a method's importance estimation: a pair of events recorded around the estimation's
 * kernels on the runtime's stream. Reading the time waits for the end event (so read it after the
 * step, not inside it); recording costs no synchronisation.
 */
import type { EventHandle } from '../context.js';
import type { CudaRuntime } from '../runtime.js';
import type { EstimationTiming } from './contract.js';

export class EstimationClock implements EstimationTiming {
  private events: [EventHandle, EventHandle] | null = null;
  private measured = false;

  constructor(private readonly rt: CudaRuntime) {}

  start(): void {
    if (!this.events) this.events = [this.rt.cuda.createEvent(), this.rt.cuda.createEvent()];
    this.rt.cuda.record(this.events[0], this.rt.stream);
  }

  end(): void {
    if (!this.events) throw new Error('estimation clock: end() without start()');
    this.rt.cuda.record(this.events[1], this.rt.stream);
    this.measured = true;
  }

  lastEstimationMs(): number | null {
    if (!this.events || !this.measured) return null;
    return this.rt.cuda.elapsedMs(this.events[0], this.events[1]);
  }

  /** Destroys the events (the clock reads null until the next start/end). */
  release(): void {
    if (this.events) for (const e of this.events) this.rt.cuda.destroyEvent(e);
    this.events = null;
    this.measured = false;
  }
}
