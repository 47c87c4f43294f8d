/**
 * A worker process of `runExperiment({ jobs })` (runner-jobs.ts): receives slots one at a time,
 * runs each with a SlotRunner into the shared results database, and reports progress to the parent.
 * Ctrl-C (SIGINT reaches the whole terminal process group) or a `stop` message: finish the example
 * in flight, then exit; a second SIGINT exits at once.
 */
import { ResultsDb } from './results-db.js';
import type { FromWorker, ToWorker, WorkerInit } from './runner-jobs.js';
import { SlotRunner, type TaskLookup } from './slot-runner.js';

const send = (m: FromWorker): void => {
  if (process.connected) process.send?.(m);
};

let stop = false;
process.on('SIGINT', () => {
  if (stop) process.exit(130);
  stop = true;
});
// The parent is gone (crashed or killed): finish the example in flight, then exit.
process.on('disconnect', () => {
  stop = true;
});

let runner: SlotRunner | null = null;
let db: ResultsDb | null = null;
/** Messages are handled one after another: a slot message arrives only after `ready`. */
let busy: Promise<void> = Promise.resolve();

async function init(m: WorkerInit): Promise<void> {
  const mod = (await import(m.taskModule ?? '../tasks/index.js')) as { getTask?: TaskLookup };
  if (typeof mod.getTask !== 'function') throw new Error(`task module ${m.taskModule} has no getTask export`);
  db = ResultsDb.openDir(m.dir);
  runner = new SlotRunner(db, m.runId, mod.getTask, { dataDir: m.dataDir, sharePrefill: m.sharePrefill });
  send({ type: 'ready' });
}

async function handle(m: ToWorker): Promise<void> {
  switch (m.type) {
    case 'init':
      await init(m);
      return;
    case 'slot': {
      if (!runner) throw new Error('slot before init');
      const completed = await runner.runSlot(m.slot, {
        start: (key) => send({ type: 'start', key }),
        finished: (count, failed) => send({ type: 'finished', count, failed }),
        buildFailure: (failure) => send({ type: 'buildFailure', failure }),
        log: (line) => send({ type: 'log', line }),
        shouldStop: () => stop,
      });
      if (!completed) send({ type: 'stopped' });
      send({ type: 'ready' });
      return;
    }
    case 'finish':
      db?.close();
      process.disconnect?.();
      return;
  }
}

process.on('message', (m: ToWorker) => {
  // A stop must act at once (between examples), not wait behind the slot in flight.
  if (m.type === 'stop') {
    stop = true;
    return;
  }
  busy = busy.then(() => handle(m)).catch((e: unknown) => {
    send({ type: 'error', message: e instanceof Error ? e.message : String(e) });
    db?.close();
    process.disconnect?.();
  });
});
