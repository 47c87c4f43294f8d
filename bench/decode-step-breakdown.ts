/**
 * Where a whole-model decode step's time goes (Llama-3.1-8B / Qwen2.5-7B shapes, random bf16 weights made
 * on the device, dense attention over n cached rows of random K/V). Each kind of node of the captured step
 * (model.ts STEP_NODE_KINDS: the GEMMs, attention, RMSNorm, residual add, RoPE, K/V append, the gated
 * activation, argmax, ...) is captured alone, every layer's nodes of that kind in one graph over the
 * step's own shapes and the sequence's caches, and the graph is replayed under events: its time is what
 * those nodes cost back to back, launch gaps and tails included. Beside them: the whole captured step
 * replayed under events (device only), the same step as generation runs it (decodeGreedy: graph launch,
 * stream sync and the id read back each step), a graph of as many empty nodes as the step has (what a
 * node costs doing nothing), and the byte floor (weights + K/V at 3.35 TB/s).
 * GEMM and attention rows also give bytes / time against 3.35 TB/s.
 *
 * Usage: npm run bench -- decode-step-breakdown [--shapes llama3.1-8b,qwen2.5-7b] [--contexts 4096]
 *        [--repeats 20] [--steps 32] [--out FILE]
 * Lines starting with "S " (totals) and "S2 " (per-kind detail) are the short summary (round scripts grep them).
 */
import { writeFileSync } from 'node:fs';
import { cudaUnavailableReason, isCudaAvailable } from '../src/backends/cuda/availability.js';
import { ModelOpsKernels } from '../src/backends/cuda/kernels/model-ops.js';
import { CudaTransformerModel, STEP_NODE_KINDS, type CudaSequence, type StepNodeKind } from '../src/backends/cuda/model.js';
import { CudaRuntime } from '../src/backends/cuda/runtime.js';
import { timeOnDevice } from '../src/backends/cuda/timing.js';
import { RandomWeightSource } from '../src/backends/cuda/weight-source.js';
import { parseModelConfig } from '../src/engine/config.js';
import type { ModelConfig } from '../src/engine/model-config.js';
import { type BenchOptionsOf, defineBenchArgs, int, intList, labels, text } from './bench-args.js';
import { benchEntry, runIfDirect } from './bench-run.js';
import { MODEL_SHAPES, decodeBytes } from './model.js';

const PEAK_TBPS = 3.35;
const WARMUP = 2;

/** The model settings a variant turns on (CudaTransformerModel's opt-in fields), every other one off. */
const VARIANT_SETTINGS = {
  default: { gemvForOneToken: true },
  cublas: {},
  gemv: { gemvForOneToken: true },
  fused: { fuseSmallNodes: true, gemvForOneToken: true },
  'fused-gemv-pdl': { fuseSmallNodes: true, gemvForOneToken: true, programmaticGemv: true },
  deep: { gemvForOneToken: true, deepGemvLoads: true },
  'fused-gemv-pdl-deep': { fuseSmallNodes: true, gemvForOneToken: true, programmaticGemv: true, deepGemvLoads: true },
  fold: { fuseSmallNodes: true, gemvForOneToken: true, foldIntoGemv: true },
  'fold-pdl': { fuseSmallNodes: true, gemvForOneToken: true, foldIntoGemv: true, programmaticGemv: true },
  'fold-deep': { gemvForOneToken: true, foldIntoGemv: true, deepGemvLoads: true },
  'fold-pdl-deep': { fuseSmallNodes: true, gemvForOneToken: true, foldIntoGemv: true, programmaticGemv: true, deepGemvLoads: true },
} as const satisfies Record<string, Partial<Record<ModelSetting, true>>>;
type ModelSetting = 'fuseSmallNodes' | 'gemvForOneToken' | 'programmaticGemv' | 'foldIntoGemv' | 'deepGemvLoads';
const MODEL_SETTINGS: readonly ModelSetting[] = ['fuseSmallNodes', 'gemvForOneToken', 'programmaticGemv', 'foldIntoGemv', 'deepGemvLoads'];
export type DecodeVariant = keyof typeof VARIANT_SETTINGS;
const VARIANT_MEANING: Record<DecodeVariant, string> = {
  default: "the model's defaults (gemvForOneToken)",
  cublas: 'the T = 1 GEMMs through cuBLAS, separate small kernels (the default before session 10)',
  gemv: 'gemvForOneToken alone (the default since session 10; foldIntoGemv was on between its round 2 and its final GPU suite)',
  fused: 'gemv and fuseSmallNodes: add+RMSNorm, bias+RoPE+K/V append',
  'fused-gemv-pdl': 'fused and programmaticGemv',
  deep: 'gemv with deepGemvLoads: twice the weight loads in flight per GEMV thread',
  'fused-gemv-pdl-deep': 'fused-gemv-pdl and deep',
  fold: 'fused with foldIntoGemv: norms, residual adds and the gated activation inside the GEMVs',
  'fold-pdl': 'fold and programmaticGemv',
  'fold-deep': 'fold and deep',
  'fold-pdl-deep': 'fold-pdl and deep',
};

/** Sets the model's decode-path fields for a variant (every one not named off). */
function applyVariant(model: CudaTransformerModel, variant: DecodeVariant): void {
  const on: Partial<Record<ModelSetting, true>> = VARIANT_SETTINGS[variant];
  for (const k of MODEL_SETTINGS) model[k] = on[k] === true;
}

export const DECODE_BREAKDOWN_ARGS = defineBenchArgs('bench decode-step-breakdown', 'CUDA whole-model decode step taken apart by node kind (GPU only).', {
  shapes: labels({ describe: 'model shapes', choices: Object.keys(MODEL_SHAPES), default: Object.keys(MODEL_SHAPES) }),
  contexts: intList({ describe: 'prompt lengths before the timed step', default: [4096], atLeast: 1, noun: 'length' }),
  repeats: int({ describe: 'timed graph replays per measurement', default: 20, atLeast: 1, atMost: 200, noun: 'repeat count' }),
  steps: int({ describe: 'decodeGreedy steps timed on the host', default: 32, atLeast: 1, atMost: 200, noun: 'step count' }),
  variants: labels({
    describe: 'model settings, timed in this order (repeat one to bracket): ' + Object.entries(VARIANT_MEANING).map(([k, v]) => `${k} (${v})`).join('; '),
    choices: Object.keys(VARIANT_MEANING) as DecodeVariant[], default: ['default'],
  }),
  out: text({ describe: 'JSON report', placeholder: 'FILE' }),
});


/** Kernel launches one call of a kind queues (the rest: one). */
const LAUNCHES_PER_CALL: Partial<Record<StepNodeKind, number>> = { attention: 2, rope: 2, head_norm: 2 };
const GEMM_KINDS: readonly StepNodeKind[] = ['qkv_gemm', 'o_gemm', 'gate_up_gemm', 'down_gemm', 'lm_head'];
/** Short names for the one-line summary. */
const ABBREVIATION: Partial<Record<StepNodeKind, string>> = {
  embed: 'emb', norm: 'nrm', qkv_bias: 'bias', head_norm: 'hnrm', kv_append: 'app', rope_append: 'r+a', residual_add: 'add',
  add_norm: 'a+n', gated_act: 'act', softcap: 'cap', argmax: 'amax', attention: 'attn', gate_up_gemm: 'gu', down_gemm: 'dn', lm_head: 'lm',
};
const abbreviated = (kind: StepNodeKind): string => ABBREVIATION[kind] ?? kind.replace(/_gemm$/, '');

export type DecodeBreakdownOptions = BenchOptionsOf<typeof DECODE_BREAKDOWN_ARGS.table>;

/** Weight (or K/V) bytes one node of a kind reads, for the kinds that are bandwidth-bound reads; else null. */
export function nodeReadBytes(c: ModelConfig, kind: StepNodeKind, context: number): number | null {
  const hidden = c.hiddenSize, D = c.headDim, qDim = c.numHeads * D, qkvDim = qDim + 2 * c.numKvHeads * D, I = c.intermediateSize;
  switch (kind) {
    case 'qkv_gemm': return qkvDim * hidden * 2;
    case 'o_gemm': return hidden * qDim * 2;
    case 'gate_up_gemm': return 2 * I * hidden * 2;
    case 'down_gemm': return hidden * I * 2;
    case 'lm_head': return c.vocabSize * hidden * 2;
    case 'attention': return 2 * c.numKvHeads * (context + 1) * D * 2;
    default: return null;
  }
}

export interface KindTiming {
  kind: StepNodeKind;
  /** Nodes (or node groups: attention is partial + combine) of this kind in one step. */
  calls: number;
  usPerStep: number;
  usPerCall: number;
  /** Bytes read / time, TB/s, for GEMMs and attention. */
  tbps: number | null;
}

interface ContextResult {
  context: number;
  variant: DecodeVariant;
  floorMs: number;
  /** The captured step replayed back to back under events. */
  graphDeviceMs: number;
  /** decodeGreedy as generation runs it (graph launch, sync, id read back), per step. */
  hostLoopMs: number;
  kinds: KindTiming[];
  sumOfKindsMs: number;
  /** A graph of as many empty kernels as the step has nodes (attention counted as partial + combine): µs per node. */
  emptyNodeUs: number;
  emptyNodes: number;
}

/**
 * n cached rows of random K/V in every layer, as if a prompt of n tokens had been prefilled: decode's
 * cost depends on the length only, and this keeps the prefill kernels (and their compiles) out.
 */
function fillContext(rt: CudaRuntime, seq: CudaSequence, n: number, seed: number): void {
  const ops = new ModelOpsKernels(rt);
  seq.caches.forEach((cache, l) => {
    const elements = cache.numKvHeads * cache.capacity * cache.headDim;
    ops.fillUniform({ x: cache.keys.ptr, n: elements, seed: seed + 2 * l, mean: 0, halfWidth: 1 });
    ops.fillUniform({ x: cache.values.ptr, n: elements, seed: seed + 2 * l + 1, mean: 0, halfWidth: 1 });
    cache.length = n;
  });
  seq.position = n;
  rt.synchronize();
}

/** µs per node of a graph of `nodes` empty kernels (one-thread increments of a scratch int). */
function timeEmptyNodes(rt: CudaRuntime, nodes: number, repeats: number): number {
  const ops = new ModelOpsKernels(rt);
  const slot = rt.pool.acquire(16);
  try {
    const exec = rt.cuda.captureGraph(rt.stream, () => {
      for (let i = 0; i < nodes; i++) ops.advancePosition(slot.ptr);
    });
    try {
      return (timeOnDevice(rt, () => rt.cuda.launchGraph(exec, rt.stream), { warmup: WARMUP, repeats }).medianMs * 1e3) / nodes;
    } finally {
      rt.synchronize();
      rt.cuda.destroyGraph(exec);
    }
  } finally {
    rt.pool.release(slot);
  }
}

/** One kind's nodes alone (every layer's), replayed: µs per step and the node count; null if the step has none. */
function timeKind(model: CudaTransformerModel, seq: CudaSequence, token: number, kind: StepNodeKind, repeats: number): { us: number; calls: number } | null {
  let calls = 0;
  const graph = model.captureDecodeStepSubset(seq, (k) => {
    if (k !== kind) return false;
    calls++;
    return true;
  });
  try {
    if (calls === 0) return null;
    graph.step(token, seq.position);
    const t = timeOnDevice(model.rt, () => graph.replayAsync(), { warmup: WARMUP, repeats });
    return { us: t.medianMs * 1e3, calls };
  } finally {
    graph.dispose();
  }
}

function benchContext(rt: CudaRuntime, model: CudaTransformerModel, n: number, variant: DecodeVariant, o: DecodeBreakdownOptions): ContextResult {
  const c = model.config;
  applyVariant(model, variant);
  // Room for the prompt, the warm-up and timed host steps, and the full graph's replays (each advances the position).
  const seq = model.newSequence(n + 2 * WARMUP + o.steps + 2 * (WARMUP + o.repeats) + 8);
  try {
    fillContext(rt, seq, n, 77);
    let next = 1;
    for (let i = 0; i < WARMUP; i++) next = model.decodeGreedy(seq, next);
    if (seq.decodeGraph === null) throw new Error(`decode step not captured: ${model.decodeGraphFailure ?? model.decodeGraphUnsupported}`);
    const hostTimes: number[] = [];
    for (let i = 0; i < o.steps; i++) {
      const t0 = performance.now();
      next = model.decodeGreedy(seq, next);
      hostTimes.push(performance.now() - t0);
    }
    const hostLoopMs = hostTimes.reduce((a, b) => a + b, 0) / o.steps;
    const full = seq.decodeGraph;
    // The device position runs ahead of seq.position during these replays; the next step() rewrites it.
    const graphDeviceMs = timeOnDevice(rt, () => full.replayAsync(), { warmup: WARMUP, repeats: o.repeats }).medianMs;
    rt.synchronize();

    const kinds: KindTiming[] = [];
    for (const kind of STEP_NODE_KINDS) {
      if (kind === 'advance_position') continue; // one one-thread node; the empty-node row prices it
      const t = timeKind(model, seq, next, kind, o.repeats);
      if (t === null) continue;
      const bytes = nodeReadBytes(c, kind, n);
      kinds.push({ kind, calls: t.calls, usPerStep: t.us, usPerCall: t.us / t.calls, tbps: bytes === null ? null : (bytes * t.calls) / (t.us * 1e-6) / 1e12 });
    }
    // Kernel nodes of the step: attention is two (split-K partial + combine), the rest one each, plus advance_position.
    const emptyNodes = kinds.reduce((s, k) => s + (LAUNCHES_PER_CALL[k.kind] ?? 1) * k.calls, 0) + 1;
    const emptyNodeUs = timeEmptyNodes(rt, emptyNodes, o.repeats);
    const floorMs = (decodeBytes(c, n) / (PEAK_TBPS * 1e12)) * 1e3;
    return { context: n, variant, floorMs, graphDeviceMs, hostLoopMs, kinds, sumOfKindsMs: kinds.reduce((s, k) => s + k.usPerStep, 0) / 1e3, emptyNodeUs, emptyNodes };
  } finally {
    rt.synchronize();
    seq.release();
    applyVariant(model, 'default');
  }
}

function printContext(name: string, r: ContextResult): void {
  console.log(`${name} n=${r.context} ${r.variant}: step ${r.graphDeviceMs.toFixed(3)} ms on the device (graph replays), ${r.hostLoopMs.toFixed(3)} ms as decodeGreedy, ` +
    `floor ${r.floorMs.toFixed(3)} ms (${((r.floorMs / r.graphDeviceMs) * 100).toFixed(1)}%), kinds alone sum to ${r.sumOfKindsMs.toFixed(3)} ms; ` +
    `empty node ${r.emptyNodeUs.toFixed(2)} us x ${r.emptyNodes}`);
  console.log('| kind | calls/step | us/step | us/call | share of step | TB/s read |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
  for (const k of r.kinds) {
    console.log(`| ${k.kind} | ${k.calls} | ${k.usPerStep.toFixed(1)} | ${k.usPerCall.toFixed(2)} | ${((k.usPerStep / 1e3 / r.graphDeviceMs) * 100).toFixed(1)}% | ${k.tbps === null ? '' : k.tbps.toFixed(2)} |`);
  }
  const ms = (ks: KindTiming[]) => (ks.reduce((s, k) => s + k.usPerStep, 0) / 1e3).toFixed(3);
  const gemms = r.kinds.filter((k) => GEMM_KINDS.includes(k.kind));
  const attention = r.kinds.filter((k) => k.kind === 'attention');
  const small = r.kinds.filter((k) => !GEMM_KINDS.includes(k.kind) && k.kind !== 'attention');
  const short = (k: KindTiming) => `${abbreviated(k.kind)} ${k.tbps?.toFixed(2)}`;
  console.log(`S ${name.slice(0, 5)} ${r.context} ${r.variant}: dev ${r.graphDeviceMs.toFixed(3)} host ${r.hostLoopMs.toFixed(3)} | ` +
    `gemm ${ms(gemms)} attn ${ms(attention)} small ${ms(small)} (${small.reduce((s, k) => s + k.calls, 0)})`);
  console.log(`S2 ${name.slice(0, 5)} ${r.variant} TB/s ${[...gemms, ...attention].map(short).join(', ')}; small us ${small.map((k) => `${abbreviated(k.kind)} ${Math.round(k.usPerStep)}`).join(' ')}`);
}

export async function main(argv: string[]): Promise<number> {
  const o = DECODE_BREAKDOWN_ARGS.parse(argv);
  if (!isCudaAvailable()) {
    console.log(`decode-step-breakdown benchmark skipped: no CUDA device here (${cudaUnavailableReason()})`);
    return 0;
  }
  const rt = new CudaRuntime();
  console.log(`device: ${rt.cuda.info.name} (${rt.cuda.info.arch}, ${rt.cuda.info.multiprocessors} SMs)`);
  const results: { shape: string; contexts: ContextResult[] }[] = [];
  let failures = 0;
  for (const name of o.shapes) {
    const config = parseModelConfig(MODEL_SHAPES[name], name);
    const model = new CudaTransformerModel(rt, config, new RandomWeightSource(rt, 1234, { normMean: 1, hasLmHead: !config.tieWordEmbeddings }));
    try {
      const contexts: ContextResult[] = [];
      results.push({ shape: name, contexts });
      for (const n of o.contexts) {
        for (const v of o.variants) {
          // Printed as it comes, so a variant that fails (reported, then the run goes on) loses nothing before it.
          try {
            const t0 = performance.now();
            const r = benchContext(rt, model, n, v as DecodeVariant, o);
            console.log(`(${name} n=${n} ${v}: ${((performance.now() - t0) / 1e3).toFixed(1)} s)`);
            contexts.push(r);
            printContext(name, r);
          } catch (err) {
            failures++;
            console.log(`S ${name.slice(0, 5)} ${n} ${v}: FAILED ${(err as Error).message.slice(0, 160)}`);
          }
        }
      }
    } finally {
      model.dispose();
      rt.pool.trim();
    }
  }
  if (o.out) writeFileSync(o.out, JSON.stringify({ device: rt.cuda.info, peakTbps: PEAK_TBPS, results, compile: rt.compileStats }, null, 2));
  rt.dispose();
  return failures > 0 ? 1 : 0;
}

/** Entry for bench/main.ts (`npm run bench -- decode-step-breakdown [args]`). */
export const runDecodeBreakdownBench = benchEntry(main);

runIfDirect(import.meta.url, main);
