/**
 * Where a batched Vertical-Slash count-search round's time goes (issue 9, session 8): the default
 * search (DEFAULT_COUNT_SEARCH: guided tree, one-lane column-bitmap walk) and the same without the
 * guided tree, both through CountSearchOptions.timeRounds (the VS_SEARCH_TIMING build: each round's
 * phases in SM clock cycles, vertical-slash-search.cu TimingField), and the lean guided rounds
 * (CountSearchOptions.leanLayout: threshold predictions, states in registers; its layout timed whole), on the same score rows:
 *   synthetic rows (bench/vertical-slash-estimation.ts scoreRows: flat, peaked) at H = 4 and 32, and
 *   in-method rows: the estimate of random bf16 q/k (as bench sparse and the small-heads bench make
 *   them) at the organism's shape (H 4, Hkv 2, D 64) and Llama-8B's (H 32, Hkv 8, D 128), A = 256.
 * Per case and variant: the untimed and the timed search's host wall time (ranking + search +
 * readback, medians of --repeats; the two must give the same answer, else FAILED), and per round
 * the medians over the repeats of each phase in µs (cycles / the launch's cycles per µs, from block
 * 0's clock64 and globaltimer): step1 = layout + its barrier, with the guided layout's parts (scan =
 * candidate pushes and scans, adv = state copies and search_advance, pred = predictions), counts =
 * steps 2-3, sel / walk = the longest block's selections / walks, bar1 / bar2 = block 0's wait at
 * the two grid barriers, follow = step 6, tail = after the walks to the round's end. Ends with one
 * SUMMARY line per case: the guided and unguided rounds' mean phases and their difference. --variants picks
 * among guided, unguided, lean and compact (the lean rounds with CountSearchOptions.compactLayout, session 10);
 * without guided and unguided only the timedLean entry group compiles (vertical-slash-search-groups.ts), and each case ends in one
 * SUMMARY line per variant (mean round, step 1, layout, follow, barrier 2).
 *
 * Usage: node dist/bench/vertical-slash-search-timing.js [--cases synthetic:4:16384:peaked,method:organism:16384,...]
 *        [--variants guided,unguided,lean] [--sparsity 0.9] [--repeats 5] [--out FILE] (--help). Prints a skip message without a GPU.
 */
import { writeFileSync } from 'node:fs';
import { cudaUnavailableReason, isCudaAvailable } from '../src/backends/cuda/availability.js';
import { ModelOpsKernels } from '../src/backends/cuda/kernels/model-ops.js';
import { VerticalSlashEstimator, type VerticalSlashScores } from '../src/backends/cuda/kernels/vertical-slash-estimate.js';
import {
  type CountSearchOptions, ROUND_TIMING_FIELDS, type RoundTiming, type RoundTimingField, VerticalSlashCountSearch,
} from '../src/backends/cuda/kernels/vertical-slash-search.js';
import { DEFAULT_COUNT_SEARCH } from '../src/backends/cuda/methods/vertical-slash.js';
import { CudaRuntime } from '../src/backends/cuda/runtime.js';
import { type BenchOptionsOf, defineBenchArgs, int, labels, list, num, text } from './bench-args.js';
import { runIfDirect } from './bench-run.js';
import { type ScoreKind, median, scoreRows, timed } from './vertical-slash-estimation.js';

/** A case: synthetic rows (H, n, kind) or the estimate of random q/k at a model's attention shape. */
type Case =
  | { kind: 'synthetic'; H: number; n: number; scores: ScoreKind }
  | { kind: 'method'; model: 'organism' | 'llama'; n: number };

/** The two models' attention shapes (models/organism/config.json; Llama-3.1-8B). */
const MODEL_HEADS = { organism: { H: 4, Hkv: 2, D: 64 }, llama: { H: 32, Hkv: 8, D: 128 } } as const;
/** Vertical-Slash's default approximation size (src/methods/vertical-slash.ts). */
const APPROXIMATION = 256;

/** Session 7's default search (whatever the default becomes): the guided tree's plain kernel, no hand-off. */
const SESSION7: CountSearchOptions = { ...DEFAULT_COUNT_SEARCH, leanLayout: false, orderedSelect: false, selectionHandOff: false, deferredIndexWait: false };
const VARIANTS = {
  guided: SESSION7,
  unguided: { ...SESSION7, guidedProbes: false },
  lean: { ...SESSION7, leanLayout: true },
  compact: { ...SESSION7, leanLayout: true, compactLayout: true },
} as const satisfies Record<string, CountSearchOptions>;
type VariantName = keyof typeof VARIANTS;
const DEFAULT_VARIANTS: VariantName[] = ['guided', 'unguided', 'lean'];

function parseCase(text: string): Case {
  const p = text.split(':');
  if (p[0] === 'synthetic' && p.length === 4 && (p[3] === 'flat' || p[3] === 'peaked')) {
    const H = Number(p[1]), n = Number(p[2]);
    if (Number.isInteger(H) && H >= 1 && Number.isInteger(n) && n >= 64 && n <= 131040) return { kind: 'synthetic', H, n, scores: p[3] };
  }
  if (p[0] === 'method' && p.length === 3 && (p[1] === 'organism' || p[1] === 'llama')) {
    const n = Number(p[2]);
    if (Number.isInteger(n) && n >= APPROXIMATION && n <= 131040) return { kind: 'method', model: p[1], n };
  }
  throw new Error(`synthetic:H:N:flat|peaked or method:organism|llama:N with N in [256, 131040] (got ${text})`);
}

const DEFAULT_CASES = ['synthetic:4:16384:peaked', 'synthetic:4:16384:flat', 'synthetic:4:4096:peaked', 'synthetic:32:16384:peaked',
  'method:organism:16384', 'method:organism:4096', 'method:llama:16384'];

/** The command line (`--help` prints it). */
export const VS_SEARCH_TIMING_ARGS = defineBenchArgs('vertical-slash-search-timing', 'The Vertical-Slash count search per round on the GPU, per search variant (GPU only).', {
  cases: list<Case>({
    describe: 'synthetic:H:N:flat|peaked or method:organism|llama:N (N in [256, 131040])', placeholder: 'CASE,...', item: parseCase,
    default: DEFAULT_CASES.map(parseCase), defaultText: DEFAULT_CASES.join(','),
  }),
  variants: labels({ describe: 'search variants, in order', choices: Object.keys(VARIANTS) as VariantName[], default: DEFAULT_VARIANTS }),
  sparsity: num({ describe: 'target sparsity', placeholder: 'S', default: 0.9, above: 0, below: 1, noun: 'sparsity' }),
  repeats: int({ describe: 'calls per timing (median)', default: 5, atLeast: 1, noun: 'repeat count' }),
  out: text({ describe: 'JSON report', placeholder: 'FILE' }),
}, 'node dist/bench/vertical-slash-search-timing.js');

type Options = BenchOptionsOf<typeof VS_SEARCH_TIMING_ARGS.table>;

export function parseVsSearchTimingArgs(argv: string[]): Options {
  return VS_SEARCH_TIMING_ARGS.parse(argv);
}

const caseLabel = (c: Case) => (c.kind === 'synthetic' ? `synthetic H=${c.H} n=${c.n} ${c.scores}` : `${c.model} n=${c.n} estimate of random q/k`);

/** The case's score rows on the device, and a release for them. */
function caseScores(rt: CudaRuntime, c: Case): { H: number; scores: VerticalSlashScores; release: () => void } {
  if (c.kind === 'synthetic') {
    const { vertical, slash } = scoreRows(c.n, c.scores, c.n + c.H + (c.scores === 'flat' ? 1 : 2), c.H);
    const dv = rt.pool.acquire(vertical.byteLength), ds = rt.pool.acquire(slash.byteLength);
    rt.cuda.upload(dv.ptr, vertical);
    rt.cuda.upload(ds.ptr, slash);
    return { H: c.H, scores: { n: c.n, vertical: dv.ptr, slash: ds.ptr }, release: () => { rt.pool.release(dv); rt.pool.release(ds); } };
  }
  const { H, Hkv, D } = MODEL_HEADS[c.model], n = c.n;
  const ops = new ModelOpsKernels(rt);
  const q = rt.pool.acquire(n * H * D * 2), k = rt.pool.acquire(Hkv * n * D * 2);
  ops.fillUniform({ x: q.ptr, n: n * H * D, seed: 11, mean: 0, halfWidth: 1 });
  ops.fillUniform({ x: k.ptr, n: Hkv * n * D, seed: 12, mean: 0, halfWidth: 1 });
  const estimator = new VerticalSlashEstimator(rt, { numHeads: H, numKvHeads: Hkv, headDim: D });
  const scores = estimator.run({ q: q.ptr, qRowStride: H * D, k: k.ptr, kvStride: n, n, approximation: Math.min(APPROXIMATION, n), scale: 1 / Math.sqrt(D) });
  rt.synchronize();
  return { H, scores, release: () => { rt.synchronize(); estimator.release(); rt.pool.release(q); rt.pool.release(k); } };
}

interface VariantResult {
  label: string; untimedMs: number; timedMs: number; rounds: number; probes: number; answer: string;
  /** Per round, the median over the repeats of each field (µs; nodes and walks as counts). */
  perRound: Record<RoundTimingField, number>[];
  cyclesPerUs: number;
  failure?: string;
}

const COUNT_FIELDS: RoundTimingField[] = ['nodes', 'walks'];

/** Per round, the median over the repeats' timings of each field, cycles turned into µs. */
function roundMedians(timings: RoundTiming[]): { perRound: Record<RoundTimingField, number>[]; cyclesPerUs: number } {
  const cyclesPerUs = median(timings.map((t) => t.launchCycles / (t.launchNs / 1000)));
  const rounds = Math.min(...timings.map((t) => t.perRound.length));
  const perRound: Record<RoundTimingField, number>[] = [];
  for (let r = 0; r < rounds; r++) {
    perRound.push(Object.fromEntries(ROUND_TIMING_FIELDS.map((f) => {
      const m = median(timings.map((t) => t.perRound[r][f]));
      return [f, COUNT_FIELDS.includes(f) ? m : m / cyclesPerUs];
    })) as Record<RoundTimingField, number>);
  }
  return { perRound, cyclesPerUs };
}

function benchCase(rt: CudaRuntime, c: Case, o: Options): VariantResult[] {
  const { H, scores, release } = caseScores(rt, c);
  const results: VariantResult[] = [];
  try {
    for (const label of o.variants) {
      const v = { label, search: VARIANTS[label] };
      const plain = new VerticalSlashCountSearch(rt, H, v.search), timedSearch = new VerticalSlashCountSearch(rt, H, { ...v.search, timeRounds: true });
      try {
        const untimed = timed(o.repeats, () => plain.counts(scores, o.sparsity));
        const timings: RoundTiming[] = [];
        const run = timed(o.repeats, () => {
          const r = timedSearch.counts(scores, o.sparsity);
          const t = timedSearch.lastRoundTiming();
          if (t === null) throw new Error('the timed search recorded no timing');
          timings.push(t);
          return r;
        });
        const answer = JSON.stringify(run.value), reference = JSON.stringify(untimed.value);
        const { perRound, cyclesPerUs } = roundMedians(timings.slice(1)); // the first is the warm-up call's
        results.push({
          label: v.label, untimedMs: untimed.ms, timedMs: run.ms, rounds: run.value.rounds, probes: run.value.probes, answer, perRound, cyclesPerUs,
          ...(answer !== reference ? { failure: `timed ${answer}, untimed ${reference}` } : {}),
        });
      } finally {
        plain.release();
        timedSearch.release();
      }
    }
  } finally {
    release();
  }
  // Every variant answers as the first one; rounds may differ (the unguided heap tree against a guided one), not probes.
  const answerOf = (r: VariantResult) => r.answer.replace(/"rounds":\d+/, '');
  for (const r of results.slice(1)) {
    if (answerOf(r) !== answerOf(results[0])) r.failure ??= `answered ${r.answer}, ${results[0].label} ${results[0].answer}`;
  }
  return results;
}

const f1 = (x: number) => x.toFixed(1);
const PHASES: RoundTimingField[] = ['step1', 'layout', 'layoutScan', 'layoutAdvance', 'layoutPredict', 'counts', 'selectMax', 'barrier1', 'walkMax', 'barrier2', 'follow', 'tail', 'round'];

/** Mean over a variant's rounds of each phase (µs). */
function meanRound(r: VariantResult): Record<RoundTimingField, number> {
  return Object.fromEntries(ROUND_TIMING_FIELDS.map((f) => [f, r.perRound.reduce((a, x) => a + x[f], 0) / Math.max(1, r.perRound.length)])) as Record<RoundTimingField, number>;
}

export function runVerticalSlashSearchTimingBench(argv: string[]): number {
  // Parsed first: a bad option (or --help) is answered without a GPU.
  const o = parseVsSearchTimingArgs(argv);
  if (!isCudaAvailable()) {
    console.log(`vertical-slash search timing bench skipped: ${cudaUnavailableReason()}`);
    return 0;
  }
  const rt = new CudaRuntime();
  const all: { label: string; results: VariantResult[] }[] = [];
  try {
    for (const c of o.cases) {
      const results = benchCase(rt, c, o);
      all.push({ label: caseLabel(c), results });
      for (const r of results) {
        console.log(`\n${caseLabel(c)} s=${o.sparsity} ${r.label}: untimed ${r.untimedMs.toFixed(3)} ms, timed ${r.timedMs.toFixed(3)} ms, ` +
          `${r.probes} probes in ${r.rounds} rounds, ${r.cyclesPerUs.toFixed(0)} cycles/us${r.failure ? ` FAILED: ${r.failure}` : ''}`);
        console.log(`| round | nodes | walks | ${PHASES.join(' | ')} |`);
        r.perRound.forEach((x, i) => console.log(`| ${i + 1} | ${x.nodes} | ${x.walks} | ${PHASES.map((f) => f1(x[f])).join(' | ')} |`));
      }
    }
  } finally {
    rt.dispose();
  }
  console.log('');
  const defaultSet = o.variants.length === DEFAULT_VARIANTS.length && o.variants.every((v, i) => v === DEFAULT_VARIANTS[i]);
  for (const { label, results } of all) {
    if (!defaultSet) {
      for (const r of results) {
        const m = meanRound(r);
        console.log(`SUMMARY ${label} ${r.label}: untimed ms ${r.untimedMs.toFixed(3)} rounds ${r.rounds} nodes/round ${f1(m.nodes)} us/round: round ${f1(m.round)} ` +
          `step1 ${f1(m.step1)} lay ${f1(m.layout)} fol ${f1(m.follow)} sel ${f1(m.selectMax)} walk ${f1(m.walkMax)} b2 ${f1(m.barrier2)}${r.failure ? ' FAILED' : ''}`);
      }
      continue;
    }
    const [g, u, lean] = results.map(meanRound);
    if (!g || !u) continue;
    const d = (name: string, f: RoundTimingField) => `${name} ${f1(g[f])}/${f1(u[f])}`;
    console.log(`SUMMARY ${label}: rounds ${results[0].rounds}/${results[1].rounds} ms ${results[0].untimedMs.toFixed(3)}/${results[1].untimedMs.toFixed(3)} ` +
      `us/round guided/unguided: ${d('round', 'round')} ${d('lay', 'layout')} (scan ${f1(g.layoutScan)} adv ${f1(g.layoutAdvance)} pred ${f1(g.layoutPredict)}) ` +
      `${[['cnt', 'counts'], ['sel', 'selectMax'], ['b1', 'barrier1'], ['walk', 'walkMax'], ['b2', 'barrier2'], ['fol', 'follow'], ['tail', 'tail']]
        .map(([name, f]) => d(name, f as RoundTimingField)).join(' ')}` +
      (lean && results[2] ? ` | lean: ms ${results[2].untimedMs.toFixed(3)} rounds ${results[2].rounds} round ${f1(lean.round)} step1 ${f1(lean.step1)} lay ${f1(lean.layout)} fol ${f1(lean.follow)} b2 ${f1(lean.barrier2)}` : ''));
  }
  if (o.out) writeFileSync(o.out, JSON.stringify({ sparsity: o.sparsity, cases: all }, null, 2));
  const failures = all.flatMap((x) => x.results).filter((r) => r.failure).length;
  if (failures > 0) console.log(`${failures} FAILED`);
  return failures > 0 ? 1 : 0;
}

runIfDirect(import.meta.url, runVerticalSlashSearchTimingBench);
