/**
 * Before quest.test.ts's GPU tests: quest.cu's entry groups compiled into the kernel cache in parallel (bench/
 * quest-prebuild.js, child processes), because the tests load ~27 groups and NVRTC compiles them one after another
 * in the test process otherwise (1-5 s each on an H100, ~65 s on a fresh machine, as long as the whole file as one
 * module; round 2 of session 10: 37 groups 16 at a time in 12.6 s). Only from the compiled tree (dist/test/cuda, where dist/bench/quest-prebuild.js sits beside it); a failure is
 * reported and the tests then compile what they load themselves, as before. The cache entries are the runtime's own
 * (the children compile through CudaRuntime.module), so the tests run the same machine code either way.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';

export async function prebuildQuestGroups(): Promise<void> {
  const script = fileURLToPath(new URL('../../bench/quest-prebuild.js', import.meta.url));
  if (!existsSync(script)) return; // run from the sources (tsx): no compiled bench beside the tests
  // Other test files run beside this one: half the cores.
  const jobs = Math.max(2, Math.min(16, Math.floor(availableParallelism() / 2)));
  const t0 = performance.now();
  const { code, out } = await new Promise<{ code: number; out: string }>((resolve) => {
    // A plain script, not a test file of this run: without the test runner's context variable.
    const env = { ...process.env };
    delete env.NODE_TEST_CONTEXT;
    const child = spawn(process.execPath, [script, '--groups', 'all', '--jobs', String(jobs)], { stdio: ['ignore', 'pipe', 'pipe'], env });
    let text = '';
    child.stdout.on('data', (d: Buffer) => { text += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { text += d.toString(); });
    child.on('close', (c) => resolve({ code: c ?? 1, out: text }));
    child.on('error', (e) => resolve({ code: 1, out: String(e) }));
  });
  const last = out.trim().split('\n').at(-1) ?? '';
  console.log(`# quest entry groups prebuilt in ${((performance.now() - t0) / 1e3).toFixed(1)} s (${jobs} at a time): ${code === 0 ? last : `FAILED, the tests compile what they load (${last})`}`);
}
