"""The backend vocabulary (hybrik_fast._backend): one set of names from the ops
through the models to the training config, the alias "fused", and
HYBRIK_FAST_BACKEND, which never falls back in silence."""
import warnings

import pytest
import torch

import hybrik_fast
from hybrik_fast import _backend, _ext, reference
from hybrik_fast.models import build_model
from hybrik_fast.train.config import ConfigError, make_config
from hybrik_fast.benchmark import ik_sample

CPU = torch.device("cpu")
needs_ext = pytest.mark.skipif(_ext.C is None, reason="the C++ extension is not built")


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    """No HYBRIK_FAST_BACKEND, and every once-only warning not yet given."""
    monkeypatch.delenv(_backend.ENV_VAR, raising=False)
    monkeypatch.setattr(_backend, "_warned", set())


def pose(B=2):
    sample = ik_sample(B, seed=1)
    return sample.rotmats, sample.rest


def recorded(fn, times=2):
    """Run ``fn`` ``times`` times; return its last result and the RuntimeWarnings given."""
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        for _ in range(times):
            out = fn()
    return out, [str(x.message) for x in w if issubclass(x.category, RuntimeWarning)]


# ---------------------------------------------------------------- names

def test_fused_is_an_alias_of_auto():
    assert _backend.canonical("fused") == "auto"
    for op in _backend.OPS:
        assert _backend.resolve(op, "fused", CPU) == _backend.resolve(op, "auto", CPU)


def test_unknown_name_is_a_value_error_and_a_non_string_a_type_error():
    x = torch.zeros(1, 1, 2, 2, 2)
    with pytest.raises(ValueError, match=r"auto, reference, cpu, cuda, triton \(alias 'fused' = 'auto'\)"):
        hybrik_fast.soft_argmax3d(x, backend="gpu")
    with pytest.raises(TypeError, match="backend must be a str"):
        hybrik_fast.soft_argmax3d(x, backend=None)


def test_a_backend_the_op_lacks_is_a_value_error():
    rot, T = pose()
    with pytest.raises(ValueError, match=r"forward_kinematics has no backend 'cpu'; its backends are auto, reference"):
        hybrik_fast.forward_kinematics(rot, T, backend="cpu")
    with pytest.raises(ValueError, match="soft_argmax3d has no backend 'cuda'"):
        hybrik_fast.soft_argmax3d(torch.zeros(1, 1, 2, 2, 2), backend="cuda")


def test_a_backend_for_another_device_is_a_runtime_error():
    with pytest.raises(RuntimeError, match="backend 'cuda' needs CUDA tensors"):
        hybrik_fast.hybrik_ik(torch.zeros(1, 29, 3), torch.zeros(1, 23, 2), torch.zeros(1, 29, 3),
                              backend="cuda")


def test_models_and_config_take_the_names_both_ops_share():
    assert _backend.shared_backends(("soft_argmax3d", "hybrik_ik")) == ("auto", "reference", "cpu")
    assert make_config("tiny").backend == "auto"
    assert make_config("tiny", overrides={"backend": "fused"}).backend == "auto"   # old configs
    assert make_config("tiny", overrides={"backend": "cpu"}).backend == "cpu"
    with pytest.raises(ConfigError, match="backend"):
        make_config("tiny", overrides={"backend": "triton"})      # the IK has no triton backend
    model = build_model("hmr", "resnet18", image_size=64, backend="fused")
    assert model.backend == "auto"
    with pytest.raises(ValueError, match=r"backend must be one of auto, reference, cpu .*got 'cuda'"):
        build_model("hmr", "resnet18", image_size=64, backend="cuda")


# ---------------------------------------------------------------- HYBRIK_FAST_BACKEND

def test_env_overrides_auto_only(monkeypatch):
    monkeypatch.setenv(_backend.ENV_VAR, "reference")
    assert _backend.resolve("soft_argmax3d", "auto", CPU) == "reference"
    assert _backend.resolve("soft_argmax3d", "fused", CPU) == "reference"
    assert _backend.resolve("hybrik_ik", "cpu", CPU) == "cpu"           # a name given wins
    monkeypatch.setenv(_backend.ENV_VAR, "fused")
    assert _backend.resolve("hybrik_ik", "reference", CPU) == "reference"


def test_env_unknown_name_is_a_value_error(monkeypatch):
    monkeypatch.setenv(_backend.ENV_VAR, "gpu")
    with pytest.raises(ValueError, match="HYBRIK_FAST_BACKEND must be one of"):
        hybrik_fast.soft_argmax3d(torch.zeros(1, 1, 2, 2, 2))


def test_env_backend_the_op_lacks_warns_once_naming_the_backend_used(monkeypatch):
    """forward_kinematics has only the reference: HYBRIK_FAST_BACKEND=cpu runs it, and says so once."""
    monkeypatch.setenv(_backend.ENV_VAR, "cpu")
    rot, T = pose()
    out, msgs = recorded(lambda: hybrik_fast.forward_kinematics(rot, T))
    assert torch.equal(out, reference.forward_kinematics(rot, T))
    assert len(msgs) == 1, msgs
    assert "HYBRIK_FAST_BACKEND='cpu'" in msgs[0] and "forward_kinematics has no backend 'cpu'" in msgs[0]
    assert msgs[0].endswith("it runs backend 'reference'")


@needs_ext
def test_env_backend_for_another_device_warns_once_and_runs_auto(monkeypatch):
    """HYBRIK_FAST_BACKEND=cuda with CPU tensors: the IK runs 'cpu' (what "auto" picks), warned
    once; the soft-argmax, which has no 'cuda' backend, warns on its own."""
    monkeypatch.setenv(_backend.ENV_VAR, "cuda")
    P, tw, T = (torch.zeros(1, 29, 3), torch.zeros(1, 23, 2), torch.zeros(1, 29, 3))
    out, msgs = recorded(lambda: hybrik_fast.hybrik_ik(P, tw, T), times=3)
    assert torch.equal(out, hybrik_fast.hybrik_ik(P, tw, T, backend="cpu"))
    assert len(msgs) == 1 and "needs CUDA tensors" in msgs[0] and msgs[0].endswith("it runs backend 'cpu'")
    _, msgs = recorded(lambda: _backend.resolve("soft_argmax3d", "auto", CPU))
    assert len(msgs) == 1 and "soft_argmax3d has no backend 'cuda'" in msgs[0]


def test_auto_without_the_extension_warns_once(monkeypatch):
    """Where the fused kernel is not built, "auto" runs the reference and says why, once."""
    monkeypatch.setattr(_ext, "C", None)
    monkeypatch.setattr(_ext, "LOAD_ERROR", "not built (test)")
    x = torch.randn(1, 2, 3, 4, 5, generator=torch.Generator().manual_seed(0))
    out, msgs = recorded(lambda: hybrik_fast.soft_argmax3d(x))
    assert torch.equal(out, reference.soft_argmax3d(x))
    assert len(msgs) == 1 and "runs backend 'reference', not the fused 'cpu'" in msgs[0]
    assert "not built (test)" in msgs[0]
