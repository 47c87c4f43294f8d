/**
 * CPU bench: (1) the machine's measured wasm SIMD arithmetic peak, (2) matmul GFLOP/s of each kernel
 * on linear-layer shapes, each validated against the reference first, (3) prefill and decode tokens/s
 * of a tiny llama-shaped random model at several prompt lengths with the default kernel.
 * Options (--help lists them, CPU_BENCH_ARGS below): --lengths 256,1024,4096  --decode-steps 16
 *          --kernel auto|wasm-simd|wasm-simd-threads|js-blocked  --skip-matmul  --quick (a smoke run)
 */
import { cpus, loadavg } from 'node:os';
import { BlockedJsKernel, referenceMatmul, type MatmulKernel } from '../src/backends/cpu/matmul.js';
import { WasmSimdKernel, measureWasmSimdPeak } from '../src/backends/cpu/wasm-matmul.js';
import { MATMUL_KERNELS, createMatmulKernel } from '../src/backends/cpu/kernels.js';
import type { ModelConfig } from '../src/engine/model-config.js';
import { InMemoryWeights, type WeightTensor } from '../src/engine/weights.js';
import { TransformerModel } from '../src/engine/model.js';
import { densePlan } from '../src/methods/dense.js';
import { argmax } from '../src/backends/cpu/ops.js';
import { type BenchOptionsOf, choice, defineBenchArgs, flag, int, intList } from './bench-args.js';
import { benchEntry } from './bench-run.js';

/** The command line (`--help` prints it). */
export const CPU_BENCH_ARGS = defineBenchArgs('bench cpu', 'CPU matmul kernels (GFLOP/s against the measured peak) and a tiny random model\'s prefill / decode tokens/s.', {
  lengths: intList({ describe: 'prompt lengths of the model table', default: [256, 1024, 4096], defaultText: '256,1024,4096; 64,256 with --quick', atLeast: 1, noun: 'length' }),
  'decode-steps': int({ describe: 'greedy tokens decoded after each prompt', default: 16, atLeast: 1, noun: 'step count' }),
  kernel: choice({ describe: 'matmul kernel of the model table', choices: MATMUL_KERNELS, default: 'auto' }),
  'skip-matmul': flag('leave out the matmul table'),
  quick: flag('smaller everything, for a smoke run'),
});

export type CpuBenchOptions = BenchOptionsOf<typeof CPU_BENCH_ARGS.table>;

export function parseCpuBenchArgs(args: string[]): CpuBenchOptions {
  const { options, given } = CPU_BENCH_ARGS.parseWithPresence(args);
  return { ...options, lengths: options.quick && !given.has('lengths') ? [64, 256] : options.lengths };
}

function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296 - 0.5;
  };
}

function randomArray(n: number, seed: number, scale = 1): Float32Array {
  const r = seeded(seed);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = r() * scale;
  return a;
}

/**
 * Seconds per call: the best of rounds of ≥ minSeconds/5 each over about minSeconds in all (the
 * first rounds run before V8 has tiered up JS and wasm code; the best round is the steady state).
 */
function timeIt(fn: () => void, minSeconds: number): number {
  fn();
  let best = Infinity;
  const start = performance.now();
  while ((performance.now() - start) / 1000 < minSeconds) {
    let calls = 0;
    const t0 = performance.now();
    let elapsed = 0;
    do {
      fn();
      calls++;
      elapsed = (performance.now() - t0) / 1000;
    } while (elapsed < minSeconds / 5);
    best = Math.min(best, elapsed / calls);
  }
  return best;
}

function validate(kernel: MatmulKernel, T: number, O: number, I: number): void {
  const x = randomArray(T * I, 1), w = randomArray(O * I, 2);
  const want = new Float32Array(T * O), got = new Float32Array(T * O);
  referenceMatmul(x, T, w, O, I, want);
  kernel.matmul(x, T, kernel.prepare(w.slice(), O, I), got);
  for (let i = 0; i < want.length; i++) {
    if (Math.abs(got[i] - want[i]) > 1e-4 * Math.max(1, Math.abs(want[i]))) {
      throw new Error(`${kernel.name} disagrees with the reference at [${T},${O},${I}] index ${i}: ${got[i]} vs ${want[i]}`);
    }
  }
}

function matmulTable(quick: boolean, peak: number): void {
  const shapes: [string, number, number, number][] = quick
    ? [['decode 1×512→512', 1, 512, 512], ['prefill 64×512→1536', 64, 1536, 512]]
    : [
        ['decode  T=1   512→1536', 1, 1536, 512],
        ['decode  T=1   2048→2048', 1, 2048, 2048],
        ['batch   T=8   2048→2048', 8, 2048, 2048],
        ['prefill T=64  512→1536', 64, 1536, 512],
        ['prefill T=256 1024→1024', 256, 1024, 1024],
        ['prefill T=256 2048→2048', 256, 2048, 2048],
      ];
  const minSeconds = quick ? 0.1 : 0.4;
  console.log('\nmatmul y[T,O] = x[T,I]·W[O,I]ᵀ (GFLOP/s = 2·T·O·I / time; each kernel validated first)');
  const threads = cpus().length;
  const kernels: MatmulKernel[] = [new BlockedJsKernel(), new WasmSimdKernel()];
  if (threads > 1) kernels.push(new WasmSimdKernel({ threads }));
  console.log(
    `${'shape'.padEnd(26)}${'naive'.padStart(8)}${'js-blocked'.padStart(12)}${'wasm-simd'.padStart(11)}${'wasm/js'.padStart(9)}${'% peak'.padStart(8)}` +
      (threads > 1 ? `${`wasm×${threads}`.padStart(10)}${`×${threads}/×1`.padStart(8)}${'% peak'.padStart(8)}` : ''),
  );
  for (const [label, T, O, I] of shapes) {
    const flops = 2 * T * O * I;
    const x = randomArray(T * I, 3), w = randomArray(O * I, 4), out = new Float32Array(T * O);
    const naive = T <= 8 ? flops / timeIt(() => referenceMatmul(x, T, w, O, I, out), minSeconds) / 1e9 : NaN;
    const rates: number[] = [];
    for (const kernel of kernels) {
      validate(kernel, Math.min(T, 5), Math.min(O, 37), I);
      const m = kernel.prepare(w, O, I);
      rates.push(flops / timeIt(() => kernel.matmul(x, T, m, out), minSeconds) / 1e9);
    }
    const [js, wasm, multi] = rates;
    console.log(
      `${label.padEnd(26)}${(Number.isNaN(naive) ? '-' : naive.toFixed(2)).padStart(8)}${js.toFixed(2).padStart(12)}${wasm.toFixed(2).padStart(11)}` +
        `${(wasm / js).toFixed(1).padStart(8)}×${((100 * wasm) / peak).toFixed(0).padStart(7)}%` +
        (multi === undefined ? '' : `${multi.toFixed(2).padStart(10)}${(multi / wasm).toFixed(2).padStart(7)}×${((100 * multi) / (threads * peak)).toFixed(0).padStart(7)}%`),
    );
  }
}

/** A llama-shaped random model: hidden 512, 4 layers, 8 heads of 64, 4 KV heads, MLP 1536, vocab 8192. */
export function benchModelConfig(quick: boolean): ModelConfig {
  const numLayers = quick ? 2 : 4;
  return {
    architecture: 'llama', hfArchitecture: 'LlamaForCausalLM',
    vocabSize: quick ? 2048 : 8192, hiddenSize: 512, intermediateSize: 1536, numLayers,
    numHeads: 8, numKvHeads: 4, headDim: 64, maxPositionEmbeddings: 131072, rmsNormEps: 1e-5,
    tieWordEmbeddings: false, attentionBias: false, qkNorm: false, normPlusOne: false, sandwichNorms: false,
    embeddingScale: 1, mlpActivation: 'silu', attentionScale: 1 / 8, finalLogitSoftcap: null, attnLogitSoftcap: null,
    layerTypes: Array.from({ length: numLayers }, () => 'full' as const), slidingWindow: null,
    rope: { theta: 500000, scaling: { kind: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 } },
    ropeLocal: { theta: 500000, scaling: { kind: 'none' } },
    bosTokenId: 1, eosTokenIds: [2], torchDtype: 'float32',
  };
}

function benchWeights(c: ModelConfig): InMemoryWeights {
  const t = new Map<string, WeightTensor>();
  let seed = 10;
  const put = (name: string, shape: number[], scale: number, offset = 0) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = randomArray(n, seed++, 2 * scale);
    if (offset) for (let i = 0; i < n; i++) data[i] += offset;
    t.set(name, { shape, data });
  };
  const h = c.hiddenSize, D = c.headDim;
  put('model.embed_tokens.weight', [c.vocabSize, h], 1);
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}`;
    put(`${p}.input_layernorm.weight`, [h], 0.1, 1);
    put(`${p}.post_attention_layernorm.weight`, [h], 0.1, 1);
    put(`${p}.self_attn.q_proj.weight`, [c.numHeads * D, h], 1 / Math.sqrt(h));
    put(`${p}.self_attn.k_proj.weight`, [c.numKvHeads * D, h], 1 / Math.sqrt(h));
    put(`${p}.self_attn.v_proj.weight`, [c.numKvHeads * D, h], 1 / Math.sqrt(h));
    put(`${p}.self_attn.o_proj.weight`, [h, c.numHeads * D], 1 / Math.sqrt(h));
    put(`${p}.mlp.gate_proj.weight`, [c.intermediateSize, h], 1 / Math.sqrt(h));
    put(`${p}.mlp.up_proj.weight`, [c.intermediateSize, h], 1 / Math.sqrt(h));
    put(`${p}.mlp.down_proj.weight`, [h, c.intermediateSize], 1 / Math.sqrt(c.intermediateSize));
  }
  put('model.norm.weight', [h], 0.1, 1);
  put('lm_head.weight', [c.vocabSize, h], 1 / Math.sqrt(h));
  return new InMemoryWeights(t);
}

/** Linear FLOPs per token (2 · non-embedding params, lm_head included) and attention FLOPs. */
function flopModel(c: ModelConfig) {
  const h = c.hiddenSize, D = c.headDim;
  const perLayer = h * c.numHeads * D * 2 + 2 * h * c.numKvHeads * D + 3 * h * c.intermediateSize;
  const linearPerToken = 2 * (c.numLayers * perLayer + c.vocabSize * h);
  const linearNoHead = 2 * c.numLayers * perLayer;
  return {
    linearPerToken,
    linearNoHead,
    /** Dense causal prefill attention: QKᵀ and PV over the triangle, ≈ 2·L·H·D·n². */
    prefillAttention: (n: number) => 2 * c.numLayers * c.numHeads * D * n * (n + 1),
    /** One decode step at context n: 4·L·H·D·n. */
    decodeAttention: (n: number) => 4 * c.numLayers * c.numHeads * D * n,
  };
}

function modelTable(opts: CpuBenchOptions): void {
  const c = benchModelConfig(opts.quick);
  const model = new TransformerModel(c, benchWeights(c), { kernel: createMatmulKernel(opts.kernel) });
  const f = flopModel(c);
  console.log(
    `\ntiny llama-shaped model: hidden ${c.hiddenSize}, ${c.numLayers} layers, ${c.numHeads} heads × ${c.headDim} (${c.numKvHeads} KV), ` +
      `MLP ${c.intermediateSize}, vocab ${c.vocabSize}; kernel ${model.kernel.name}; prefill chunk 512; dense attention`,
  );
  console.log(`${'n'.padStart(6)}${'prefill tok/s'.padStart(15)}${'prefill GFLOP/s'.padStart(17)}${'attn share'.padStart(12)}${'decode tok/s'.padStart(14)}${'decode GFLOP/s'.padStart(16)}`);
  const plan = densePlan();
  for (const n of opts.lengths) {
    const prompt = Array.from({ length: n }, (_, i) => (i * 7919 + 13) % c.vocabSize);
    const state = model.newSequence(plan);
    const t0 = performance.now();
    let logits = model.prefill(state, prompt, plan, 512);
    const prefillS = (performance.now() - t0) / 1000;
    const t1 = performance.now();
    for (let s = 0; s < opts.decodeSteps; s++) [logits] = model.decodeStep([state], [argmax(logits)], plan);
    const decodeS = (performance.now() - t1) / 1000;
    const prefillFlops = f.linearNoHead * n + f.linearPerToken - f.linearNoHead + f.prefillAttention(n);
    let decodeFlops = 0;
    for (let s = 0; s < opts.decodeSteps; s++) decodeFlops += f.linearPerToken + f.decodeAttention(n + s + 1);
    console.log(
      `${String(n).padStart(6)}${(n / prefillS).toFixed(0).padStart(15)}${(prefillFlops / prefillS / 1e9).toFixed(2).padStart(17)}` +
        `${((100 * f.prefillAttention(n)) / prefillFlops).toFixed(0).padStart(11)}%` +
        `${(opts.decodeSteps / decodeS).toFixed(1).padStart(14)}${(decodeFlops / decodeS / 1e9).toFixed(2).padStart(16)}`,
    );
  }
}

function main(args: string[]): void {
  const opts = parseCpuBenchArgs(args);
  const cpu = cpus()[0];
  console.log(`CPU bench on ${cpus().length}× ${cpu?.model ?? 'unknown CPU'}, Node ${process.version}; load average ${loadavg()[0].toFixed(2)}`);
  console.log(`('% peak': against the measured one-core peak below; for the threaded kernel against cores × that)`);
  const peak = measureWasmSimdPeak(opts.quick ? 0.2 : 0.5);
  console.log(`measured wasm SIMD peak (f32x4 mul+add chains in registers, one core): ${peak.toFixed(1)} GFLOP/s`);
  if (!opts.skipMatmul) matmulTable(opts.quick, peak);
  modelTable(opts);
  // Other processes on the machine slow every number above; the load average says how busy it was.
  console.log(`\nload average at the end (1/5/15 min): ${loadavg().map((l) => l.toFixed(2)).join(' / ')} on ${cpus().length} cores`);
}

/** Entry for bench/main.ts (`npm run bench -- cpu [args]`). */
export const runCpuBench = benchEntry(main);
