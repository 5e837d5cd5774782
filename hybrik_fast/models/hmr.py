"""HMR baseline (Kanazawa et al., "End-to-end Recovery of Human Shape and
Pose", CVPR 2018; seed 003): direct regression of the body parameters by
iterative error feedback (IEF).

    x = avgpool(preact C5)                                           (B, C)
    Θ_0 = (θ_0, β_0, c_0): rest pose (root turned to the camera frame), init_shape, 0
    for t in 1..3:  Θ_t = Θ_{t-1} + dec(drop(fc2(drop(fc1([x, Θ_{t-1}])))))
    θ: 24 rotations in the 6D representation of Zhou et al. ("On the
       Continuity of Rotation Representations in Neural Networks", CVPR
       2019): the first two columns (a1, a2) of R, mapped back by Gram-Schmidt.

Outputs (no IK): rotmats from θ; joints = forward kinematics of rotmats on
rest_joints(β), root-relative; uvd = camera.project of those joints placed at
the camera's root (tx, ty, F/s), so the same uvd loss applies to every head;
twist = twist_angles(rotmats, rest) for completeness.
"""
from __future__ import annotations

import torch
from torch import nn

from ..body import BodyModel
from ..camera import project, root_from_camera
from ..ik import forward_kinematics, twist_angles
from ..skeleton import NUM_BETAS, NUM_SMPL_JOINTS
from .common import BodyHeadModel
from .output import ModelOutput

ROT6D = 6 * NUM_SMPL_JOINTS  # 144
# The body model is y-up and the camera y-down: the initial root rotation is
# the half-turn about x, so the rest body starts upright in the camera.
INIT_ROOT = ((1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, -1.0))


def rot6d_to_matrix(x: torch.Tensor) -> torch.Tensor:
    """(…, 6) = (a1, a2) -> rotation matrices (…, 3, 3) with columns (b1, b2, b3).

    Gram-Schmidt (Zhou et al. 2019, eq. 15-16): b1 = a1/|a1|,
    b2 = normalise(a2 − (b1·a2) b1), b3 = b1 × b2.  Norms are floored at 1e-8.
    """
    a1, a2 = x[..., :3], x[..., 3:]
    b1 = nn.functional.normalize(a1, dim=-1, eps=1e-8)
    b2 = nn.functional.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1, eps=1e-8)
    b3 = torch.linalg.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def matrix_to_rot6d(R: torch.Tensor) -> torch.Tensor:
    """(…, 3, 3) -> (…, 6): the first two columns, (a1, a2)."""
    return torch.cat([R[..., :, 0], R[..., :, 1]], dim=-1)


class HMRModel(BodyHeadModel):
    """HMR with iterative error feedback; ``model(images) -> ModelOutput`` (sigma None)."""

    def __init__(self, backbone: str = "resnet50", image_size: int = 256,
                 body: BodyModel | None = None, backend: str = "auto",
                 iterations: int = 3, dropout: float = 0.5):
        super().__init__(backbone, image_size, body, backend)
        if iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {iterations}")
        self.iterations = iterations
        npose = ROT6D + NUM_BETAS + 3
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Linear(self.preact.out_channels + npose, 1024)
        self.drop1 = nn.Dropout(dropout)
        self.fc2 = nn.Linear(1024, 1024)
        self.drop2 = nn.Dropout(dropout)
        self.decpose = nn.Linear(1024, ROT6D)
        self.decshape = nn.Linear(1024, NUM_BETAS)
        self.deccam = nn.Linear(1024, 3)
        for m in (self.decpose, self.decshape, self.deccam):
            nn.init.xavier_uniform_(m.weight, gain=0.01)
            nn.init.zeros_(m.bias)
        init = torch.eye(3).repeat(NUM_SMPL_JOINTS, 1, 1)
        init[0] = torch.tensor(INIT_ROOT)
        self.register_buffer("init_pose", matrix_to_rot6d(init).reshape(ROT6D))

    def predict(self, images: torch.Tensor) -> dict:
        """images (B, 3, S, S) -> rotmats (B, 24, 3, 3), betas (B, 10), camera (B, 3)."""
        self.check_images(images)
        x = self.avg_pool(self.preact(images)).flatten(1)             # (B, C)
        B = x.shape[0]
        pose = self.init_pose.to(x.dtype).expand(B, -1)               # (B, 144)
        shape = self.init_shape.to(x.dtype).expand(B, -1)             # (B, 10)
        cam = x.new_zeros(B, 3)                                       # raw camera
        for _ in range(self.iterations):
            h = torch.cat([x, pose, shape, cam], dim=1)
            h = self.drop2(self.fc2(self.drop1(self.fc1(h))))         # (B, 1024)
            pose = pose + self.decpose(h)
            shape = shape + self.decshape(h)
            cam = cam + self.deccam(h)
        rotmats = rot6d_to_matrix(pose.reshape(B, NUM_SMPL_JOINTS, 6))  # (B, 24, 3, 3)
        return {"rotmats": rotmats, "betas": shape, "camera": self.decode_camera(cam)}

    def forward(self, images: torch.Tensor) -> ModelOutput:
        """images (B, 3, S, S) -> :class:`ModelOutput` (sigma None)."""
        p = self.predict(images)
        rotmats, betas, camera = p["rotmats"], p["betas"], p["camera"]
        rest = self.smpl.rest_joints(betas)                           # (B, 29, 3)
        joints = forward_kinematics(rotmats, rest)                    # root-relative, (B, 29, 3)
        uvd = project(joints + root_from_camera(camera)[:, None])     # (B, 29, 3)
        twist = twist_angles(rotmats, rest)                           # (B, 23, 2)
        vertices, joints_from_mesh = self.mesh(rotmats, betas)
        return ModelOutput(uvd=uvd, joints=joints, twist=twist, betas=betas, rotmats=rotmats,
                           vertices=vertices, joints_from_mesh=joints_from_mesh,
                           camera=camera, sigma=None)
