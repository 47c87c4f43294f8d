/**
 * A model of vertical-slash-prefill-wgmma.cu's synchronisation, run under random schedules (CPU only):
 * the producer fills K then V of each step into stage step % S (cp.async copies landing later, in
 * order, each landing completing one phase of the stage's full barrier), after waiting on the stage's
 * empty barrier for the fill before; each consumer warpgroup walks only its own steps
 * (vsWgmmaStepOwners / vsWgmmaStepOf), waits with the kernel's parities, releases K after its scores
 * and the previous step's V after that step's P·V (one step late), and flushes the last P·V at the end.
 * Barrier waits follow mbarrier parity semantics (a wait on parity P passes once the last completed
 * phase has parity P; on a fresh barrier a wait on 1 passes). Checked: every run finishes, and every
 * wait that passes sees exactly the fill it expects, landed, and every refill finds its stage released.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { vsWgmmaStepOf, vsWgmmaStepOwners } from '../../src/backends/cuda/vertical-slash-wgmma-schedule.js';
import { mulberry32 } from '../../bench/seeded-random.js';

interface Barrier { phases: number }
/** mbarrier.try_wait.parity: passes when the phase with parity P is the last completed one. */
const passes = (b: Barrier, parity: number): boolean => ((b.phases - 1) & 1) === parity;

type Op = { kind: 'wait'; bar: Barrier; parity: number; check: () => void } | { kind: 'do'; run: () => void };

/** Runs the model once; returns a description of a deadlock, or null when everything finished. */
function runModel(n0: number, n1: number, S: number, rand: () => number): string | null {
  const owners = vsWgmmaStepOwners(n0, n1);
  const steps = owners.length;
  const paired = Math.min(n0, n1);
  const mk = () => Array.from({ length: S }, (): Barrier => ({ phases: 0 }));
  const fullK = mk(), fullV = mk(), emptyK = mk(), emptyV = mk();
  // What each stage holds: the step whose copies were issued into it, and whether they landed.
  const content = { K: Array<number>(S).fill(-1), V: Array<number>(S).fill(-1) };
  const landed = { K: Array<boolean>(S).fill(false), V: Array<boolean>(S).fill(false) };
  const released = { K: new Set<number>(), V: new Set<number>() };
  const inflight: { tensor: 'K' | 'V'; st: number; step: number }[] = [];

  const producer: Op[] = [];
  for (let i = 0; i < steps; i++) {
    const st = i % S, use = Math.floor(i / S);
    for (const tensor of ['K', 'V'] as const) {
      const empty = tensor === 'K' ? emptyK : emptyV;
      if (use > 0) {
        producer.push({
          kind: 'wait', bar: empty[st], parity: (use - 1) & 1,
          check: () => assert.ok(released[tensor].has(i - S), `${tensor} stage ${st} refilled for step ${i} before step ${i - S} released it`),
        });
      }
      producer.push({ kind: 'do', run: () => {
        content[tensor][st] = i;
        landed[tensor][st] = false;
        inflight.push({ tensor, st, step: i });
      } });
    }
  }

  const consumer = (w: 0 | 1, tiles: number): Op[] => {
    const ops: Op[] = [];
    const expect = (tensor: 'K' | 'V', st: number, step: number) => () => {
      assert.equal(content[tensor][st], step, `warpgroup ${w}: ${tensor} stage ${st} holds step ${content[tensor][st]}, expected ${step}`);
      assert.ok(landed[tensor][st], `warpgroup ${w}: ${tensor} of step ${step} read before it landed`);
    };
    let pending: { st: number; use: number; step: number } | null = null;
    for (let k = 0; k < tiles; k++) {
      const step = vsWgmmaStepOf(w, k, paired), st = step % S, use = Math.floor(step / S);
      assert.equal(owners[step], w, `step ${step} owner`);
      ops.push({ kind: 'wait', bar: fullK[st], parity: use & 1, check: expect('K', st, step) });
      const p = pending;
      if (p) ops.push({ kind: 'wait', bar: fullV[p.st], parity: p.use & 1, check: expect('V', p.st, p.step) });
      ops.push({ kind: 'do', run: () => { released.K.add(step); emptyK[st].phases++; } });
      if (p) ops.push({ kind: 'do', run: () => { released.V.add(p.step); emptyV[p.st].phases++; } });
      pending = { st, use, step };
    }
    const p = pending;
    if (p) {
      ops.push({ kind: 'wait', bar: fullV[p.st], parity: p.use & 1, check: expect('V', p.st, p.step) });
      ops.push({ kind: 'do', run: () => { released.V.add(p.step); emptyV[p.st].phases++; } });
    }
    return ops;
  };

  const actors = [producer, consumer(0, n0), consumer(1, n1)];
  const pc = [0, 0, 0];
  for (;;) {
    const runnable: number[] = [];
    for (let a = 0; a < actors.length; a++) {
      const op = actors[a][pc[a]];
      if (op && (op.kind === 'do' || passes(op.bar, op.parity))) runnable.push(a);
    }
    // The copies in flight land in issue order (cp.async.mbarrier.arrive per thread follows its copies).
    if (inflight.length > 0) runnable.push(-1);
    if (runnable.length === 0) {
      if (pc.every((x, a) => x === actors[a].length)) return null;
      return `deadlock: n0=${n0} n1=${n1} S=${S} at producer ${pc[0]}/${actors[0].length}, wg0 ${pc[1]}/${actors[1].length}, wg1 ${pc[2]}/${actors[2].length}`;
    }
    const a = runnable[Math.floor(rand() * runnable.length)];
    if (a === -1) {
      const c = inflight.shift()!;
      landed[c.tensor][c.st] = true;
      (c.tensor === 'K' ? fullK : fullV)[c.st].phases++;
      continue;
    }
    const op = actors[a][pc[a]++];
    if (op.kind === 'wait') op.check();
    else op.run();
  }
}

describe('vertical-slash wgmma synchronisation model', () => {
  test('mbarrier parity: a fresh barrier passes a wait on 1, not on 0', () => {
    assert.equal(passes({ phases: 0 }, 1), true);
    assert.equal(passes({ phases: 0 }, 0), false);
    assert.equal(passes({ phases: 1 }, 0), true);
    assert.equal(passes({ phases: 2 }, 1), true);
  });

  test('finishes with every wait seeing its own fill, 2-4 stages, 300 random schedules each', () => {
    const rand = mulberry32(2026);
    const counts: [number, number][] = [[0, 0], [1, 0], [0, 3], [1, 1], [5, 5], [7, 2], [2, 9], [13, 12], [1, 20], [20, 1]];
    for (const S of [2, 3, 4]) {
      for (const [n0, n1] of counts) {
        for (let r = 0; r < 30; r++) assert.equal(runModel(n0, n1, S, rand), null);
      }
    }
  });

  test('the model can fail: with one stage a warpgroup\'s tiles lie two fills apart (wrong fill seen or deadlock)', () => {
    const rand = mulberry32(7);
    const failures: string[] = [];
    for (let r = 0; r < 20; r++) {
      try {
        const result = runModel(3, 3, 1, rand);
        if (result) failures.push(result);
      } catch (e) {
        failures.push((e as Error).message);
      }
    }
    assert.ok(failures.length > 0, 'expected the one-stage model to fail');
  });
});
