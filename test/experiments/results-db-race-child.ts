// Child process of results-db-processes.test.ts: waits for a shared start time, then records
// `names` models and one example per model's configuration, in the same order as its siblings.
import { exampleFlops } from '../../src/experiments/flops.js';
import { ResultsDb } from '../../src/experiments/results-db.js';
import { expandExperiment, parseExperimentSpec } from '../../src/experiments/spec.js';
import { shape } from './synthetic-db.js';

const [file, namesArg, startArg] = process.argv.slice(2);
const names = Number(namesArg);
const shp = shape(16, 2);
const db = ResultsDb.openFile(file);
const configs = Array.from({ length: names }, (_, i) =>
  expandExperiment(parseExperimentSpec({ models: [{ path: 'm', name: `m${i}` }], tasks: ['niah'], lengths: [64], sparsities: [0.5], methods: ['quest'], examples: 1 }))[0],
);
while (Date.now() < Number(startArg)) { /* spin to start together with the siblings */ }
for (let i = 0; i < names; i++) {
  db.recordModel(`m${i}`, 'm', shp);
  db.registerConfigurations([configs[i]]);
  db.record({
    configKey: configs[i].key, exampleIndex: 0, promptHash: 'h', output: 'o', score: 1, inputTokens: 60, outputTokens: 4,
    prefill: { attendedPairs: 100, densePairs: 100 }, decode: { attendedPairs: 60, densePairs: 60 },
    flops: exampleFlops(shp, { inputTokens: 60, outputTokens: 4 }), prefillMs: 1, decodeMs: 2,
  });
}
db.close();
