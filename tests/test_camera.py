"""The crop camera's projection and back-projection, against hand-computed values."""
import torch

from hybrik_fast import camera


def test_project_by_hand():
    # root 4 m ahead, a joint 0.5 m right, 0.25 m down and 0.44 m further
    xyz = torch.tensor([[[0.0, 0.0, 4.0], [0.5, 0.25, 4.44]]], dtype=torch.float64)
    uvd = camera.project(xyz)
    f = 1000 / 256
    expect = torch.tensor([[[0.0, 0.0, 0.0], [f * 0.5 / 4.44, f * 0.25 / 4.44, 0.2]]], dtype=torch.float64)
    assert torch.allclose(uvd, expect, atol=1e-15)


def test_camera_parameters_round_trip():
    root = torch.tensor([[0.1, -0.2, 5.0]], dtype=torch.float64)
    cam = camera.camera_from_root(root)
    assert torch.allclose(cam, torch.tensor([[1000 / 256 / 5.0, 0.1, -0.2]], dtype=torch.float64))
    assert torch.allclose(camera.root_from_camera(cam), root)


def test_back_project_inverts_project():
    g = torch.Generator().manual_seed(0)
    xyz = torch.randn(4, 29, 3, generator=g, dtype=torch.float64) * 0.4
    root = torch.tensor([0.0, 0.0, 4.0], dtype=torch.float64) + 0.3 * torch.randn(4, 3, generator=g, dtype=torch.float64)
    cam_xyz = xyz - xyz[:, :1] + root[:, None]
    uvd = camera.project(cam_xyz)
    back = camera.back_project(uvd, camera.camera_from_root(root))
    assert torch.allclose(back, xyz - xyz[:, :1], atol=1e-12)
