/**
 * The Vertical-Slash family's estimation on small models (issue 9, session 5): the reference model's
 * attention (models/organism: H = 4, Hkv = 2, D = 64) at 4K and 16K tokens against Llama-3.1-8B's
 * (H = 32, Hkv = 8, D = 128) at 16K, every count-search variant side by side in one process:
 *   one-probe  vs_count_search: one probe per round of grid barriers
 *   batched-L  vs_count_search_batched: L levels of the search's decision tree per round (--levels;
 *              L = 1 isolates its walk by runs: the same one probe per round)
 *   auto       DEFAULT_COUNT_SEARCH (batched, levels by autoProbeLevels): FlexPrefill's default, and Vertical-Slash's
 *              before session 9 (its default since: auto+lean+order, VERTICAL_SLASH_COUNT_SEARCH)
 *   +handoff   any of them with CountSearchOptions.deviceHandOff (session 6): the index built from the
 *              search's ranks, fewer host waits (e.g. `auto+handoff`)
 *   +chunked   any of them with CountSearchOptions.chunkedRanking (session 6): each row ranked by many
 *              blocks (e.g. `auto+handoff+chunked`)
 *   +lanes<k>  a batched one with CountSearchOptions.walkLanes k (session 6, second round): each
 *              64-row block's walk shared by k threads; +lanes alone: walkLanes 'auto'
 *   +bits      with +lanes: CountSearchOptions.walkColumnBitmap (the walks count kept columns from
 *              a staged bitmap), e.g. `auto+handoff+chunked+lanes8+bits`
 *   +guided    a batched one with CountSearchOptions.guidedProbes (session 7): each round's probes laid
 *              out best-first on the predicted path (Vertical-Slash only), e.g. `auto+guided`
 *   +thresholds  with the guided tree and the column bitmap: CountSearchOptions.guideThresholds (session 8):
 *              the layout predicts from the round's line thresholds, no model loads, e.g. `auto+thresholds`
 *   +coarse    with the column bitmap: CountSearchOptions.coarseColumnBitmap (session 7): its two-level
 *              form where the one-level one does not fit (n past 131,040), e.g. `auto+coarse`
 *   +rankbits  with the column bitmap: CountSearchOptions.bitmapFromRanks (session 7): the walks read their
 *              bitmaps off the ranks, the rounds compact no column row a walk stages, e.g. `auto+rankbits`
 *   +stagedranges  the index builder's range walks over shared-memory lists (IndexBuilderOptions.stagedRanges,
 *              session 7), e.g. `auto+stagedranges`
 *   +selhandoff  with the guided search: CountSearchOptions.selectionHandOff (session 8): the search writes the
 *              answer's counts and names the slot holding its selection, the index builder reads them in place
 *   +deferindex  CountSearchOptions.deferredIndexWait (session 8): the index built with no host wait in the
 *              middle (column list sized by its bound), its pairs read after the attention is enqueued
 *   +lean      with the guided search: CountSearchOptions.leanLayout (session 8): threshold predictions, the
 *              layout and follow moving search states in registers
 *   +order     with +lean: CountSearchOptions.orderedSelect (session 8): small selections from the rank order
 *   +compact   with +lean: CountSearchOptions.compactLayout (session 10): the lean trees from six-int nodes, e.g.
 *              `auto+lean+order+compact`
 *   +noguide, +nocoarse  switch those two off again (e.g. `auto+noguide`: the default without the guided tree)
 * --variants picks them by these names (default: one-probe and batched-L for each --levels).
 * Part 1, the whole device methods (vertical_and_slash and flexprefill at each --sparsities s, random
 * bf16 q/k/v as bench sparse makes them): per call the prefill total, the estimation (estimate, count
 * search, index: the method's own event pair; host waits inside it included) and attention = total −
 * estimation, medians of --repeats calls, beside the dense prefill of the same shape. Every variant
 * must choose the same counts and attend the same pairs as the first, else the row is FAILED and the
 * process exits non-zero. Beside the first variant's row, the estimation's other stages alone on the same
 * inputs: the estimate kernels (device events), FlexPrefill's coverage curves and the index build
 * with the chosen counts (host wall clock, each ending in a wait), the same build from the search's
 * ranks (the hand-off) and the ranking alone (vs_rank_rows, and chunked: device events); the count
 * search (ranking included) is the rest of the estimation.
 * Part 2, the count searches alone on synthetic score rows (bench/vertical-slash-estimation.ts: flat,
 * peaked), H = 4 and 32: host wall time of ranking + cooperative search + readback per variant, with
 * probes and rounds; the answers must agree across variants.
 *
 * Usage: node dist/bench/vertical-slash-small-heads.js [--cases organism:4096,organism:16384,llama:16384]
 *        [--sparsities 0.9] [--levels 1,2,3,4,5 | --variants auto,auto+handoff,one-probe,batched-L4,auto+handoff+chunked+lanes8]
 *        [--repeats 5] [--organism-config models/organism/config.json] [--out FILE] (--help). Prints a skip
 *        message without a GPU.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { cudaUnavailableReason, isCudaAvailable } from '../src/backends/cuda/availability.js';
import { BF16_NAN_BITS } from '../src/backends/cuda/bf16.js';
import { FlexPrefillCoverage } from '../src/backends/cuda/kernels/flexprefill-coverage.js';
import { VerticalSlashEstimator } from '../src/backends/cuda/kernels/vertical-slash-estimate.js';
import { type VerticalSlashCounts, VerticalSlashIndexBuilder } from '../src/backends/cuda/kernels/vertical-slash-index.js';
import { ModelOpsKernels } from '../src/backends/cuda/kernels/model-ops.js';
import { type CountSearchOptions, VerticalSlashCountSearch, maxProbeLevels } from '../src/backends/cuda/kernels/vertical-slash-search.js';
import { DeviceLayerKvCache } from '../src/backends/cuda/kv-cache.js';
import type { PrefillShape } from '../src/backends/cuda/kernels/flash-prefill.js';
import type { DevicePrefillCall, DevicePrefillMethod } from '../src/backends/cuda/methods/contract.js';
import { densePrefillDeviceFactory } from '../src/backends/cuda/methods/dense.js';
import { FlexPrefillDevicePrefill, flexPrefillDeviceParams } from '../src/backends/cuda/methods/flexprefill.js';
import {
  DEFAULT_COUNT_SEARCH, type VerticalSlashFamilyDevicePrefill, VerticalSlashDevicePrefill, verticalSlashDeviceParams,
} from '../src/backends/cuda/methods/vertical-slash.js';
import { CudaRuntime } from '../src/backends/cuda/runtime.js';
import { timeOnDevice } from '../src/backends/cuda/timing.js';
import { parseModelConfig } from '../src/engine/config.js';
import type { ModelConfig } from '../src/engine/model-config.js';
import { MODEL_SHAPES } from './model.js';
import { type BenchOptionsOf, defineBenchArgs, int, intList, list, numList, text } from './bench-args.js';
import { runIfDirect } from './bench-run.js';
import { type ScoreKind, median, scoreRows, timed } from './vertical-slash-estimation.js';

type ShapeName = 'organism' | 'llama';
type MethodId = 'vertical_and_slash' | 'flexprefill';
const METHODS: MethodId[] = ['vertical_and_slash', 'flexprefill'];
/** FlexPrefill's default min budget and approximation size (src/methods/flexprefill.ts). */
const FLEX_MIN_BUDGET = 512;
const FLEX_APPROXIMATION = 512;

/** One shape and prompt length of part 1. */
export interface BenchCase { shape: ShapeName; n: number }

/** "organism:N" or "llama:N", N >= 64. */
export function parseCase(text: string): BenchCase {
  const [shape, n] = text.split(':');
  if ((shape !== 'organism' && shape !== 'llama') || !(Number.isInteger(Number(n)) && Number(n) >= 64)) {
    throw new Error(`organism:N or llama:N with N >= 64 (got ${text})`);
  }
  return { shape, n: Number(n) };
}

/** The command line (`--help` prints it). */
export const VS_SMALL_HEADS_ARGS = defineBenchArgs('vertical-slash-small-heads', 'Vertical-Slash / FlexPrefill estimation at few heads: the device methods, then the count searches alone, per search variant (GPU only).', {
  cases: list<BenchCase>({
    describe: 'shapes and lengths of part 1', placeholder: 'SHAPE:N,...', item: parseCase,
    default: [{ shape: 'organism', n: 4096 }, { shape: 'organism', n: 16384 }, { shape: 'llama', n: 16384 }], defaultText: 'organism:4096,organism:16384,llama:16384',
  }),
  sparsities: numList({ describe: 'target sparsities', placeholder: 'S,...', default: [0.9], above: 0, below: 1, noun: 'sparsity' }),
  levels: intList({ describe: 'batched-L<k> variants timed beside one-probe (without --variants)', default: [1, 2, 3, 4, 5], atLeast: 1, noun: 'level count' }),
  variants: list({
    describe: 'search variants: one-probe, batched-L<k> or auto, optionally +handoff, +chunked, +lanes[<k>], ... (default: one-probe and the --levels)',
    placeholder: 'VARIANT,...', item: (name) => (variantOptions(name), name),
  }),
  repeats: int({ describe: 'calls per timing (median)', default: 5, atLeast: 1, noun: 'repeat count' }),
  'organism-config': text({ describe: 'the organism\'s config.json', placeholder: 'FILE', default: 'models/organism/config.json' }),
  out: text({ describe: 'JSON report', placeholder: 'FILE' }),
}, 'node dist/bench/vertical-slash-small-heads.js');

type Options = BenchOptionsOf<typeof VS_SMALL_HEADS_ARGS.table>;

export function parseVsSmallHeadsArgs(argv: string[]): Options {
  return VS_SMALL_HEADS_ARGS.parse(argv);
}

/** A count-search variant: its label and the options the methods pass to VerticalSlashCountSearch. */
interface Variant { label: string; search: CountSearchOptions }

/** A variant's search options from its name: one-probe | batched-L<k> | auto, then optionally +handoff, +chunked. */
export function variantOptions(name: string): CountSearchOptions {
  const [base, ...suffixes] = name.split('+');
  const extra: CountSearchOptions = {};
  for (const suffix of suffixes) {
    if (suffix === 'handoff') extra.deviceHandOff = true;
    else if (suffix === 'chunked') extra.chunkedRanking = true;
    else if (/^lanes\d*$/.test(suffix)) extra.walkLanes = suffix === 'lanes' ? 'auto' : Number(suffix.slice(5));
    else if (suffix === 'bits') extra.walkColumnBitmap = true;
    else if (suffix === 'guided') extra.guidedProbes = true;
    else if (suffix === 'coarse') extra.coarseColumnBitmap = true;
    else if (suffix === 'thresholds') extra.guideThresholds = true;
    else if (suffix === 'rankbits') extra.bitmapFromRanks = true;
    else if (suffix === 'stagedranges') extra.stagedIndexRanges = true;
    else if (suffix === 'selhandoff') extra.selectionHandOff = true;
    else if (suffix === 'deferindex') extra.deferredIndexWait = true;
    else if (suffix === 'lean') extra.leanLayout = true;
    else if (suffix === 'order') extra.orderedSelect = true;
    else if (suffix === 'compact') extra.compactLayout = true;
    else if (suffix === 'noguide') Object.assign(extra, { guidedProbes: false, leanLayout: false, orderedSelect: false, selectionHandOff: false, compactLayout: false });
    else if (suffix === 'nocoarse') extra.coarseColumnBitmap = false;
    else throw new Error(`--variants: unknown suffix +${suffix} in ${name} (+handoff, +chunked, +lanes, +lanes<k>, +bits, +guided, +thresholds, +coarse, +rankbits, +stagedranges, +selhandoff, +deferindex, +lean, +order, +compact, +noguide, +nocoarse)`);
  }
  if (extra.coarseColumnBitmap && !(extra.walkColumnBitmap || base === 'auto')) throw new Error(`--variants: +coarse needs the column bitmap (auto, or +lanes<k>+bits): ${name}`);
  if (extra.walkColumnBitmap && extra.walkLanes === undefined) throw new Error(`--variants: +bits needs +lanes or +lanes<k> (${name})`);
  if (extra.guidedProbes && base === 'one-probe') throw new Error(`--variants: +guided needs a batched variant (auto or batched-L<k>), not ${name}`);
  if (extra.walkLanes !== undefined && base === 'one-probe') throw new Error(`--variants: +lanes needs a batched variant (auto or batched-L<k>), not ${name}`);
  if (base === 'one-probe') return extra;
  if (base === 'auto') return { ...DEFAULT_COUNT_SEARCH, ...extra };
  const L = /^batched-L(\d+)$/.exec(base ?? '');
  if (L && Number(L[1]) >= 1) return { probeLevels: Number(L[1]), ...extra };
  throw new Error(`--variants: unknown variant ${name} (one-probe, batched-L<k> or auto, optionally +handoff, +chunked, +lanes[<k>])`);
}

/**
 * The --variants, or one-probe then the batched levels; those whose levels the kernel does not take
 * with H query heads are named and left out.
 */
function variantsOf(o: Options, H: number): Variant[] {
  const all = (o.variants ?? ['one-probe', ...o.levels.map((L) => `batched-L${L}`)]).map((label) => ({ label, search: variantOptions(label) }));
  const fits = all.filter((v) => typeof v.search.probeLevels !== 'number' || v.search.probeLevels <= maxProbeLevels(H));
  if (fits.length < all.length) console.log(`H=${H}: ${all.filter((v) => !fits.includes(v)).map((v) => v.label).join(', ')} left out (at most ${maxProbeLevels(H)} levels)`);
  return fits;
}

export function configOf(shape: ShapeName, o: Pick<Options, 'organismConfig'>): ModelConfig {
  if (shape === 'llama') return parseModelConfig(MODEL_SHAPES['llama3.1-8b'], 'llama3.1-8b');
  return parseModelConfig(JSON.parse(readFileSync(o.organismConfig, 'utf8')), o.organismConfig);
}

interface MethodRow {
  shape: ShapeName; n: number; method: MethodId | 'dense'; s: number | null; variant: string;
  totalMs: number; estimationMs: number | null; attentionMs: number; achieved: number; choice: string; failure?: string;
  stages?: Stages;
}

/** The estimation's stages other than the count search, timed alone (ms); rank: vs_rank_rows alone. */
interface Stages { estimate: number; curves: number | null; build: number; buildHandOff: number; rank: number; rankChunked: number }

interface SearchRow {
  H: number; n: number; scores: ScoreKind; s: number; search: 'vertical_and_slash' | 'flexprefill'; variant: string;
  ms: number; probes: number; rounds: number; answer: string; failure?: string;
}

/** The estimate, coverage curves (FlexPrefill) and index build of one layer, each alone, on the call's inputs. */
function timeStages(rt: CudaRuntime, shape: PrefillShape, call: DevicePrefillCall, method: MethodId, A: number, counts: VerticalSlashCounts, repeats: number): Stages {
  const estimator = new VerticalSlashEstimator(rt, shape), builder = new VerticalSlashIndexBuilder(rt, shape.numHeads);
  const coverage = new FlexPrefillCoverage(rt, shape.numHeads);
  const search = new VerticalSlashCountSearch(rt, shape.numHeads, { deviceHandOff: true });
  const chunked = new VerticalSlashCountSearch(rt, shape.numHeads, { deviceHandOff: true, chunkedRanking: true });
  try {
    const args = { q: call.q, qRowStride: call.qRowStride, k: call.cache.keys.ptr, kvStride: call.cache.capacity, n: call.numQueries, approximation: A, scale: call.shape.scale };
    const scores = estimator.run(args);
    const estimate = timeOnDevice(rt, () => estimator.run(args), { warmup: 1, repeats }).medianMs;
    const curves = method === 'flexprefill' ? timed(repeats, () => { coverage.build(scores, 1 / A); rt.synchronize(); }).ms : null;
    const build = timed(repeats, () => { builder.build(scores, counts); rt.synchronize(); }).ms;
    const rank = timeOnDevice(rt, () => search.rank(scores), { warmup: 1, repeats }).medianMs;
    const ranks = search.ranksOf(scores);
    if (ranks === null) throw new Error('the ranking did not record its scores');
    const buildHandOff = timed(repeats, () => { builder.build(scores, counts, { ranks }); rt.synchronize(); }).ms;
    const rankChunked = timeOnDevice(rt, () => chunked.rank(scores), { warmup: 1, repeats }).medianMs;
    return { estimate, curves, build, buildHandOff, rank, rankChunked };
  } finally {
    rt.synchronize();
    estimator.release();
    builder.release();
    coverage.release();
    search.release();
    chunked.release();
  }
}

/** Random bf16 q / K / V of one shape (bench sparse's generator), a prefill call over them, and its release. */
export function randomPrefillCall(rt: CudaRuntime, config: ModelConfig, n: number): { call: DevicePrefillCall; release: () => void } {
  const H = config.numHeads, Hkv = config.numKvHeads, D = config.headDim;
  const shape = { numHeads: H, numKvHeads: Hkv, headDim: D, scale: config.attentionScale };
  const ops = new ModelOpsKernels(rt);
  let seed = 11;
  const random = (ptr: bigint, count: number) => ops.fillUniform({ x: ptr, n: count, seed: seed++, mean: 0, halfWidth: 1 });
  const q = rt.pool.acquire(n * H * D * 2), out = rt.pool.acquire(n * H * D * 2);
  const cache = new DeviceLayerKvCache(rt, Hkv, D, n);
  random(q.ptr, n * H * D);
  random(cache.keys.ptr, Hkv * n * D);
  random(cache.values.ptr, Hkv * n * D);
  cache.length = n; // rows written directly, not appended
  const call: DevicePrefillCall = { layer: 0, shape, q: q.ptr, qRowStride: H * D, numQueries: n, queryStart: 0, cache, out: out.ptr, isLastChunk: true };
  return {
    call,
    release: () => {
      rt.synchronize();
      cache.release();
      rt.pool.release(q);
      rt.pool.release(out);
      rt.pool.trim();
    },
  };
}

/** Part 1 for one (shape, n): dense, then each method, sparsity and variant on the same q/k/v. */
function benchMethods(rt: CudaRuntime, config: ModelConfig, shapeName: ShapeName, n: number, o: Options, rows: MethodRow[]): void {
  const H = config.numHeads, D = config.headDim;
  const { call, release } = randomPrefillCall(rt, config, n);
  const shape = call.shape;
  /** One warm call (compiles, sizes buffers, checked for unwritten rows), then `repeats` timed calls. */
  const measure = (method: DevicePrefillMethod, estimation: () => number | null) => {
    rt.cuda.fill16Async(call.out, BF16_NAN_BITS, n * H * D, rt.stream);
    const counts = method.prefill(call);
    rt.synchronize();
    const last = new Uint16Array(H * D);
    rt.cuda.download(last, call.out + BigInt((n - 1) * H * D * 2));
    if (last.some((b) => (b & 0x7f80) === 0x7f80 && (b & 0x7f) !== 0)) throw new Error('NaN left in the last output row');
    const totals: number[] = [], estimations: number[] = [];
    for (let i = 0; i < o.repeats; i++) {
      totals.push(timeOnDevice(rt, () => method.prefill(call), { warmup: 0, repeats: 1 }).medianMs);
      const est = estimation();
      if (est !== null) estimations.push(est);
    }
    const attended = counts.attended.reduce((a, b) => a + b, 0), dense = counts.dense.reduce((a, b) => a + b, 0);
    const totalMs = median(totals), estimationMs = estimations.length ? median(estimations) : null;
    return { totalMs, estimationMs, attentionMs: totalMs - (estimationMs ?? 0), achieved: 1 - attended / dense, attended };
  };
  try {
    const dense = densePrefillDeviceFactory.create(rt, config, {});
    const d = measure(dense, () => null);
    rows.push({ shape: shapeName, n, method: 'dense', s: null, variant: '-', ...d, choice: '-' });
    console.log(`${shapeName} n=${n} dense: ${d.totalMs.toFixed(3)} ms`);
    for (const id of METHODS) {
      for (const s of o.sparsities) {
        let reference: { label: string; choice: string; attended: number } | null = null;
        for (const v of variantsOf(o, H)) {
          const method: VerticalSlashFamilyDevicePrefill = id === 'vertical_and_slash'
            ? new VerticalSlashDevicePrefill(rt, shape, verticalSlashDeviceParams({ sparsity: s }), undefined, v.search)
            : new FlexPrefillDevicePrefill(rt, shape, flexPrefillDeviceParams({ sparsity: s }), undefined, v.search);
          try {
            const r = measure(method, () => method.lastEstimationMs());
            const choice = JSON.stringify(method.lastChoice?.summary ?? null);
            const stages = reference === null && method.lastChoice
              ? timeStages(rt, shape, call, id, Math.min(method.approximationSize, n), method.lastChoice.counts, o.repeats) : undefined;
            reference ??= { label: v.label, choice, attended: r.attended };
            const failure = choice !== reference.choice || r.attended !== reference.attended
              ? `chose ${choice} (${r.attended} pairs), ${reference.label} ${reference.choice} (${reference.attended} pairs)` : undefined;
            rows.push({ shape: shapeName, n, method: id, s, variant: v.label, ...r, choice, ...(failure ? { failure } : {}), ...(stages ? { stages } : {}) });
            if (stages) {
              console.log(`${shapeName} n=${n} ${id} s=${s} stages alone: estimate ${stages.estimate.toFixed(3)} ms, ` +
                `${stages.curves === null ? '' : `coverage curves ${stages.curves.toFixed(3)} ms, `}index build ${stages.build.toFixed(3)} ms, ` +
                `from ranks ${stages.buildHandOff.toFixed(3)} ms, ranking ${stages.rank.toFixed(3)} ms, chunked ${stages.rankChunked.toFixed(3)} ms`);
            }
            console.log(`${shapeName} n=${n} ${id} s=${s} ${v.label}: total ${r.totalMs.toFixed(3)} ms, estimation ${r.estimationMs?.toFixed(3)} ms, ` +
              `attention ${r.attentionMs.toFixed(3)} ms, achieved ${r.achieved.toFixed(3)} ${choice}${failure ? ` FAILED: ${failure}` : ''}`);
          } catch (e) {
            const failure = (e as Error).message ?? String(e);
            rows.push({ shape: shapeName, n, method: id, s, variant: v.label, totalMs: NaN, estimationMs: null, attentionMs: NaN, achieved: NaN, choice: '-', failure });
            console.log(`${shapeName} n=${n} ${id} s=${s} ${v.label}: FAILED ${failure}`);
          } finally {
            method.reset();
          }
        }
      }
    }
  } finally {
    release();
  }
}

/** Part 2 for one (H, n, score kind): both searches per sparsity and variant on the same score rows. */
function benchSearches(rt: CudaRuntime, H: number, n: number, kind: ScoreKind, o: Options, rows: SearchRow[]): void {
  const { vertical, slash } = scoreRows(n, kind, n + H + (kind === 'flat' ? 1 : 2), H);
  const dv = rt.pool.acquire(vertical.byteLength), ds = rt.pool.acquire(slash.byteLength);
  rt.cuda.upload(dv.ptr, vertical);
  rt.cuda.upload(ds.ptr, slash);
  const scores = { n, vertical: dv.ptr, slash: ds.ptr };
  const coverage = new FlexPrefillCoverage(rt, H);
  const searches = variantsOf(o, H).map((v) => ({ v, search: new VerticalSlashCountSearch(rt, H, v.search) }));
  try {
    coverage.build(scores, 1 / Math.min(FLEX_APPROXIMATION, n));
    for (const s of o.sparsities) {
      for (const which of ['vertical_and_slash', 'flexprefill'] as const) {
        let reference: { label: string; answer: string } | null = null;
        for (const { v, search } of searches) {
          const run = timed(o.repeats, () => (which === 'vertical_and_slash'
            ? search.counts(scores, s)
            : search.alpha(scores, coverage.curvesPtr, s, FLEX_MIN_BUDGET)));
          const { probes, rounds, floorPairs, floor, ...rest } = run.value;
          const answer = JSON.stringify({ ...rest, floor, floorPairs, probes });
          reference ??= { label: v.label, answer };
          const failure = answer !== reference.answer ? `answered ${answer}, ${reference.label} ${reference.answer}` : undefined;
          rows.push({ H, n, scores: kind, s, search: which, variant: v.label, ms: run.ms, probes, rounds, answer, ...(failure ? { failure } : {}) });
          console.log(`search H=${H} n=${n} ${kind} s=${s} ${which} ${v.label}: ${run.ms.toFixed(3)} ms, ${probes} probes in ${rounds} rounds` +
            `${failure ? ` FAILED: ${failure}` : ''}`);
        }
      }
    }
  } finally {
    for (const { search } of searches) search.release();
    coverage.release();
    rt.pool.release(dv);
    rt.pool.release(ds);
  }
}

const fmt = (x: number | null) => (x === null || Number.isNaN(x) ? '-' : x.toFixed(3));

export function runVerticalSlashSmallHeadsBench(argv: string[]): number {
  // Parsed first: a bad option (or --help) is answered without a GPU.
  const o = parseVsSmallHeadsArgs(argv);
  if (!isCudaAvailable()) {
    console.log(`vertical-slash small-heads bench skipped: ${cudaUnavailableReason()}`);
    return 0;
  }
  const rt = new CudaRuntime();
  const methodRows: MethodRow[] = [], searchRows: SearchRow[] = [];
  try {
    for (const c of o.cases) benchMethods(rt, configOf(c.shape, o), c.shape, c.n, o, methodRows);
    for (const c of o.cases) {
      const H = configOf(c.shape, o).numHeads;
      for (const kind of ['flat', 'peaked'] as const) benchSearches(rt, H, c.n, kind, o, searchRows);
    }
  } finally {
    rt.dispose();
  }
  console.log('\n| shape | n | method | s | variant | total ms | estimation ms | attention ms | achieved s | counts |');
  console.log('| --- | --: | --- | --: | --- | --: | --: | --: | --: | --- |');
  for (const r of methodRows) {
    console.log(`| ${r.shape} | ${r.n} | ${r.method} | ${r.s ?? '-'} | ${r.variant} | ${fmt(r.totalMs)} | ${fmt(r.estimationMs)} | ${fmt(r.attentionMs)} | ` +
      `${r.method === 'dense' ? '-' : fmt(r.achieved)} | ${r.failure ? `FAILED: ${r.failure}` : r.choice} |`);
  }
  console.log('\n| shape | n | method | s | estimate ms | coverage curves ms | index build ms | build from ranks ms | ranking ms | chunked ranking ms | (first variant\'s counts; alone, same inputs) |');
  console.log('| --- | --: | --- | --: | --: | --: | --: | --: | --: | --: | --- |');
  for (const r of methodRows) {
    if (r.stages) {
      console.log(`| ${r.shape} | ${r.n} | ${r.method} | ${r.s} | ${fmt(r.stages.estimate)} | ${fmt(r.stages.curves)} | ${fmt(r.stages.build)} | ` +
        `${fmt(r.stages.buildHandOff)} | ${fmt(r.stages.rank)} | ${fmt(r.stages.rankChunked)} | |`);
    }
  }
  console.log('\n| H | n | scores | s | search | variant | ms | probes | rounds |');
  console.log('| --: | --: | --- | --: | --- | --- | --: | --: | --: |');
  for (const r of searchRows) {
    console.log(`| ${r.H} | ${r.n} | ${r.scores} | ${r.s} | ${r.search} | ${r.variant} | ${fmt(r.ms)} | ${r.probes} | ${r.rounds} |${r.failure ? ` FAILED: ${r.failure}` : ''}`);
  }
  if (o.out) writeFileSync(o.out, JSON.stringify({ methods: methodRows, searches: searchRows }, null, 2));
  const failures = [...methodRows, ...searchRows].filter((r) => r.failure).length;
  if (failures > 0) console.log(`\n${failures} FAILED rows`);
  return failures > 0 ? 1 : 0;
}

runIfDirect(import.meta.url, runVerticalSlashSmallHeadsBench);
