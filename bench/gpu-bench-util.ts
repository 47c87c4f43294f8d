/**
 * Shared by the kernel benchmarks: the prefill ones' command line and host check of sampled output
 * rows against a float64 softmax (bench/block-sparse.ts, bench/vertical-slash.ts), and random bf16
 * inputs uploaded to the device (bench/attention.ts, bench/sparse-decode.ts).
 */
import { toBf16 } from '../src/backends/cuda/bf16.js';
import type { DeviceBuffer } from '../src/backends/cuda/memory-pool.js';
import type { CudaRuntime } from '../src/backends/cuda/runtime.js';

export interface KernelBenchOptions { lengths: number[]; sparsities: number[]; repeats: number; out: string | null }

/**
 * [--lengths a,b] [--sparsities a,b] [--repeats N] [--out FILE]; the paper's grid by default.
 * minLength: the shortest prompt the kernel takes (its block or approximation size).
 */
export function parseKernelBenchArgs(argv: string[], defaultRepeats: number, minLength: number): KernelBenchOptions {
  const o: KernelBenchOptions = { lengths: [16384, 32768, 65536, 131072], sparsities: [0.5, 0.8, 0.9, 0.95], repeats: defaultRepeats, out: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    const numbers = (s: string): number[] => s.split(',').map(Number);
    if (a === '--lengths') o.lengths = numbers(next());
    else if (a === '--sparsities') o.sparsities = numbers(next());
    else if (a === '--repeats') o.repeats = Number(next());
    else if (a === '--out') o.out = next();
    else throw new Error(`unknown argument ${a}`);
  }
  if (o.lengths.some((n) => !Number.isInteger(n) || n < minLength)) throw new Error(`--lengths: integers >= ${minLength}`);
  if (o.sparsities.some((s) => !(s >= 0 && s < 1))) throw new Error('--sparsities: values in [0, 1)');
  if (!(Number.isInteger(o.repeats) && o.repeats > 0)) throw new Error('--repeats: a positive integer');
  return o;
}

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
