"""Input builders shared by the tests (and reused by the benchmarks)."""
import torch

# An SMPL-like T-pose (metres, y up, x to the body's left, z forward), written
# by hand to the proportions of an adult; joints 0..23 then the five leaves.
REST_SKELETON = [
    (0.00, 0.00, 0.00), (0.06, -0.09, -0.01), (-0.06, -0.09, -0.01), (0.00, 0.11, -0.03),
    (0.10, -0.46, 0.00), (-0.10, -0.46, 0.00), (0.00, 0.24, 0.00), (0.09, -0.86, -0.04),
    (-0.09, -0.86, -0.04), (0.00, 0.30, 0.02), (0.12, -0.92, 0.08), (-0.12, -0.92, 0.08),
    (0.00, 0.51, -0.01), (0.08, 0.42, 0.00), (-0.08, 0.42, 0.00), (0.00, 0.57, 0.04),
    (0.17, 0.45, -0.02), (-0.17, 0.45, -0.02), (0.43, 0.43, -0.04), (-0.43, 0.43, -0.04),
    (0.68, 0.44, -0.04), (-0.68, 0.44, -0.04), (0.77, 0.43, -0.05), (-0.77, 0.43, -0.05),
    (0.00, 0.75, 0.00), (0.87, 0.43, -0.05), (-0.87, 0.43, -0.05), (0.12, -0.95, 0.14),
    (-0.12, -0.95, 0.14),
]


def rest_skeleton(dtype=torch.float64) -> torch.Tensor:
    """(29, 3) hand-written rest pose."""
    return torch.tensor(REST_SKELETON, dtype=dtype)


def axis_angle_to_matrix(aa: torch.Tensor) -> torch.Tensor:
    """(…, 3) -> (…, 3, 3) by Rodrigues' formula (test-side, independent of the package)."""
    theta = aa.norm(dim=-1, keepdim=True).clamp_min(1e-30)
    k = aa / theta
    x, y, z = k.unbind(-1)
    o = torch.zeros_like(x)
    K = torch.stack([o, -z, y, z, o, -x, -y, x, o], -1).reshape(*aa.shape, 3)
    s, c = torch.sin(theta)[..., None], torch.cos(theta)[..., None]
    return torch.eye(3, dtype=aa.dtype) + s * K + (1 - c) * K @ K


def random_pose(B: int, dtype=torch.float64, seed: int = 0, max_angle: float = 0.8,
                rest_noise: float = 0.01):
    """Random plausible pose: rotmats (B, 24, 3, 3) and rest joints (B, 29, 3).

    Each joint rotates by an angle uniform in [0.2, max_angle] rad about a
    random axis; the root by any rotation; the rest skeleton is jittered by
    ``rest_noise`` metres per coordinate.
    """
    g = torch.Generator().manual_seed(seed)
    axis = torch.randn(B, 24, 3, generator=g, dtype=torch.float64)
    axis = axis / axis.norm(dim=-1, keepdim=True)
    angle = 0.2 + (max_angle - 0.2) * torch.rand(B, 24, 1, generator=g, dtype=torch.float64)
    angle[:, 0] = torch.pi * torch.rand(B, 1, generator=g, dtype=torch.float64)
    rot = axis_angle_to_matrix(axis * angle)
    T = rest_skeleton(torch.float64) + rest_noise * torch.randn(B, 29, 3, generator=g, dtype=torch.float64)
    return rot.to(dtype), T.to(dtype)
