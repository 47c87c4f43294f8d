;; f32 matmul for linear layers with WebAssembly SIMD (128-bit, 4 lanes):
;;   out[t, o] = sum_i x[t, i] * w[o, i]     x: [T, I], w: [O, I], out: [T, ldo] (o < O), row-major f32
;; All pointers are byte offsets into the imported memory; I must be a positive multiple of 4. The output
;; row stride ldo lets several threads each compute a slice of weight rows into one output matrix.
;; The memory is imported and shared so that worker threads can run the same code over the same
;; weights (one copy), see wasm-matmul.ts.
;; Tiles of 2 tokens x 4 weight rows keep 8 vector accumulators + 3 operands in registers (x86-64 has
;; 16 vector registers; a 4x4 tile would spill). Tokens are processed in blocks of 64 so that the block's
;; activations stay in cache while every weight row streams past once per block.
;; Edit this file, then run `npx tsx bench/assemble-wasm.ts` to refresh matmul-simd-wasm.ts.
(module
  (import "env" "memory" (memory 1 65536 shared))

  (func $hsum (param $v v128) (result f32)
    (f32.add
      (f32.add (f32x4.extract_lane 0 (local.get $v)) (f32x4.extract_lane 1 (local.get $v)))
      (f32.add (f32x4.extract_lane 2 (local.get $v)) (f32x4.extract_lane 3 (local.get $v)))))

  ;; One dot product of two rows of rowBytes bytes.
  (func $dot1 (param $x i32) (param $w i32) (param $rowBytes i32) (result f32)
    (local $i i32) (local $acc v128)
    (loop $l
      (local.set $acc (f32x4.add (local.get $acc)
        (f32x4.mul (v128.load (i32.add (local.get $x) (local.get $i)))
                   (v128.load (i32.add (local.get $w) (local.get $i))))))
      (local.set $i (i32.add (local.get $i) (i32.const 16)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $rowBytes))))
    (call $hsum (local.get $acc)))

  ;; 1 token x 4 weight rows: out0[0..4) (4 consecutive floats).
  (func $tile1x4 (param $x i32) (param $w0 i32) (param $rowBytes i32) (param $out i32)
    (local $i i32) (local $w1 i32) (local $w2 i32) (local $w3 i32)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128) (local $xv v128)
    (local.set $w1 (i32.add (local.get $w0) (local.get $rowBytes)))
    (local.set $w2 (i32.add (local.get $w1) (local.get $rowBytes)))
    (local.set $w3 (i32.add (local.get $w2) (local.get $rowBytes)))
    (loop $l
      (local.set $xv (v128.load (i32.add (local.get $x) (local.get $i))))
      (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul (local.get $xv) (v128.load (i32.add (local.get $w0) (local.get $i))))))
      (local.set $a1 (f32x4.add (local.get $a1) (f32x4.mul (local.get $xv) (v128.load (i32.add (local.get $w1) (local.get $i))))))
      (local.set $a2 (f32x4.add (local.get $a2) (f32x4.mul (local.get $xv) (v128.load (i32.add (local.get $w2) (local.get $i))))))
      (local.set $a3 (f32x4.add (local.get $a3) (f32x4.mul (local.get $xv) (v128.load (i32.add (local.get $w3) (local.get $i))))))
      (local.set $i (i32.add (local.get $i) (i32.const 16)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $rowBytes))))
    (f32.store (local.get $out) (call $hsum (local.get $a0)))
    (f32.store offset=4 (local.get $out) (call $hsum (local.get $a1)))
    (f32.store offset=8 (local.get $out) (call $hsum (local.get $a2)))
    (f32.store offset=12 (local.get $out) (call $hsum (local.get $a3))))

  ;; 2 tokens x 4 weight rows: out[0..4) for token 0 and out + outStride for token 1.
  (func $tile2x4 (param $x0 i32) (param $w0 i32) (param $rowBytes i32) (param $out i32) (param $outStride i32)
    (local $i i32) (local $x1 i32) (local $w1 i32) (local $w2 i32) (local $w3 i32)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128)
    (local $b0 v128) (local $b1 v128) (local $b2 v128) (local $b3 v128)
    (local $xa v128) (local $xb v128) (local $wv v128)
    (local.set $x1 (i32.add (local.get $x0) (local.get $rowBytes)))
    (local.set $w1 (i32.add (local.get $w0) (local.get $rowBytes)))
    (local.set $w2 (i32.add (local.get $w1) (local.get $rowBytes)))
    (local.set $w3 (i32.add (local.get $w2) (local.get $rowBytes)))
    (loop $l
      (local.set $xa (v128.load (i32.add (local.get $x0) (local.get $i))))
      (local.set $xb (v128.load (i32.add (local.get $x1) (local.get $i))))
      (local.set $wv (v128.load (i32.add (local.get $w0) (local.get $i))))
      (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul (local.get $xa) (local.get $wv))))
      (local.set $b0 (f32x4.add (local.get $b0) (f32x4.mul (local.get $xb) (local.get $wv))))
      (local.set $wv (v128.load (i32.add (local.get $w1) (local.get $i))))
      (local.set $a1 (f32x4.add (local.get $a1) (f32x4.mul (local.get $xa) (local.get $wv))))
      (local.set $b1 (f32x4.add (local.get $b1) (f32x4.mul (local.get $xb) (local.get $wv))))
      (local.set $wv (v128.load (i32.add (local.get $w2) (local.get $i))))
      (local.set $a2 (f32x4.add (local.get $a2) (f32x4.mul (local.get $xa) (local.get $wv))))
      (local.set $b2 (f32x4.add (local.get $b2) (f32x4.mul (local.get $xb) (local.get $wv))))
      (local.set $wv (v128.load (i32.add (local.get $w3) (local.get $i))))
      (local.set $a3 (f32x4.add (local.get $a3) (f32x4.mul (local.get $xa) (local.get $wv))))
      (local.set $b3 (f32x4.add (local.get $b3) (f32x4.mul (local.get $xb) (local.get $wv))))
      (local.set $i (i32.add (local.get $i) (i32.const 16)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $rowBytes))))
    (f32.store (local.get $out) (call $hsum (local.get $a0)))
    (f32.store offset=4 (local.get $out) (call $hsum (local.get $a1)))
    (f32.store offset=8 (local.get $out) (call $hsum (local.get $a2)))
    (f32.store offset=12 (local.get $out) (call $hsum (local.get $a3)))
    (local.set $out (i32.add (local.get $out) (local.get $outStride)))
    (f32.store (local.get $out) (call $hsum (local.get $b0)))
    (f32.store offset=4 (local.get $out) (call $hsum (local.get $b1)))
    (f32.store offset=8 (local.get $out) (call $hsum (local.get $b2)))
    (f32.store offset=12 (local.get $out) (call $hsum (local.get $b3))))

  (func (export "matmul") (param $x i32) (param $T i32) (param $w i32) (param $O i32) (param $I i32) (param $out i32) (param $ldo i32)
    (local $rowBytes i32) (local $outStride i32) (local $t0 i32) (local $t1 i32) (local $t i32) (local $o i32)
    (local.set $rowBytes (i32.shl (local.get $I) (i32.const 2)))
    (local.set $outStride (i32.shl (local.get $ldo) (i32.const 2)))
    (block $done
      (loop $tblock
        (br_if $done (i32.ge_u (local.get $t0) (local.get $T)))
        (local.set $t1 (select (local.get $T) (i32.add (local.get $t0) (i32.const 64))
          (i32.lt_u (local.get $T) (i32.add (local.get $t0) (i32.const 64)))))
        ;; Four weight rows at a time against every token of the block.
        (local.set $o (i32.const 0))
        (block $odone
          (loop $oloop
            (br_if $odone (i32.gt_u (i32.add (local.get $o) (i32.const 4)) (local.get $O)))
            (local.set $t (local.get $t0))
            (block $tdone
              (loop $tloop
                (br_if $tdone (i32.gt_u (i32.add (local.get $t) (i32.const 2)) (local.get $t1)))
                (call $tile2x4
                  (i32.add (local.get $x) (i32.mul (local.get $t) (local.get $rowBytes)))
                  (i32.add (local.get $w) (i32.mul (local.get $o) (local.get $rowBytes)))
                  (local.get $rowBytes)
                  (i32.add (local.get $out) (i32.shl (i32.add (i32.mul (local.get $t) (local.get $ldo)) (local.get $o)) (i32.const 2)))
                  (local.get $outStride))
                (local.set $t (i32.add (local.get $t) (i32.const 2)))
                (br $tloop)))
            (if (i32.lt_u (local.get $t) (local.get $t1))
              (then
                (call $tile1x4
                  (i32.add (local.get $x) (i32.mul (local.get $t) (local.get $rowBytes)))
                  (i32.add (local.get $w) (i32.mul (local.get $o) (local.get $rowBytes)))
                  (local.get $rowBytes)
                  (i32.add (local.get $out) (i32.shl (i32.add (i32.mul (local.get $t) (local.get $ldo)) (local.get $o)) (i32.const 2))))))
            (local.set $o (i32.add (local.get $o) (i32.const 4)))
            (br $oloop)))
        ;; Leftover weight rows (O not a multiple of 4), one dot product each.
        (block $rdone
          (loop $rloop
            (br_if $rdone (i32.ge_u (local.get $o) (local.get $O)))
            (local.set $t (local.get $t0))
            (block $rtdone
              (loop $rtloop
                (br_if $rtdone (i32.ge_u (local.get $t) (local.get $t1)))
                (f32.store
                  (i32.add (local.get $out) (i32.shl (i32.add (i32.mul (local.get $t) (local.get $ldo)) (local.get $o)) (i32.const 2)))
                  (call $dot1
                    (i32.add (local.get $x) (i32.mul (local.get $t) (local.get $rowBytes)))
                    (i32.add (local.get $w) (i32.mul (local.get $o) (local.get $rowBytes)))
                    (local.get $rowBytes)))
                (local.set $t (i32.add (local.get $t) (i32.const 1)))
                (br $rtloop)))
            (local.set $o (i32.add (local.get $o) (i32.const 1)))
            (br $rloop)))
        (local.set $t0 (local.get $t1))
        (br $tblock))))

  ;; Arithmetic peak probe (no memory traffic): 12 independent chains of a = a*m + c on f32x4,
  ;; 96 flops per iteration. The bench divides flops by time to get the machine's wasm SIMD peak.
  (func (export "peak") (param $n i32) (result f32)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128) (local $a4 v128) (local $a5 v128) (local $a6 v128) (local $a7 v128) (local $a8 v128) (local $a9 v128) (local $a10 v128) (local $a11 v128) (local $m v128) (local $c v128)
    (local.set $m (f32x4.splat (f32.const 0.999)))
    (local.set $c (f32x4.splat (f32.const 0.001)))
    (local.set $a0 (f32x4.splat (f32.const 1.00)))
    (local.set $a1 (f32x4.splat (f32.const 1.01)))
    (local.set $a2 (f32x4.splat (f32.const 1.02)))
    (local.set $a3 (f32x4.splat (f32.const 1.03)))
    (local.set $a4 (f32x4.splat (f32.const 1.04)))
    (local.set $a5 (f32x4.splat (f32.const 1.05)))
    (local.set $a6 (f32x4.splat (f32.const 1.06)))
    (local.set $a7 (f32x4.splat (f32.const 1.07)))
    (local.set $a8 (f32x4.splat (f32.const 1.08)))
    (local.set $a9 (f32x4.splat (f32.const 1.09)))
    (local.set $a10 (f32x4.splat (f32.const 1.10)))
    (local.set $a11 (f32x4.splat (f32.const 1.11)))
    (loop $l
      (local.set $a0 (f32x4.add (f32x4.mul (local.get $a0) (local.get $m)) (local.get $c)))
      (local.set $a1 (f32x4.add (f32x4.mul (local.get $a1) (local.get $m)) (local.get $c)))
      (local.set $a2 (f32x4.add (f32x4.mul (local.get $a2) (local.get $m)) (local.get $c)))
      (local.set $a3 (f32x4.add (f32x4.mul (local.get $a3) (local.get $m)) (local.get $c)))
      (local.set $a4 (f32x4.add (f32x4.mul (local.get $a4) (local.get $m)) (local.get $c)))
      (local.set $a5 (f32x4.add (f32x4.mul (local.get $a5) (local.get $m)) (local.get $c)))
      (local.set $a6 (f32x4.add (f32x4.mul (local.get $a6) (local.get $m)) (local.get $c)))
      (local.set $a7 (f32x4.add (f32x4.mul (local.get $a7) (local.get $m)) (local.get $c)))
      (local.set $a8 (f32x4.add (f32x4.mul (local.get $a8) (local.get $m)) (local.get $c)))
      (local.set $a9 (f32x4.add (f32x4.mul (local.get $a9) (local.get $m)) (local.get $c)))
      (local.set $a10 (f32x4.add (f32x4.mul (local.get $a10) (local.get $m)) (local.get $c)))
      (local.set $a11 (f32x4.add (f32x4.mul (local.get $a11) (local.get $m)) (local.get $c)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $l (i32.gt_s (local.get $n) (i32.const 0))))
    (call $hsum (f32x4.add (f32x4.add (f32x4.add (f32x4.add (f32x4.add (f32x4.add (f32x4.add (f32x4.add (f32x4.add (f32x4.add (f32x4.add (local.get $a0) (local.get $a1)) (local.get $a2)) (local.get $a3)) (local.get $a4)) (local.get $a5)) (local.get $a6)) (local.get $a7)) (local.get $a8)) (local.get $a9)) (local.get $a10)) (local.get $a11))))
)
