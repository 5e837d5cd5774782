"""HybrIK-Transformer (Oreshkin, "HybrIK-Transformer", 2023; seed 002): the
3D heatmap is replaced by a transformer that reads the backbone's patches.

    images (B, 3, S, S) -> preact C5 (B, C, h, w), h = w = S/32
    source  e2d_0 = proj(C5 patches) + row_embed[i] + col_embed[j]      (B, N = h·w, d)
            training: a random n ∈ [⌈0.2 N⌉, N] patches kept per batch
            (each sample its own subset), all N at eval
    queries e3d_0 = joint_embed[id] + type_embed[type]                  (B, 53, d)
            53 = 24 joint tokens (ids 0..23, type "keypoint"), 23 twist
            tokens (ids 1..23, "twist"), 5 leaf tokens (ids 24..28,
            "keypoint"), 1 shape token (id 29, "shape")
    L blocks, each (paper eq. for e2d, e3d-t, e3d):
        e2d  = FFN(ReLU(LN(e2d + MHA(e2d, e2d, e2d))))
        e3dt = ReLU(LN(e3d + MHA(e3d, e3d, e3d)))
        e3d  = FFN(ReLU(LN(e3dt + MHA(e3dt, e2d, e2d))))
      FFN: 3 linear layers of width d with ReLU and dropout between them; as
      in the paper the FFN output replaces its input (no extra residual).
    heads: joint and leaf tokens -> uvd (a plain linear map, as in the paper;
           the soft-argmax range [-0.5, 0.5) is not enforced);
           twist tokens -> (cos, sin), normalised; shape token -> β (offset
           from init_shape) and the camera (see common.py).
    then the same back-projection -> hybrik_ik -> body path as HybrIK.

Paper defaults: d = 512, h = 8 heads, L = 6 blocks, dropout 0.1.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..body import BodyModel
from ..skeleton import LEAF_JOINTS, NUM_BETAS, NUM_JOINTS, NUM_SMPL_JOINTS, NUM_TWIST
from .common import BodyHeadModel, unit_twist
from .output import ModelOutput

KEEP_RANGE = (0.2, 1.0)
TYPE_KEYPOINT, TYPE_TWIST, TYPE_SHAPE = 0, 1, 2
SHAPE_ID = NUM_JOINTS  # the shape token's identity embedding follows the 29 joints


def _query_layout() -> tuple[list[int], list[int]]:
    """Identity and type index of each of the 53 query tokens."""
    ids = (list(range(NUM_SMPL_JOINTS)) + list(range(1, NUM_SMPL_JOINTS))
           + list(LEAF_JOINTS) + [SHAPE_ID])
    types = ([TYPE_KEYPOINT] * NUM_SMPL_JOINTS + [TYPE_TWIST] * NUM_TWIST
             + [TYPE_KEYPOINT] * len(LEAF_JOINTS) + [TYPE_SHAPE])
    return ids, types


class FFN(nn.Sequential):
    """Three linear layers of width d: Linear-ReLU-Dropout-Linear-ReLU-Dropout-Linear."""

    def __init__(self, d: int, dropout: float):
        super().__init__(nn.Linear(d, d), nn.ReLU(inplace=True), nn.Dropout(dropout),
                         nn.Linear(d, d), nn.ReLU(inplace=True), nn.Dropout(dropout),
                         nn.Linear(d, d))


class Block(nn.Module):
    """One HybrIK-Transformer block: source self-attention, query
    self-attention, query-to-source cross-attention (see the module docstring)."""

    def __init__(self, d: int, heads: int, dropout: float):
        super().__init__()
        self.src_attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.src_norm = nn.LayerNorm(d)
        self.src_ffn = FFN(d, dropout)
        self.self_attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.self_norm = nn.LayerNorm(d)
        self.cross_attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.cross_norm = nn.LayerNorm(d)
        self.ffn = FFN(d, dropout)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor):
        """src (B, N, d), tgt (B, 53, d) -> updated (src, tgt)."""
        a = self.src_attn(src, src, src, need_weights=False)[0]
        src = self.src_ffn(torch.relu(self.src_norm(src + a)))
        a = self.self_attn(tgt, tgt, tgt, need_weights=False)[0]
        tgt = torch.relu(self.self_norm(tgt + a))
        a = self.cross_attn(tgt, src, src, need_weights=False)[0]
        tgt = self.ffn(torch.relu(self.cross_norm(tgt + a)))
        return src, tgt


class HybrIKTransformer(BodyHeadModel):
    """HybrIK-Transformer; ``model(images) -> ModelOutput`` (sigma None)."""

    def __init__(self, backbone: str = "resnet34", image_size: int = 256,
                 body: BodyModel | None = None, backend: str = "auto",
                 d_model: int = 512, num_heads: int = 8, num_layers: int = 6,
                 dropout: float = 0.1, keep_range: tuple[float, float] = KEEP_RANGE):
        super().__init__(backbone, image_size, body, backend)
        if d_model <= 0 or num_heads <= 0 or d_model % num_heads:
            raise ValueError(f"d_model must be a positive multiple of num_heads, "
                             f"got d_model={d_model}, num_heads={num_heads}")
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        lo, hi = keep_range
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"keep_range must satisfy 0 < low <= high <= 1, got {keep_range}")
        self.keep_range = (float(lo), float(hi))
        side = image_size // 32
        self.input_proj = nn.Linear(self.preact.out_channels, d_model)
        self.row_embed = nn.Parameter(torch.randn(side, d_model) * 0.02)   # 2D position
        self.col_embed = nn.Parameter(torch.randn(side, d_model) * 0.02)
        self.joint_embed = nn.Embedding(NUM_JOINTS + 1, d_model)
        self.type_embed = nn.Embedding(3, d_model)
        ids, types = _query_layout()
        self.register_buffer("query_ids", torch.tensor(ids), persistent=False)
        self.register_buffer("query_types", torch.tensor(types), persistent=False)
        self.blocks = nn.ModuleList(Block(d_model, num_heads, dropout) for _ in range(num_layers))
        self.uvd_head = nn.Linear(d_model, 3)
        self.twist_head = nn.Linear(d_model, 2)
        self.shape_head = nn.Linear(d_model, NUM_BETAS)
        self.cam_head = nn.Linear(d_model, 3)
        for m in (self.shape_head, self.cam_head):
            nn.init.xavier_uniform_(m.weight, gain=0.01)
            nn.init.zeros_(m.bias)

    def _keep_patches(self, src: torch.Tensor) -> torch.Tensor:
        """Training: keep a random n ∈ [⌈low·N⌉, ⌈high·N⌉] of the N patches
        (one n per batch, an independent subset per sample); eval: all."""
        if not self.training:
            return src
        B, N, d = src.shape
        lo = max(1, math.ceil(self.keep_range[0] * N))
        hi = max(lo, math.ceil(self.keep_range[1] * N))
        n = int(torch.randint(lo, hi + 1, ()))                        # CPU RNG: no device sync
        if n == N:
            return src
        order = torch.rand(B, N, device=src.device).argsort(dim=1)[:, :n]   # (B, n)
        return torch.gather(src, 1, order[..., None].expand(B, n, d))

    def predict(self, images: torch.Tensor) -> dict:
        """images (B, 3, S, S) -> raw predictions: uvd (B, 29, 3), twist
        (B, 23, 2) unit, betas (B, 10), camera (B, 3)."""
        self.check_images(images)
        c5 = self.preact(images)                                      # (B, C, h, w)
        B, C, h, w = c5.shape
        pos = (self.row_embed[:, None] + self.col_embed[None]).reshape(h * w, -1)   # (N, d)
        src = self.input_proj(c5.flatten(2).transpose(1, 2)) + pos    # (B, N, d)
        src = self._keep_patches(src)
        tgt = (self.joint_embed(self.query_ids) + self.type_embed(self.query_types))
        tgt = tgt.to(src.dtype).expand(B, -1, -1)                     # (B, 53, d)
        for block in self.blocks:
            src, tgt = block(src, tgt)

        J, T, L = NUM_SMPL_JOINTS, NUM_TWIST, len(LEAF_JOINTS)
        joint_tokens = torch.cat([tgt[:, :J], tgt[:, J + T:J + T + L]], dim=1)   # (B, 29, d)
        uvd = self.uvd_head(joint_tokens)                             # (B, 29, 3)
        twist = unit_twist(self.twist_head(tgt[:, J:J + T]))          # (B, 23, 2)
        shape_token = tgt[:, -1]                                      # (B, d)
        betas = self.init_shape.to(src.dtype) + self.shape_head(shape_token)
        camera = self.decode_camera(self.cam_head(shape_token))
        return {"uvd": uvd, "twist": twist, "betas": betas, "camera": camera}

    def forward(self, images: torch.Tensor) -> ModelOutput:
        """images (B, 3, S, S) -> :class:`ModelOutput` (sigma None)."""
        return self.decode(**self.predict(images))
