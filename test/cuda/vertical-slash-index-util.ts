/**
 * Shared by the Vertical-Slash index hand-off tests (vertical-slash-handoff, vertical-slash-selection-handoff):
 * device scores with the cases a selection must get right, and a host copy of a built index to compare bit for bit.
 */
import type { DeviceVerticalSlashIndex } from '../../src/backends/cuda/kernels/vertical-slash-index.js';
import { downloadVerticalSlashLayout, downloadVerticalSlashSelection } from '../../src/backends/cuda/kernels/vertical-slash-index.js';
import type { CudaRuntime } from '../../src/backends/cuda/runtime.js';
import { randomGenerator } from './helpers.js';

/** Scores [H, n] with sinks, heavy columns, decaying diagonals, many exact ties and `nans` NaN per row. */
export function tiedScores(n: number, H: number, seed: number, nans: number): { vertical: Float32Array; slash: Float32Array } {
  const rand = randomGenerator(seed);
  const vertical = new Float32Array(H * n), slash = new Float32Array(H * n);
  for (let h = 0; h < H; h++) {
    for (let j = 0; j < n; j++) {
      const heavy = j < 4 || rand() < 0.03 ? 40 : 1;
      vertical[h * n + j] = Math.round(heavy * (1 + rand()) * 4) / 4;
      slash[h * n + j] = Math.round((heavy + 50 * Math.exp(-j / (20 + 50 * h))) * (1 + rand()) * 4) / 4;
    }
    for (let t = 0; t < nans; t++) {
      vertical[h * n + Math.floor(rand() * n)] = NaN;
      slash[h * n + Math.floor(rand() * n)] = NaN;
    }
  }
  return { vertical, slash };
}

/** Everything a built index holds, on the host. */
export function snapshot(rt: CudaRuntime, index: DeviceVerticalSlashIndex) {
  const sel = downloadVerticalSlashSelection(rt, index), layout = downloadVerticalSlashLayout(rt, index);
  const plain = (rows: Int32Array[]) => rows.map((r) => [...r]);
  return {
    pairs: [...index.pairs], totalColumns: index.totalColumns, rangeCap: index.rangeCap,
    columns: plain(sel.columns), offsets: plain(sel.offsets),
    ranges: layout.ranges.map(plain), blockColumns: layout.columns.map(plain),
  };
}
