/**
 * The ablation tilings of the wgmma block-sparse prefill (block-sparse-prefill-wgmma.cu's flags, session 7)
 * that the GPU tests run: each flag alone on the automatic choice's two tilings (in the default
 * KV-head-major order), all together, and on the 64-key two-consumer tiling (more own steps per CTA, so
 * more deferred P·Vs and paired turns), heads-major and D = 64 too. The compile test checks them (and
 * the bench's diagnostic labels) with nvcc.
 */
export const BLOCK_SPARSE_ABLATION_LABELS: readonly string[] = [
  'wgmma-n128-s2-kv-dpv', 'wgmma-n128-s2-kv-lm', 'wgmma-n128-s2-kv-ot', 'wgmma-n128-s2-kv-dpv-lm-ot',
  'wgmma-c3-n64-s3-kv-dpv', 'wgmma-c3-n64-s3-kv-lm', 'wgmma-c3-n64-s3-kv-dpv-lm',
  'wgmma-n64-s3-dpv-ot', 'wgmma-n64-s2-dpv-lm-ot', 'wgmma-c3-n64-s2-dpv', 'wgmma-n128-s3-kv-dpv',
  'wgmma-n128-s3-kv-dpv-lm', 'wgmma-c3-n64-s4-kv-dpv', 'wgmma-c3-n64-s4-kv-dpv-lm',
  'wgmma-n128-s2-kv-iw', 'wgmma-c3-n64-s3-kv-iw', 'wgmma-c3-n64-s3-kv-dpv-lm-iw',
  'wgmma-n128-s2-kv-ac', 'wgmma-c3-n64-s3-kv-ac',
  'wgmma-n128-s2-kv-sk', 'wgmma-n128-s3-kv-sk', 'wgmma-c3-n64-s3-kv-sk', 'wgmma-c3-n64-s4-kv-sk', 'wgmma-n64-s2-sk',
  'wgmma-n128-s2-kv-ek', 'wgmma-c3-n64-s3-kv-ek', 'wgmma-n128-s2-kv-sk-ek', 'wgmma-c3-n64-s3-kv-sk-ek',
  'wgmma-n128-s2-kv-cf', 'wgmma-n128-s2-kv-eg', 'wgmma-c3-n64-s3-kv-cf', 'wgmma-c3-n64-s3-kv-eg', 'wgmma-n128-s2-kv-cf-eg',
  'wgmma-n64-s2-cf-eg', 'wgmma-n128-s2-kv-sk-cf', 'wgmma-n128-s2-kv-ea', 'wgmma-c3-n64-s3-kv-ea', 'wgmma-n128-s2-kv-cf-eg-ea',
  // session 8 (bsmask): the selection mask by selects where a step needs no causal compare (-ms), the
  // entries decoded by warp votes (-eb)
  'wgmma-n128-s2-kv-ms', 'wgmma-n128-s2-kv-lm-ms', 'wgmma-n128-s2-kv-ms-eb', 'wgmma-n128-s2-kv-lm-ms-eb',
  'wgmma-c3-n64-s3-kv-ms-eb', 'wgmma-c3-n64-s3-kv-lm-ms-eb',
  // round 2: the selects on every step, outside any branch (-mf)
  'wgmma-n128-s2-kv-mf', 'wgmma-n128-s2-kv-mf-eb', 'wgmma-c3-n64-s3-kv-mf', 'wgmma-c3-n64-s3-kv-mf-eb',
  // session 9 (bs): the steps kernel's flat index over all slots' entries (-sf) on both automatic tilings'
  // flag sets, the 192-row lean variant (c = 64 lists) and the two-consumer 64-key tiling
  'wgmma-c3-n64-s3-kv-ms-eb-sf', 'wgmma-n128-s2-kv-mf-eb-sf', 'wgmma-c3-n64-s3-kv-lm-ms-eb-sf', 'wgmma-n64-s3-sf',
  // ... and -ms's causal steps without a branch per sub-tile (-fc), on the 192-row flag set, its lean variant
  // (c = 64 lists: each warpgroup's diagonal chunk), with -sf, and on 128-row CTAs
  'wgmma-c3-n64-s3-kv-ms-eb-fc', 'wgmma-c3-n64-s3-kv-lm-ms-eb-fc', 'wgmma-c3-n64-s3-kv-lm-ms-eb-sf-fc', 'wgmma-n128-s2-kv-ms-eb-fc',
  // ... and persistent CTAs (-ps: one an SM, items one after another, two Q tiles) on both automatic flag sets,
  // the 192-row lean variant and with -sf
  'wgmma-c3-n64-s3-kv-ms-eb-ps', 'wgmma-c3-n64-s3-kv-lm-ms-eb-ps', 'wgmma-n128-s2-kv-mf-eb-ps', 'wgmma-c3-n64-s3-kv-ms-eb-sf-ps',
  // session 10 (bs): persistent CTAs drawing their items from an atomic ticket (-wc) on the same three flag sets
  'wgmma-c3-n64-s3-kv-ms-eb-ps-wc', 'wgmma-c3-n64-s3-kv-lm-ms-eb-ps-wc', 'wgmma-n128-s2-kv-mf-eb-ps-wc',
  // ... and with the flat steps kernel (-sf), the automatic choice's c = 16 sparse-list variant under autoPersistent + autoStepsFlat
  'wgmma-c3-n64-s3-kv-ms-eb-sf-ps-wc',
];
