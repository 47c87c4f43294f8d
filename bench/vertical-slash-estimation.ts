/**
 * Where the Vertical-Slash family's estimation time goes after the scores exist, on synthetic score
 * rows (Llama-3.1-8B's 32 query heads): FlexPrefill's coverage curves (kernels/flexprefill-coverage.cu),
 * the device count searches (kernels/vertical-slash-search.cu: ranking and one cooperative launch)
 * against their host-steered twins (one VerticalSlashIndexBuilder.countPairs round trip per probe),
 * and the final index build. Both searches must agree (checked); times are host wall clock around
 * synchronous calls (each ends with a synchronise), medians of --repeats.
 *
 * Scores: 'flat' (near-uniform, as the random q/k of bench sparse give) and 'peaked' (heavy sinks,
 * a few heavy columns, diagonal mass decaying with the offset, as real attention tends to be).
 *
 * Usage: node dist/bench/vertical-slash-estimation.js [--lengths 16384,131072] [--sparsities 0.5,0.9] [--repeats 3] (--help)
 */
import { performance } from 'node:perf_hooks';
import { cudaUnavailableReason, isCudaAvailable } from '../src/backends/cuda/availability.js';
import { FlexPrefillCoverage } from '../src/backends/cuda/kernels/flexprefill-coverage.js';
import { VerticalSlashIndexBuilder } from '../src/backends/cuda/kernels/vertical-slash-index.js';
import { VerticalSlashCountSearch } from '../src/backends/cuda/kernels/vertical-slash-search.js';
import { CudaRuntime } from '../src/backends/cuda/runtime.js';
import { chooseVerticalSlashCounts } from '../src/backends/cuda/vertical-slash-counts.js';
import { thresholdNearestTarget } from '../src/methods/flexprefill.js';
import { causalPairs } from '../src/methods/options.js';
import { type BenchOptionsOf, defineBenchArgs, int, intList, sparsityList } from './bench-args.js';
import { runIfDirect } from './bench-run.js';

const H = 32;
const MIN_BUDGET = 512;

export type ScoreKind = 'flat' | 'peaked';

/** [H, n] synthetic column and diagonal scores of one layer (see the header for the two kinds). */
export function scoreRows(n: number, kind: ScoreKind, seed: number, H = 32): { vertical: Float32Array; slash: Float32Array } {
  let state = seed >>> 0;
  const rand = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
  const vertical = new Float32Array(H * n), slash = new Float32Array(H * n);
  for (let h = 0; h < H; h++) {
    for (let j = 0; j < n; j++) {
      if (kind === 'flat') {
        vertical[h * n + j] = 0.9 + 0.2 * rand();
        slash[h * n + j] = (0.9 + 0.2 * rand()) * (n - j) / n;
      } else {
        const heavy = j < 4 || rand() < 0.01 ? 100 * (1 + rand()) : 1;
        vertical[h * n + j] = heavy * Math.exp(rand());
        slash[h * n + j] = (heavy + 500 * Math.exp(-j / (32 + 32 * h))) * Math.exp(rand());
      }
    }
  }
  return { vertical, slash };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Host wall clock of a synchronous body: one warm-up call, then the median of `repeats`. */
export function timed<T>(repeats: number, body: () => T): { ms: number; value: T } {
  const times: number[] = [];
  let value = body(); // warm-up (compiles, grows buffers)
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    value = body();
    times.push(performance.now() - t0);
  }
  return { ms: median(times), value };
}

/** The command line (`--help` prints it). */
export const VS_ESTIMATION_ARGS = defineBenchArgs('vertical-slash-estimation', 'Vertical-Slash / FlexPrefill estimation on the GPU: the count and alpha searches against the host-steered ones, and the index build.', {
  lengths: intList({ describe: 'prompt lengths', default: [16384, 131072], atLeast: 64, noun: 'length' }),
  sparsities: sparsityList({ describe: 'target sparsities', default: [0.5, 0.9] }),
  repeats: int({ describe: 'synchronous calls per timing (median)', default: 3, atLeast: 1, noun: 'repeat count' }),
}, 'node dist/bench/vertical-slash-estimation.js');

export function parseVsEstimationArgs(argv: string[]): BenchOptionsOf<typeof VS_ESTIMATION_ARGS.table> {
  return VS_ESTIMATION_ARGS.parse(argv);
}

export function runVerticalSlashEstimationBench(argv: string[]): void {
  // Parsed first: a bad option (or --help) is answered without a GPU.
  const { lengths, sparsities, repeats } = parseVsEstimationArgs(argv);
  if (!isCudaAvailable()) {
    console.log(`vertical-slash estimation bench skipped: ${cudaUnavailableReason()}`);
    return;
  }
  const rt = new CudaRuntime();
  const rows: string[] = [];
  try {
    for (const n of lengths) {
      for (const kind of ['flat', 'peaked'] as const) {
        const { vertical, slash } = scoreRows(n, kind, n + (kind === 'flat' ? 1 : 2));
        const dv = rt.pool.acquire(vertical.byteLength), ds = rt.pool.acquire(slash.byteLength);
        rt.cuda.upload(dv.ptr, vertical);
        rt.cuda.upload(ds.ptr, slash);
        const scores = { n, vertical: dv.ptr, slash: ds.ptr };
        const builder = new VerticalSlashIndexBuilder(rt, H), search = new VerticalSlashCountSearch(rt, H), coverage = new FlexPrefillCoverage(rt, H);
        const layerPairs = (kv: Int32Array, ks: Int32Array) => builder.countPairs(scores, { vertical: kv, slash: ks }).reduce((a, b) => a + b, 0);
        try {
          const curves = timed(repeats, () => { coverage.build(scores, 1 / 512); rt.synchronize(); });
          for (const s of sparsities) {
            const dev = timed(repeats, () => search.counts(scores, s));
            const host = timed(1, () => chooseVerticalSlashCounts(n, H, s, (kv, ks) => layerPairs(new Int32Array(H).fill(kv), new Int32Array(H).fill(ks))));
            if (dev.value.verticalSize !== host.value.verticalSize || dev.value.slashSize !== host.value.slashSize) {
              throw new Error(`n=${n} ${kind} s=${s}: device counts ${dev.value.verticalSize}/${dev.value.slashSize}, host ${host.value.verticalSize}/${host.value.slashSize}`);
            }
            const uniform = (k: number) => new Int32Array(H).fill(k);
            const build = timed(repeats, () => builder.build(scores, { vertical: uniform(dev.value.verticalSize), slash: uniform(dev.value.slashSize) }));
            rows.push(`| vertical_and_slash | ${n} | ${kind} | ${s} | ${dev.value.verticalSize}/${dev.value.slashSize} | - | ${dev.ms.toFixed(2)} (${dev.value.probes} probes) | ${host.ms.toFixed(2)} | ${build.ms.toFixed(2)} |`);

            const target = (1 - s) * H * causalPairs(n);
            const devAlpha = timed(repeats, () => search.alpha(scores, coverage.curvesPtr, s, MIN_BUDGET));
            const hostAlpha = timed(1, () => {
              const pairsAt = (alpha: number) => {
                const c = coverage.sizes(alpha, MIN_BUDGET);
                return layerPairs(c.vertical, c.slash);
              };
              const floor = pairsAt(0);
              return floor >= target ? 0 : thresholdNearestTarget(pairsAt, target, floor);
            });
            if (!Object.is(devAlpha.value.alpha, hostAlpha.value)) throw new Error(`n=${n} ${kind} s=${s}: device alpha ${devAlpha.value.alpha}, host ${hostAlpha.value}`);
            const sizes = coverage.sizes(devAlpha.value.alpha, MIN_BUDGET);
            const mean = (a: Int32Array) => (a.reduce((x, y) => x + y, 0) / H).toFixed(0);
            const fpBuild = timed(repeats, () => builder.build(scores, sizes));
            rows.push(`| flexprefill | ${n} | ${kind} | ${s} | ${mean(sizes.vertical)}/${mean(sizes.slash)} | ${curves.ms.toFixed(2)} | ${devAlpha.ms.toFixed(2)} (${devAlpha.value.probes} probes) | ${hostAlpha.ms.toFixed(2)} | ${fpBuild.ms.toFixed(2)} |`);
            console.log(rows.slice(-2).join('\n'));
          }
        } finally {
          builder.release();
          search.release();
          coverage.release();
          rt.pool.release(dv);
          rt.pool.release(ds);
        }
      }
    }
  } finally {
    rt.dispose();
  }
  console.log('\n| method | n | scores | s | counts (mean v/s) | curves ms | device search ms | host-steered search ms | index build ms |');
  console.log('| --- | --: | --- | --: | --: | --: | --: | --: | --: |');
  console.log(rows.join('\n'));
}

runIfDirect(import.meta.url, runVerticalSlashEstimationBench);
