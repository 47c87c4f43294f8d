/**
 * End-to-end GPU model benchmark: prefill tokens/s (one prompt of n tokens, one forward, logits of the
 * last token, greedy argmax on the device) and decode tokens/s (one token per step after a prompt of
 * n tokens, argmax on the device, the id back to the host each step), for a Llama-3.1-8B-shaped and a
 * Qwen2.5-7B-shaped model with random bf16 weights made on the device (no 16 GB files).
 * Validates first: no NaN in the logits, and the same prompt prefilled whole and in chunks gives the
 * same last-token logits (relative L2 < VALIDATION_REL_L2; the argmax agreement is reported).
 * Floors: prefill FLOPs (2 · linear parameters · n + causal attention 4·H·D·n(n+1)/2 per layer) at the
 * bf16 tensor-core peak; decode bytes (every weight once + the KV cache) at the HBM bandwidth.
 * Writes the configs (HF config.json, transformers 5 dialect) to --config-dir for the HF peer
 * (tools/peers/hf_model.py), and a JSON report to --out.
 *
 * Usage: npm run bench -- model [--shapes llama3.1-8b,qwen2.5-7b] [--lengths 4096,16384]
 *        [--decode-steps 32] [--repeats 2] [--out FILE] [--config-dir DIR] (--help: MODEL_BENCH_ARGS below)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cudaUnavailableReason, isCudaAvailable } from '../src/backends/cuda/availability.js';
import { CudaTransformerModel } from '../src/backends/cuda/model.js';
import { CudaRuntime } from '../src/backends/cuda/runtime.js';
import { RandomWeightSource } from '../src/backends/cuda/weight-source.js';
import { parseModelConfig } from '../src/engine/config.js';
import type { ModelConfig } from '../src/engine/model-config.js';
import { linearParameterCount } from '../src/engine/model.js';
import { type BenchOptionsOf, defineBenchArgs, int, intList, labels, text } from './bench-args.js';
import { benchEntry, runIfDirect } from './bench-run.js';

const PEAK_TFLOPS = 990;
const PEAK_TBPS = 3.35;
const DECODE_WARMUP = 2;
/**
 * Whole vs chunked prefill of the same prompt: bf16 rounding in a different order (other GEMM shapes
 * and attention tilings) grows through 28-32 random layers; 1.5e-2 was seen on an H100.
 */
const VALIDATION_REL_L2 = 5e-2;

/** HF config.json of each benchmarked shape (the published models' sizes; weights are random). */
export const MODEL_SHAPES: Record<string, Record<string, unknown>> = {
  'llama3.1-8b': {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: 128256, hidden_size: 4096, intermediate_size: 14336,
    num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 8, head_dim: 128, max_position_embeddings: 131072,
    rms_norm_eps: 1e-5, tie_word_embeddings: false, hidden_act: 'silu', attention_bias: false, mlp_bias: false,
    bos_token_id: 128000, eos_token_id: 128001, dtype: 'bfloat16',
    rope_parameters: { rope_type: 'llama3', rope_theta: 500000, factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
  },
  'qwen2.5-7b': {
    architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', vocab_size: 152064, hidden_size: 3584, intermediate_size: 18944,
    num_hidden_layers: 28, num_attention_heads: 28, num_key_value_heads: 4, max_position_embeddings: 32768,
    rms_norm_eps: 1e-6, tie_word_embeddings: false, hidden_act: 'silu', use_sliding_window: false, sliding_window: null,
    max_window_layers: 28, layer_types: Array(28).fill('full_attention'), bos_token_id: 151643, eos_token_id: 151643, dtype: 'bfloat16',
    rope_parameters: { rope_type: 'default', rope_theta: 1000000 },
  },
};

/** The command line (`--help` prints it). */
export const MODEL_BENCH_ARGS = defineBenchArgs('bench model', 'CUDA whole model with random bf16 weights: prefill / decode tokens/s of 7-8B shapes (GPU only).', {
  shapes: labels({ describe: 'model shapes', choices: Object.keys(MODEL_SHAPES), default: Object.keys(MODEL_SHAPES) }),
  lengths: intList({ describe: 'prompt lengths', default: [4096, 16384], atLeast: 1, noun: 'length' }),
  'decode-steps': int({ describe: 'tokens decoded after each prompt', default: 32, atLeast: 1, noun: 'step count' }),
  repeats: int({ describe: 'timed prefills per length (after one warm-up)', default: 2, atLeast: 1, noun: 'repeat count' }),
  out: text({ describe: 'JSON report', placeholder: 'FILE' }),
  'config-dir': text({ describe: 'HF config.json of each shape, for tools/peers/hf_model.py', placeholder: 'DIR' }),
});

export type ModelBenchOptions = BenchOptionsOf<typeof MODEL_BENCH_ARGS.table>;

export function parseModelBenchArgs(argv: string[]): ModelBenchOptions {
  return MODEL_BENCH_ARGS.parse(argv);
}

export function prefillFlops(c: ModelConfig, n: number): number {
  const attention = c.numLayers * 4 * c.numHeads * c.headDim * (n * (n + 1)) / 2;
  return 2 * linearParameterCount(c) * n + attention;
}

/** Bytes one decode step must read at context n: every weight matrix once plus the KV cache. */
export function decodeBytes(c: ModelConfig, n: number): number {
  return 2 * linearParameterCount(c) + c.numLayers * 2 * c.numKvHeads * n * c.headDim * 2;
}

function promptOf(n: number, vocab: number, seed: number): number[] {
  return Array.from({ length: n }, (_, i) => (Math.imul(i + 1, 2654435761) ^ seed) >>> 0).map((x) => x % vocab);
}

const seconds = (): number => performance.now() / 1000;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

interface ShapeResult {
  shape: string;
  weightGiB: number;
  loadSeconds: number;
  validation: { relL2: number; argmaxEqual: boolean };
  prefill: { n: number; seconds: number; tokensPerSecond: number; floorSeconds: number; tflops: number }[];
  decode: {
    context: number; steps: number; seconds: number; tokensPerSecond: number; floorTokensPerSecond: number;
    /** The same steps launched kernel by kernel from the host (no CUDA graph). */
    eagerSeconds: number; eagerTokensPerSecond: number;
    /** Whether the timed steps replayed a captured graph; if not, why. */
    graph: boolean; graphFailure: string | null;
  }[];
}

function downloadLogits(model: CudaTransformerModel, buf: { ptr: bigint }): Float32Array {
  model.rt.synchronize();
  const out = new Float32Array(model.config.vocabSize);
  model.rt.cuda.download(out, buf.ptr);
  return out;
}

function validate(model: CudaTransformerModel): { relL2: number; argmaxEqual: boolean } {
  const prompt = promptOf(600, model.config.vocabSize, 5);
  const run = (chunk: number) => {
    const seq = model.newSequence(prompt.length);
    const buf = model.prefill(seq, prompt, chunk);
    const logits = downloadLogits(model, buf);
    const id = model.argmaxRows(buf)[0];
    model.rt.pool.release(buf);
    seq.release();
    return { logits, id };
  };
  const whole = run(prompt.length), chunked = run(256);
  let num = 0, den = 0, nan = 0;
  for (let i = 0; i < whole.logits.length; i++) {
    if (Number.isNaN(whole.logits[i]) || Number.isNaN(chunked.logits[i])) nan++;
    num += (whole.logits[i] - chunked.logits[i]) ** 2;
    den += whole.logits[i] ** 2;
  }
  if (nan > 0) throw new Error(`validation: ${nan} NaN logits`);
  const relL2 = Math.sqrt(num / den);
  if (!(relL2 < VALIDATION_REL_L2)) throw new Error(`validation: whole vs chunked prefill logits differ by ${relL2} (rel L2)`);
  return { relL2, argmaxEqual: whole.id === chunked.id };
}

function benchShape(rt: CudaRuntime, name: string, o: ModelBenchOptions): ShapeResult {
  const config = parseModelConfig(MODEL_SHAPES[name], name);
  const t0 = seconds();
  const model = new CudaTransformerModel(rt, config, new RandomWeightSource(rt, 1234, { normMean: 1, hasLmHead: !config.tieWordEmbeddings }));
  rt.synchronize();
  const loadSeconds = seconds() - t0;
  const weightGiB = model.weightBytes / 2 ** 30;
  console.log(`${name}: ${weightGiB.toFixed(2)} GiB of bf16 weights made on the device in ${loadSeconds.toFixed(2)} s`);
  const validation = validate(model);
  console.log(`${name}: validation whole vs chunked prefill rel L2 ${validation.relL2.toExponential(2)}, argmax equal ${validation.argmaxEqual}`);
  const result: ShapeResult = { shape: name, weightGiB, loadSeconds, validation, prefill: [], decode: [] };
  for (const n of o.lengths) {
    const prompt = promptOf(n, config.vocabSize, n);
    const times: number[] = [];
    for (let r = 0; r <= o.repeats; r++) {
      const seq = model.newSequence(n + 2 * (DECODE_WARMUP + o.decodeSteps) + 1);
      const s0 = seconds();
      const logits = model.prefill(seq, prompt, n);
      let next = model.argmaxRows(logits)[0]; // waits for the device
      const s1 = seconds();
      rt.pool.release(logits);
      if (r > 0) times.push(s1 - s0); // run 0 warms up (kernel loads, cuBLAS heuristics, pool)
      if (r === o.repeats) {
        // Decode steps as generation runs them (a graph replay per step where the model can capture
        // one), then the same number launched kernel by kernel; each after untimed warm-up steps
        // (capture, decode kernels load, cuBLAS picks its T = 1 algorithms), as the peer does.
        const timeSteps = (graph: boolean): number => {
          model.useDecodeGraph = graph;
          for (let step = 0; step < DECODE_WARMUP; step++) next = model.decodeGreedy(seq, next);
          const d0 = seconds();
          for (let step = 0; step < o.decodeSteps; step++) next = model.decodeGreedy(seq, next);
          return seconds() - d0;
        };
        const dt = timeSteps(true);
        const graph = model.useDecodeGraph && model.decodeGraphFailure === null && model.decodeGraphUnsupported === null;
        const eager = timeSteps(false);
        model.useDecodeGraph = true;
        const floorStep = decodeBytes(config, n + o.decodeSteps / 2) / (PEAK_TBPS * 1e12);
        result.decode.push({
          context: n, steps: o.decodeSteps, seconds: dt, tokensPerSecond: o.decodeSteps / dt, floorTokensPerSecond: 1 / floorStep,
          eagerSeconds: eager, eagerTokensPerSecond: o.decodeSteps / eager, graph, graphFailure: model.decodeGraphFailure ?? model.decodeGraphUnsupported,
        });
      }
      rt.synchronize();
      seq.release();
    }
    const s = median(times);
    const flops = prefillFlops(config, n);
    result.prefill.push({ n, seconds: s, tokensPerSecond: n / s, floorSeconds: flops / (PEAK_TFLOPS * 1e12), tflops: flops / s / 1e12 });
    const p = result.prefill.at(-1)!, d = result.decode.at(-1)!;
    console.log(`${name} n=${n}: prefill ${p.seconds.toFixed(3)} s, ${p.tokensPerSecond.toFixed(0)} tok/s, ${p.tflops.toFixed(0)} TFLOP/s (floor ${p.floorSeconds.toFixed(3)} s); ` +
      `decode ${d.tokensPerSecond.toFixed(1)} tok/s over ${d.steps} steps (${d.graph ? 'graph' : `no graph: ${d.graphFailure}`}; ` +
      `eager ${d.eagerTokensPerSecond.toFixed(1)} tok/s; floor ${d.floorTokensPerSecond.toFixed(0)} tok/s)`);
  }
  model.dispose();
  rt.pool.trim();
  return result;
}

export async function main(argv: string[]): Promise<number> {
  // Parsed first: a bad option (or --help) is answered without a GPU.
  const o = parseModelBenchArgs(argv);
  if (!isCudaAvailable()) {
    console.log(`model benchmark skipped: no CUDA device here (${cudaUnavailableReason()})`);
    return 0;
  }
  if (o.configDir) {
    for (const s of o.shapes) {
      mkdirSync(join(o.configDir, s), { recursive: true });
      writeFileSync(join(o.configDir, s, 'config.json'), JSON.stringify(MODEL_SHAPES[s], null, 2));
    }
  }
  const rt = new CudaRuntime();
  console.log(`device: ${rt.cuda.info.name} (${rt.cuda.info.arch}, ${rt.cuda.info.multiprocessors} SMs)`);
  const results = o.shapes.map((s) => benchShape(rt, s, o));
  if (o.out) writeFileSync(o.out, JSON.stringify({ device: rt.cuda.info, peaks: { tflops: PEAK_TFLOPS, tbps: PEAK_TBPS }, results, compile: rt.compileStats }, null, 2));
  rt.dispose();
  return 0;
}

/** Entry for bench/main.ts (`npm run bench -- model [args]`). */
export const runModelBench = benchEntry(main);

runIfDirect(import.meta.url, main);
