import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expandExperiment, inShard, loadExperimentSpec, parseExperimentSpec, parseShard } from '../../src/experiments/spec.js';
import { PAPER_TASKS, QUICK_LENGTHS, QUICK_TASK_LABEL, loadExperiment, organismPreset, paperPreset, quickPreset } from '../../src/experiments/presets.js';
import { deviceMethodIds } from '../../src/backends/cuda/methods/index.js';
import { listMethods } from '../../src/methods/index.js';

const base = { models: ['models/a'], tasks: ['niah'], lengths: [1024], sparsities: [0.5, 0.9], methods: ['vertical_and_slash', 'quest'] };

test('bad fields are named in the error', () => {
  assert.throws(() => parseExperimentSpec({ ...base, lengths: [1024, -5] }), /lengths\.1:/);
  assert.throws(() => parseExperimentSpec({ ...base, sparsities: [1.0] }), /sparsities\.0: a sparsity must be below 1 \(got 1;/);
  assert.throws(() => parseExperimentSpec({ ...base, backend: 'tpu' }), /backend:/);
  assert.throws(() => parseExperimentSpec({ ...base, modles: [] }), /modles|Unrecognized/);
  assert.throws(() => parseExperimentSpec({ ...base, methods: ['mystery'] }), /methods\.0\.name: unknown method "mystery" \(known: .*quest/);
  assert.throws(() => parseExperimentSpec({ ...base, methods: [{ name: 'quest', params: { pagesize: 8 } }] }), /methods\.0\.params\.pagesize: "quest" has no parameter "pagesize" \(known: pageSize/);
  assert.throws(() => parseExperimentSpec({ ...base, methods: [{ name: 'flexprefill', sweep: { param: 'beta', values: [1] } }] }), /methods\.0\.sweep\.param/);
  assert.throws(() => parseExperimentSpec({ ...base, methods: [{ name: 'quest', phase: 'prefill' }] }), /methods\.0\.phase: "quest" is a decode method/);
  assert.throws(() => parseExperimentSpec({ ...base, methods: ['dense'] }), /methods\.0\.name: dense is the baseline/);
  assert.throws(() => parseExperimentSpec({ ...base, sparsities: [], methods: ['quest'] }), /methods\.0\.sparsities/);
});

test('expansion: dense once per cell, each method × sparsity, sweeps as configurations', () => {
  const spec = parseExperimentSpec({
    ...base, models: ['models/a', { path: 'models/b', name: 'bee' }], tasks: ['niah', 'vt'], lengths: [1024, 2048],
    methods: ['vertical_and_slash', 'quest', { name: 'flexprefill', sweep: { param: 'alpha', values: [0.9, 0.7] } }, { name: 'sink_local_decode', params: { sinkTokens: 4 } }],
  });
  const configs = expandExperiment(spec);
  // per cell: 1 dense + 2 (VS) + 2 (flex sweep) + 2 (quest) + 2 (sink-local) = 9; cells: 2 models × 2 lengths × 2 tasks.
  assert.equal(configs.length, 9 * 8);
  assert.equal(new Set(configs.map((c) => c.key)).size, configs.length);
  const dense = configs.filter((c) => c.phase === 'dense');
  assert.equal(dense.length, 8);
  const flex = configs.filter((c) => c.method === 'flexprefill');
  assert.deepEqual(flex.map((c) => c.requestedSparsity), Array(flex.length).fill(null));
  assert.ok(flex.every((c) => c.phase === 'prefill'));
  assert.ok(configs.some((c) => c.key === 'model=bee|task=vt|n=2048|phase=decode|method=sink_local_decode|s=0.9|params=sinkTokens=4'));
  assert.equal(configs[0].seed, 43);
  assert.equal(configs[0].maxNewTokens, 1024);
});

test('tasks with generator parameters: labelled by their parameters, built from name + params', () => {
  const spec = parseExperimentSpec({ ...base, methods: [], tasks: ['niah', { name: 'niah', params: { numQueries: 1, groups: 2 } }, { name: 'vt', params: { numChains: 2 }, label: 'vt-easy' }] });
  const dense = expandExperiment(spec).filter((c) => c.phase === 'dense');
  assert.deepEqual(dense.map((c) => [c.task, c.taskName, c.taskParams]), [
    ['niah', 'niah', {}],
    ['niah[groups=2,numQueries=1]', 'niah', { numQueries: 1, groups: 2 }],
    ['vt-easy', 'vt', { numChains: 2 }],
  ]);
  // A task without parameters keeps the key it always had, so earlier results still resume.
  assert.equal(dense[0].key, 'model=a|task=niah|n=1024|phase=dense|method=dense|s=0');
  assert.equal(dense[1].key, 'model=a|task=niah[groups=2,numQueries=1]|n=1024|phase=dense|method=dense|s=0');
  assert.throws(
    () => parseExperimentSpec({ ...base, tasks: [{ name: 'niah', params: { numQueries: 1 } }, { name: 'niah', params: { numQueries: 1 } }] }),
    /tasks\.1: the task "niah\[numQueries=1\]" is listed twice/,
  );
  assert.throws(() => parseExperimentSpec({ ...base, tasks: [{ name: 'niah', parms: {} }] }), /tasks\.0/);
});

test('duplicate sparsities are rejected with the configuration named', () => {
  const spec = parseExperimentSpec({ ...base, sparsities: [0.5, 0.5] });
  assert.throws(() => expandExperiment(spec), /duplicate configuration: model=a\|task=niah\|n=1024\|phase=prefill\|method=vertical_and_slash\|s=0.5/);
});

test('YAML and JSON files load; presets validate', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sf-spec-'));
  writeFileSync(join(dir, 'e.yaml'), 'models: [models/a]\ntasks: [niah]\nlengths: [1024]\nsparsities: [0.5]\nmethods: [snapkv]\nexamples: 2\n');
  writeFileSync(join(dir, 'e.json'), JSON.stringify({ ...base, examples: 3 }));
  assert.equal(expandExperiment(loadExperimentSpec(join(dir, 'e.yaml'))).length, 2);
  assert.equal(loadExperimentSpec(join(dir, 'e.json')).examples, 3);
  writeFileSync(join(dir, 'bad.yaml'), 'models: [models/a]\ntasks: [x]\nlengths: [abc]\n');
  assert.throws(() => loadExperimentSpec(join(dir, 'bad.yaml')), /bad\.yaml:\n\s+lengths\.0:/);

  const quick = loadExperiment('quick', join(dir, 'no-models-here'));
  const q = expandExperiment(quick);
  const perCell = q.filter((c) => c.task === QUICK_TASK_LABEL && c.length === QUICK_LENGTHS[0]);
  assert.deepEqual([...new Set(q.map((c) => `${c.taskName} ${JSON.stringify(c.taskParams)}`))], ['niah {"numQueries":1}']);
  // dense + every registered sparse method (sink-local once per phase) × 2 sparsities
  const sparseMethods = listMethods().filter((m) => m.id !== 'dense').length;
  assert.ok(sparseMethods >= 8);
  assert.equal(perCell.length, 1 + sparseMethods * 2);
  assert.equal(quick.backend, 'cpu');
  assert.match(quick.models[0] as string, /organism$/);

  const paper = parseExperimentSpec(paperPreset());
  assert.deepEqual(paper.lengths, [16384, 32768, 65536, 128000]);
  assert.deepEqual(paper.sparsities, [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.8667, 0.9, 0.9333, 0.95]);
  assert.equal(paper.tasks.length, 9);
  assert.deepEqual([...paper.tasks], [...PAPER_TASKS]);
  assert.equal(paper.examples, 100);
  assert.ok(paper.sparsities.includes(0.95));
  assert.ok(expandExperiment(paper).length > 1000);
  assert.equal(typeof quickPreset, 'function');

  // The organism's GPU grid: its three solved tasks, 4K-16K, every method that runs on the GPU.
  const organism = parseExperimentSpec(organismPreset());
  assert.equal(organism.backend, 'cuda');
  assert.deepEqual([...organism.tasks], ['niah', 'vt', 'story_retrieval']);
  assert.deepEqual(organism.lengths, [4096, 8192, 16384]);
  assert.deepEqual(organism.sparsities, [0.5, 0.8, 0.9, 0.95]);
  const gpu = new Set(deviceMethodIds());
  const organismMethods = organism.methods.map((m) => (typeof m === 'string' ? m : m.name));
  for (const m of organismMethods) assert.ok(gpu.has(m), `${m} has a GPU implementation`);
  for (const m of gpu) if (m !== 'dense') assert.ok(organismMethods.includes(m), `the grid covers ${m}`);
  assert.equal(expandExperiment(organism).length, 3 * 3 * (1 + organismMethods.length * 4));
});

test('shards partition every (configuration, example) exactly once', () => {
  assert.deepEqual(parseShard('2/4'), { index: 2, count: 4 });
  assert.throws(() => parseShard('5/4'), /1 <= i <= n/);
  assert.throws(() => parseShard('x'), /i\/n/);
  const count = 3;
  const sizes = [0, 0, 0];
  for (let c = 0; c < 20; c++) {
    for (let e = 0; e < 10; e++) {
      const owners = [1, 2, 3].filter((i) => inShard(`model=m|task=t|n=${c}`, e, { index: i, count }));
      assert.equal(owners.length, 1);
      sizes[owners[0] - 1]++;
    }
  }
  assert.ok(sizes.every((n) => n > 40), `shards are balanced: ${sizes}`);
});
