/**
 * What a first run with `--backend cuda` pays before its first token: each GPU method's kernels compiled by NVRTC from
 * an empty disk cache (src/backends/cuda/compile-cache.ts), against the same kernels loaded from that cache by a second
 * runtime. Llama-3.1-8B attention shape (H 32, Hkv 8, D 128), random bf16 q / K / V.
 *
 * Per method (its own cache folder under --cache, so no method finds another's modules), twice: cold (the folder
 * empty) and cached (a fresh runtime on the same folder). Each pass times the method's first call end to end: create,
 * the first prefill (or afterPrefill and the first decode step) and a synchronise; and every module request inside it
 * (file, defines, compiled or loaded, wall ms, the cubin's entry count). The inputs are made before the clock starts
 * (model-ops.cu's fill: listed as setup). The CUDA compute cache is off unless --compute-cache on: it keeps NVRTC's
 * cubins across processes too, so a module any earlier process compiled would otherwise load from it.
 *
 * --quest-modules whole|groups: quest.cu alone, without a method: `whole` compiles the module of every entry (what every
 * Quest run compiled before session 10), `groups` each entry group the method's defaults use (questDefaultEntryGroups),
 * then loads them again from the cache (--quest-groups: other groups, e.g. an experiment's; its cubins then serve as a
 * prebuilt cache). bench/quest-split-proof.ts --cubins compares the two sides' entries.
 *
 * Usage: node dist/bench/cold-compile.js --cache DIR [--methods dense_prefill,quest,...] [--prefill-n N] [--decode-n N]
 *        [--quest-modules whole|groups] [--out FILE]. Prints a skip line without a GPU.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { cudaUnavailableReason, isCudaAvailable } from '../src/backends/cuda/availability.js';
import { ModelOpsKernels } from '../src/backends/cuda/kernels/model-ops.js';
import { QUEST_ENTRY_GROUPS, type QuestEntryGroupName, questGroupDefines } from '../src/backends/cuda/kernels/quest.js';
import { DeviceLayerKvCache } from '../src/backends/cuda/kv-cache.js';
import type { DeviceBuffer } from '../src/backends/cuda/memory-pool.js';
import type { CudaModule } from '../src/backends/cuda/module.js';
import type { DeviceAttentionShape, DeviceDecodeMethod, DevicePrefillMethod } from '../src/backends/cuda/methods/contract.js';
import { denseDecodeDeviceFactory, densePrefillDeviceFactory } from '../src/backends/cuda/methods/dense.js';
import { checkDeviceMethod, listDeviceMethods } from '../src/backends/cuda/methods/index.js';
import { questDefaultEntryGroups } from '../src/backends/cuda/methods/quest.js';
import { CudaRuntime } from '../src/backends/cuda/runtime.js';
import { parseModelConfig } from '../src/engine/config.js';
import type { ModelConfig } from '../src/engine/model-config.js';
import { choice, defineBenchArgs, int, labels, num, text } from './bench-args.js';
import { benchEntry, runIfDirect, writeJsonReport } from './bench-run.js';
import { MODEL_SHAPES } from './model.js';
import { cubinEntries } from './quest-cubin-sections.js';

const DENSE = ['dense_prefill', 'dense_decode'] as const;
const METHOD_IDS = [...DENSE, ...listDeviceMethods().map((e) => e.factory.methodId)];

export const COLD_COMPILE_ARGS = defineBenchArgs('cold-compile', 'First-run kernel compile cost of each GPU method: empty disk cache against a cached load (GPU only).', {
  cache: text({ describe: 'folder for the methods\' kernel caches (one empty subfolder per method)', required: true, placeholder: 'DIR' }),
  methods: labels({ describe: 'methods to time (dense_prefill / dense_decode: the dense kernels)', choices: METHOD_IDS }),
  'prefill-n': int({ describe: 'prompt length of the prefill methods\' first call', default: 16384, atLeast: 64, noun: 'length' }),
  'decode-n': int({ describe: 'cache length of the decode methods\' first step (Quest\'s multi-block step from 65,536)', default: 65536, atLeast: 64, noun: 'length' }),
  sparsity: num({ describe: 'target sparsity the sparse methods are created with', default: 0.9, above: 0, below: 1, noun: 'sparsity' }),
  'quest-modules': choice({ describe: 'instead of methods, quest.cu alone: every entry in one module, or the default entry groups', choices: ['none', 'whole', 'groups'], default: 'none' }),
  'quest-groups': labels({ describe: 'with --quest-modules groups: these entry groups instead of the defaults\'', choices: Object.keys(QUEST_ENTRY_GROUPS) as QuestEntryGroupName[] }),
  'compute-cache': choice({ describe: 'the CUDA compute cache (~/.nv/ComputeCache), which also serves NVRTC\'s cubins across processes: off (CUDA_CACHE_DISABLE=1) for cold numbers', choices: ['off', 'on'], default: 'off' }),
  out: text({ describe: 'JSON report', placeholder: 'FILE' }),
}, 'node dist/bench/cold-compile.js');

/** One module request that reached the disk cache or NVRTC (requests the runtime answered from memory are not listed). */
export interface ModuleRecord {
  file: string;
  defines: Record<string, number>;
  compiled: boolean;
  ms: number;
  /** Kernels in the cubin (read when it was compiled here; null for a cached load). */
  entries: number | null;
  cubin: string | null;
  /** Requested while the inputs were made, outside the timed call. */
  setup: boolean;
}

/** A CudaRuntime that times each module request and tells a compile from a load (the cache folder is its own). */
class TimedRuntime extends CudaRuntime {
  readonly records: ModuleRecord[] = [];
  inSetup = false;

  constructor(readonly cacheDir: string) {
    super({ cacheDir });
  }

  override module(file: string, defines: Record<string, number>, target: { arch?: string } = {}): CudaModule {
    const { compiled: compiledBefore, cacheHits: hitsBefore } = this.compileStats;
    const filesBefore = new Set(cubins(this.cacheDir));
    const t0 = performance.now();
    const mod = super.module(file, defines, target);
    const ms = performance.now() - t0;
    const compiled = this.compileStats.compiled > compiledBefore;
    if (!compiled && this.compileStats.cacheHits === hitsBefore) return mod; // the runtime's memory
    const cubin = compiled ? cubins(this.cacheDir).find((f) => !filesBefore.has(f)) ?? null : null;
    const entries = cubin ? cubinEntries(readFileSync(join(this.cacheDir, cubin))).length : null;
    const record = { file, defines, compiled, ms, entries, cubin: cubin ? join(this.cacheDir, cubin) : null, setup: this.inSetup };
    this.records.push(record);
    // As it happens, so that a run killed at its time limit still shows what it compiled.
    console.log(`  ${moduleLabel(record)}: ${compiled ? 'compiled' : 'loaded'} in ${(ms / 1e3).toFixed(3)} s${entries !== null ? `, ${entries} entries` : ''}${this.inSetup ? ' (setup)' : ''}`);
    return mod;
  }
}

function cubins(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.cubin')) : [];
}

/** One pass over one method: its first call's wall time and the modules it asked for. */
export interface MethodPass { method: string; phase: 'prefill' | 'decode'; n: number; cold: boolean; firstCallMs: number; modules: ModuleRecord[] }

function benchConfig(): ModelConfig {
  return parseModelConfig(MODEL_SHAPES['llama3.1-8b'], 'llama3.1-8b');
}

interface Inputs { q: DeviceBuffer; out: DeviceBuffer; window: DeviceBuffer; cache: DeviceLayerKvCache }

/** Random q (n rows for prefill, the window rows and one for decode) and a cache of n rows (capacity n + 16). */
function makeInputs(rt: TimedRuntime, config: ModelConfig, n: number, phase: 'prefill' | 'decode'): Inputs {
  rt.inSetup = true;
  const ops = new ModelOpsKernels(rt);
  const rowElements = config.numHeads * config.headDim;
  const qRows = phase === 'prefill' ? n : 1;
  const windowRows = Math.min(n, 512);
  const q = rt.pool.acquire(qRows * rowElements * 2), out = rt.pool.acquire(qRows * rowElements * 2);
  const window = rt.pool.acquire(windowRows * rowElements * 2);
  const cache = new DeviceLayerKvCache(rt, config.numKvHeads, config.headDim, n + 16);
  let seed = 1;
  const fill = (x: DeviceBuffer['ptr'], count: number) => ops.fillUniform({ x, n: count, seed: seed++, mean: 0, halfWidth: 1 });
  fill(q.ptr, qRows * rowElements);
  fill(window.ptr, windowRows * rowElements);
  fill(cache.keys.ptr, config.numKvHeads * (n + 16) * config.headDim);
  fill(cache.values.ptr, config.numKvHeads * (n + 16) * config.headDim);
  cache.length = n;
  rt.synchronize();
  rt.inSetup = false;
  return { q, out, window, cache };
}

function releaseInputs(rt: CudaRuntime, x: Inputs): void {
  rt.synchronize();
  x.cache.release();
  for (const b of [x.q, x.out, x.window]) rt.pool.release(b);
}

function phaseOf(method: string): 'prefill' | 'decode' {
  if (method === 'dense_prefill') return 'prefill';
  if (method === 'dense_decode') return 'decode';
  const entry = listDeviceMethods().find((e) => e.factory.methodId === method);
  if (!entry) throw new Error(`unknown method ${method}`);
  return entry.phase;
}

/** The method's first call (create included) on these inputs, synchronised: its wall ms. */
function firstCall(rt: TimedRuntime, config: ModelConfig, method: string, n: number, sparsity: number, x: Inputs): number {
  const shape: DeviceAttentionShape = { numHeads: config.numHeads, numKvHeads: config.numKvHeads, headDim: config.headDim, scale: config.attentionScale };
  const phase = phaseOf(method);
  const t0 = performance.now();
  if (phase === 'prefill') {
    let m: DevicePrefillMethod;
    if (method === 'dense_prefill') m = densePrefillDeviceFactory.create(rt, config, {});
    else {
      checkDeviceMethod(config, method, { sparsity });
      m = listDeviceMethods().find((e) => e.factory.methodId === method)!.factory.create(rt, config, { sparsity }) as DevicePrefillMethod;
    }
    m.prefill({ layer: 0, shape, q: x.q.ptr, qRowStride: config.numHeads * config.headDim, numQueries: n, queryStart: 0, cache: x.cache, out: x.out.ptr, isLastChunk: true });
    rt.synchronize();
    const ms = performance.now() - t0;
    m.reset?.();
    return ms;
  }
  let m: DeviceDecodeMethod;
  if (method === 'dense_decode') m = denseDecodeDeviceFactory.create(rt, config, {});
  else {
    checkDeviceMethod(config, method, { sparsity });
    m = listDeviceMethods().find((e) => e.factory.methodId === method)!.factory.create(rt, config, { sparsity }) as DeviceDecodeMethod;
  }
  const W = Math.min(m.observationWindow, n);
  if (W > 0 && m.afterPrefill) m.afterPrefill({ layer: 0, shape, windowQueries: x.window.ptr, windowLength: W, promptLength: n, cache: x.cache });
  // A prompt of n rows, then the first generated token at position n (its k/v row is random already).
  x.cache.length = n + 1;
  m.decode({ layer: 0, shape, q: x.q.ptr, position: n, cache: x.cache, out: x.out.ptr });
  rt.synchronize();
  const ms = performance.now() - t0;
  m.reset?.();
  return ms;
}

function methodPasses(o: ReturnType<typeof COLD_COMPILE_ARGS.parse>, config: ModelConfig): MethodPass[] {
  const passes: MethodPass[] = [];
  for (const method of o.methods ?? METHOD_IDS) {
    const dir = join(o.cache, method);
    if (cubins(dir).length) throw new Error(`${dir} holds cubins already: a cold pass needs an empty folder`);
    mkdirSync(dir, { recursive: true });
    const phase = phaseOf(method);
    const n = phase === 'prefill' ? o.prefillN : o.decodeN;
    for (const cold of [true, false]) {
      const rt = new TimedRuntime(dir);
      const x = makeInputs(rt, config, n, phase);
      try {
        const firstCallMs = firstCall(rt, config, method, n, o.sparsity, x);
        passes.push({ method, phase, n, cold, firstCallMs, modules: rt.records });
        const own = rt.records.filter((r) => !r.setup);
        console.log(`${method} n=${n} ${cold ? 'cold' : 'cached'}: first call ${(firstCallMs / 1e3).toFixed(2)} s; ` +
          own.map((r) => `${moduleLabel(r)} ${r.compiled ? 'compiled' : 'loaded'} ${(r.ms / 1e3).toFixed(2)} s${r.entries !== null ? ` (${r.entries} entries)` : ''}`).join(', '));
      } finally {
        releaseInputs(rt, x);
        rt.dispose();
      }
    }
  }
  return passes;
}

export function moduleLabel(r: Pick<ModuleRecord, 'file' | 'defines'>): string {
  const d = Object.entries(r.defines).map(([k, v]) => `${k}=${v}`).join(' ');
  return d ? `${r.file} [${d}]` : r.file;
}

/** quest.cu compiled whole (every entry) or as the method's default groups, cold then cached. */
function questModulePasses(o: ReturnType<typeof COLD_COMPILE_ARGS.parse>): { groups: string[]; cold: ModuleRecord[]; cached: ModuleRecord[] } {
  const dir = join(o.cache, `quest-${o.questModules}`);
  if (cubins(dir).length) throw new Error(`${dir} holds cubins already: a cold pass needs an empty folder`);
  mkdirSync(dir, { recursive: true });
  const groups: (QuestEntryGroupName | 'whole')[] = o.questModules === 'whole' ? ['whole'] : o.questGroups ?? questDefaultEntryGroups();
  const defines = (g: QuestEntryGroupName | 'whole') => (g === 'whole' ? {} : questGroupDefines(g));
  const run = (): ModuleRecord[] => {
    const rt = new TimedRuntime(dir);
    try {
      for (const g of groups) rt.module('quest.cu', defines(g));
      return rt.records;
    } finally {
      rt.dispose();
    }
  };
  const cold = run(), cached = run();
  groups.forEach((g, i) => {
    const c = cold[i]!, w = cached[i]!;
    const expected = g === 'whole' ? '' : ` of ${QUEST_ENTRY_GROUPS[g].kernels.length}`;
    console.log(`quest.cu ${g}: compiled ${(c.ms / 1e3).toFixed(2)} s (${c.entries}${expected} entries), loaded ${(w.ms / 1e3).toFixed(3)} s`);
  });
  return { groups, cold, cached };
}

async function main(argv: string[]): Promise<number> {
  const o = COLD_COMPILE_ARGS.parse(argv);
  // Before the driver or NVRTC is loaded. Session 10, round 2: a module another process had compiled "compiled" in
  // 0.03-0.08 s with the compute cache on, 0.44-0.67 s with CUDA_CACHE_DISABLE=1 or a fresh CUDA_CACHE_PATH.
  if (o.computeCache === 'off') process.env.CUDA_CACHE_DISABLE = '1';
  if (!isCudaAvailable()) {
    console.log(`cold-compile benchmark skipped: no CUDA device here (${cudaUnavailableReason()})`);
    return 0;
  }
  const t0 = performance.now();
  const report = o.questModules !== 'none' ? { questModules: questModulePasses(o) } : { methods: methodPasses(o, benchConfig()) };
  console.log(`cold-compile: ${((performance.now() - t0) / 1e3).toFixed(1)} s`);
  writeJsonReport(o.out, report);
  return 0;
}

export const runColdCompileBench = benchEntry(main);

runIfDirect(import.meta.url, main);
