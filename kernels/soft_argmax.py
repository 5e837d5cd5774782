"""Fused soft-argmax over 3D heatmaps: Triton forward and backward kernels.

Shapes: heatmaps (B, K, D, H, W).  A row is the N = D·H·W voxels of one
joint; there are R = B·K rows.  With p = softmax over a row,

    c_x = Σ_v p_v·w_v/W − 0.5,  c_y = Σ_v p_v·h_v/H − 0.5,  c_z = Σ_v p_v·d_v/D − 0.5
    lse = log Σ_v exp(x_v),     conf = max_v p_v = exp(max_v x_v − lse)

(the marginal form of hybrik_fast/reference/soft_argmax.py).

Forward is two launches.  ``_fwd_partial_kernel`` runs on a (R, S) grid: each
row is cut into S chunks of whole d-planes, so that even B = 1 (29 rows) gives
enough programs to fill a GPU.  A program walks its planes in 2D tiles of
ROWS h-rows × BLOCK_W voxels, so that every voxel's (w, h, d) comes from the
tile's lane and the loop counters, with no integer division per voxel (a
runtime ``%`` or ``//`` is some twenty instructions on the GPU).  It keeps,
per lane, an online softmax state (running max m, Σ e, Σ e·w, Σ e·h, Σ e·d
with e = exp(x − m)), folds the lanes together and writes the chunk's five
partials.  ``_fwd_merge_kernel`` merges a row's S partials by log-sum-exp and
writes coords, lse and conf.  Backward is one launch on the same (R, S) grid
and tiles.  Only the logits are read from and written to memory at size N
per row.

Accumulation is in float32 (float64 for float64 input); coords and conf are
returned in that dtype, lse in float64 (at |x| ~ 1e4 a float32 lse would
shift every recomputed p by up to 5e-4) and dx in the input's dtype.
"""
from __future__ import annotations

import contextlib

import torch
import triton
import triton.language as tl

#: voxels per tile at most; a power of two (small planes use a smaller tile)
BLOCK = 1024


@triton.jit
def online_update(m, s, sw, sh, sd, x, w, h, d):
    """One tile x of logits into a per-lane online softmax state: m the
    running max, s = Σ e, sw = Σ e·w, sh = Σ e·h, sd = Σ e·d with e = exp(x − m);
    w, h, d the voxels' indices (broadcast against x).  -> the new state.
    Shared by this module's forward and kernels/conv_soft_argmax.py's."""
    m_new = tl.maximum(m, x)
    # a lane that has seen only −inf keeps m = −inf; shift by 0 there so
    # that exp(−inf − shift) = 0 instead of NaN
    shift = tl.where(m_new == float("-inf"), 0.0, m_new)
    alpha = tl.exp(m - shift)
    e = tl.exp(x - shift)
    return m_new, s * alpha + e, sw * alpha + e * w, sh * alpha + e * h, sd * alpha + e * d


@triton.jit
def store_partial(out, m, s, sw, sh, sd):
    """Folds a 2-D per-lane state (online_update) onto its max and stores the
    five partials (m, Σe, Σe·w, Σe·h, Σe·d) at out[0:5], the layout that
    _fwd_merge_kernel reads."""
    mc = tl.max(tl.max(m, axis=1), axis=0)
    shift_c = tl.where(mc == float("-inf"), 0.0, mc)
    scale = tl.exp(m - shift_c)
    tl.store(out + 0, mc)
    tl.store(out + 1, tl.sum(tl.sum(s * scale, axis=1), axis=0))
    tl.store(out + 2, tl.sum(tl.sum(sw * scale, axis=1), axis=0))
    tl.store(out + 3, tl.sum(tl.sum(sh * scale, axis=1), axis=0))
    tl.store(out + 4, tl.sum(tl.sum(sd * scale, axis=1), axis=0))


@triton.jit
def _fwd_partial_kernel(
    x_ptr,     # (R, D, H, W) logits, contiguous, any float dtype
    part_ptr,  # (R, S, 5) out: per chunk (m, Σe, Σe·w, Σe·h, Σe·d), e = exp(x − m)
    D, H, W,   # heatmap depth, height, width
    PLANES,    # d-planes per chunk; S = cdiv(D, PLANES)
    S,         # chunks per row
    ACC: tl.constexpr,      # accumulation dtype: tl.float32, or tl.float64 for float64 input
    ROWS: tl.constexpr,     # h-rows per tile (power of two)
    BLOCK_W: tl.constexpr,  # voxels per h-row of a tile (power of two)
):
    row = tl.program_id(0).to(tl.int64)
    chunk = tl.program_id(1)
    hh = tl.arange(0, ROWS)[:, None]     # (ROWS, 1)
    ww = tl.arange(0, BLOCK_W)[None, :]  # (1, BLOCK_W)
    offs = hh * W + ww                   # a tile's voxel offsets from its first voxel
    hf = hh.to(ACC)
    wf = ww.to(ACC)
    x_row = x_ptr + row * D * H * W
    m = tl.full((ROWS, BLOCK_W), float("-inf"), ACC)
    s = tl.zeros((ROWS, BLOCK_W), ACC)
    sw = tl.zeros((ROWS, BLOCK_W), ACC)
    sh = tl.zeros((ROWS, BLOCK_W), ACC)
    sd = tl.zeros((ROWS, BLOCK_W), ACC)
    d0 = chunk * PLANES
    for d in range(d0, tl.minimum(d0 + PLANES, D)):
        for h0 in range(0, H, ROWS):
            for w0 in range(0, W, BLOCK_W):
                mask = (hh < H - h0) & (ww < W - w0)
                x = tl.load(x_row + (d * H + h0) * W + w0 + offs, mask=mask, other=float("-inf")).to(ACC)
                m, s, sw, sh, sd = online_update(m, s, sw, sh, sd, x, wf + w0, hf + h0, d)
    store_partial(part_ptr + (row * S + chunk) * 5, m, s, sw, sh, sd)


@triton.jit
def _fwd_merge_kernel(
    part_ptr,    # (R, S, 5) in: the chunk partials of _fwd_partial_kernel
    coords_ptr,  # (R, 3) out: (x, y, z)
    lse_ptr,     # (R,) out: log Σ exp(x), float64
    conf_ptr,    # (R,) out: exp(max − lse)
    S,           # chunks per row
    D, H, W,     # heatmap depth, height, width
    ACC: tl.constexpr,      # accumulation dtype
    BLOCK_S: tl.constexpr,  # power of two >= S
):
    row = tl.program_id(0).to(tl.int64)
    j = tl.arange(0, BLOCK_S)
    mask = j < S
    base = part_ptr + (row * S + j) * 5
    m = tl.load(base + 0, mask=mask, other=float("-inf"))
    M = tl.max(m, axis=0)
    shift = tl.where(M == float("-inf"), 0.0, M)
    # chunks that saw only −inf have s = 0 and contribute 0; keep their
    # exp(−inf − shift) = 0 from meeting NaN
    scale = tl.where(m == float("-inf"), 0.0, tl.exp(m - shift))
    s = tl.sum(tl.load(base + 1, mask=mask, other=0.0) * scale, axis=0)
    sw = tl.sum(tl.load(base + 2, mask=mask, other=0.0) * scale, axis=0)
    sh = tl.sum(tl.load(base + 3, mask=mask, other=0.0) * scale, axis=0)
    sd = tl.sum(tl.load(base + 4, mask=mask, other=0.0) * scale, axis=0)
    # all −inf: s = 0 gives coords 0/0 = NaN, lse = −inf, conf = NaN, as softmax does
    tl.store(coords_ptr + row * 3 + 0, sw / (s * W) - 0.5)
    tl.store(coords_ptr + row * 3 + 1, sh / (s * H) - 0.5)
    tl.store(coords_ptr + row * 3 + 2, sd / (s * D) - 0.5)
    lse = M.to(tl.float64) + tl.log(s.to(tl.float64))
    tl.store(lse_ptr + row, lse)
    tl.store(conf_ptr + row, tl.exp(M.to(tl.float64) - lse).to(ACC))


# Backward.  With p = softmax(x) over a row and c_a = Σ_v p_v·i_a(v)/N_a − 0.5
# for each axis a ∈ {x: (w, W), y: (h, H), z: (d, D)}:
#
#   ∂p_v/∂x_u = p_v (δ_uv − p_u)
#   ∂c_a/∂x_u = Σ_v i_a(v)/N_a · p_v (δ_uv − p_u) = p_u (i_a(u)/N_a − 0.5 − c_a)
#
# so for the incoming gradient g = ∂L/∂c (3 numbers per row):
#
#   dx_u = p_u · Σ_a g_a (i_a(u)/N_a − 0.5 − c_a),   p_u = exp(x_u − lse).
#
# The bracket is affine in (w, h, d): (g_x/W)·w + (g_y/H)·h + (g_z/D)·d − C with
# C = Σ_a g_a (0.5 + c_a), computed once per program; per tile it is a table
# over the tile's lanes, (g_x/W)·w_rel + (g_y/H)·h_rel, plus one number.  The
# float64 lse is split into hi + lo in ACC and x − lse formed as (x − hi) − lo,
# with x − hi exact for the x that matter (Sterbenz).
@triton.jit
def grad_terms(grad_ptr, coords_ptr, lse_ptr, row, D, H, W, ACC: tl.constexpr):
    """The per-row constants of dx_u = exp((x_u − hi) − lo) · (aw·w + ah·h + ad·d − C)
    (the derivation above): row a scalar or a vector of row indices into
    grad (R, 3), coords (R, 3), lse (R,) -> (aw, ah, ad, C, hi, lo) of its shape.
    Shared by this module's backward and kernels/conv_soft_argmax.py's."""
    gx = tl.load(grad_ptr + row * 3 + 0).to(ACC)
    gy = tl.load(grad_ptr + row * 3 + 1).to(ACC)
    gz = tl.load(grad_ptr + row * 3 + 2).to(ACC)
    C = (gx * (0.5 + tl.load(coords_ptr + row * 3 + 0).to(ACC))
         + gy * (0.5 + tl.load(coords_ptr + row * 3 + 1).to(ACC))
         + gz * (0.5 + tl.load(coords_ptr + row * 3 + 2).to(ACC)))
    lse = tl.load(lse_ptr + row)
    hi = lse.to(ACC)
    lo = (lse - hi.to(tl.float64)).to(ACC)
    return gx / W, gy / H, gz / D, C, hi, lo


@triton.jit
def _bwd_kernel(
    grad_ptr,    # (R, 3) in: ∂L/∂coords, accumulation dtype
    x_ptr,       # (R, D, H, W) in: logits, contiguous
    coords_ptr,  # (R, 3) in: forward coords, accumulation dtype
    lse_ptr,     # (R,) in: forward log-sum-exp, float64
    dx_ptr,      # (R, D, H, W) out: ∂L/∂x in x's dtype
    D, H, W,     # heatmap depth, height, width
    PLANES,      # d-planes per chunk
    ACC: tl.constexpr,      # accumulation dtype
    ROWS: tl.constexpr,     # h-rows per tile (power of two)
    BLOCK_W: tl.constexpr,  # voxels per h-row of a tile (power of two)
):
    row = tl.program_id(0).to(tl.int64)
    d0 = tl.program_id(1) * PLANES
    hh = tl.arange(0, ROWS)[:, None]
    ww = tl.arange(0, BLOCK_W)[None, :]
    offs = hh * W + ww
    aw, ah, ad, C, hi, lo = grad_terms(grad_ptr, coords_ptr, lse_ptr, row, D, H, W, ACC)
    coef = aw * ww.to(ACC) + ah * hh.to(ACC)  # (ROWS, BLOCK_W)
    base = row * D * H * W
    for d in range(d0, tl.minimum(d0 + PLANES, D)):
        for h0 in range(0, H, ROWS):
            for w0 in range(0, W, BLOCK_W):
                mask = (hh < H - h0) & (ww < W - w0)
                v = base + (d * H + h0) * W + w0 + offs
                x = tl.load(x_ptr + v, mask=mask, other=0.0).to(ACC)
                tile = aw * w0 + ah * h0 + ad * d - C
                dx = tl.exp((x - hi) - lo) * (coef + tile)  # p · bracket
                tl.store(dx_ptr + v, dx.to(dx_ptr.dtype.element_ty), mask=mask)


def _device_guard(device: torch.device):
    """Launches on `device`, not on the current CUDA device (a no-op on CPU)."""
    return torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()


def _acc_dtype(x: torch.Tensor):
    return (torch.float64, tl.float64) if x.dtype == torch.float64 else (torch.float32, tl.float32)


_SM_COUNT: dict = {}


def _sm_count(device: torch.device) -> int:
    """Multiprocessors of a CUDA device, asked once per device."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    if index not in _SM_COUNT:
        _SM_COUNT[index] = torch.cuda.get_device_properties(index).multi_processor_count
    return _SM_COUNT[index]


def tile_shape(H: int, W: int) -> tuple[int, int]:
    """(ROWS, BLOCK_W): a tile of at most BLOCK voxels, BLOCK_W covering an
    h-row (or BLOCK voxels of it) and ROWS h-rows, both powers of two."""
    block_w = min(BLOCK, triton.next_power_of_2(W))
    rows = min(triton.next_power_of_2(H), max(1, BLOCK // block_w))
    return rows, block_w


def _split(R: int, D: int, device: torch.device) -> tuple[int, int]:
    """(PLANES, S): each row cut into S chunks of PLANES d-planes, so that the
    grid has about four programs per SM (R·S >= 4·SMs) when D allows."""
    # on the interpreter any split exercises the merge
    target = 4 * _sm_count(device) if device.type == "cuda" else 4
    S = max(1, min(D, triton.cdiv(target, max(R, 1))))
    planes = triton.cdiv(D, S)
    return planes, triton.cdiv(D, planes)


def soft_argmax3d_fwd(x: torch.Tensor):
    """x: (B, K, D, H, W) -> coords (B, K, 3), lse (B, K), conf (B, K); coords
    and conf in the accumulation dtype (float32, float64 for float64 input),
    lse in float64."""
    B, K, D, H, W = x.shape
    R = B * K
    acc, tl_acc = _acc_dtype(x)
    coords = torch.empty((B, K, 3), dtype=acc, device=x.device)
    lse = torch.empty((B, K), dtype=torch.float64, device=x.device)
    conf = torch.empty((B, K), dtype=acc, device=x.device)
    if R == 0:
        return coords, lse, conf
    x = x.contiguous()
    planes, S = _split(R, D, x.device)
    rows, block_w = tile_shape(H, W)
    part = torch.empty((R, S, 5), dtype=acc, device=x.device)
    with _device_guard(x.device):
        _fwd_partial_kernel[(R, S)](x, part, D, H, W, planes, S, ACC=tl_acc, ROWS=rows, BLOCK_W=block_w)
        _fwd_merge_kernel[(R,)](part, coords, lse, conf, S, D, H, W,
                                ACC=tl_acc, BLOCK_S=triton.next_power_of_2(S))
    return coords, lse, conf


def soft_argmax3d_bwd(grad_coords: torch.Tensor, x: torch.Tensor, coords: torch.Tensor,
                      lse: torch.Tensor) -> torch.Tensor:
    """grad_coords (B, K, 3), x (B, K, D, H, W), coords (B, K, 3), lse (B, K)
    -> dx (B, K, D, H, W), contiguous, in x's dtype."""
    B, K, D, H, W = x.shape
    R = B * K
    dx = torch.empty((B, K, D, H, W), dtype=x.dtype, device=x.device)
    if R == 0:
        return dx
    acc, tl_acc = _acc_dtype(x)
    x = x.contiguous()
    grad_coords = grad_coords.to(acc).contiguous()
    coords = coords.to(acc).contiguous()
    lse = lse.to(torch.float64).contiguous()
    planes, S = _split(R, D, x.device)
    rows, block_w = tile_shape(H, W)
    with _device_guard(x.device):
        _bwd_kernel[(R, S)](grad_coords, x, coords, lse, dx, D, H, W, planes, ACC=tl_acc, ROWS=rows,
                            BLOCK_W=block_w)
    return dx
