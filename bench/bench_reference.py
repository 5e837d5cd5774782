"""Reference ops under pytest-benchmark (no timing asserts).

soft-argmax: B × 29 × 64³, B in {1, 8}, forward.
IK: B in {1, 64, 1024}, forward (no_grad) and forward + backward.
"""
import pytest
import torch

from hybrik_fast import reference
from hybrik_fast.benchmark import ik_inputs, soft_argmax_inputs


@pytest.mark.parametrize("B", [1, 8])
def test_soft_argmax_reference_fwd(benchmark, device, sync, B):
    (x,) = soft_argmax_inputs(B, 29, 64, 64, 64, device=device, requires_grad=False)  # (B, K, D, H, W)
    benchmark.group = f"soft_argmax3d B={B} 29x64x64x64 fwd"

    def fwd():
        out = reference.soft_argmax3d(x)  # (B, K, 3)
        sync()
        return out

    assert benchmark(fwd).shape == (B, 29, 3)


@pytest.mark.parametrize("B", [1, 64, 1024])
def test_ik_reference_fwd(benchmark, device, sync, B):
    joints, twist, rest = ik_inputs(B, device=device, requires_grad=False)
    benchmark.group = f"hybrik_ik B={B} fwd"

    def fwd():
        with torch.no_grad():
            out = reference.hybrik_ik(joints, twist, rest)  # (B, 24, 3, 3)
        sync()
        return out

    assert benchmark(fwd).shape == (B, 24, 3, 3)


@pytest.mark.parametrize("B", [1, 64, 1024])
def test_ik_reference_fwd_bwd(benchmark, device, sync, B):
    inputs = ik_inputs(B, device=device)  # joints, twist, rest_joints, requiring grad
    benchmark.group = f"hybrik_ik B={B} fwd+bwd"

    def fwd_bwd():
        out = reference.hybrik_ik(*inputs)
        grads = torch.autograd.grad(out, inputs, torch.ones_like(out))
        sync()
        return grads

    grads = benchmark(fwd_bwd)
    assert all(torch.isfinite(g).all() for g in grads)
