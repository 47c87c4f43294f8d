/**
 * Shared by the kernel benchmarks: the prefill ones' command line (on bench/bench-args.ts) and host check of sampled output
 * rows against a float64 softmax (bench/block-sparse.ts, bench/vertical-slash.ts), and random bf16
 * inputs uploaded to the device (bench/attention.ts, bench/sparse-decode.ts).
 */
import { toBf16 } from '../src/backends/cuda/bf16.js';
import { type BenchOptionsOf, int, intList, sparsityList, text } from './bench-args.js';
import type { DeviceBuffer } from '../src/backends/cuda/memory-pool.js';
import type { CudaRuntime } from '../src/backends/cuda/runtime.js';

/**
 * The kernel benches' shared options: --lengths a,b (integers >= minLength, the shortest prompt the
 * kernel takes: its block or approximation size), --sparsities a,b, --repeats N, --out FILE; the
 * paper's grid by default. A bench spreads this into its own table beside its own flags.
 */
export function kernelBenchOptions(defaultRepeats: number, minLength: number) {
  return {
    lengths: intList({ describe: 'prompt lengths', default: [16384, 32768, 65536, 131072], atLeast: minLength, noun: 'length' }),
    sparsities: sparsityList({ describe: 'target sparsities', default: [0.5, 0.8, 0.9, 0.95] }),
    repeats: int({ describe: 'timed calls per case', default: defaultRepeats, atLeast: 1, noun: 'repeat count' }),
    out: text({ describe: 'JSON report', placeholder: 'FILE' }),
  };
}

export type KernelBenchOptions = BenchOptionsOf<ReturnType<typeof kernelBenchOptions>>;

/** Host copies of a bench's inputs: q [n, H, D]; k, v [Hkv, n, D]. */
export interface HostInputs { q: Float32Array; k: Float32Array; v: Float32Array }

export interface BenchHeadShape { H: number; Hkv: number; D: number; scale: number }

/**
 * Relative error ‖got − ref‖ / ‖ref‖ over the sampled (query t, head h) rows, ref a float64 softmax
 * attention of row t over keysOf(h, t) (the keys the kernel's index selects). got: the [n, H, D] output.
 * NaN as soon as a sampled element is NaN (an unwritten, poisoned output).
 */
export function sampledRowsError(
  x: HostInputs, n: number, got: Float32Array, shape: BenchHeadShape,
  queries: number[], heads: number[], keysOf: (h: number, t: number) => number[],
): number {
  const { H, Hkv, D, scale } = shape;
  let num = 0, den = 0;
  for (const t of queries) {
    for (const h of heads) {
      const kvh = Math.floor(h / (H / Hkv));
      const keys = keysOf(h, t);
      const s = keys.map((key) => {
        let dot = 0;
        for (let d = 0; d < D; d++) dot += x.q[(t * H + h) * D + d] * x.k[(kvh * n + key) * D + d];
        return dot * scale;
      });
      const mx = Math.max(...s);
      const w = s.map((y) => Math.exp(y - mx));
      const z = w.reduce((a, b) => a + b, 0);
      for (let d = 0; d < D; d++) {
        let ref = 0;
        keys.forEach((key, i) => { ref += (w[i] / z) * x.v[(kvh * n + key) * D + d]; });
        const o = got[(t * H + h) * D + d];
        if (Number.isNaN(o)) return NaN;
        num += (o - ref) ** 2;
        den += ref ** 2;
      }
    }
  }
  return Math.sqrt(num / den);
}

/** Random bf16 words in [-amp, amp), generated in blocks so multi-GB inputs stay cheap to make. */
export function randomBf16Words(count: number, seed: number, amp: number): Uint16Array {
  const words = new Uint16Array(count);
  const block = new Float32Array(Math.min(count, 1 << 20));
  let s = seed >>> 0;
  for (let i = 0; i < block.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    block[i] = ((s / 4294967296) * 2 - 1) * amp;
  }
  const bits = toBf16(block);
  // Repeat the random block with a shifting offset: no two rows nearby are equal, and no zeros.
  for (let i = 0; i < count; i += bits.length) {
    const n = Math.min(bits.length, count - i);
    const shift = (i / bits.length) * 977 % bits.length;
    for (let j = 0; j < n; j++) words[i + j] = bits[(j + shift) % bits.length];
  }
  return words;
}

export function upload(rt: CudaRuntime, words: Uint16Array): DeviceBuffer {
  const b = rt.pool.acquire(words.byteLength);
  rt.cuda.upload(b.ptr, words);
  return b;
}
