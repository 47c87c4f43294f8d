/**
 * nvcc compile check of quest.cu's entry groups that the method's defaults load (session 10; the whole file is in
 * kernels-compile.test.ts): each group compiles clean for sm_90 (the runtime's target: no spills, no stack, no warnings)
 * and its cubin holds exactly the group's entries. Skipped with a message where nvcc is absent.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { readKernelSource } from '../../src/backends/cuda/kernel-source.js';
import { QUEST_ENTRY_GROUPS, QUEST_KERNEL_NAMES, questGroupDefines } from '../../src/backends/cuda/kernels/quest.js';
import { questDefaultEntryGroups } from '../../src/backends/cuda/methods/quest.js';
import { cubinEntries } from '../../bench/quest-cubin-sections.js';
import { assertCompilesClean, nvccPresent } from './kernel-source-text.js';

const skip = nvccPresent() ? false : 'nvcc not found on PATH';
if (skip) console.log(`# quest entry group compile checks skipped: ${skip}`);

describe('quest.cu\'s default entry groups compile alone for sm_90 (nvcc)', { skip }, () => {
  const dir = skip ? '' : mkdtempSync(join(tmpdir(), 'sf-quest-groups-'));
  after(() => { if (dir) rmSync(dir, { recursive: true, force: true }); });
  for (const group of questDefaultEntryGroups()) {
    test(group, async () => {
      const src = join(dir, `${group}.cu`);
      await assertCompilesClean(src, readKernelSource('quest.cu'), questGroupDefines(group), `quest.cu ${group}`, { arch: 'sm_90' });
      const expected = QUEST_ENTRY_GROUPS[group].kernels.map((key) => QUEST_KERNEL_NAMES[key]).sort();
      assert.deepEqual(cubinEntries(readFileSync(`${src}.cubin`)), expected);
    });
  }
});
