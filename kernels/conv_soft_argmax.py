"""Fused 1×1 convolution + soft-argmax on GPU: Triton kernels.

Shapes: features F (B, C, H, W), weight Wt (K·D, C), bias b (K·D,) or None;
coords (B, K, 3), lse (B, K), conf (B, K) as in kernels/soft_argmax.py.  The
logits of image n are X_n = Wt·F_n + b (K·D, H·W); row k·D + d, column
h·W + w is voxel (d, h, w) of joint k's heatmap.

Fused forward (flash-style).  ``_fwd_partial_kernel`` runs on a (B·K, S)
grid: program (n·K + k, s) owns joint k of image n and the s-th run of its
column blocks.  It walks tiles of BLOCK_R rows (d-planes of joint k) ×
BLOCK_HW columns; a tile's logits are a GEMM, ``tl.dot`` over C in steps of
BLOCK_C (weight rows × feature columns), plus the bias, and go straight into
the soft-argmax's per-lane online softmax (soft_argmax.online_update: running
max and Σe, Σe·w, Σe·h, Σe·d).  The program writes the run's five partials;
soft_argmax's ``_fwd_merge_kernel`` merges a row's S partials into coords,
lse (float64) and conf.  S splits the columns so that B·K·S fills the GPU.

Fused backward: the derivation is above the backward kernels.  Two launches,
each only where a gradient is needed, no atomics:

* ``_bwd_features_kernel``, grid (B, column blocks): a program owns the
  d features of one image's column block; it loops over all K·D rows in
  blocks of BLOCK_R, recomputes their logits, forms dX and adds Wtᵀ·dX into
  its (C, BLOCK_HW) slice, which only it touches.
* ``_bwd_weight_kernel``, grid (row blocks, S): a program owns BLOCK_R rows
  of d weight and d bias and the s-th run of the B·(column blocks) tiles;
  per tile it recomputes the logits and dX and adds dX·F_nᵀ into its rows of
  its own partial d weight (S, K·D, C) and Σ_columns dX into a per-lane
  accumulator.  The S partials are summed afterwards (in float64).

Why not one (n, k) grid with atomics: d features_n gets a term from every
joint and d weight from every image, so both would need atomic adds, which
are non-deterministic, and for fp16/bf16 would have to go through a float32
buffer anyway.  The price of owning the outputs is that the logits are
recomputed twice when both d features and d weight are needed (4 GEMMs of
the forward's size instead of 3).

Memory beyond inputs and outputs: the partials (B·K·S·5), the d weight
partials (S·K·D·C) and, for fp16/bf16, d features and d weight in float32
before the cast; no logits.

Accumulation: logits, softmax and gradients in float32 (float64 for float64
input); float32 GEMMs with input_precision="ieee" (no TF32).  For fp16/bf16
the GEMM operands stay 16-bit (dX rounded to the input dtype, as the
materialised path's conv2d backward sees it) with float32 accumulation.

Dispatch: the fused kernels cover every dtype and shape whose offsets inside
one image's features (C·H·W) and inside the weight (K·D·C) fit int32
(:func:`fused_applies`); beyond that the chunked form (``_chunked_fwd``,
``_chunked_bwd``: one image's logits at a time as a torch GEMM, cuBLAS on
CUDA, then the Triton soft-argmax) runs.  Block sizes: :func:`blocks`
(:data:`FORCE_BLOCKS` overrides them; the tests force many tiles with it).
Tuning on a GPU has not been done: the CUDA block sizes are a first guess.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import triton
import triton.language as tl

from . import soft_argmax
from .soft_argmax import grad_terms, online_update, store_partial


class Blocks(NamedTuple):
    """Tile sizes of the fused kernels (powers of two) and the split."""
    rows: int   #: BLOCK_R: logits rows per tile (d-planes of a joint in the forward)
    cols: int   #: BLOCK_HW: logits columns (pixels) per tile
    chans: int  #: BLOCK_C: channels per GEMM step
    split: int = 0  #: S of the forward and of the d weight kernel; 0: enough programs to fill the device


#: when set, the block sizes of every fused launch (tests force many tiles with it)
FORCE_BLOCKS: Blocks | None = None
#: the fused kernels index one image's features and the weight with int32 offsets
MAX_OFFSET = 2 ** 31 - 1


def fused_applies(features: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether the fused kernels take these inputs (else the chunked form)."""
    C, H, W = features.shape[1:]
    return C * H * W <= MAX_OFFSET and weight.numel() <= MAX_OFFSET


def blocks(C: int, D: int, H: int, W: int, device: torch.device) -> Blocks:
    """The block sizes for a problem: FORCE_BLOCKS, else BLOCK_R covering D
    (at most 64), BLOCK_HW 32-64 columns, BLOCK_C 32 channels on CUDA (dot
    needs K >= 16 for 16-bit operands there); on the interpreter fewer, larger
    tiles (each op costs the same whatever its size)."""
    if FORCE_BLOCKS is not None:
        return FORCE_BLOCKS
    rows = min(64, triton.next_power_of_2(D))
    if device.type == "cuda":
        return Blocks(rows, 64 if rows <= 32 else 32, 32)
    return Blocks(rows, min(128, triton.next_power_of_2(H * W)), min(64, triton.next_power_of_2(C)))


def _runs(items: int, programs: int, split: int, device: torch.device) -> tuple[int, int]:
    """(PER, S): `items` tiles cut into S runs of PER each, so that
    programs·S is about four programs per SM (4 on the interpreter, to exercise
    the merge), or S = `split` when given."""
    if split > 0:
        S = split
    else:
        target = 4 * soft_argmax._sm_count(device) if device.type == "cuda" else 4
        S = triton.cdiv(target, max(programs, 1))
    S = max(1, min(items, S))
    per = triton.cdiv(items, S)
    return per, triton.cdiv(items, per)


def _dtypes(dtype: torch.dtype, device: torch.device):
    """(acc torch dtype, ACC, DOT): accumulation dtype and the dtype of the
    GEMM operands.  The interpreter's numpy dot mis-multiplies bfloat16, so
    there bfloat16 operands are widened to float32."""
    acc, tl_acc = soft_argmax._acc_dtype(torch.empty((), dtype=dtype))
    dot = {torch.float16: tl.float16, torch.bfloat16: tl.bfloat16, torch.float32: tl.float32,
           torch.float64: tl.float64}[dtype]
    if dtype == torch.bfloat16 and device.type != "cuda":
        dot = tl.float32
    return acc, tl_acc, dot


@triton.jit
def _logits(f_n, w_ptr, b_ptr, rows, rmask, cols, cmask, C, HW,
            HAS_BIAS: tl.constexpr, ACC: tl.constexpr, DOT: tl.constexpr,
            BLOCK_R: tl.constexpr, BLOCK_HW: tl.constexpr, BLOCK_C: tl.constexpr):
    """The logits tile X[rows, cols] = Wt[rows]·F_n[:, cols] + b[rows]
    (BLOCK_R, BLOCK_HW) in ACC; f_n points at image n's features (C, H·W),
    w_ptr at Wt (K·D, C).  Entries outside rmask × cmask are meaningless."""
    cc = tl.arange(0, BLOCK_C)
    acc = tl.zeros((BLOCK_R, BLOCK_HW), ACC)
    for c0 in range(0, C, BLOCK_C):
        cm = cc < C - c0
        wt = tl.load(w_ptr + rows[:, None] * C + (c0 + cc)[None, :], mask=rmask[:, None] & cm[None, :], other=0.0)
        ft = tl.load(f_n + (c0 + cc)[:, None] * HW + cols[None, :], mask=cm[:, None] & cmask[None, :], other=0.0)
        acc = tl.dot(wt.to(DOT), ft.to(DOT), acc, input_precision="ieee", out_dtype=ACC)
    if HAS_BIAS:
        acc += tl.load(b_ptr + rows, mask=rmask, other=0.0).to(ACC)[:, None]
    return acc


@triton.jit
def _fwd_partial_kernel(
    f_ptr,     # (B, C, H·W) features, contiguous
    w_ptr,     # (K·D, C) weight, contiguous
    b_ptr,     # (K·D,) bias (unused without HAS_BIAS)
    part_ptr,  # (B·K, S, 5) out: per run (m, Σe, Σe·w, Σe·h, Σe·d), e = exp(x − m)
    C, K, D, H, W,
    PER,       # column blocks per run
    S,         # runs per (n, k)
    HAS_BIAS: tl.constexpr, ACC: tl.constexpr, DOT: tl.constexpr,
    BLOCK_R: tl.constexpr, BLOCK_HW: tl.constexpr, BLOCK_C: tl.constexpr,
):
    r = tl.program_id(0)  # n·K + k
    run = tl.program_id(1)
    n = r // K
    k = r - n * K
    HW = H * W
    nb = tl.cdiv(HW, BLOCK_HW)
    f_n = f_ptr + n.to(tl.int64) * C * HW
    dd = tl.arange(0, BLOCK_R)
    jj = tl.arange(0, BLOCK_HW)
    m = tl.full((BLOCK_R, BLOCK_HW), float("-inf"), ACC)
    s = tl.zeros((BLOCK_R, BLOCK_HW), ACC)
    sw = tl.zeros((BLOCK_R, BLOCK_HW), ACC)
    sh = tl.zeros((BLOCK_R, BLOCK_HW), ACC)
    sd = tl.zeros((BLOCK_R, BLOCK_HW), ACC)
    for d0 in range(0, D, BLOCK_R):
        rmask = dd < D - d0
        rows = k * D + d0 + dd
        df = (d0 + dd).to(ACC)[:, None]
        for j in range(run * PER, tl.minimum(run * PER + PER, nb)):
            cols = j * BLOCK_HW + jj
            cmask = cols < HW
            h = cols // W  # once per column, not per voxel
            wf = (cols - h * W).to(ACC)[None, :]
            x = _logits(f_n, w_ptr, b_ptr, rows, rmask, cols, cmask, C, HW,
                        HAS_BIAS, ACC, DOT, BLOCK_R, BLOCK_HW, BLOCK_C)
            x = tl.where(rmask[:, None] & cmask[None, :], x, float("-inf"))
            m, s, sw, sh, sd = online_update(m, s, sw, sh, sd, x, wf, h.to(ACC)[None, :], df)
    store_partial(part_ptr + (r.to(tl.int64) * S + run) * 5, m, s, sw, sh, sd)


# Backward.  For joint k of image n the logits are x = Wt_k·F_n + b_k (the
# D rows of joint k), and the soft-argmax backward (derivation above
# _bwd_kernel in kernels/soft_argmax.py) gives, from the saved coords c and
# lse alone,
#
#   dx_u = p_u · Σ_a g_a (i_a(u)/N_a − 0.5 − c_a),   p_u = exp(x_u − lse)
#
# (soft_argmax.grad_terms gives its per-row constants).  x is linear in the
# inputs, so with dX_n (K·D, H·W) the gradient of all of image n's logits
#
#   d F_n = Wtᵀ · dX_n          (C, H·W)
#   d Wt  = Σ_n dX_n · F_nᵀ     (K·D, C)
#   d b   = Σ_n Σ_columns dX_n  (K·D,)
#
# and each is a sum over tiles of dX: a column block of d F_n sums the
# tiles of all K·D rows at those columns (Wt[rows]ᵀ · dX_tile), a row block
# of d Wt and d b the tiles of all images and columns at those rows.  Per
# tile: recompute the logits (_logits), form dX (_dlogits), add its terms.
@triton.jit
def _dlogits(grad_ptr, coords_ptr, lse_ptr, f_n, w_ptr, b_ptr, n, rows, rmask, cols, cmask, C, K, D, H, W,
             HAS_BIAS: tl.constexpr, ACC: tl.constexpr, DOT: tl.constexpr,
             BLOCK_R: tl.constexpr, BLOCK_HW: tl.constexpr, BLOCK_C: tl.constexpr):
    """dX[rows, cols] of image n (BLOCK_R, BLOCK_HW) in ACC, 0 outside rmask × cmask
    (so that a NaN row of another joint cannot reach a sum through padding)."""
    HW = H * W
    x = _logits(f_n, w_ptr, b_ptr, rows, rmask, cols, cmask, C, HW, HAS_BIAS, ACC, DOT, BLOCK_R, BLOCK_HW, BLOCK_C)
    rc = tl.minimum(rows, K * D - 1)
    k = rc // D  # once per row
    d = rc - k * D
    aw, ah, ad, Cst, hi, lo = grad_terms(grad_ptr, coords_ptr, lse_ptr, n * K + k, D, H, W, ACC)
    h = cols // W
    w = cols - h * W
    bracket = aw[:, None] * w.to(ACC)[None, :] + ah[:, None] * h.to(ACC)[None, :] + (ad * d.to(ACC) - Cst)[:, None]
    dx = tl.exp((x - hi[:, None]) - lo[:, None]) * bracket
    return tl.where(rmask[:, None] & cmask[None, :], dx, 0.0)


@triton.jit
def _bwd_features_kernel(
    grad_ptr,    # (B·K, 3) ∂L/∂coords, ACC
    f_ptr, w_ptr, b_ptr,  # as the forward's
    coords_ptr,  # (B·K, 3) forward coords, ACC
    lse_ptr,     # (B·K,) forward lse, float64
    df_ptr,      # (B, C, H·W) out, ACC, zero on entry: d features
    C, K, D, H, W,
    HAS_BIAS: tl.constexpr, ACC: tl.constexpr, DOT: tl.constexpr,
    BLOCK_R: tl.constexpr, BLOCK_HW: tl.constexpr, BLOCK_C: tl.constexpr,
):
    n = tl.program_id(0)
    j = tl.program_id(1)
    HW = H * W
    KD = K * D
    f_n = f_ptr + n.to(tl.int64) * C * HW
    df_n = df_ptr + n.to(tl.int64) * C * HW
    rr = tl.arange(0, BLOCK_R)
    cc = tl.arange(0, BLOCK_C)
    cols = j * BLOCK_HW + tl.arange(0, BLOCK_HW)
    cmask = cols < HW
    for r0 in range(0, KD, BLOCK_R):
        rows = r0 + rr
        rmask = rows < KD
        dx = _dlogits(grad_ptr, coords_ptr, lse_ptr, f_n, w_ptr, b_ptr, n, rows, rmask, cols, cmask, C, K, D, H, W,
                      HAS_BIAS, ACC, DOT, BLOCK_R, BLOCK_HW, BLOCK_C).to(DOT)
        for c0 in range(0, C, BLOCK_C):
            cm = cc < C - c0
            wT = tl.load(w_ptr + rows[None, :] * C + (c0 + cc)[:, None], mask=cm[:, None] & rmask[None, :],
                         other=0.0)  # (BLOCK_C, BLOCK_R)
            ptrs = df_n + (c0 + cc)[:, None] * HW + cols[None, :]
            m2 = cm[:, None] & cmask[None, :]
            acc = tl.load(ptrs, mask=m2, other=0.0)
            acc = tl.dot(wT.to(DOT), dx, acc, input_precision="ieee", out_dtype=ACC)
            tl.store(ptrs, acc, mask=m2)
            # the next row block's load of this slice must see the store,
            # whichever thread of the program made it
            tl.debug_barrier()


@triton.jit
def _bwd_weight_kernel(
    grad_ptr, f_ptr, w_ptr, b_ptr, coords_ptr, lse_ptr,  # as _bwd_features_kernel's
    dw_ptr,    # (S, K·D, C) out, ACC, zero on entry: d weight per run (unused without NEED_DW)
    db_ptr,    # (S, K·D) out, ACC: d bias per run (unused without NEED_DB)
    B, C, K, D, H, W,
    PER,       # (image, column block) tiles per run
    HAS_BIAS: tl.constexpr, NEED_DW: tl.constexpr, NEED_DB: tl.constexpr,
    ACC: tl.constexpr, DOT: tl.constexpr,
    BLOCK_R: tl.constexpr, BLOCK_HW: tl.constexpr, BLOCK_C: tl.constexpr,
):
    rb = tl.program_id(0)
    run = tl.program_id(1)
    HW = H * W
    KD = K * D
    nb = tl.cdiv(HW, BLOCK_HW)
    rows = rb * BLOCK_R + tl.arange(0, BLOCK_R)
    rmask = rows < KD
    jj = tl.arange(0, BLOCK_HW)
    cc = tl.arange(0, BLOCK_C)
    dw_run = dw_ptr + run.to(tl.int64) * KD * C
    db_acc = tl.zeros((BLOCK_R, BLOCK_HW), ACC)  # per lane, summed once at the end
    for t in range(run * PER, tl.minimum(run * PER + PER, B * nb)):
        n = t // nb
        cols = (t - n * nb) * BLOCK_HW + jj
        cmask = cols < HW
        f_n = f_ptr + n.to(tl.int64) * C * HW
        dx = _dlogits(grad_ptr, coords_ptr, lse_ptr, f_n, w_ptr, b_ptr, n, rows, rmask, cols, cmask, C, K, D, H, W,
                      HAS_BIAS, ACC, DOT, BLOCK_R, BLOCK_HW, BLOCK_C)
        if NEED_DB:
            db_acc += dx
        if NEED_DW:
            dxd = dx.to(DOT)
            for c0 in range(0, C, BLOCK_C):
                cm = cc < C - c0
                fT = tl.load(f_n + (c0 + cc)[None, :] * HW + cols[:, None], mask=cmask[:, None] & cm[None, :],
                             other=0.0)  # (BLOCK_HW, BLOCK_C)
                ptrs = dw_run + rows[:, None] * C + (c0 + cc)[None, :]
                m2 = rmask[:, None] & cm[None, :]
                acc = tl.load(ptrs, mask=m2, other=0.0)
                acc = tl.dot(dxd, fT.to(DOT), acc, input_precision="ieee", out_dtype=ACC)
                tl.store(ptrs, acc, mask=m2)
                tl.debug_barrier()  # as in _bwd_features_kernel
    if NEED_DB:
        tl.store(db_ptr + run.to(tl.int64) * KD + rows, tl.sum(db_acc, axis=1), mask=rmask)


def _prepare(features, weight, bias):
    """-> features (B, C, H·W), weight (K·D, C), bias (K·D,) (the weight as a
    stand-in, never read, when None), all contiguous; and whether there is a bias."""
    B, C, H, W = features.shape
    f = features.reshape(B, C, H * W).contiguous()
    return f, weight.contiguous(), (bias.contiguous() if bias is not None else weight), bias is not None


def conv_soft_argmax3d_fwd(features: torch.Tensor, weight: torch.Tensor, bias, num_joints: int):
    """features (B, C, H, W), weight (K·D, C), bias (K·D,) or None -> coords
    (B, K, 3), lse (B, K), conf (B, K); coords and conf in the accumulation
    dtype, lse in float64."""
    if not fused_applies(features, weight):
        return _chunked_fwd(features, weight, bias, num_joints)
    B, C, H, W = features.shape
    K = num_joints
    D = weight.shape[0] // K
    R = B * K
    acc, tl_acc, dot = _dtypes(features.dtype, features.device)
    coords = torch.empty((B, K, 3), dtype=acc, device=features.device)
    lse = torch.empty((B, K), dtype=torch.float64, device=features.device)
    conf = torch.empty((B, K), dtype=acc, device=features.device)
    if R == 0:
        return coords, lse, conf
    f, w, b, has_bias = _prepare(features, weight, bias)
    bl = blocks(C, D, H, W, features.device)
    per, S = _runs(triton.cdiv(H * W, bl.cols), R, bl.split, features.device)
    part = torch.empty((R, S, 5), dtype=acc, device=features.device)
    with soft_argmax._device_guard(features.device):
        _fwd_partial_kernel[(R, S)](f, w, b, part, C, K, D, H, W, per, S, HAS_BIAS=has_bias, ACC=tl_acc, DOT=dot,
                                    BLOCK_R=bl.rows, BLOCK_HW=bl.cols, BLOCK_C=bl.chans)
        soft_argmax._fwd_merge_kernel[(R,)](part, coords, lse, conf, S, D, H, W, ACC=tl_acc,
                                            BLOCK_S=triton.next_power_of_2(S))
    return coords, lse, conf


def conv_soft_argmax3d_bwd(grad_coords, features, weight, bias, coords, lse, num_joints: int, needs):
    """grad_coords (B, K, 3), the forward's inputs, coords (B, K, 3), lse (B, K)
    -> d features (B, C, H, W), d weight (K·D, C), d bias (K·D,) in the
    inputs' dtype, each only where ``needs`` says so (else an empty (0,))."""
    if not fused_applies(features, weight):
        return _chunked_bwd(grad_coords, features, weight, bias, coords, lse, num_joints, needs)
    B, C, H, W = features.shape
    K = num_joints
    KD = weight.shape[0]
    D = KD // K
    dtype, device = features.dtype, features.device
    acc, tl_acc, dot = _dtypes(dtype, device)
    # an unneeded output is an empty (0,) of its own (the op's outputs must not alias)
    dF = torch.zeros((B, C, H, W), dtype=acc, device=device) if needs[0] else features.new_empty((0,))
    dW = torch.zeros((KD, C), dtype=acc, device=device) if needs[1] else features.new_empty((0,))
    dB = torch.zeros((KD,), dtype=acc, device=device) if needs[2] else features.new_empty((0,))
    if B > 0 and any(needs):
        f, w, b, has_bias = _prepare(features, weight, bias)
        g = grad_coords.to(acc).contiguous()
        c = coords.to(acc).contiguous()
        lse = lse.to(torch.float64).contiguous()
        bl = blocks(C, D, H, W, device)
        nb = triton.cdiv(H * W, bl.cols)
        consts = dict(HAS_BIAS=has_bias, ACC=tl_acc, DOT=dot, BLOCK_R=bl.rows, BLOCK_HW=bl.cols, BLOCK_C=bl.chans)
        with soft_argmax._device_guard(device):
            if needs[0]:
                _bwd_features_kernel[(B, nb)](g, f, w, b, c, lse, dF, C, K, D, H, W, **consts)
            if needs[1] or needs[2]:
                row_blocks = triton.cdiv(KD, bl.rows)
                empty = features.new_empty((0,))  # the scratch of an unneeded one
                per, S = _runs(B * nb, row_blocks, bl.split, device)
                dw_runs = torch.zeros((S, KD, C), dtype=acc, device=device) if needs[1] else empty
                db_runs = torch.empty((S, KD), dtype=acc, device=device) if needs[2] else empty
                _bwd_weight_kernel[(row_blocks, S)](g, f, w, b, c, lse, dw_runs, db_runs, B, C, K, D, H, W, per,
                                                    NEED_DW=bool(needs[1]), NEED_DB=bool(needs[2]), **consts)
                # the runs' partials summed in float64 (a few of them, each of output size)
                if needs[1]:
                    dW = dw_runs[0] if S == 1 else dw_runs.sum(0, dtype=torch.float64)
                if needs[2]:
                    dB = db_runs[0] if S == 1 else db_runs.sum(0, dtype=torch.float64)
    return tuple(t.to(dtype) if need else t for t, need in zip((dF, dW, dB), needs))


# ---------------------------------------------------------------- the chunked fallback
#
# A chunk is as many images as keep their logits (chunk, K·D, H·W) within
# CHUNK_ELEMENTS (at least one image): one torch GEMM (cuBLAS on CUDA),
# reduced by the Triton soft-argmax and freed before the next chunk, so at
# most one chunk's logits are ever held (30 MB per image at 29×64³ in
# float32: two images per chunk).  The backward recomputes each chunk's
# logits, turns them into dX with the soft-argmax's backward kernel and adds
# the chunk's terms of the three sums above _dlogits; d weight and d bias add
# up across chunks in float64.

#: logits elements per chunk at most (64 MiB of float32), unless one image has more
CHUNK_ELEMENTS = 2 ** 24


def _chunk(features: torch.Tensor, weight: torch.Tensor) -> int:
    """Images per chunk."""
    per_image = weight.shape[0] * features.shape[2] * features.shape[3]
    return max(1, CHUNK_ELEMENTS // max(per_image, 1))


def _chunk_logits(features: torch.Tensor, weight: torch.Tensor, bias, n0: int, n1: int, K: int) -> torch.Tensor:
    """The logits of images n0..n1 as heatmaps (n1 − n0, K, D, H, W)."""
    B, C, H, W = features.shape
    f = features[n0:n1].reshape(n1 - n0, C, H * W)
    x = torch.matmul(weight, f)                                          # (n, K·D, H·W)
    if bias is not None:
        x = x + bias[:, None]
    return x.view(n1 - n0, K, weight.shape[0] // K, H, W)


def _chunked_fwd(features: torch.Tensor, weight: torch.Tensor, bias, num_joints: int):
    """As conv_soft_argmax3d_fwd, one chunk of images at a time."""
    B = features.shape[0]
    chunk = _chunk(features, weight)
    outs = [soft_argmax.soft_argmax3d_fwd(_chunk_logits(features, weight, bias, n, min(B, n + chunk), num_joints))
            for n in range(0, B, chunk)]
    if not outs:
        return soft_argmax.soft_argmax3d_fwd(_chunk_logits(features, weight, bias, 0, 0, num_joints))
    return tuple(torch.cat(parts) for parts in zip(*outs))


def _chunked_bwd(grad_coords, features, weight, bias, coords, lse, num_joints: int, needs):
    """As conv_soft_argmax3d_bwd, one chunk of images at a time."""
    B, C, H, W = features.shape
    dF = torch.empty_like(features) if needs[0] else features.new_empty((0,))
    dW = weight.new_zeros(weight.shape, dtype=torch.float64) if needs[1] else features.new_empty((0,))
    dB = weight.new_zeros(weight.shape[:1], dtype=torch.float64) if needs[2] else features.new_empty((0,))
    chunk = _chunk(features, weight)
    for n0 in range(0, B, chunk):
        n1 = min(B, n0 + chunk)
        x = _chunk_logits(features, weight, bias, n0, n1, num_joints)
        dx = soft_argmax.soft_argmax3d_bwd(grad_coords[n0:n1], x, coords[n0:n1], lse[n0:n1])
        dx = dx.reshape(n1 - n0, weight.shape[0], H * W)                # (n, K·D, H·W)
        if needs[0]:
            dF[n0:n1] = torch.matmul(weight.t(), dx).view(n1 - n0, C, H, W)
        if needs[1]:
            f = features[n0:n1].reshape(n1 - n0, C, H * W)
            dW += torch.matmul(dx, f.transpose(1, 2)).sum(0, dtype=torch.float64)
        if needs[2]:
            dB += dx.sum((0, 2), dtype=torch.float64)
    return dF, dW.to(weight.dtype) if needs[1] else dW, dB.to(weight.dtype) if needs[2] else dB
