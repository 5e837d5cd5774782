"""The paper's IK checks (issue: foundation, point 7) on the synthetic body.

The tables are printed into the test output.
"""
import pytest
import torch

from hybrik_fast import BodyModel, paper


@pytest.fixture(scope="module")
def body():
    return BodyModel.synthetic(seed=0)


def _show(capsys, title, rows):
    with capsys.disabled():
        print("\n" + paper.format_table(title, rows))


@pytest.mark.parametrize("backend", ["reference", "auto"])
def test_round_trip(body, capsys, backend):
    rows = paper.round_trip(body, B=64, backend=backend)
    _show(capsys, f"round trip ({backend})", rows)
    assert {r["mode"] for r in rows} == {"naive", "adaptive"}
    for r in rows:
        assert r["rot_err_rad"] < 1e-4, r
        assert r["joint_err_mm"] < 0.01, r


def test_twist_ablation_table1_shape(body, capsys):
    rows = {r["twist"]: r for r in paper.twist_ablation(body, B=64)}
    _show(capsys, "Table 1 shape", list(rows.values()))
    assert rows["random"]["joints24_mm"] < 0.1
    assert rows["true"]["joints24_mm"] < 0.1
    assert rows["random"]["vertices_mm"] > 20 * max(rows["true"]["vertices_mm"], 0.1)
    assert rows["true"]["vertices_mm"] < rows["zero"]["vertices_mm"] < rows["random"]["vertices_mm"]


@pytest.mark.parametrize("backend", ["reference", "auto"])
def test_jitter_table3_shape(body, capsys, backend):
    rows = {r["method"]: r for r in paper.jitter_ablation(body, B=256, backend=backend)}
    _show(capsys, f"Table 3 shape ({backend})", list(rows.values()))
    assert rows["naive"]["0mm"] < 1e-6 and rows["adaptive"]["0mm"] < 1e-6
    for level in ("10mm", "20mm", "30mm"):
        assert rows["adaptive"][level] < 0.75 * rows["naive"][level], (level, rows)


def test_positional_twist_joints_are_the_spine():
    assert paper.POSITIONAL_TWIST == (3, 6, 9)


def test_rotation_angle_by_hand():
    from hybrik_fast.poses import axis_angle_to_matrix
    aa = torch.tensor([[0.0, 0.0, 0.3], [1e-9, 0.0, 0.0], [0.0, 2.5, 0.0]], dtype=torch.float64)
    R = axis_angle_to_matrix(aa)
    I = torch.eye(3, dtype=torch.float64).expand_as(R)
    assert torch.allclose(paper.rotation_angle(R, I), torch.tensor([0.3, 1e-9, 2.5], dtype=torch.float64),
                          rtol=1e-9, atol=0)
