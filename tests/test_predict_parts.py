"""hybrik_fast.predict parts: detectors, box checks, tracking, smoothing, the rasteriser, axis-angle."""
import math

import cv2
import numpy as np
import pytest
import torch

from hybrik_fast import BodyModel
from hybrik_fast.poses import axis_angle_to_matrix, matrix_to_axis_angle
from hybrik_fast.predict.detect import ONNXDetector, check_boxes, make_detector, whole_image
from hybrik_fast.predict.render import overlay, rasterize
from hybrik_fast.predict.track import IoUTracker, OneEuroFilter, TrackSmoother, iou


# ---------------------------------------------------------------- detectors

def _tiny_onnx(path):
    """(1, 3, h, w) -> (1, 2, 5): two fixed boxes (input pixels), scores = mean(image) · (1, 0.2)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper
    boxes = helper.make_tensor("boxes", TensorProto.FLOAT, [1, 2, 4], [4, 8, 20, 30, 0, 0, 10, 10])
    gain = helper.make_tensor("gain", TensorProto.FLOAT, [1, 2, 1], [1.0, 0.2])
    nodes = [helper.make_node("ReduceMean", ["image"], ["mean"], axes=[1, 2, 3], keepdims=1),
             helper.make_node("Reshape", ["mean", "one"], ["mean3"]),
             helper.make_node("Mul", ["mean3", "gain"], ["scores"]),
             helper.make_node("Concat", ["boxes", "scores"], ["out"], axis=2)]
    one = helper.make_tensor("one", TensorProto.INT64, [3], [1, 1, 1])
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("image", TensorProto.FLOAT,
                                                                              [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 2, 5])],
                              initializer=[boxes, gain, one])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def test_onnx_detector(tmp_path):
    path = tmp_path / "tiny.onnx"
    _tiny_onnx(path)
    det = make_detector(f"onnx:{path}")
    assert isinstance(det, ONNXDetector)
    det.input_size = 32
    white = np.full((64, 128, 3), 255, np.uint8)
    boxes, scores = det(white)                            # box 2 scores 0.2 < 0.5: dropped
    np.testing.assert_allclose(boxes, [[4 * 4, 8 * 2, 20 * 4, 30 * 2]], atol=1e-4)   # back to image pixels
    np.testing.assert_allclose(scores, [1.0], atol=1e-5)
    boxes, scores = det(np.zeros((64, 128, 3), np.uint8))     # black: score 0, nobody
    assert boxes.shape == (0, 4) and scores.shape == (0,)


def test_onnx_detector_bad_file(tmp_path):
    (tmp_path / "x.onnx").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="x.onnx"):
        make_detector(f"onnx:{tmp_path / 'x.onnx'}")


def test_whole_image_and_unknown_detector():
    boxes, scores = whole_image(np.zeros((30, 40, 3), np.uint8))
    np.testing.assert_array_equal(boxes, [[0, 0, 40, 30]])
    with pytest.raises(ValueError, match="onnx:PATH"):
        make_detector("yolo")


@pytest.mark.skipif(not hasattr(cv2, "HOGDescriptor"), reason="OpenCV 5 has no HOGDescriptor")
def test_hog_finds_nobody_in_a_flat_image():
    boxes, scores = make_detector("hog")(np.full((256, 192, 3), 128, np.uint8))
    assert boxes.shape == (0, 4) and scores.shape == (0,)


def test_check_boxes_clips_rejects_and_names_the_entry():
    out = check_boxes([[-10, 5, 50, 500], [10, 10, 20, 20]], 40, 100, "f.json entry 'a.jpg'")
    np.testing.assert_array_equal(out, [[0, 5, 40, 100], [10, 10, 20, 20]])
    with pytest.warns(RuntimeWarning, match="f.json entry 'a.jpg': box 0"):
        assert check_boxes([[50, 50, 60, 60]], 40, 40, "f.json entry 'a.jpg'").shape == (0, 4)
    for bad in ([[1, 2, 3]], [[5, 5, 1, 1]], [["a", 1, 2, 3]], [[0, 0, float("nan"), 1]]):
        with pytest.raises(ValueError, match="f.json entry 'a.jpg': box 0"):
            check_boxes(bad, 40, 40, "f.json entry 'a.jpg'")


# ---------------------------------------------------------------- tracking and smoothing

def test_iou_hand_values():
    a = np.array([[0.0, 0, 2, 2]])
    b = np.array([[1.0, 1, 3, 3], [2.0, 2, 4, 4], [0.0, 0, 2, 2]])
    np.testing.assert_allclose(iou(a, b), [[1 / 7, 0, 1]])


def test_tracker_keeps_identities_when_order_changes():
    t = IoUTracker(max_age=1)
    left, right = np.array([0.0, 0, 10, 20]), np.array([50.0, 0, 60, 20])
    assert t.update(np.stack([left, right])).tolist() == [0, 1]
    step = np.array([2.0, 0, 2, 0])
    assert t.update(np.stack([right - step, left + step])).tolist() == [1, 0]   # listed the other way
    assert t.update(np.stack([left + 2 * step])).tolist() == [0]               # 1 unseen once: kept
    assert t.update(np.zeros((0, 4))).tolist() == []
    assert t.update(np.stack([right, left + 2 * step])).tolist() == [2, 0]     # 1 expired: a new id


def test_one_euro_hand_values():
    f = OneEuroFilter(rate=30.0, min_cutoff=1.0, beta=0.0)
    assert f(torch.tensor([1.0])).item() == 1.0
    a = 1 / (1 + 30 / (2 * math.pi))
    assert f(torch.tensor([2.0])).item() == pytest.approx(1 + a, rel=1e-6)
    g = OneEuroFilter(rate=30.0, min_cutoff=1.0, beta=0.0)
    x = torch.full((5,), 3.0)
    for _ in range(4):
        torch.testing.assert_close(g(x), x)                 # a constant passes unchanged


def test_smoother_is_continuous_across_the_half_turn():
    """Rotations about z alternating ±179° (one apart through 180°) smooth to ~180°, not to 0°."""
    s = TrackSmoother(rate=30.0)
    root, betas = torch.zeros(3), torch.zeros(10)
    for i in range(10):
        angle = math.radians(179.0 if i % 2 else -179.0)
        rot = axis_angle_to_matrix(torch.tensor([0.0, 0.0, angle])).expand(24, 3, 3)
        out, _, _ = s(7, rot, root, betas)
    turned = matrix_to_axis_angle(out[0]).norm().item()
    assert math.degrees(turned) > 175
    torch.testing.assert_close(out @ out.transpose(-1, -2), torch.eye(3).expand(24, 3, 3), atol=1e-5, rtol=0)


def test_matrix_to_axis_angle_against_scipy():
    from scipy.spatial.transform import Rotation
    g = torch.Generator().manual_seed(2)
    axis = torch.nn.functional.normalize(torch.randn(64, 3, generator=g, dtype=torch.float64), dim=-1)
    angle = torch.cat([torch.rand(60, generator=g, dtype=torch.float64) * math.pi,
                       torch.tensor([0.0, 1e-9, math.pi - 1e-9, math.pi], dtype=torch.float64)])
    R = axis_angle_to_matrix(axis * angle[:, None])
    ref = torch.from_numpy(Rotation.from_matrix(R.numpy()).as_rotvec())
    got = matrix_to_axis_angle(R)
    # at θ = π, aa and −aa are the same rotation
    near_pi = angle > math.pi - 1e-6
    torch.testing.assert_close(got[~near_pi], ref[~near_pi], atol=1e-10, rtol=0)
    torch.testing.assert_close(axis_angle_to_matrix(got), R, atol=1e-10, rtol=0)


# ---------------------------------------------------------------- the rasteriser

def _quad(x0, y0, x1, y1, z):
    v = torch.tensor([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]], dtype=torch.float32)
    # seen from the camera at the origin, the outward normal points at -z: winding (0, 2, 1), (0, 3, 2)
    return v, torch.tensor([[0, 2, 1], [0, 3, 2]])


def test_rasterize_square_coverage_and_depth():
    v, f = _quad(-0.5, -0.25, 0.5, 0.25, 2.0)              # f = 100: x in [-25, 25] px about c
    face, depth = rasterize(v, f, 100.0, (40.0, 30.0), (60, 80))
    hit = face >= 0
    # pixel centres (j, i) with 15 <= j <= 65 and 17.5 <= i <= 42.5
    expected = torch.zeros(60, 80, dtype=torch.bool)
    expected[18:43, 15:66] = True
    assert torch.equal(hit, expected)
    torch.testing.assert_close(depth[hit], torch.full((int(hit.sum()),), 2.0))
    assert torch.isinf(depth[~hit]).all()
    back = f[:, [0, 2, 1]]                                  # facing away: culled
    assert (rasterize(v, back, 100.0, (40.0, 30.0), (60, 80))[0] < 0).all()


def test_rasterize_nearer_face_wins_in_any_order():
    near, fn = _quad(-0.2, -0.2, 0.2, 0.2, 1.0)
    far, ff = _quad(-0.5, -0.5, 0.5, 0.5, 2.0)
    for order in (0, 1):
        parts = [(near, fn), (far, ff)] if order == 0 else [(far, ff), (near, fn)]
        v = torch.cat([parts[0][0], parts[1][0]])
        f = torch.cat([parts[0][1], parts[1][1] + 4])
        face, depth = rasterize(v, f, 100.0, (50.0, 50.0), (100, 100))
        near_ids = (0, 1) if order == 0 else (2, 3)
        assert int(face[50, 50]) in near_ids and depth[50, 50] == pytest.approx(1.0)
        assert int(face[50, 27]) not in near_ids and depth[50, 27] == pytest.approx(2.0)


def test_rasterize_matches_opencv_silhouette_of_the_body():
    """The body's silhouette against the painter's renderer of the data module (OpenCV fills)."""
    from hybrik_fast.camera import FOCAL_NORM
    from hybrik_fast.data.render import silhouette
    body = BodyModel.synthetic(dtype=torch.float64)
    aa = torch.zeros(1, 24, 3, dtype=torch.float64)
    aa[0, 0] = torch.tensor([math.pi, 0, 0])                # upright in the camera (y down)
    aa[0, 16, 2], aa[0, 18, 1] = -1.0, -1.2
    v, _ = body(axis_angle_to_matrix(aa), torch.zeros(1, 10, dtype=torch.float64))
    v = v[0] + torch.tensor([0.1, 0.2, 6.0], dtype=torch.float64)
    S = 256
    ref = silhouette(v.numpy(), body.faces.numpy(), S)
    # data.render: p = (FOCAL_NORM x / z + 0.5) S, i.e. focal FOCAL_NORM S, principal point S/2
    face, _ = rasterize(v, body.faces, FOCAL_NORM * S, (S / 2, S / 2), (S, S))
    ours = (face >= 0).numpy()
    inter, union = (ours & ref).sum(), (ours | ref).sum()
    print(f"silhouette IoU {inter / union:.4f} over {union} px")
    assert inter / union > 0.93
    # the fill rules differ (OpenCV also fills pixels the edges only touch): only along the outline
    grow = np.ones((3, 3), np.uint8)
    assert not (ours & ~cv2.dilate(ref.astype(np.uint8), grow).astype(bool)).any()
    assert not (ref & ~cv2.dilate(ours.astype(np.uint8), grow).astype(bool)).any()


def test_overlay_shapes_and_empty_scene():
    image = np.full((40, 60, 3), 7, np.uint8)
    out = overlay(image, np.zeros((0, 5, 3)), np.zeros((0, 3), np.int64), 50.0, (30, 20))
    assert out.shape == (40, 120, 3)
    np.testing.assert_array_equal(out[:, :60], image)
