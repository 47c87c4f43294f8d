/**
 * Where Quest's whole decode step goes on the GPU (issue 9), in bench/sparse.ts's setting: the
 * method's eager step (QuestDeviceDecode.decode, Llama-3.1-8B heads, random bf16 caches rotated over
 * as many layers as bench sparse uses, so the bytes a step reads come from HBM), taken apart:
 *   - step: decode() back to back, as bench sparse times it (device µs per step), and the host's µs per
 *     step while it issues them (no wait): where host ≥ device the queue runs dry and the device time
 *     is the host's;
 *   - no clock: the same launches without the estimation clock's two events (stepParts);
 *   - in the step: the select and the attend each timed where they run, back to back (an event before,
 *     between and after them every step), so a part slower after the other than alone shows there;
 *   - select / attend alone, eagerly back to back: the page selection (selectStep) at advancing
 *     positions, and the segment decode over the lists at fixed positions; each also as graph
 *     replays (no host gaps; the graph select refreshes nothing after its first replay);
 *   - est: the estimation clock as bench sparse reads it (one step at a time, the device idle before
 *     each step), whose difference to "select graph" is what the host adds between the clock's first
 *     event and the selection's launch;
 *   - graph step: the method's graphSteps (what the model replays), one capture of every layer's step
 *     at one position, per layer.
 * With --alternate-scale, a layer's steps alternate between the query and 4 × it (exact in bf16), so the
 * scores' exponents move by 2 from one step of a layer to the next: v9's guessed first pass (the
 * previous step's key range) then misses wherever that moves the bits above its first pass, and the
 * row reads what a miss costs (the default and v8 steps read the same queries, as their baseline).
 * Variants: the method's defaults (v3 eager / v4 in graphs below 4,096 pages, from there v10 on the 4-head
 * entries for 4-head units, v8 for others) and fixed QuestKernels options (v5, v7, v8, v9, v10, and v8h / v10h
 * = v8 / v10 through the entries that carry only the unit size's scorer, questGridStepEntry; v10hb = v10h
 * with batched page sums for units of 1, 2, 4 and 8 heads (1 and 4 until session 8); v10h7 / v10h7b = v10h / v10hb
 * with 7-head units on v7's scorer at a constant 7 heads, constantPlainHeads; v10hbf = v10hb with fused products at
 * 4-head units, fusedProducts, a measurement of the score loop's issue work; v10hbr = v10hb with the refreshed page's
 * rows loaded 16 at a time at 4-head units, prefetchedRefresh; v10hbp = v10hb with the score loop's rolling L2 prefetch
 * at 4-head units, rollingPrefetch) for every length, so two selections compare inside one
 * step.
 * --heads H:Hkv,... runs the step at other GQA groups (Llama-3.1-8B's layer otherwise: d = 128, shared pages,
 * so units of H / Hkv query heads): e.g. 32:32 (MHA, 1-head units), 32:16, 64:8 (Llama-70B), 28:4 (Qwen2.5-7B).
 *
 * Usage: node dist/bench/quest-step.js [--lengths 131072,65536] [--sparsities 0.5,0.8,0.9,0.95]
 *        [--variants default,v7] [--heads 32:8] [--alternate-scale] [--repeats N] [--out FILE] (--help). Prints a skip line without a GPU.
 */
import { writeFileSync } from 'node:fs';
import { cudaUnavailableReason, isCudaAvailable } from '../src/backends/cuda/availability.js';
import type { DevicePtr } from '../src/backends/cuda/context.js';
import type { QuestKernelOptions } from '../src/backends/cuda/kernels/quest.js';
import { ModelOpsKernels } from '../src/backends/cuda/kernels/model-ops.js';
import { DeviceLayerKvCache } from '../src/backends/cuda/kv-cache.js';
import type { DeviceAttentionShape } from '../src/backends/cuda/methods/contract.js';
import { QuestDeviceDecode, type QuestStepParts, questSettings } from '../src/backends/cuda/methods/quest.js';
import { CudaRuntime } from '../src/backends/cuda/runtime.js';
import { timeGraphOnDevice } from '../src/backends/cuda/timing.js';
import { parseModelConfig } from '../src/engine/config.js';
import type { ModelConfig } from '../src/engine/model-config.js';
import { timeGraphStep } from './decode-graph-step.js';
import { randomBf16Words, upload } from './gpu-bench-util.js';
import { MODEL_SHAPES } from './model.js';
import { freeBytes, median } from './sparse-prefill-measure.js';
import { type BenchOptionsOf, defineBenchArgs, flag, int, intList, labels, list, sparsityList, text } from './bench-args.js';
import { runIfDirect } from './bench-run.js';

/** Each step version's options: every version adds one change to the one before it. */
const V5: QuestKernelOptions = { multiBlockStep: true };
const V7: QuestKernelOptions = { ...V5, rolledScores: true };
const V8: QuestKernelOptions = { ...V7, lightScores: true };
const V9: QuestKernelOptions = { ...V8, guessedPass: true };
const V10: QuestKernelOptions = { ...V9, epochBarriers: true };
/** v10 on its unit-size entries, and with the batch's page sums as one reduce-scatter. */
const V10H: QuestKernelOptions = { ...V10, specializedHeads: true };
const V10HB: QuestKernelOptions = { ...V10H, batchedPageSums: true };

/** The selections a step can run: the method's length-picked defaults, or one fixed for every length. */
const VARIANTS: Record<string, QuestKernelOptions | undefined> = {
  default: undefined,
  v5: V5,
  v7: V7,
  v8: V8,
  v9: V9,
  v10: V10,
  v8h: { ...V8, specializedHeads: true },
  v10h: V10H,
  v10hb: V10HB,
  v10h7: { ...V10H, constantPlainHeads: true },
  v10h7b: { ...V10HB, constantPlainHeads: true },
  v10hbf: { ...V10HB, fusedProducts: true },
  v10hbr: { ...V10HB, prefetchedRefresh: true },
  v10hbp: { ...V10HB, rollingPrefetch: true },
};

/** A GQA shape: query heads and KV heads of the layer. */
interface Heads { H: number; Hkv: number }

/** "H:Hkv" with H a multiple of Hkv and a group of at most 8 (Quest's shared pages, the segment decode); --heads prefixes its message. */
function parseHeads(text: string): Heads {
  const m = /^(\d+):(\d+)$/.exec(text.trim());
  const H = m ? Number(m[1]) : NaN, Hkv = m ? Number(m[2]) : NaN;
  if (!(H > 0 && Hkv > 0 && H % Hkv === 0 && H / Hkv <= 8)) throw new Error(`"${text}" is not H:Hkv with H a multiple of Hkv and H / Hkv <= 8`);
  return { H, Hkv };
}

/** Llama-3.1-8B's layer with H query and Hkv KV heads (d = 128). */
function configFor(heads: Heads): ModelConfig {
  const llama = MODEL_SHAPES['llama3.1-8b'];
  const shaped = { ...llama, num_attention_heads: heads.H, num_key_value_heads: heads.Hkv, hidden_size: heads.H * 128 };
  return parseModelConfig(shaped, `llama-like ${heads.H}:${heads.Hkv}`);
}

/** The command line (`--help` prints it). */
export const QUEST_STEP_ARGS = defineBenchArgs('quest-step', 'Quest\'s whole decode step on the GPU taken apart (select, attend, clock, graphs), in bench sparse\'s setting (GPU only).', {
  lengths: intList({ describe: 'cache lengths', default: [131072, 65536], atLeast: 1024, noun: 'length' }),
  sparsities: sparsityList({ describe: 'target sparsities', default: [0.5, 0.8, 0.9, 0.95] }),
  variants: labels({ describe: 'the method\'s defaults and fixed QuestKernels options', choices: Object.keys(VARIANTS), default: ['default', 'v7'] }),
  heads: list({ describe: 'GQA shapes H:Hkv (Llama-3.1-8B\'s layer otherwise)', placeholder: 'H:Hkv,...', default: [{ H: 32, Hkv: 8 }], defaultText: '32:8', item: parseHeads }),
  'alternate-scale': flag('a layer\'s steps alternate between the query and 4 x it (what a missed guess costs)'),
  repeats: int({ describe: 'steps timed per case', default: 40, atLeast: 4, noun: 'repeat count' }),
  out: text({ describe: 'JSON report', placeholder: 'FILE' }),
}, 'node dist/bench/quest-step.js');

type Options = BenchOptionsOf<typeof QUEST_STEP_ARGS.table>;

export function parseQuestStepArgs(argv: string[]): Options {
  return QUEST_STEP_ARGS.parse(argv);
}

/** Device µs per body (median over event pairs between consecutive bodies) and host µs per body while issuing them (median). */
interface Issued { deviceUs: number; hostUs: number }

function timeIssued(rt: CudaRuntime, body: (i: number) => void, repeats: number): Issued {
  rt.synchronize();
  const events = Array.from({ length: repeats + 1 }, () => rt.cuda.createEvent());
  rt.cuda.record(events[0], rt.stream);
  const hostTimes: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    body(i);
    rt.cuda.record(events[i + 1], rt.stream);
    hostTimes.push((performance.now() - t0) * 1e3);
  }
  const times: number[] = [];
  for (let i = 0; i < repeats; i++) times.push(rt.cuda.elapsedMs(events[i], events[i + 1]) * 1e3);
  for (const e of events) rt.cuda.destroyEvent(e);
  return { deviceUs: median(times), hostUs: median(hostTimes) };
}

/**
 * The step's two launch groups timed where they run, back to back: events before the select, between
 * it and the attend, and after the attend, every step (each event adds its own ~1 µs). Medians (µs).
 */
function timeInSitu(rt: CudaRuntime, next: () => QuestStepParts, repeats: number): { selectUs: number; attendUs: number } {
  rt.synchronize();
  const events = Array.from({ length: 2 * repeats + 1 }, () => rt.cuda.createEvent());
  rt.cuda.record(events[0], rt.stream);
  for (let i = 0; i < repeats; i++) {
    const parts = next();
    parts.select();
    rt.cuda.record(events[2 * i + 1], rt.stream);
    parts.attend();
    rt.cuda.record(events[2 * i + 2], rt.stream);
  }
  const selects: number[] = [], attends: number[] = [];
  for (let i = 0; i < repeats; i++) {
    selects.push(rt.cuda.elapsedMs(events[2 * i], events[2 * i + 1]) * 1e3);
    attends.push(rt.cuda.elapsedMs(events[2 * i + 1], events[2 * i + 2]) * 1e3);
  }
  for (const e of events) rt.cuda.destroyEvent(e);
  return { selectUs: median(selects), attendUs: median(attends) };
}

interface Row {
  /** "H:Hkv". */
  heads: string;
  n: number; s: number; variant: string; layers: number; alternateScale: boolean;
  step: Issued; noClock: Issued; select: Issued; attend: Issued;
  selectGraphUs: number; attendGraphUs: number; estUs: number; graphStepUs: number | null;
  /** The select and the attend timed in the step (timeInSitu). */
  inSitu: { selectUs: number; attendUs: number };
}

function main(argv: string[]): number {
  const o = parseQuestStepArgs(argv);
  if (!isCudaAvailable()) {
    console.log(`quest-step bench skipped: ${cudaUnavailableReason()}`);
    return 0;
  }
  const rt = new CudaRuntime();
  console.log(`device: ${rt.cuda.info.name} (${rt.cuda.info.multiprocessors} SMs); d=128, Quest page 16, shared pages; repeats ${o.repeats}`);
  const ops = new ModelOpsKernels(rt);
  const rows: Row[] = [];
  const failures: string[] = [];
  for (const heads of o.heads) runShape(rt, ops, configFor(heads), o, rows, failures);
  const f = (x: number | null) => (x === null || Number.isNaN(x) ? '-' : x.toFixed(1));
  console.log('\n| heads | n | s | variant | step | host/step | no clock | select | attend | select + attend | step − parts | in the step: select / attend | select graph | attend graph | est (clock) | est − select graph | method graph step |');
  console.log('| :--- | ---: | ---: | :--- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :--- | ---: | ---: | ---: | ---: | ---: |');
  for (const r of rows) {
    const sum = r.select.deviceUs + r.attend.deviceUs;
    console.log(`| ${r.heads} | ${r.n / 1024}K | ${r.s} | ${r.variant}${r.alternateScale ? ' (q, 4q alternating)' : ''} | ${f(r.step.deviceUs)} | ${f(r.step.hostUs)} | ${f(r.noClock.deviceUs)} | ${f(r.select.deviceUs)} | ` +
      `${f(r.attend.deviceUs)} | ${f(sum)} | ${f(r.step.deviceUs - sum)} | ${f(r.inSitu.selectUs)} / ${f(r.inSitu.attendUs)} | ${f(r.selectGraphUs)} | ${f(r.attendGraphUs)} | ${f(r.estUs)} | ` +
      `${f(r.estUs - r.selectGraphUs)} | ${f(r.graphStepUs)} |`);
  }
  if (o.out) writeFileSync(o.out, JSON.stringify({ device: rt.cuda.info.name, rows, failures }, null, 1));
  rt.dispose();
  return failures.length > 0 ? 1 : 0;
}

/** Every (n, s, variant) row of one GQA shape, appended to rows (failures: one line each). */
function runShape(rt: CudaRuntime, ops: ModelOpsKernels, config: ModelConfig, o: Options, rows: Row[], failures: string[]): void {
  const shape: DeviceAttentionShape = { numHeads: config.numHeads, numKvHeads: config.numKvHeads, headDim: config.headDim, scale: config.attentionScale };
  const { numHeads: H, numKvHeads: Hkv, headDim: D } = shape;
  const heads = `${H}:${Hkv}`;
  console.log(`heads ${heads} (units of ${H / Hkv} query heads)`);
  let seed = 1;
  const random = (ptr: DevicePtr, count: number) => ops.fillUniform({ x: ptr, n: count, seed: seed++, mean: 0, halfWidth: 1 });
  const out = rt.pool.acquire(H * D * 2);
  const qWords = randomBf16Words(H * D, 5, 1);
  // 4 × q: the exponent field + 2 wherever it is nonzero (|q| <= 1: no overflow; zeros and subnormals stay).
  const q4Words = qWords.map((w) => ((w & 0x7f80) !== 0 ? w + 0x100 : w));
  const q = upload(rt, qWords), q4 = upload(rt, q4Words);
  const R = o.repeats;

  for (const n of o.lengths) {
    // bench sparse's layer count: a step's rows leave L2 (50 MB) before its layer comes round again.
    const cacheBytes = 2 * Hkv * (n + 64) * D * 2;
    const L = Math.max(2, Math.min(64, Math.floor(6e9 / cacheBytes)));
    // Advancing steps per case: warm-up, step, no clock, select alone, est, alignment for the graph.
    const capacity = n + Math.ceil((2 * L + 4 * R + R) / L) + 4;
    const need = L * 2 * Hkv * capacity * D * 2;
    if (2 * need > freeBytes(rt)) {
      console.log(`skip n=${n}: needs ~${(need / 2 ** 30).toFixed(1)} GiB of caches`);
      continue;
    }
    const caches = Array.from({ length: L }, () => {
      const c = new DeviceLayerKvCache(rt, Hkv, D, capacity);
      random(c.keys.ptr, Hkv * capacity * D);
      random(c.values.ptr, Hkv * capacity * D);
      return c;
    });
    for (const s of o.sparsities) {
      for (const variant of o.variants) {
        const method = new QuestDeviceDecode(rt, config, questSettings({ sparsity: s }), VARIANTS[variant]);
        for (const c of caches) c.length = n;
        let i = 0;
        /** The call of the next step on layer i % L (its cache's next row). */
        const nextCall = (layer: number) => {
          const cache = caches[layer];
          cache.length += 1;
          const query = o.alternateScale && cache.length % 2 === 1 ? q4 : q;
          return { layer, shape, q: query.ptr, position: cache.length - 1, cache, out: out.ptr };
        };
        try {
          for (let l = 0; l < L; l++) method.decode(nextCall(l)); // first steps fold each layer's prompt and compile
          i = L;
          const step = timeIssued(rt, () => method.decode(nextCall(i++ % L)), R);
          const noClock = timeIssued(rt, () => {
            const parts = method.stepParts(nextCall(i++ % L));
            parts.select();
            parts.attend();
          }, R);
          const inSitu = timeInSitu(rt, () => method.stepParts(nextCall(i++ % L)), R);
          const select = timeIssued(rt, () => method.stepParts(nextCall(i++ % L)).select(), R);
          // Every layer's step at its last position (bounds folded up to it), for the parts at fixed positions.
          const fixed: QuestStepParts[] = caches.map((cache, layer) =>
            method.stepParts({ layer, shape, q: q.ptr, position: cache.length - 1, cache, out: out.ptr }));
          const attend = timeIssued(rt, (j) => fixed[j % L].attend(), R);
          const perGraph = L * Math.max(1, Math.ceil(20 / L));
          const attendGraphUs = timeGraphOnDevice(rt, (j) => fixed[j % L].attend(), { perGraph, repeats: 10 }).medianMs * 1e3;
          const selectGraphUs = timeGraphOnDevice(rt, (j) => fixed[j % L].select(), { perGraph, repeats: 10 }).medianMs * 1e3;
          // The estimation clock one step at a time (reading it waits for the step), as bench sparse reads it.
          const ests: number[] = [];
          for (let r = 0; r < Math.max(4, R / 4); r++) {
            method.decode(nextCall(i++ % L));
            ests.push((method.lastEstimationMs() ?? Number.NaN) * 1e3);
          }
          const graphStepUs = timeGraphStep(rt, method, { shape, caches, q: q.ptr, out: out.ptr, eagerStep: (l) => method.decode(nextCall(l)), repeats: R });
          const row: Row = { heads, n, s, variant, layers: L, alternateScale: o.alternateScale, step, noClock, select, attend, selectGraphUs, attendGraphUs, estUs: median(ests), graphStepUs, inSitu };
          rows.push(row);
          console.log(`${describe(row)} [${(performance.now() / 1e3).toFixed(1)} s]`); // process clock: rows per second for planning device calls
        } catch (e) {
          // The message and where it came from (the first frames), so a failed row can be traced from its log.
          const where = ((e as Error).stack ?? '').split('\n').filter((l) => l.trim().startsWith('at ')).slice(0, 3).map((l) => l.trim()).join(' < ');
          const message = `${heads} n=${n} s=${s} ${variant}: ${(e as Error).message ?? String(e)}${where ? ` (${where})` : ''}`;
          failures.push(message);
          console.log(`FAILED ${message}`);
        } finally {
          rt.synchronize();
          method.reset();
        }
      }
    }
    for (const c of caches) c.release();
    rt.pool.trim();
  }
  for (const b of [q, q4, out]) rt.pool.release(b);
}

function describe(r: Row): string {
  const io = (t: Issued) => `${t.deviceUs.toFixed(1)} us (host ${t.hostUs.toFixed(1)})`;
  return `${r.heads} n=${r.n} s=${r.s} ${r.variant}${r.alternateScale ? ' (q, 4q alternating)' : ''} (${r.layers} layers): step ${io(r.step)}, no clock ${io(r.noClock)}, select ${io(r.select)}, attend ${io(r.attend)}; ` +
    `in the step: select ${r.inSitu.selectUs.toFixed(1)} us, attend ${r.inSitu.attendUs.toFixed(1)} us; graph: select ${r.selectGraphUs.toFixed(1)} us, attend ${r.attendGraphUs.toFixed(1)} us, method step ${r.graphStepUs === null ? '-' : r.graphStepUs.toFixed(1)} us; ` +
    `est (clock, one at a time) ${r.estUs.toFixed(1)} us`;
}

runIfDirect(import.meta.url, main);
