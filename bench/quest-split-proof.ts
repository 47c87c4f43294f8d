/**
 * Proof that quest.cu's entry groups (session 10) compile each entry to the machine code the whole module had: quest.cu
 * as it was at a git ref, compiled whole, against each named group of the working tree's quest.cu (-DQUEST_ENTRIES=<id>),
 * entry by entry (bench/quest-cubin-sections.ts: code, parameter bank and shared memory byte for byte, launch
 * attributes with symbols by name). nvcc with the runtime's NVRTC options (sm_90, --std=c++17, -lineinfo); runs here,
 * no GPU. On the GPU machine bench/cold-compile.ts makes the same comparison on NVRTC's own cubins.
 *
 *   npx tsx bench/quest-split-proof.ts [--base REF] [--groups default|all|base,v10h4b,...] [--whole]
 *   node dist/bench/quest-split-proof.js --cubins WHOLE.cubin GROUP.cubin ...   (no nvcc: cubins made elsewhere)
 *
 * --base: the ref whose whole quest.cu is "before" (default HEAD); --groups: the groups compiled "after" (default: the
 * method's, questDefaultEntryGroups); --whole: also the working tree's quest.cu without the define, all of its entries
 * against the ref's (entries added since the ref are listed as new). --cubins: compare given cubins instead (the first the whole module, each other one a group's; on the
 * GPU machine, NVRTC's from bench/cold-compile.ts's cache folders). Prints one line per entry and exits 1 when any
 * differs or is missing.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { readKernelSource } from '../src/backends/cuda/kernel-source.js';
import { QUEST_ENTRY_GROUPS, QUEST_KERNEL_NAMES, questGroupDefines } from '../src/backends/cuda/kernels/quest.js';
import { runIfDirect } from './bench-run.js';
import { compileAsRuntime, kernelSourceAt } from './kernel-split-compile.js';
import { questGroupsFrom } from './quest-prebuild.js';
import { type CubinSection, compareEntry, cubinEntries, cubinSections } from './quest-cubin-sections.js';

/** --cubins: every entry of each group cubin against the whole module's cubin; the number that differ or are missing. */
function compareCubins(whole: string, groups: string[]): number {
  const before = cubinSections(readFileSync(whole));
  console.log(`whole: ${whole}, ${cubinEntries(readFileSync(whole)).length} entries`);
  let failed = 0;
  for (const file of groups) {
    const image = readFileSync(file);
    const sections = cubinSections(image);
    const entries = cubinEntries(image);
    if (!entries.length) failed++;
    for (const entry of entries) if (!judge(before, sections, entry, '')) failed++;
  }
  return failed;
}

/**
 * Prints how `entry` of the after side compares with the before side; false when its code or launch attributes
 * differ. An entry the before side lacks is new (an entry added since the base), not a difference.
 */
function judge(before: Map<string, CubinSection>, after: Map<string, CubinSection>, entry: string, label: string): boolean {
  if (!before.has(`.text.${entry}`)) {
    console.log(`${label}${entry}: new (not in the base)`);
    return true;
  }
  const c = compareEntry(before, after, entry);
  console.log(`${label}${entry}: ${c.detail} (${c.textBytes} bytes of code)`);
  return c.codeEqual && c.infoEqual;
}

function main(): number {
  const { values, positionals } = parseArgs({
    options: { base: { type: 'string', default: 'HEAD' }, groups: { type: 'string', default: 'default' }, whole: { type: 'boolean', default: false }, cubins: { type: 'boolean', default: false } },
    allowPositionals: true,
  });
  if (values.cubins) {
    if (positionals.length < 2) throw new Error('--cubins WHOLE.cubin GROUP.cubin ...');
    const failed = compareCubins(positionals[0]!, positionals.slice(1));
    console.log(failed ? `${failed} entries differ or are missing` : 'every entry identical');
    return failed ? 1 : 0;
  }
  const dir = mkdtempSync(join(tmpdir(), 'quest-split-'));
  let failed = 0;
  try {
    const before = compileAsRuntime(dir, 'before', kernelSourceAt(values.base!, 'quest.cu'), {});
    const beforeSections = cubinSections(before.image);
    console.log(`before: ${values.base} quest.cu whole, ${cubinEntries(before.image).length} entries, nvcc ${before.seconds.toFixed(1)} s`);
    const after = readKernelSource('quest.cu');
    const sides: [string, Record<string, number>, string[]][] = questGroupsFrom(values.groups!).map((g) => [g, questGroupDefines(g), QUEST_ENTRY_GROUPS[g].kernels.map((k) => QUEST_KERNEL_NAMES[k])]);
    // The whole file keeps every entry the base had (and may have new ones); a group holds exactly its kernels.
    if (values.whole) sides.push(['whole', {}, cubinEntries(before.image)]);
    for (const [label, defines, expected] of sides) {
      const built = compileAsRuntime(dir, label, after, defines);
      const entries = cubinEntries(built.image);
      const sections = cubinSections(built.image);
      const missing = expected.filter((e) => !entries.includes(e));
      const extra = label === 'whole' ? [] : entries.filter((e) => !expected.includes(e));
      if (missing.length || extra.length) {
        failed++;
        console.log(`${label}: missing ${missing.join(', ') || 'none'}; not in the group ${extra.join(', ') || 'none'}`);
      }
      for (const entry of entries) if (!judge(beforeSections, sections, entry, `${label} (nvcc ${built.seconds.toFixed(1)} s) `)) failed++;
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(failed ? `${failed} entries differ or are missing` : 'every entry identical');
  return failed ? 1 : 0;
}

runIfDirect(import.meta.url, main);
