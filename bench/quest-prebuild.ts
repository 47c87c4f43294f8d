/**
 * Compiles quest.cu's entry groups into the kernel disk cache (SPARSE_FRONTIER_CUDA_CACHE, as the runtime finds it) in
 * parallel child processes, for a run that will load many groups on a fresh machine: the GPU tests of quest.cu touch
 * ~27 groups, 1-5 s of NVRTC each one after another in one process (session 10 on an H100: 0.9-4.7 s a group), where
 * 16 processes at a time take about three groups' time (37 groups in 12.6 s). Each child compiles one group through the runtime itself
 * (CudaRuntime.module), so the cache entries are exactly the ones the launchers look up; a group already cached is
 * only loaded. The method's own first run needs none of this (base and one pair: ~5.5 s).
 *
 *   node dist/bench/quest-prebuild.js [--groups all|default|base,v10h4b,...] [--jobs 16]
 *
 * Prints one line per group (compiled or cached, seconds) and the wall time; exits 1 if any child failed.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { cudaUnavailableReason, isCudaAvailable } from '../src/backends/cuda/availability.js';
import { QUEST_ENTRY_GROUPS, type QuestEntryGroupName, questGroupDefines } from '../src/backends/cuda/kernels/quest.js';
import { questDefaultEntryGroups } from '../src/backends/cuda/methods/quest.js';
import { CudaRuntime } from '../src/backends/cuda/runtime.js';
import { runIfDirect } from './bench-run.js';

/** "default" (the method's groups), "all", or group names separated by commas (each checked). */
export function questGroupsFrom(text: string): QuestEntryGroupName[] {
  if (text === 'default') return questDefaultEntryGroups();
  if (text === 'all') return Object.keys(QUEST_ENTRY_GROUPS) as QuestEntryGroupName[];
  return text.split(',').filter((name) => name !== '').map((name) => {
    if (!Object.hasOwn(QUEST_ENTRY_GROUPS, name)) throw new Error(`unknown quest.cu entry group "${name}" (groups: ${Object.keys(QUEST_ENTRY_GROUPS).join(', ')})`);
    return name as QuestEntryGroupName;
  });
}

/** Child: one group through the runtime (compiled into the cache, or loaded from it). */
function buildOne(group: QuestEntryGroupName): number {
  const rt = new CudaRuntime();
  const t0 = performance.now();
  rt.module('quest.cu', questGroupDefines(group));
  const how = rt.compileStats.compiled > 0 ? 'compiled' : 'cached';
  console.log(`${group} ${how} ${((performance.now() - t0) / 1e3).toFixed(2)} s`);
  rt.dispose();
  return 0;
}

/** Runs `groups` in at most `jobs` children at a time; the number that failed. */
async function buildAll(groups: QuestEntryGroupName[], jobs: number): Promise<number> {
  const script = fileURLToPath(import.meta.url);
  let next = 0, failed = 0;
  const worker = async (): Promise<void> => {
    while (next < groups.length) {
      const group = groups[next++]!;
      const code = await new Promise<number>((resolve) => {
        const child = spawn(process.execPath, [script, '--one', group], { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
        child.stderr.on('data', (d: Buffer) => { out += d.toString(); });
        child.on('close', (c) => {
          const lines = out.trim().split('\n');
          process.stdout.write(c === 0 ? out : `${group} FAILED (exit ${c}): ${lines.find((l) => /Error/.test(l)) ?? lines.at(-1)}\n`);
          resolve(c ?? 1);
        });
      });
      if (code !== 0) failed++;
    }
  };
  await Promise.all(Array.from({ length: Math.min(jobs, groups.length) }, worker));
  return failed;
}

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { groups: { type: 'string', default: 'all' }, jobs: { type: 'string', default: '16' }, one: { type: 'string' } } });
  if (!isCudaAvailable()) {
    console.log(`skip: ${cudaUnavailableReason()}`);
    return 0;
  }
  if (values.one !== undefined) return buildOne(questGroupsFrom(values.one)[0]!);
  const jobs = Number(values.jobs);
  if (!Number.isInteger(jobs) || jobs < 1) throw new Error(`--jobs must be a positive integer (got ${values.jobs})`);
  const groups = questGroupsFrom(values.groups!);
  const t0 = performance.now();
  const failed = await buildAll(groups, jobs);
  console.log(`quest-prebuild: ${groups.length} groups, ${jobs} at a time, ${((performance.now() - t0) / 1e3).toFixed(1)} s${failed ? `, ${failed} FAILED` : ''}`);
  return failed ? 1 : 0;
}

runIfDirect(import.meta.url, main);
