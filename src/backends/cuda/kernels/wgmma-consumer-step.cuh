// One consumer warpgroup's step of the Hopper producer/consumer prefill loops (flash-prefill-wgmma.cu v3 and
// vertical-slash-prefill-wgmma.cu use it; block-sparse-prefill-wgmma.cu's step has the same shape), written
// once and cut where the kernels differ: which key tile a step reads, the turns the warpgroups take (named
// barriers, between the pieces) and the mask (a functor). A step over key tile j, with the P·V of the
// warpgroup's previous tile pending:
//   consumer_wait_stages     K_j has landed, and V_{j-1} when its P·V is pending; fenced for wgmma's reads
//   consumer_issue_products  S = Q·K_jᵀ, then the pending O += P·V, as two commit groups
//   consumer_scores_step     S waited for and K_j's stage released; the scores masked and exponentiated
//                            (split softmax) under the P·V; P·V waited for and V_{j-1}'s stage released;
//                            O rescaled and P packed for the next step's P·V
//   consumer_last_pv         the pending P·V alone (after the last tile, or a step with none of its keys)
// S and O are the warpgroup's wgmma accumulators (this warp's 16 rows: s [N/8][4], o [D/8][4]), P the bf16 A
// fragments of the next P·V (p [N/16][4]). The functors take no arguments: stage addresses and barriers
// are the caller's (each kernel lays its stages out its own way), and a stage's address is computed where
// the product is issued, as each kernel did before it used these.
// Byte-identical machine code (checked with tools/cubin-compare/compare.ts for every define set the compile
// tests compile) was the condition for adopting these, and it is touchy: what the functors capture and
// which pieces a kernel uses reorder the PTX's virtual registers, and ptxas then allocates differently.
// What held: the loop's counters captured by value ([&, st]: by reference they stay address-taken until
// inlining), alpha declared by the caller, and in vertical-slash-prefill-wgmma.cu the last P·V written
// out. A kernel adopting them checks its own cubins the same way.
// Needs common.cuh, flash-tile.cuh, wgmma.cuh and wgmma-pipeline.cuh included before it.
#pragma once

// Waits for key tile j's K in stage st (its use-th fill; fullK: the ring's K barriers, 8 bytes apart) and,
// when a P·V is pending, for its V in stage pst (its puse-th fill), then orders those copies (generic-proxy
// writes) before wgmma's async-proxy reads. The ring's coordinates rather than barrier addresses, so that
// each address is computed after the wait before it, as the kernels did before they used this.
__device__ __forceinline__ void consumer_wait_stages(u32 fullK, int st, u32 use, bool pending, u32 fullV, int pst, u32 puse) {
  mbar_wait(fullK + 8 * st, use & 1);
  if (pending) mbar_wait(fullV + 8 * pst, puse & 1);
  fence_proxy_async_shared();
}

// Issues S = Q·K_jᵀ (issueQK()) and, when pending, O += P·V (issuePV()) as two commit groups, so that
// wgmma_wait<1> waits for S alone. s, o and p were last written by ordinary instructions: fenced first.
template <class IssueQK, class IssuePV>
__device__ __forceinline__ void consumer_issue_products(IssueQK issueQK, bool pending, IssuePV issuePV) {
  wgmma_fence();
  issueQK();
  wgmma_commit();
  if (pending) issuePV();
  wgmma_commit();
}

// The rest of the step once its products are issued: waits for S (P·V may still run), releaseK(), mask()
// on the scores, the split softmax (rowMax, rowSum updated, O's factors written to alpha), waits for P·V,
// releaseV() when one was pending, rescales O and packs P. alpha is the caller's array, declared in the
// loop body as the kernels did before they used this: declared in here, it changed the PTX's register
// numbering and, through it, ptxas' allocation (the cubins differed).
template <int NT, int DT, class ReleaseK, class Mask, class ReleaseV>
__device__ __forceinline__ void consumer_scores_step(float (&s)[NT][4], float (&o)[DT][4], u32 (&p)[NT / 2][4], float (&rowMax)[2],
                                                     float (&rowSum)[2], float (&alpha)[2], float scaleLog2, ReleaseK releaseK, Mask mask,
                                                     bool pending, ReleaseV releaseV) {
  wgmma_wait<1>();
  wgmma_fence_operands(s);
  releaseK();
  mask();
  flash_softmax_scores<NT>(s, rowMax, rowSum, alpha, scaleLog2);
  wgmma_wait<0>();
  wgmma_fence_operands(o);
  if (pending) releaseV();
  flash_rescale_rows<DT>(o, alpha);
#pragma unroll
  for (int kk = 0; kk < NT / 2; ++kk) flash_p_fragment(s, kk, p[kk]);
}

// The pending P·V alone: waits for its V stage (fullV, parity), issues issuePV() and waits for it.
// Releasing the stage is the caller's (a kernel's very last P·V need not).
template <int DT, class IssuePV>
__device__ __forceinline__ void consumer_last_pv(u32 fullV, u32 vParity, IssuePV issuePV, float (&o)[DT][4]) {
  mbar_wait(fullV, vParity);
  fence_proxy_async_shared();
  wgmma_fence();
  issuePV();
  wgmma_commit();
  wgmma_wait<0>();
  wgmma_fence_operands(o);
}
