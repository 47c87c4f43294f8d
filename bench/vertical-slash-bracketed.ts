/**
 * Vertical-Slash estimation, baseline against candidate count-search options, bracketed (issue 9,
 * session 9): session 8's unbracketed calls drifted 23-43 % within a process at the organism's 16K, so no
 * option could be judged there. Here every cell interleaves the variants call by call in one process:
 *   - a warm-up of --warmup-seconds of baseline calls on the first cell before anything is timed;
 *   - per cell (shape, n, s): 2 unmeasured rounds, then --rounds measured rounds (cut to fit about
 *     --cell-seconds by the unmeasured rounds' time, at least 6), each round calling every variant once in
 *     serpentine order (A B C, C B A, ...), so that a linear drift cancels out of the per-round pairs;
 *   - per call: the estimation (the method's own event pair: estimate, count search, index; host waits
 *     inside it included) and the total (device events around the whole prefill);
 *   - per candidate: the middle of the ratios candidate / baseline (estimation, total) over serpentine pairs
 *     of rounds, where a linear drift cancels exactly, with their range, each variant's estimation drift (last half against first half), and a check that the candidate
 *     chose the baseline's counts, attended the same pairs and wrote the same last 64 output rows bit for bit;
 *   - the cell's status and the head-count groups' decisions by a rule in vertical-slash-bracket-stats.ts
 *     (written down before the first measurement): --rule session9 (BRACKET_RULE, the default: options
 *     judged against the session-8 default) or on-top (ON_TOP_RULE, session 10: options on top of the
 *     default, each head-count group deciding on its own).
 * Variants are named as in bench/vertical-slash-small-heads.ts (auto = DEFAULT_COUNT_SEARCH, Vertical-Slash's
 * default before session 9; auto+lean+order = its default since, VERTICAL_SLASH_COUNT_SEARCH; ...).
 *
 * Usage: node dist/bench/vertical-slash-bracketed.js [--cases organism:4096,organism:16384,llama:16384,llama:65536,llama:131072]
 *        [--sparsities 0.9,0.95] [--baseline auto] [--candidates auto+lean+order+selhandoff+deferindex,auto+lean+order] [--rule session9|on-top]
 *        [--rounds 12] [--cell-seconds 3] [--warmup-seconds 1.5] [--out FILE] (--help). Prints a skip message without a GPU.
 */
import { writeFileSync } from 'node:fs';
import { cudaUnavailableReason, isCudaAvailable } from '../src/backends/cuda/availability.js';
import { BF16_NAN_BITS } from '../src/backends/cuda/bf16.js';
import type { DevicePrefillCall } from '../src/backends/cuda/methods/contract.js';
import { VerticalSlashDevicePrefill, verticalSlashDeviceParams } from '../src/backends/cuda/methods/vertical-slash.js';
import { CudaRuntime } from '../src/backends/cuda/runtime.js';
import { timeOnDevice } from '../src/backends/cuda/timing.js';
import type { ModelConfig } from '../src/engine/model-config.js';
import { BenchArgsError, type BenchOptionsOf, choice, defineBenchArgs, int, list, num, numList, text } from './bench-args.js';
import { runIfDirect } from './bench-run.js';
import {
  BRACKET_RULE, type CellMeasure, type CellStatus, ON_TOP_RULE, type PassingCandidate, type PassingOnTop, cellStatus, chooseCandidate,
  chooseOnTop, countStatuses, drift, fewHeadsGroupPasses, geometricMean, manyHeadsGroupPasses, middle, onTopGroupPasses, pairedRatio,
  serpentineOrder,
} from './vertical-slash-bracket-stats.js';
import { type BenchCase, configOf, parseCase, randomPrefillCall, variantOptions } from './vertical-slash-small-heads.js';

/** Heads from which a shape belongs to the many-heads group of the rule. */
const MANY_HEADS = 32;
/** Output rows compared bit for bit between variants (the last ones: they attend the most keys). */
const CHECKED_ROWS = 64;
const UNMEASURED_ROUNDS = 2;
const MIN_ROUNDS = 6;

const variantName = (name: string) => (variantOptions(name), name);

/** The command line (`--help` prints it). */
export const VS_BRACKETED_ARGS = defineBenchArgs('vertical-slash-bracketed', 'Vertical-Slash estimation: baseline against candidate count-search options, call by call in serpentine rounds, with each cell\'s drift and the default rule\'s decision (GPU only).', {
  cases: list<BenchCase>({
    describe: 'shapes and lengths', placeholder: 'SHAPE:N,...', item: parseCase,
    default: [{ shape: 'organism', n: 4096 }, { shape: 'organism', n: 16384 }, { shape: 'llama', n: 16384 }, { shape: 'llama', n: 65536 }, { shape: 'llama', n: 131072 }],
    defaultText: 'organism:4096,organism:16384,llama:16384,llama:65536,llama:131072',
  }),
  sparsities: numList({ describe: 'target sparsities', placeholder: 'S,...', default: [0.9, 0.95], above: 0, below: 1, noun: 'sparsity' }),
  baseline: text({ describe: 'the baseline variant (small-heads bench names)', placeholder: 'VARIANT', default: 'auto' }),
  candidates: list({
    describe: 'candidate variants judged against the baseline', placeholder: 'VARIANT,...', item: variantName,
    default: ['auto+lean+order+selhandoff+deferindex', 'auto+lean+order'], defaultText: 'auto+lean+order+selhandoff+deferindex,auto+lean+order',
  }),
  rule: choice({
    describe: 'the decision rule: session9 (options against the old default) or on-top (options on top of the default, per head-count group)',
    choices: ['session9', 'on-top'] as const, default: 'session9',
  }),
  rounds: int({ describe: 'measured rounds per cell (at most; see --cell-seconds)', default: 12, atLeast: MIN_ROUNDS, noun: 'round count' }),
  'cell-seconds': num({ describe: 'rounds cut to fit about this long per cell (by the unmeasured rounds\' time)', default: 3, above: 0, noun: 'duration' }),
  'warmup-seconds': num({ describe: 'baseline calls on the first cell before anything is timed', default: 1.5, atLeast: 0, noun: 'duration' }),
  'organism-config': text({ describe: 'the organism\'s config.json', placeholder: 'FILE', default: 'models/organism/config.json' }),
  out: text({ describe: 'JSON report (every call\'s times)', placeholder: 'FILE' }),
}, 'node dist/bench/vertical-slash-bracketed.js');

type Options = BenchOptionsOf<typeof VS_BRACKETED_ARGS.table>;

export function parseVsBracketedArgs(argv: string[]): Options {
  const o = VS_BRACKETED_ARGS.parse(argv);
  try {
    variantOptions(o.baseline);
  } catch (e) {
    throw new BenchArgsError(`--baseline: ${(e as Error).message}`);
  }
  if (o.candidates.includes(o.baseline)) throw new BenchArgsError(`--candidates: ${o.baseline} is the baseline`);
  return o;
}

/** One variant's calls in one cell. */
interface VariantCalls { label: string; estimation: number[]; total: number[]; choice: string; attended: number; rows: Uint16Array }

interface CandidateCell extends CellMeasure { label: string; status: CellStatus; mismatch?: string }

interface CellReport {
  shape: string; n: number; numHeads: number; s: number; rounds: number;
  baseline: { label: string; estimationMs: number; totalMs: number; drift: number; choice: string; achieved: number };
  candidates: (CandidateCell & { estimationMs: number; totalMs: number })[];
  calls: VariantCalls[];
}

/** The last CHECKED_ROWS output rows, [rows, H, D] bf16 bits. */
function lastRows(rt: CudaRuntime, call: DevicePrefillCall): Uint16Array {
  const rows = Math.min(CHECKED_ROWS, call.numQueries), width = call.shape.numHeads * call.shape.headDim;
  const bits = new Uint16Array(rows * width);
  rt.cuda.download(bits, call.out + BigInt((call.numQueries - rows) * width * 2));
  return bits;
}

function sameBits(a: Uint16Array, b: Uint16Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** One cell: every variant warm (compiled, buffers sized, checked), then the serpentine rounds. */
function benchCell(rt: CudaRuntime, bc: BenchCase, s: number, o: Options, warmupSeconds: number): CellReport {
  const config = configOf(bc.shape, o);
  const { call, release } = randomPrefillCall(rt, config, bc.n);
  const labels = [o.baseline, ...o.candidates];
  const methods = labels.map((label) => new VerticalSlashDevicePrefill(rt, call.shape, verticalSlashDeviceParams({ sparsity: s }), undefined, variantOptions(label)));
  try {
    const calls: VariantCalls[] = methods.map((method, v) => {
      // Poisoned first: a row the kernel never wrote shows as NaN bits, and differs from a written one.
      rt.cuda.fill16Async(call.out, BF16_NAN_BITS, call.numQueries * call.shape.numHeads * call.shape.headDim, rt.stream);
      const counts = method.prefill(call);
      rt.synchronize();
      return {
        label: labels[v], estimation: [], total: [], choice: JSON.stringify(method.lastChoice?.summary ?? null),
        attended: counts.attended.reduce((a, b) => a + b, 0), rows: lastRows(rt, call),
      };
    });
    const once = (v: number) => {
      const total = timeOnDevice(rt, () => methods[v].prefill(call), { warmup: 0, repeats: 1 }).medianMs;
      const estimation = methods[v].lastEstimationMs();
      if (estimation === null) throw new Error(`${labels[v]}: the method recorded no estimation time`);
      return { total, estimation };
    };
    const warmUntil = performance.now() + warmupSeconds * 1000;
    while (performance.now() < warmUntil) once(0);
    const t0 = performance.now();
    for (let r = 0; r < UNMEASURED_ROUNDS; r++) for (const v of serpentineOrder(labels.length, r)) once(v);
    const roundMs = (performance.now() - t0) / UNMEASURED_ROUNDS;
    // Even: the ratios are taken over serpentine pairs of rounds (pairedRatio).
    const fit = Math.max(MIN_ROUNDS, Math.min(o.rounds, Math.floor((o.cellSeconds * 1000) / roundMs)));
    const rounds = fit + (fit % 2);
    for (let r = 0; r < rounds; r++) {
      for (const v of serpentineOrder(labels.length, r)) {
        const t = once(v);
        calls[v].estimation.push(t.estimation);
        calls[v].total.push(t.total);
      }
    }
    const base = calls[0];
    const baseDrift = drift(base.estimation);
    const achieved = 1 - base.attended / (config.numHeads * (bc.n * (bc.n + 1)) / 2);
    const candidates = calls.slice(1).map((c) => {
      const mismatch = c.choice !== base.choice ? `counts ${c.choice}, baseline ${base.choice}`
        : c.attended !== base.attended ? `${c.attended} attended pairs, baseline ${base.attended}`
          : !sameBits(c.rows, base.rows) ? `the last ${CHECKED_ROWS} output rows differ from the baseline's` : undefined;
      const m: CellMeasure = {
        estimation: pairedRatio(c.estimation, base.estimation), total: pairedRatio(c.total, base.total),
        baselineDrift: baseDrift, candidateDrift: drift(c.estimation), same: mismatch === undefined,
      };
      return { label: c.label, ...m, status: cellStatus(m, o.rule === 'on-top' ? ON_TOP_RULE : BRACKET_RULE), estimationMs: middle(c.estimation), totalMs: middle(c.total), ...(mismatch ? { mismatch } : {}) };
    });
    return {
      shape: bc.shape, n: bc.n, numHeads: config.numHeads, s, rounds,
      baseline: { label: base.label, estimationMs: middle(base.estimation), totalMs: middle(base.total), drift: baseDrift, choice: base.choice, achieved },
      candidates, calls,
    };
  } finally {
    for (const m of methods) m.reset();
    release();
  }
}

const pct = (ratio: number) => `${ratio >= 1 ? '+' : '−'}${(Math.abs(ratio - 1) * 100).toFixed(1)} %`;
const signedPct = (x: number) => `${x >= 0 ? '+' : '−'}${(Math.abs(x) * 100).toFixed(1)} %`;

type Group = 'many' | 'few';
type CandidateReport = CellReport['candidates'][number];

/** A candidate's cells in one head-count group. */
function groupCells(cells: CellReport[], group: Group, label: string): CandidateReport[] {
  return cells.filter((c) => (c.numHeads >= MANY_HEADS ? 'many' : 'few') === group)
    .map((c) => c.candidates.find((x) => x.label === label)).filter((x): x is CandidateReport => x !== undefined);
}

const statusText = (c: ReturnType<typeof countStatuses>) =>
  `${c.pass} pass, ${c.neutral} neutral, ${c.fail} fail, ${c.invalid} invalid, ${c.FAILED} FAILED of ${c.cells}`;

/** Session 10's rule (ON_TOP_RULE): each head-count group on its own, judged on the totals too. */
function onTopDecisions(cells: CellReport[], candidates: string[]): string[] {
  const lines: string[] = [];
  const passing: Record<Group, PassingOnTop[]> = { many: [], few: [] };
  for (const label of candidates) {
    const parts: string[] = [];
    for (const group of ['many', 'few'] as const) {
      const own = groupCells(cells, group, label);
      const count = countStatuses(own.map((x) => x.status));
      const valid = own.filter((x) => x.status !== 'invalid' && x.status !== 'FAILED');
      const geoTotal = valid.length > 0 ? geometricMean(valid.map((x) => x.total.median)) : null;
      const passed = onTopGroupPasses(count, geoTotal);
      if (passed && geoTotal !== null) passing[group].push({ label, options: label.split('+').length - 1, geoTotal });
      parts.push(`H ${group === 'many' ? '>=' : '<'} ${MANY_HEADS} ${statusText(count)}, geo total ${geoTotal?.toFixed(4) ?? '-'} -> ${passed ? 'PASSES' : 'does not pass'}`);
    }
    lines.push(`${label}: ${parts.join('; ')}`);
  }
  const many = chooseOnTop(passing.many), few = chooseOnTop(passing.few);
  lines.push(`decision (on-top): H >= ${MANY_HEADS}: ${many ? `switch to ${many.label}` : 'keep the default'}; ` +
    `H < ${MANY_HEADS}: ${few ? `switch to ${few.label}` : 'keep the default'}`);
  return lines;
}

/** Session 9's rule's decision per candidate and head-count group, as lines. */
function decisions(cells: CellReport[], candidates: string[]): string[] {
  const lines: string[] = [];
  const byGroup = (group: Group, label: string) => groupCells(cells, group, label);
  const passing: Record<'many' | 'few', PassingCandidate[]> = { many: [], few: [] };
  for (const label of candidates) {
    const many = byGroup('many', label), few = byGroup('few', label);
    const manyCount = countStatuses(many.map((x) => x.status)), fewCount = countStatuses(few.map((x) => x.status));
    const manyPassed = manyHeadsGroupPasses(manyCount), fewPassed = fewHeadsGroupPasses(fewCount, manyPassed);
    const options = label.split('+').length - 1;
    if (manyPassed) passing.many.push({ label, options, geoEstimation: geometricMean(many.map((x) => x.estimation.median)) });
    if (fewPassed) passing.few.push({ label, options, geoEstimation: geometricMean(few.map((x) => x.estimation.median)) });
    lines.push(`${label}: H >= ${MANY_HEADS} ${statusText(manyCount)} -> ${manyPassed ? 'PASSES' : 'does not pass'}; ` +
      `H < ${MANY_HEADS} ${statusText(fewCount)} -> ${fewPassed ? 'PASSES' : 'does not pass'}`);
  }
  const many = chooseCandidate(passing.many), few = chooseCandidate(passing.few);
  lines.push(`decision: H >= ${MANY_HEADS}: ${many ? `switch to ${many.label}` : 'keep the default'}; ` +
    `H < ${MANY_HEADS}: ${few ? `switch to ${few.label}` : 'keep the default'}`);
  return lines;
}

export function runVerticalSlashBracketedBench(argv: string[]): number {
  // Parsed first: a bad option (or --help) is answered without a GPU.
  const o = parseVsBracketedArgs(argv);
  if (!isCudaAvailable()) {
    console.log(`vertical-slash bracketed bench skipped: ${cudaUnavailableReason()}`);
    return 0;
  }
  const rt = new CudaRuntime();
  const cells: CellReport[] = [];
  try {
    let warmup = o.warmupSeconds;
    for (const bc of o.cases) {
      for (const s of o.sparsities) {
        const cell = benchCell(rt, bc, s, o, warmup);
        warmup = 0;
        cells.push(cell);
        const b = cell.baseline;
        console.log(`${bc.shape} n=${bc.n} s=${s} (${cell.rounds} rounds): ${b.label} estimation ${b.estimationMs.toFixed(3)} ms, total ${b.totalMs.toFixed(3)} ms, ` +
          `drift ${signedPct(b.drift)}, achieved ${b.achieved.toFixed(3)} ${b.choice}`);
        for (const c of cell.candidates) {
          console.log(`  ${c.label}: estimation ${c.estimationMs.toFixed(3)} ms (${pct(c.estimation.median)}, ${pct(c.estimation.min)} .. ${pct(c.estimation.max)}), ` +
            `total ${pct(c.total.median)}, drift ${signedPct(c.candidateDrift)} -> ${c.status}${c.mismatch ? `: ${c.mismatch}` : ''}`);
        }
      }
    }
  } finally {
    rt.dispose();
  }
  console.log('\n| shape | n | s | rounds | baseline est ms (drift) | baseline total ms | candidate | est ratio (range) | total ratio | cand drift | status |');
  console.log('| --- | --: | --: | --: | --: | --: | --- | --: | --: | --: | --- |');
  for (const cell of cells) {
    for (const c of cell.candidates) {
      console.log(`| ${cell.shape} | ${cell.n} | ${cell.s} | ${cell.rounds} | ${cell.baseline.estimationMs.toFixed(3)} (${signedPct(cell.baseline.drift)}) | ` +
        `${cell.baseline.totalMs.toFixed(3)} | ${c.label} | ${c.estimation.median.toFixed(3)} (${c.estimation.min.toFixed(3)}-${c.estimation.max.toFixed(3)}) | ` +
        `${c.total.median.toFixed(3)} | ${signedPct(c.candidateDrift)} | ${c.status} |`);
    }
  }
  console.log('');
  for (const line of (o.rule === 'on-top' ? onTopDecisions : decisions)(cells, o.candidates)) console.log(line);
  if (o.out) {
    writeFileSync(o.out, JSON.stringify(cells.map((c) => ({ ...c, calls: c.calls.map(({ rows: _rows, ...rest }) => rest) })), null, 2));
  }
  const failed = cells.flatMap((c) => c.candidates).filter((c) => c.status === 'FAILED').length;
  if (failed > 0) console.log(`\n${failed} FAILED cells (a candidate chose or wrote something else than the baseline)`);
  return failed > 0 ? 1 : 0;
}

runIfDirect(import.meta.url, runVerticalSlashBracketedBench);
