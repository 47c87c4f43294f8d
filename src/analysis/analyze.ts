/**
 * The whole analysis of one experiment directory, as plain data: per-configuration results,
 * paired preservation tests and the largest preserved sparsity, the isoFLOPS view with its
 * frontier, and the scaling-law fits. `analysisToJson` gives the analysis.json form.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type BuildFailure, RESULTS_FILE, ResultsDb, type ModelRow } from '../experiments/results-db.js';
import { type ConfigResult, aggregateByConfiguration } from './aggregate.js';
import { type IsoFlopsGroup, isoFlopsAnalysis } from './isoflops.js';
import {
  DEFAULT_PRESERVATION, type LargestPreserved, type PreservationOptions, type PreservationTest,
  largestPreservedSparsity, preservationTests,
} from './preservation.js';
import { type ScalingLawFit, type ScalingLink, scalingLawFits } from './scaling-law.js';

export interface Analysis {
  source: string;
  models: ModelRow[];
  configurations: ConfigResult[];
  preservation: { options: PreservationOptions; tests: PreservationTest[]; largest: LargestPreserved[] };
  isoflops: IsoFlopsGroup[];
  scalingLaws: ScalingLawFit[];
  /** Examples the tasks could not build at their length (absent from every statistic). */
  buildFailures: BuildFailure[];
}

export function analyzeResults(db: ResultsDb, options: PreservationOptions = DEFAULT_PRESERVATION, source = db.path, scalingLink: ScalingLink = 'logit'): Analysis {
  const configurations = aggregateByConfiguration(db.examples());
  const tests = preservationTests(configurations, options);
  return {
    source,
    models: db.models(),
    configurations,
    preservation: { options, tests, largest: largestPreservedSparsity(tests) },
    isoflops: isoFlopsAnalysis(configurations),
    scalingLaws: scalingLawFits(configurations, scalingLink),
    buildFailures: db.buildFailures(),
  };
}

/** Opens `<dir>/results.sqlite` read-only and analyses it. */
export function analyzeDirectory(dir: string, options: PreservationOptions = DEFAULT_PRESERVATION, scalingLink: ScalingLink = 'logit'): Analysis {
  const path = join(dir, RESULTS_FILE);
  if (!existsSync(path)) throw new Error(`no results database in ${dir} (expected ${RESULTS_FILE})`);
  const db = ResultsDb.openFile(path, { readonly: true });
  try {
    const analysis = analyzeResults(db, options, path, scalingLink);
    if (!analysis.configurations.length) throw new Error(`${path} holds no recorded examples yet`);
    return analysis;
  } finally {
    db.close();
  }
}

/** JSON-ready form (Maps become index → score objects; non-finite numbers become null). */
export function analysisToJson(a: Analysis): unknown {
  return JSON.parse(
    JSON.stringify(
      {
        ...a,
        generatedAt: new Date().toISOString(),
        configurations: a.configurations.map(({ scores, ...rest }) => ({ ...rest, scores: Object.fromEntries(scores) })),
      },
      (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? (Number.isNaN(v) ? null : v > 0 ? 'Infinity' : '-Infinity') : v),
    ),
  );
}
