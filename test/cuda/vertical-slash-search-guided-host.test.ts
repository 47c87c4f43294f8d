/**
 * The count search's guided tree (vertical-slash-search.cu guide_layout / guide_follow, session 7)
 * on the host, no GPU: vertical-slash-search-guided-host.cpp is built with g++ around the search's
 * state machine and the guided tree as the .cu has them (cut from "Where a search stands" to the end
 * of the guided tree, plus the constants they use). Over Vertical-Slash searches on monotone and
 * non-monotone pair functions and FlexPrefill searches (n 50-20011, H 1/4/32, s 0-0.999), each
 * guided with an exact, a noisy and a wrong model at 1, 3, 7, 15 and 31 slots a round: every run ends
 * in the one-probe-at-a-time search's result (counts or alpha bit for bit, floor verdict and pairs,
 * probes), and with a good model in far fewer rounds than the heap tree's. The same with the layout
 * predicting from the round's line thresholds (guideThresholds: each search's warp emulated on the
 * host), whose column-line predictions must equal guide_predict's and whose thresholds a scan's.
 * Also the options' checks (CPU only). Skipped with a message where g++ is missing.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, test } from 'node:test';
import { kernelSourcePath } from '../../src/backends/cuda/kernel-source.js';
import { VerticalSlashCountSearch, coarseColumnBitmapFits, columnBitmapFits } from '../../src/backends/cuda/kernels/vertical-slash-search.js';
import type { CudaRuntime } from '../../src/backends/cuda/runtime.js';
import { gppProblem, hostHarnessPath } from './kernel-source-text.js';

const problem = gppProblem();
if (problem) console.log(`# vertical-slash guided tree host tests skipped: ${problem}`);

/** The .cu's text from the search's state machine to the end of the guided tree. */
function guidedRegion(cu: string): string {
  const start = cu.indexOf('// Where a search stands;');
  const end = cu.indexOf('// ---- end of the guided tree ----');
  if (start < 0 || end < start) throw new Error('vertical-slash-search.cu: the state machine / guided tree markers are missing');
  return cu.slice(start, end);
}

/** The namespace constants the region uses, as the .cu defines them. */
function guidedConstants(cu: string): string {
  const lines = ['MAX_LEVELS', 'MAX_BATCH', 'ABOVE_ANY_TARGET'].map((name) => {
    const m = new RegExp(`^constexpr \\w+ ${name} = [^\\n]*$`, 'm').exec(cu);
    if (!m) throw new Error(`vertical-slash-search.cu: no constexpr ${name}`);
    return m[0];
  });
  return lines.join('\n') + '\n';
}

describe('vertical-slash count search: the guided tree on the host (g++ harness)', { skip: problem ?? false }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'vs-guided-host-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  const build = (name: string, edit: (region: string) => string = (r) => r): string => {
    const cu = readFileSync(kernelSourcePath('vertical-slash-search.cu'), 'utf8');
    const region = guidedRegion(cu), edited = edit(region);
    if (edited === region && name !== 'kernel') throw new Error(`vertical-slash guided host test: the ${name} edit changed nothing`);
    const regionFile = join(dir, `${name}.inc`), constantsFile = join(dir, `${name}.constants.inc`);
    writeFileSync(regionFile, edited);
    writeFileSync(constantsFile, guidedConstants(cu));
    const exe = join(dir, name);
    try {
      execFileSync('g++', ['-std=c++20', '-O2', '-Wno-unknown-pragmas', '-I', dirname(kernelSourcePath('flexprefill-sizes.cuh')),
        `-DGUIDED_REGION_FILE="${regionFile}"`, `-DGUIDED_CONSTANTS_FILE="${constantsFile}"`,
        hostHarnessPath('vertical-slash-search-guided-host.cpp'), '-o', exe], { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (e) {
      throw new Error(`vertical-slash guided host harness did not compile:\n${String((e as { stderr?: Buffer }).stderr ?? e)}`);
    }
    return exe;
  };
  const summary = (exe: string, seed: number, mode: 'heap-layout' | 'thresholds' | 'lean' | 'compact' = 'heap-layout') => {
    const out = execFileSync(exe, mode === 'heap-layout' ? [String(seed)] : [String(seed), mode], { encoding: 'utf8' });
    const m = /searches (\d+) runs (\d+) mismatches (\d+) probes (\d+) rounds15 exact (\d+) noisy (\d+) wrong (\d+)/.exec(out);
    assert.ok(m, `seed ${seed}: harness printed no summary:\n${out}`);
    const [searches, runs, mismatches, probes, exact, noisy, wrong] = m.slice(1).map(Number);
    return { out, searches, runs, mismatches, probes, exact, noisy, wrong };
  };
  const thresholdCheck = (out: string) => {
    const m = /thresholds common (\d+) disagree (\d+) column (\d+) disagree (\d+) searched (\d+) wrong (\d+)/.exec(out);
    assert.ok(m, `the harness printed no thresholds line:\n${out}`);
    const [common, commonDisagree, column, columnDisagree, searched, searchWrong] = m.slice(1).map(Number);
    return { common, commonDisagree, column, columnDisagree, searched, searchWrong };
  };

  test('every guided run ends in the one-probe search\'s result; a good model takes far fewer rounds', () => {
    const exe = build('kernel');
    for (const seed of [1, 2]) {
      const r = summary(exe, seed);
      assert.ok(r.searches === 6 * 3 * 2 * 8 * 2 && r.runs === r.searches * 15, `seed ${seed}: ${r.searches} searches, ${r.runs} runs`);
      assert.equal(r.mismatches, 0, `seed ${seed}:\n${r.out}`);
      // The heap tree's 15 slots answer 4 levels a round: about probes / 4 rounds. With the exact
      // model the guided tree must do much better; with a wrong one it may do worse, never wrongly.
      // (seed 1: 4,046 probes, 636 / 637 / 1,010 rounds with the exact / noisy / wrong model.)
      assert.ok(r.exact < 0.7 * (r.probes / 4), `seed ${seed}: ${r.exact} rounds with the exact model for ${r.probes} probes`);
      assert.ok(r.noisy < 0.75 * (r.probes / 4), `seed ${seed}: ${r.noisy} rounds with the noisy model for ${r.probes} probes`);
      console.log(`# seed ${seed}: ${r.probes} Vertical-Slash probes; rounds at 15 slots: exact model ${r.exact}, noisy ${r.noisy}, wrong ${r.wrong} (heap tree ~${Math.round(r.probes / 4)})`);
    }
  });

  test('guideThresholds: predictions from the round\'s line thresholds end in the same results, in as few rounds, and equal guide_predict\'s on the column line', () => {
    const exe = build('kernel');
    for (const seed of [1, 2]) {
      const plain = summary(exe, seed), r = summary(exe, seed, 'thresholds'), t = thresholdCheck(r.out);
      assert.equal(r.mismatches, 0, `seed ${seed}:\n${r.out}`);
      assert.equal(r.probes, plain.probes);
      // The column line's model pairs grow with kv, so its thresholds reproduce every prediction; the
      // common line's nearly always (seed 1: 68 of 49,377 laid-out nodes differ where f dips).
      assert.ok(t.column > 10_000 && t.columnDisagree === 0, `seed ${seed}: ${t.columnDisagree} of ${t.column} column-line predictions differ`);
      assert.ok(t.searched > 1000 && t.searchWrong === 0, `seed ${seed}: ${t.searchWrong} of ${t.searched} column thresholds differ from a scan`);
      assert.ok(t.common > 10_000 && t.commonDisagree < 0.01 * t.common, `seed ${seed}: ${t.commonDisagree} of ${t.common} common-line predictions differ`);
      for (const q of ['exact', 'noisy'] as const) {
        assert.ok(r[q] <= 1.03 * plain[q], `seed ${seed}: ${r[q]} rounds with the ${q} model and thresholds against ${plain[q]} without`);
      }
      console.log(`# seed ${seed}: thresholds: rounds at 15 slots exact ${r.exact} (without ${plain.exact}), noisy ${r.noisy} (${plain.noisy}); ` +
        `predictions differing common ${t.commonDisagree} / ${t.common}, column ${t.columnDisagree} / ${t.column}`);
    }
  });

  test('the lean layout and follow (leanLayout: states in registers) lay out the same trees and end the same follows, every round', () => {
    const exe = build('kernel');
    const leanLine = (out: string) => {
      const m = /lean rounds (\d+) layoutDiffs (\d+) followDiffs (\d+)/.exec(out);
      assert.ok(m, `the harness printed no lean line:\n${out}`);
      return { rounds: Number(m[1]), layoutDiffs: Number(m[2]), followDiffs: Number(m[3]) };
    };
    for (const seed of [1, 2]) {
      const thresholds = summary(exe, seed, 'thresholds'), r = summary(exe, seed, 'lean'), l = leanLine(r.out);
      assert.equal(r.mismatches, 0, `seed ${seed}:\n${r.out}`);
      assert.deepEqual([r.exact, r.noisy, r.wrong], [thresholds.exact, thresholds.noisy, thresholds.wrong], `seed ${seed}: rounds differ from the thresholds path`);
      assert.ok(l.rounds > 10_000, `seed ${seed}: only ${l.rounds} rounds compared`);
      assert.deepEqual({ layoutDiffs: l.layoutDiffs, followDiffs: l.followDiffs }, { layoutDiffs: 0, followDiffs: 0 }, `seed ${seed}`);
      console.log(`# seed ${seed}: lean: ${l.rounds} rounds' trees and follows compared, all equal`);
    }
    // Mutants: the register state not following the last laid-out node; the lean follow not storing its state.
    const stale = build('lean-stale', (region) => region.replace('  cur = t;\n  curAt = count;\n', '  curAt = count;\n'));
    assert.ok(leanLine(summary(stale, 1, 'lean').out).layoutDiffs > 0, 'the stale-register-state mutant passed the harness');
    const unstored = build('lean-unstored', (region) => region.replace('  *r->st = s;\n', ''));
    assert.ok(leanLine(summary(unstored, 1, 'lean').out).followDiffs > 0, 'the unstored-follow mutant passed the harness');
  });

  test('the compact layout (compactLayout: six-int nodes, int-only advance, cached fallback) lays out the lean trees, every Vertical-Slash round', () => {
    const exe = build('kernel');
    const compactLine = (out: string) => {
      const m = /compact rounds (\d+) diffs (\d+) fallbacks (\d+)/.exec(out);
      assert.ok(m, `the harness printed no compact line:\n${out}`);
      return { rounds: Number(m[1]), diffs: Number(m[2]), fallbacks: Number(m[3]) };
    };
    for (const seed of [1, 2]) {
      const r = summary(exe, seed, 'compact'), c = compactLine(r.out);
      assert.equal(r.mismatches, 0, `seed ${seed}:\n${r.out}`);
      assert.ok(c.rounds > 5_000, `seed ${seed}: only ${c.rounds} rounds compared`);
      // The fallback (the floor, column searches not begun) must be exercised, or its cache is untested.
      assert.ok(c.fallbacks > 1_000, `seed ${seed}: only ${c.fallbacks} nodes took the fallback prediction`);
      assert.equal(c.diffs, 0, `seed ${seed}: ${c.diffs} of ${c.rounds} compact trees differ from the lean ones`);
      console.log(`# seed ${seed}: compact: ${c.rounds} Vertical-Slash rounds' trees compared, all equal (${c.fallbacks} fallback predictions)`);
    }
    // Mutants: a cache kept across column lines; the assumed outcomes swapped; the common bisection's lower middle; the fallback's
    // columns term from the anchor's count.
    const mutants: [string, (region: string) => string][] = [
      ['compact-stale-cache', (region) => region.replace('if (K != fb.K) {', 'if (fb.K < 0) {')],
      ['compact-swapped', (region) => region.replace('layout_advance(t, n, minV, minS, high != 0);', 'layout_advance(t, n, minV, minS, high == 0);')],
      ['compact-lower-middle', (region) => region.replace('if (s.lo < s.hi) s.kv = s.ks = (s.lo + s.hi + 1) >> 1;', 'if (s.lo < s.hi) s.kv = s.ks = (s.lo + s.hi) >> 1;')],
      ['compact-anchor-count', (region) => region.replace('g.col[min(max(t.kv, 0), g.n)] * fb.factor', 'g.col[min(max(t.ks, 0), g.n)] * fb.factor')],
    ];
    for (const [name, edit] of mutants) {
      assert.ok(compactLine(summary(build(name, edit), 1, 'compact').out).diffs > 0, `the ${name} mutant passed the harness`);
    }
  });

  test('the harness catches a threshold search that skips a count, and a layout comparing with the wrong end', () => {
    const skipping = build('skipping', (r) => r.replace('a = a + (first - 1) * step + 1;', 'a = a + (first - 1) * step + 2;'));
    const s = thresholdCheck(summary(skipping, 1, 'thresholds').out);
    assert.ok(s.searchWrong > 0 && s.columnDisagree > 0, 'the skipping-search mutant passed the harness');
    const inclusive = build('inclusive', (r) => r.replace('return k < th.columnBelowEnd ? -1', 'return k <= th.columnBelowEnd ? -1'));
    assert.ok(thresholdCheck(summary(inclusive, 1, 'thresholds').out).columnDisagree > 0, 'the inclusive-compare mutant passed the harness');
  });

  test('the harness catches a follow that trusts the tree: taking the low child without checking its probe', () => {
    const exe = build('trusting', (r) => r.replace('if (low >= 0 && same_probe(tree[low], *st, goal.mode)) c = low;', 'if (low >= 0) c = low;'));
    assert.ok(summary(exe, 1).mismatches > 0, 'the trusting-follow mutant passed the harness');
  });

  test('the harness catches a layout that assumes the wrong outcome for its children', () => {
    const exe = build('swapped', (r) => r.replace('search_advance(tree[count], goal, bestHigh ? ABOVE_ANY_TARGET : -1.0);',
      'search_advance(tree[count], goal, bestHigh ? -1.0 : ABOVE_ANY_TARGET);').replace(
      'if (low >= 0 && same_probe(tree[low], *st, goal.mode)) c = low;', 'if (low >= 0) c = low;'));
    assert.ok(summary(exe, 1).mismatches > 0, 'the swapped-children mutant passed the harness');
  });
});

describe('count search guidedProbes option (CPU: checked before anything touches the device)', () => {
  const rt = {} as CudaRuntime;
  test('needs the batched search, and the column bitmap when the walks have lanes', () => {
    assert.throws(() => new VerticalSlashCountSearch(rt, 4, { guidedProbes: true }), /guidedProbes needs probeLevels/);
    assert.throws(() => new VerticalSlashCountSearch(rt, 4, { probeLevels: 4, walkLanes: 1, guidedProbes: true }), /needs walkColumnBitmap/);
    const ok = new VerticalSlashCountSearch(rt, 4, { probeLevels: 'auto', walkLanes: 1, walkColumnBitmap: true, guidedProbes: true });
    assert.equal(ok.guidedProbes, true);
    assert.equal(new VerticalSlashCountSearch(rt, 4, { probeLevels: 4 }).guidedProbes, false);
  });

  test('guideThresholds needs the guided tree with the column-bitmap walk, and not bitmapFromRanks', () => {
    const bitmapWalk = { probeLevels: 'auto' as const, walkLanes: 1, walkColumnBitmap: true };
    assert.throws(() => new VerticalSlashCountSearch(rt, 4, { ...bitmapWalk, guideThresholds: true }), /guideThresholds needs guidedProbes/);
    assert.throws(() => new VerticalSlashCountSearch(rt, 4, { probeLevels: 4, guidedProbes: true, guideThresholds: true }), /guideThresholds needs guidedProbes/);
    assert.throws(() => new VerticalSlashCountSearch(rt, 4, { ...bitmapWalk, guidedProbes: true, guideThresholds: true, bitmapFromRanks: true }),
      /no kernel together/);
    assert.equal(new VerticalSlashCountSearch(rt, 4, { ...bitmapWalk, guidedProbes: true, guideThresholds: true }).guideThresholds, true);
    assert.equal(new VerticalSlashCountSearch(rt, 4, { ...bitmapWalk, guidedProbes: true }).guideThresholds, false);
  });

  test('coarseColumnBitmap and bitmapFromRanks need the column bitmap; the two-level form fits where the one-level one stops, up to n = 209,664', () => {
    assert.throws(() => new VerticalSlashCountSearch(rt, 4, { probeLevels: 4, walkLanes: 1, coarseColumnBitmap: true }), /coarseColumnBitmap needs walkColumnBitmap/);
    assert.throws(() => new VerticalSlashCountSearch(rt, 4, { probeLevels: 4, walkLanes: 1, bitmapFromRanks: true }), /bitmapFromRanks needs walkColumnBitmap/);
    // The kernel's test: ceil(n / 32) words + ceil(words / 4) + 1 counts (+ the offsets) <= its 8192-int stage.
    assert.equal(columnBitmapFits(131_040), true);
    assert.equal(columnBitmapFits(131_072), false);
    assert.equal(coarseColumnBitmapFits(131_072), true);
    assert.equal(coarseColumnBitmapFits(209_664), true);
    assert.equal(coarseColumnBitmapFits(209_665), false);
  });
});
