"""The two published HybrIK networks, so that their checkpoints run here exactly.

``HybrIKResNetCam`` has the layout of the public ``Simple3DPoseBaseSMPLCam``
(``pretrained_res34.pth``, ``pretrained_w_cam.pth``) and ``HybrIKHRNetCam``
that of ``HRNetSMPLCam`` (``hybrik_hrnet.pth``).  Both are called as
``model(images, bboxes=None, img_center=None, flip_test=False)`` and return a
:class:`ModelOutput` with

    uvd          (B, 29, 3)  soft-argmax (u, v, d) in [-0.5, 0.5), crop units
    joints       (B, 29, 3)  back-projected joints, root-relative metres
    twist        (B, 23, 2)  the predicted (cos φ, sin φ), unnormalised (the IK normalises)
    betas        (B, 10)     shape
    rotmats      (B, 24, 3, 3)  local rotations from the adaptive IK
    vertices     (B, V, 3)   the mesh relative to the root of ``joints_h36m``
    joints_h36m  (B, 17, 3)  the Human3.6M regressor applied to the mesh, same origin
    cam_root     (B, 3)      the back-projected root joint, camera frame, metres
    transl       (B, 3)      camera_root minus the re-rooted SMPL joint 0, which is
                             zero: equal to cam_root, as in the public code
    camera       (B, 3 | 1)  the camera after flip averaging (scale first)
    sigma        (B, 29)     per-joint uncertainty; scores = 1 − sigma
    scores       (B, 29)

Images are (B, 3, 256, 256) RGB, normalised as the public demo does
(subtract (0.406, 0.457, 0.480), divide by (0.225, 0.224, 0.229)).
``bboxes`` (B, 4) xyxy and ``img_center`` (B, 2) are in pixels of the full
image; both or neither.

Back-projection (focal F = 1000 px for the 256 px crop, depth factor Δ, 2.2 m
in every released configuration): with camera depth z_c = F / (256 · s) and
the box-centre offset o = ((box centre − img_center) / (box w, h)), zero
without a box,

    z_j = d_j · Δ + z_c,      (x_j, y_j) = (uv_j + o) · 256 / F · z_j

(the ResNet model, given no box, subtracts its (tx, ty) from (x, y)).  The
root is cam_root; joints are re-rooted at it.

Scale update (HRNet only).  With the initial s, back-project as above, run
the public *naive* IK (its root rotation aligns the spine first, then the
hips' centre about it, with its ε: :func:`public_naive_ik`), pose the rest
skeleton and place its 24 joints J_i at the
root (x_0, y_0, d_0·Δ) (no z_c: the fit supplies it).  A pinhole at depth
offset t = 256·z_c/F predicts X_i = u'_i · (t + 256/F · Z_i) with u' = u + o;
minimising Σ_i w_i² [(X_i − u'_i(t + k Z_i))² + (Y_i − v'_i(t + k Z_i))²]
over t, k = 256/F, gives

    t = Σ w_i² (u'_i (X_i − k u'_i Z_i) + v'_i (Y_i − k v'_i Z_i)) / Σ w_i² (u'_i² + v'_i²)

and s = 1/t, with w_i = max(0, 1 − 10 σ_i).  A sample whose weights are all
zero keeps its s (the public code solves the whole batch with one matrix
inverse and, if any sample is singular, keeps every sample's initial s).

Flip test.  The mirrored image goes through the network too.  Its heatmap
logits are mirrored along W, the left/right joints swapped and the columns
shifted right by one (column 0 kept), into a new tensor (the public code
shifts in place on overlapping slices, which on CPU corrupts whole columns).
The two probability volumes are averaged; the coordinate is linear in the
volume, so this is the mean of the two soft-argmax coordinates of those
logits.  The twist (sin negated, pairs swapped), shape and sigma (pairs
swapped) are averaged with the mirrored ones; the ResNet camera is averaged
with tx negated, the HRNet scale by the harmonic mean (as published).
"""
from __future__ import annotations

import torch
from torch import nn

from ..body import BodyModel
from ..camera import CROP_REF, FOCAL
from ..data.transforms import FLIP_PERM_29, TWIST_FLIP_ROWS
from ..ik import forward_kinematics, hybrik_ik
from ..reference.kinematics import rodrigues
from ..skeleton import (IK_CHILD, NUM_BETAS, NUM_JOINTS, NUM_SMPL_JOINTS, NUM_TWIST, PARENTS_29,
                        PELVIS_CHILDREN)
from ..soft_argmax import soft_argmax3d
from .backbone import build_backbone
from .common import MODEL_BACKENDS, check_images
from .hrnet import FEATURE_CHANNELS, build_hrnet
from .output import ModelOutput

INPUT_SIZE = 256
HEATMAP_SIZE = (64, 64, 64)
#: every released configuration's BBOX_3D_SHAPE (mm); the checkpoints don't record it
DEPTH_FACTOR = 2.2
#: the scale update's per-joint weight is max(0, 1 - SIGMA_WEIGHT · sigma)
SIGMA_WEIGHT = 10.0
NUM_H36M = 17


# ---------------------------------------------------------------- flip helpers

def flip_heatmap_logits(logits: torch.Tensor) -> torch.Tensor:
    """Logits (B, 29, D, H, W) of a mirrored image -> those of the original:
    mirrored along W, left/right swapped, columns shifted right by one
    (column 0 kept).  Returns a new tensor."""
    mirrored = logits.flip(-1)[:, torch.as_tensor(FLIP_PERM_29, device=logits.device)]
    return torch.cat([mirrored[..., :1], mirrored[..., :-1]], dim=-1)


def flip_twist(twist: torch.Tensor) -> torch.Tensor:
    """Twist (B, 23, 2) of a mirrored image -> the original's: rows of the mirror joints, sin negated."""
    rows = torch.as_tensor(TWIST_FLIP_ROWS, device=twist.device)
    return twist[:, rows] * twist.new_tensor([1.0, -1.0])


def flip_per_joint(x: torch.Tensor) -> torch.Tensor:
    """Per-joint values (B, 29, ...) of a mirrored image -> left/right swapped."""
    return x[:, torch.as_tensor(FLIP_PERM_29, device=x.device)]


# ---------------------------------------------------------------- geometry

def box_offset(bboxes: torch.Tensor, img_center: torch.Tensor) -> torch.Tensor:
    """bboxes (B, 4) xyxy, img_center (B, 2) pixels -> offset (B, 2) of the
    box centre from the image centre, in box widths and heights."""
    centre = (bboxes[:, :2] + bboxes[:, 2:]) / 2
    return (centre - img_center) / (bboxes[:, 2:] - bboxes[:, :2])


def unproject(uvd: torch.Tensor, cam_depth: torch.Tensor, offset: torch.Tensor | None,
              depth_factor: float) -> torch.Tensor:
    """uvd (B, J, 3), camera depth (B,) metres, offset (B, 2) or None ->
    camera-frame points (B, J, 3) in metres: z = d·Δ + z_c, xy = (uv + o)·256/F·z."""
    z = uvd[..., 2:] * depth_factor + cam_depth[:, None, None]          # (B, J, 1)
    uv = uvd[..., :2] if offset is None else uvd[..., :2] + offset[:, None]
    return torch.cat([uv * (CROP_REF / FOCAL) * z, z], dim=-1)


def camera_depth(scale: torch.Tensor) -> torch.Tensor:
    """Camera scale s (B,) -> root depth F / (256 s) (B,), metres."""
    return FOCAL / (CROP_REF * scale)


def refine_scale(scale: torch.Tensor, uv: torch.Tensor, joints: torch.Tensor,
                 root: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The weighted least-squares scale update (see the module docstring).

    scale (B,); uv (B, 24, 2) with the box offset added; joints (B, 24, 3)
    the naive-IK skeleton, root-relative metres; root (B, 3) = (x_0, y_0,
    d_0·Δ); weight (B, 24) -> the refined scale (B,).  Where Σ w²(u² + v²)
    is zero the input scale is kept.
    """
    k = CROP_REF / FOCAL
    points = joints + root[:, None]                                     # (B, 24, 3)
    residual = points[..., :2] - k * uv * points[..., 2:]               # (B, 24, 2)
    w2 = weight * weight
    num = (w2[..., None] * uv * residual).sum(dim=(1, 2))
    den = (w2[..., None] * uv * uv).sum(dim=(1, 2))
    solvable = den > 0
    t = num / torch.where(solvable, den, torch.ones_like(den))
    return torch.where(solvable, 1.0 / t, scale)


#: the constant the public naive IK adds to norms and to |t|·|p| (m, m²)
PUBLIC_EPS = 1e-8


def public_swing(t: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """The public naive IK's swing taking t to p: t, p (B, 3) -> (B, 3, 3).

    Rodrigues' formula with axis (t × p) / (|t × p| + ε), cos θ =
    t·p / (|t||p| + ε), sin θ = |t × p| / (|t||p| + ε), ε = PUBLIC_EPS.  Not
    the exact minimal rotation of
    :func:`~hybrik_fast.reference.kinematics.swing_rotation`: where |t||p|
    is small the ε shrinks sin θ and cos θ and the matrix is no longer a
    rotation.  t × p = 0 gives I + (1 − cos θ)·0 = I.
    """
    m = torch.linalg.vector_norm(t, dim=-1) * torch.linalg.vector_norm(p, dim=-1)   # (B,)
    v = torch.linalg.cross(t, p, dim=-1)                                           # (B, 3)
    v_norm = torch.linalg.vector_norm(v, dim=-1)                                   # (B,)
    return rodrigues(v / (v_norm + PUBLIC_EPS)[..., None], (t * p).sum(-1) / (m + PUBLIC_EPS),
                      v_norm / (m + PUBLIC_EPS))


def spine_first_pelvis(joints: torch.Tensor, rest: torch.Tensor) -> torch.Tensor:
    """The root matrix (B, 3, 3) of the public naive IK, for joints and rest (B, 29, 3).

    R_s is the swing taking the rest spine bone t_3 = T_3 − T_0 to the
    target p_3 = P_3 − P_0.  With ŝ = p_3 / (|p_3| + ε) and ⊥ the projection
    onto the plane normal to ŝ, R_c is the swing taking ⊥(R_s·mean(t_1, t_2))
    to ⊥(mean(p_1, p_2)) (the hips' centre); R = R_c·R_s, both swings
    :func:`public_swing`.  The projected hips' centre is often a few mm long
    (|t||p| ~ 1e-5 m²), where the ε moves R by ~1e-3 off a rotation.
    """
    rel, rel_rest = joints - joints[:, :1], rest - rest[:, :1]
    r_spine = public_swing(rel_rest[:, 3], rel[:, 3])                         # (B, 3, 3)
    s = rel[:, 3] / (torch.linalg.vector_norm(rel[:, 3], dim=-1, keepdim=True) + PUBLIC_EPS)
    hips = list(PELVIS_CHILDREN[1:])

    def perp(v):
        return v - (v * s).sum(-1, keepdim=True) * s

    centre_rest = (r_spine @ rel_rest[:, hips].mean(1)[..., None])[..., 0]
    return public_swing(perp(centre_rest), perp(rel[:, hips].mean(1))) @ r_spine


def public_naive_ik(joints: torch.Tensor, twist: torch.Tensor, rest: torch.Tensor) -> torch.Tensor:
    """The public naive IK, which the published HRNet's camera fit runs, with its
    numerics: joints (B, 29, 3), twist (B, 23, 2), rest (B, 29, 3) -> local
    matrices (B, 24, 3, 3).

    Root: :func:`spine_first_pelvis`.  Joint i = 1..23 in tree order, with
    child c = IK_CHILD[i], parent chain matrix C_p: the swing
    :func:`public_swing` from t = T_c − T_i to C_pᵀ (P_c − P_i), after the
    twist about t / (|t| + ε) by φ_i / (|φ_i| + ε); C_i = C_p·local_i.  This
    is :func:`hybrik_fast.hybrik_ik`'s naive mode except that the root and
    the swings keep the published ε, so the root is not quite a rotation and
    its children are aimed through C_pᵀ rather than C_p⁻¹.  The camera fit is
    sensitive to that (its scale moved by ~1e-3 relative), so the published
    numerics are kept here; the model's outputs use the exact IK.
    """
    rest_bone = rest - rest[:, list(PARENTS_29)]                                 # (B, 29, 3)
    cs = twist / (torch.linalg.vector_norm(twist, dim=-1, keepdim=True) + PUBLIC_EPS)
    chain = [spine_first_pelvis(joints, rest)] + [None] * (NUM_SMPL_JOINTS - 1)
    local = [chain[0]] + [None] * (NUM_SMPL_JOINTS - 1)
    for i in range(1, NUM_SMPL_JOINTS):                   # parents come first in SMPL's order
        c, parent = IK_CHILD[i], PARENTS_29[i]
        t = rest_bone[:, c]                                                     # (B, 3)
        target = (chain[parent].transpose(1, 2) @ (joints[:, c] - joints[:, i])[..., None])[..., 0]
        axis = t / (torch.linalg.vector_norm(t, dim=-1, keepdim=True) + PUBLIC_EPS)
        spin = rodrigues(axis, cs[:, i - 1, 0], cs[:, i - 1, 1])
        local[i] = public_swing(t, target) @ spin
        chain[i] = chain[parent] @ local[i]
    return torch.stack(local, dim=1)


# ---------------------------------------------------------------- the models

class PublicHybrIK(nn.Module):
    """What both published networks share: inputs, flip test, back-projection,
    IK and mesh.  Subclasses define ``features`` and ``regress``."""

    #: entries of ``init_cam``
    camera_size: int = 3

    def __init__(self, body: BodyModel, h36m_regressor: torch.Tensor | None = None,
                 depth_factor: float = DEPTH_FACTOR, backend: str = "auto"):
        super().__init__()
        if backend not in MODEL_BACKENDS:
            raise ValueError(f"unknown model backend {backend!r}; valid choices: "
                             f"{', '.join(MODEL_BACKENDS)}")
        if not float(depth_factor) > 0:
            raise ValueError(f"depth_factor must be a positive length in metres, got {depth_factor!r}")
        self.backend = backend
        self.depth_factor = float(depth_factor)
        self.smpl = body
        V = body.num_vertices
        if h36m_regressor is None:
            h36m_regressor = torch.zeros(NUM_H36M, V)
        if tuple(h36m_regressor.shape) != (NUM_H36M, V):
            raise ValueError(f"the Human3.6M regressor must have shape ({NUM_H36M}, {V}) for "
                             f"this body (V = {V}), got {tuple(h36m_regressor.shape)}")
        self.register_buffer("J_regressor_h36m", torch.as_tensor(h36m_regressor, dtype=torch.float32))
        self.register_buffer("init_shape", torch.zeros(NUM_BETAS))
        self.register_buffer("init_cam", torch.tensor((0.9, 0.0, 0.0)[:self.camera_size]))

    def _make_regressors(self, width: int) -> None:
        """The linear heads ``decshape``, ``decphi``, ``deccam``, ``decsigma`` on a width-C feature."""
        self.decshape = nn.Linear(width, NUM_BETAS)
        self.decphi = nn.Linear(width, NUM_TWIST * 2)
        self.deccam = nn.Linear(width, self.camera_size)
        self.decsigma = nn.Linear(width, NUM_JOINTS)

    def regress(self, x: torch.Tensor):
        """feature (B, C) -> betas (B, 10), twist (B, 23, 2), camera (B, camera_size), sigma (B, 29)."""
        betas = self.decshape(x) + self.init_shape
        twist = self.decphi(x).reshape(x.shape[0], NUM_TWIST, 2)
        camera = self.deccam(x) + self.init_cam
        sigma = torch.sigmoid(self.decsigma(x))
        return betas, twist, camera, sigma

    # ------------------------------------------------------------ subclass parts
    def features(self, images: torch.Tensor):
        """images (B, 3, 256, 256) -> (logits (B, 29, D, H, W), feature (B, C))."""
        raise NotImplementedError

    def average_camera(self, camera: torch.Tensor, flipped: torch.Tensor) -> torch.Tensor:
        """camera (B, c) and that of the mirrored image -> the flip-test camera (B, c)."""
        raise NotImplementedError

    def root_shift(self, camera: torch.Tensor, has_box: bool) -> torch.Tensor | None:
        """(B, 2) subtracted from the back-projected (x, y), or None."""
        return None

    def update_scale(self, scale, uvd, twist, betas, sigma, offset) -> torch.Tensor:
        """The camera scale (B,) used for back-projection (HRNet refines it)."""
        return scale

    # ------------------------------------------------------------ inputs
    def check_inputs(self, images, bboxes, img_center) -> None:
        """TypeError / ValueError naming the expected shapes."""
        check_images(images, INPUT_SIZE)
        if (bboxes is None) != (img_center is None):
            raise ValueError("pass bboxes (B, 4) and img_center (B, 2) together, or neither")
        B = images.shape[0]
        for name, x, n in (("bboxes", bboxes, 4), ("img_center", img_center, 2)):
            if x is None:
                continue
            if not isinstance(x, torch.Tensor) or not x.is_floating_point():
                raise TypeError(f"{name} must be a floating torch.Tensor of shape ({B}, {n}), "
                                f"got {getattr(x, 'dtype', type(x).__name__)}")
            if tuple(x.shape) != (B, n):
                raise ValueError(f"{name} must have shape ({B}, {n}) for {B} images, got {tuple(x.shape)}")

    # ------------------------------------------------------------ forward
    def heads(self, images: torch.Tensor) -> dict:
        """images -> uvd (B, 29, 3), betas, twist, camera, sigma of one pass."""
        logits, feature = self.features(images)
        betas, twist, camera, sigma = self.regress(feature)
        return {"logits": logits, "betas": betas, "twist": twist, "camera": camera, "sigma": sigma}

    def decode_crop(self, images: torch.Tensor, bboxes: torch.Tensor | None = None,
                    img_center: torch.Tensor | None = None, flip_test: bool = False) -> dict:
        """The forward up to the back-projected joints, before the IK and the mesh:
        images (B, 3, 256, 256), bboxes (B, 4) | None, img_center (B, 2) | None ->
        uvd (B, 29, 3), twist (B, 23, 2), betas (B, 10), camera (B, c), sigma (B, 29)
        and points (B, 29, 3), the joints in the camera frame, metres."""
        self.check_inputs(images, bboxes, img_center)
        out = self.heads(images)
        uvd = soft_argmax3d(out["logits"], backend=self.backend)                # (B, 29, 3)
        betas, twist, camera, sigma = out["betas"], out["twist"], out["camera"], out["sigma"]
        if flip_test:
            mirror = self.heads(images.flip(-1))
            uvd_m = soft_argmax3d(flip_heatmap_logits(mirror["logits"]), backend=self.backend)
            uvd = (uvd + uvd_m) / 2
            betas = (betas + mirror["betas"]) / 2
            twist = (twist + flip_twist(mirror["twist"])) / 2
            sigma = (sigma + flip_per_joint(mirror["sigma"])) / 2
            camera = self.average_camera(camera, mirror["camera"])
        offset = None if bboxes is None else box_offset(bboxes, img_center)     # (B, 2)
        scale = self.update_scale(camera[:, 0], uvd, twist, betas, sigma, offset)
        points = unproject(uvd, camera_depth(scale), offset, self.depth_factor)  # (B, 29, 3)
        shift = self.root_shift(camera, bboxes is not None)
        if shift is not None:
            points = torch.cat([points[..., :2] - shift[:, None], points[..., 2:]], dim=-1)
        return {"uvd": uvd, "twist": twist, "betas": betas, "camera": camera, "sigma": sigma,
                "points": points}

    def forward(self, images: torch.Tensor, bboxes: torch.Tensor | None = None,
                img_center: torch.Tensor | None = None, flip_test: bool = False) -> ModelOutput:
        """images (B, 3, 256, 256), bboxes (B, 4) | None, img_center (B, 2) | None
        -> :class:`ModelOutput` (see the module docstring)."""
        d = self.decode_crop(images, bboxes, img_center, flip_test)
        points, twist, betas = d["points"], d["twist"], d["betas"]
        cam_root = points[:, 0]                                                 # (B, 3)
        joints = points - points[:, :1]
        rest = self.smpl.rest_joints(betas)                                     # (B, 29, 3)
        rotmats = hybrik_ik(joints, twist, rest, backend=self.backend)          # (B, 24, 3, 3)
        vertices, _ = self.smpl(rotmats, betas)                                 # model frame
        joints_h36m = torch.matmul(self.J_regressor_h36m.to(vertices.dtype), vertices)  # (B, 17, 3)
        root = joints_h36m[:, :1]
        return ModelOutput(uvd=d["uvd"], joints=joints, twist=twist, betas=betas, rotmats=rotmats,
                           vertices=vertices - root, joints_h36m=joints_h36m - root,
                           cam_root=cam_root, transl=cam_root, camera=d["camera"], sigma=d["sigma"],
                           scores=1 - d["sigma"])


class HybrIKResNetCam(PublicHybrIK):
    """The public ``Simple3DPoseBaseSMPLCam``: ResNet C5 -> 3 deconvolutions
    -> 1×1 conv to 29·64 heatmap channels; avgpool -> fc1 -> fc2 (1024) ->
    shape, twist, 3-value camera (s, tx, ty) and sigma."""

    camera_size = 3

    def __init__(self, body: BodyModel, h36m_regressor=None, depth_factor: float = DEPTH_FACTOR,
                 backend: str = "auto", backbone: str = "resnet34", deconv_channels: int = 256):
        super().__init__(body, h36m_regressor, depth_factor, backend)
        self.preact = build_backbone(backbone)
        cin, ch = self.preact.out_channels, deconv_channels
        layers = []
        for i in range(3):
            layers += [nn.ConvTranspose2d(cin if i == 0 else ch, ch, 4, stride=2, padding=1, bias=False),
                       nn.BatchNorm2d(ch), nn.ReLU(inplace=True)]
        self.deconv_layers = nn.Sequential(*layers)
        self.final_layer = nn.Conv2d(ch, NUM_JOINTS * HEATMAP_SIZE[0], kernel_size=1)
        self.fc1 = nn.Linear(cin, 1024)
        self.fc2 = nn.Linear(1024, 1024)
        self._make_regressors(1024)

    def features(self, images):
        c5 = self.preact(images)                                              # (B, C, 8, 8)
        logits = self.final_layer(self.deconv_layers(c5))                      # (B, 29·D, 64, 64)
        x = self.fc2(self.fc1(c5.mean(dim=(2, 3))))                            # (B, 1024)
        return logits.reshape(logits.shape[0], NUM_JOINTS, *HEATMAP_SIZE), x

    def average_camera(self, camera, flipped):
        """(s, tx, ty): the mirrored tx is negated, then the two are averaged."""
        return (camera + flipped * flipped.new_tensor([1.0, -1.0, 1.0])) / 2

    def root_shift(self, camera, has_box):
        """Without a box the public model subtracts (tx, ty) from the metric (x, y)."""
        return None if has_box else camera[:, 1:]


class HybrIKHRNetCam(PublicHybrIK):
    """The public ``HRNetSMPLCam``: HRNet heatmap (29·64 channels at 64×64)
    and 2048-d feature -> shape, twist, 1-value camera scale and sigma;
    the scale is refined by the least-squares update."""

    camera_size = 1

    def __init__(self, body: BodyModel, h36m_regressor=None, depth_factor: float = DEPTH_FACTOR,
                 backend: str = "auto", backbone: str = "hrnet48"):
        super().__init__(body, h36m_regressor, depth_factor, backend)
        self.preact = build_hrnet(backbone, NUM_JOINTS * HEATMAP_SIZE[0])
        self._make_regressors(FEATURE_CHANNELS)

    def features(self, images):
        logits, feature = self.preact(images)                                  # (B, 29·D, 64, 64), (B, 2048)
        return logits.reshape(logits.shape[0], NUM_JOINTS, *HEATMAP_SIZE), feature

    def average_camera(self, camera, flipped):
        """The harmonic mean of the two scales, as published."""
        return 2 / (1 / camera + 1 / flipped)

    def update_scale(self, scale, uvd, twist, betas, sigma, offset):
        """Naive IK at the initial scale, then :func:`refine_scale`."""
        points = unproject(uvd, camera_depth(scale), offset, self.depth_factor)   # (B, 29, 3)
        root = torch.cat([points[:, 0, :2], uvd[:, 0, 2:] * self.depth_factor], dim=-1)  # (B, 3)
        rest = self.smpl.rest_joints(betas)
        joints = points - points[:, :1]
        rotmats = public_naive_ik(joints, twist, rest)                                 # (B, 24, 3, 3)
        skeleton = forward_kinematics(rotmats, rest)[:, :NUM_SMPL_JOINTS]          # (B, 24, 3)
        uv = uvd[:, :NUM_SMPL_JOINTS, :2]
        if offset is not None:
            uv = uv + offset[:, None]
        weight = (1 - SIGMA_WEIGHT * sigma[:, :NUM_SMPL_JOINTS]).clamp_min(0)
        return refine_scale(scale, uv, skeleton, root, weight)
