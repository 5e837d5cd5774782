"""Models: forward/backward of every variant, the IK round trip through the
model's own decoding path, torchvision-layout weights, and bad input.

Small sizes throughout (64-128 px, ResNet-18, heatmap depth 8, a one-block
transformer of width 32) so the file runs in well under a minute on CPU.
"""
import copy

import pytest
import torch

from hybrik_fast import BodyModel, forward_kinematics, soft_argmax3d, twist_angles
from hybrik_fast.camera import back_project, project, root_from_camera
from hybrik_fast.data.common import empty_labels
from hybrik_fast.losses import HybrIKLoss
from hybrik_fast.models import (FIELDS, ModelOutput, build_backbone, build_model,
                                load_pretrained_backbone, load_torchvision_weights,
                                matrix_to_rot6d, rot6d_to_matrix)
from hybrik_fast.benchmark import ik_sample

B = 2
TINY_TRANSFORMER = dict(d_model=32, num_heads=2, num_layers=1)
VARIANTS = {
    "heatmap": dict(head="heatmap", image_size=64, heatmap_size=(8, 16, 16)),
    # (H, W) != S/4: the logits are resampled to 8×12 before the soft-argmax
    "heatmap-resampled": dict(head="heatmap", image_size=64, heatmap_size=(4, 8, 12)),
    # C4, C3, C2 added into the deconvolution stages (the cpu-quick head)
    "heatmap-lateral": dict(head="heatmap", image_size=64, heatmap_size=(8, 16, 16), lateral=True,
                            deconv_channels=32),
    "transformer": dict(head="transformer", image_size=128, **TINY_TRANSFORMER),
    "hmr": dict(head="hmr", image_size=64),
}


@pytest.fixture(scope="module")
def body():
    return BodyModel.synthetic()


@pytest.fixture(autouse=True)
def seeded():
    """Every test builds its networks (random initial weights) from the same seed."""
    torch.manual_seed(0)


def images(size: int, dtype=torch.float32, seed: int = 0) -> torch.Tensor:
    return torch.randn(B, 3, size, size, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def full_batch(seed: int = 0) -> dict:
    """A batch with every label present (all weights 1), random but finite."""
    g = torch.Generator().manual_seed(seed)
    rot, _, _, rest = ik_sample(B, seed, torch.float32)
    one = empty_labels()
    batch = {k: v[None].repeat(B, *([1] * v.dim())) for k, v in one.items()}
    batch.update(joints_uvd=0.3 * torch.rand(B, 29, 3, generator=g) - 0.15,
                 joints_xyz=forward_kinematics(rot, rest), betas=torch.randn(B, 10, generator=g),
                 rotmats=rot, twist=twist_angles(rot, rest),
                 camera=torch.tensor([[0.9, 0.05, -0.02]]).repeat(B, 1))
    for key in ("joints_uvd_weight", "joints_xyz_weight", "twist_weight", "smpl_weight"):
        batch[key] = torch.ones_like(batch[key])
    return batch


def check_output(out, model, size_b=B) -> None:
    V = model.smpl.num_vertices
    shapes = {"uvd": (size_b, 29, 3), "joints": (size_b, 29, 3), "twist": (size_b, 23, 2),
              "betas": (size_b, 10), "rotmats": (size_b, 24, 3, 3), "vertices": (size_b, V, 3),
              "joints_from_mesh": (size_b, 29, 3), "camera": (size_b, 3)}
    assert isinstance(out, ModelOutput) and tuple(out) == FIELDS
    for name, shape in shapes.items():
        assert out[name] is getattr(out, name)
        assert tuple(out[name].shape) == shape, name
        assert torch.isfinite(out[name]).all(), name
    assert (out.camera[:, 0] > 0).all()
    # the root of the joints is at the origin; the twist is unit
    assert out.joints[:, 0].abs().max() < 1e-6
    assert torch.allclose(out.twist.norm(dim=-1), torch.ones_like(out.twist[..., 0]), atol=1e-5)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_forward_backward_finite_gradients(variant, body):
    cfg = dict(VARIANTS[variant])
    torch.manual_seed(0)
    model = build_model(backbone="resnet18", body=body, backend="reference", **cfg)
    model.train()
    out = model(images(cfg["image_size"]))
    check_output(out, model)
    # σ exists only in the heatmap head; the Laplace NLL is what trains decsigma
    has_sigma = out.sigma is not None
    if has_sigma:
        assert out.sigma.shape == (B, 29) and ((out.sigma > 0) & (out.sigma < 1)).all()
    total, terms = HybrIKLoss(laplace=has_sigma)(out, full_batch())
    total = total + out.vertices.abs().mean() + out.joints_from_mesh.abs().mean()
    assert torch.isfinite(total)
    total.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name} has a non-finite gradient"


def test_resnet50_forward(body):
    model = build_model("heatmap", "resnet50", image_size=64, heatmap_size=(8, 16, 16), body=body,
                        backend="reference").eval()
    assert model.preact.out_channels == 2048 and model.fc1.in_features == 2048
    with torch.no_grad():
        check_output(model(images(64)), model)


@pytest.mark.parametrize("head", ["heatmap", "transformer"])
def test_ik_reproduces_its_own_predicted_joints(head, body):
    """The model's decoding path (back-projection -> hybrik_ik -> body) inverts
    a consistent skeleton.

    We run the real network (float64, eval) to get its own β, camera and σ,
    then replace the uvd and twist by ones consistent with the rest skeleton
    of those β: joints P = FK(R*, rest(β)) for a random pose R*, uvd = their
    projection at the predicted camera, twist = twist_angles(R*, rest(β)).
    ``model.decode`` (exactly what ``forward`` runs after ``predict``) must then
    give joints == P, rotmats == R*, and a body whose posed joints are P.
    """
    cfg = dict(VARIANTS[head])
    model = build_model(backbone="resnet18", body=copy.deepcopy(body), backend="reference",
                        **cfg).double().eval()
    x = images(cfg["image_size"], torch.float64)
    with torch.no_grad():
        pred = model.predict(x)
        ref = model(x)
        again = model.decode(**pred)
        for name in FIELDS:
            if ref[name] is not None:
                assert torch.equal(ref[name], again[name]), name

        betas, cam = pred["betas"], pred["camera"]
        rest = model.smpl.rest_joints(betas)
        R_true = ik_sample(B, seed=3).rotmats
        P = forward_kinematics(R_true, rest)                          # (B, 29, 3) root-relative
        uvd = project(P + root_from_camera(cam)[:, None])
        twist = twist_angles(R_true, rest)
        out = model.decode(uvd, twist, betas, cam, pred.get("sigma"))

        assert torch.allclose(out.joints, P, atol=1e-10)
        assert torch.allclose(out.rotmats, R_true, atol=1e-8)
        assert torch.allclose(forward_kinematics(out.rotmats, rest), out.joints, atol=1e-8)
        _, posed = model.smpl(out.rotmats, betas)
        assert torch.allclose(posed - posed[:, :1], P, atol=1e-8)
        # the leaves of joints_from_mesh are mesh vertices, which move rigidly
        # with their parents: they match the skeleton's leaves exactly
        assert torch.allclose(out.joints_from_mesh[:, 24:], P[:, 24:], atol=1e-8)


def test_auto_backend_matches_reference(body):
    """The model passes ``backend`` to soft_argmax3d and hybrik_ik: the fused
    kernels (where built) give the reference's outputs.  The decode step is
    fed a plausible skeleton: at initialisation the near-uniform heatmaps put
    all joints within ~1e-7 m of each other, where float32 IK is ill-posed."""
    model = build_model("heatmap", "resnet18", image_size=64, heatmap_size=(8, 16, 16), body=body,
                        backend="auto").eval()
    x = images(64, seed=4)
    rot = ik_sample(B, 4, torch.float32).rotmats
    outs = {}
    with torch.no_grad():
        for backend in ("auto", "reference"):
            model.backend = backend
            pred = model.predict(x)
            P = forward_kinematics(rot, model.smpl.rest_joints(pred["betas"]))
            uvd = project(P + root_from_camera(pred["camera"])[:, None])
            outs[backend] = (pred["uvd"], model.decode(uvd, pred["twist"], pred["betas"], pred["camera"]))
    assert torch.allclose(outs["auto"][0], outs["reference"][0], atol=1e-5)
    fast, ref = outs["auto"][1], outs["reference"][1]
    for name in ("joints", "rotmats", "vertices"):
        assert torch.allclose(fast[name], ref[name], atol=1e-4), name


def test_hmr_uvd_is_the_projection_of_its_joints(body):
    model = build_model("hmr", "resnet18", image_size=64, body=copy.deepcopy(body)).double().eval()
    with torch.no_grad():
        out = model(images(64, torch.float64))
    check_output(out, model)
    assert out.sigma is None
    assert torch.allclose(back_project(out.uvd, out.camera), out.joints, atol=1e-10)
    assert torch.allclose(out.twist, twist_angles(out.rotmats, model.smpl.rest_joints(out.betas)))


def test_rot6d_round_trip_and_orthonormal():
    R = ik_sample(4, seed=1).rotmats
    assert torch.allclose(rot6d_to_matrix(matrix_to_rot6d(R)), R, atol=1e-12)
    M = rot6d_to_matrix(torch.randn(5, 24, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64))
    eye = torch.eye(3, dtype=torch.float64).expand_as(M)
    assert torch.allclose(M.transpose(-1, -2) @ M, eye, atol=1e-12)
    assert torch.allclose(torch.linalg.det(M), torch.ones(5, 24, dtype=torch.float64))


def test_transformer_keeps_20_to_100_percent_of_patches_in_training(body):
    model = build_model("transformer", "resnet18", image_size=128, body=body, **TINY_TRANSFORMER)
    src = torch.arange(2 * 16 * 1, dtype=torch.float32).reshape(2, 16, 1).expand(2, 16, 32)
    model.eval()
    assert model._keep_patches(src) is src
    model.train()
    counts = set()
    torch.manual_seed(0)
    for _ in range(40):
        kept = model._keep_patches(src)
        n = kept.shape[1]
        counts.add(n)
        assert 4 <= n <= 16                                          # ⌈0.2·16⌉ .. 16
        for b in range(2):
            ids = kept[b, :, 0].tolist()
            assert len(set(ids)) == n and set(ids) <= set(src[b, :, 0].tolist())
    assert len(counts) > 3


def test_heatmap_state_dict_layout(body):
    model = build_model("heatmap", "resnet18", image_size=64, heatmap_size=(8, 16, 16), body=body)
    keys = set(model.state_dict())
    for k in ("preact.conv1.weight", "preact.bn1.running_mean", "preact.layer1.0.conv1.weight",
              "preact.layer4.1.bn2.weight", "preact.layer2.0.downsample.0.weight",
              "final_layer.weight", "final_layer.bias", "fc1.weight", "fc2.weight",
              "decshape.weight", "decphi.weight", "deccam.weight", "decsigma.weight",
              "init_cam", "init_shape", "smpl.v_template", "smpl.J_regressor"):
        assert k in keys, k
    deconv = {k.split(".")[1] for k in keys if k.startswith("deconv_layers.")}
    assert deconv == {"0", "1", "3", "4", "6", "7"}
    assert not any(k.startswith("preact.fc") for k in keys)
    assert model.final_layer.out_channels == 29 * 8
    assert model.decphi.out_features == 46 and model.decsigma.out_features == 29
    assert torch.equal(model.init_cam, torch.tensor([0.9, 0.0, 0.0]))


def test_lateral_connections(body):
    """With its lateral convs zeroed, the lateral head is the plain head with
    the same weights; the pyramid's last level is the trunk's C5."""
    kw = dict(head="heatmap", backbone="resnet18", image_size=64, heatmap_size=(8, 16, 16),
              body=body, backend="reference", deconv_channels=32)
    torch.manual_seed(0)
    lateral = build_model(lateral=True, **kw).eval()
    plain = build_model(**kw).eval()
    keys = {k for k in lateral.state_dict() if k.startswith("lateral.")}
    assert keys == {f"lateral.{i}.{p}" for i in range(3) for p in ("weight", "bias")}
    assert [lateral.lateral[i].in_channels for i in range(3)] == [256, 128, 64]
    plain.load_state_dict({k: v for k, v in lateral.state_dict().items() if k not in keys})
    x = images(64)
    with torch.no_grad():
        c2, c3, c4, c5 = lateral.preact.pyramid(x)
        assert [tuple(c.shape[1:]) for c in (c2, c3, c4, c5)] == \
            [(64, 16, 16), (128, 8, 8), (256, 4, 4), (512, 2, 2)]
        assert torch.equal(c5, lateral.preact(x))
        uvd_lateral = lateral.predict(x)["uvd"]
        uvd_plain = plain.predict(x)["uvd"]
        # the plain head is the public implementation's C5 -> deconv_layers -> final_layer
        logits = plain.final_layer(plain.deconv_layers(plain.preact(x))).reshape(B, 29, 8, 16, 16)
        torch.testing.assert_close(uvd_plain, soft_argmax3d(logits, backend="reference"),
                                   rtol=0, atol=1e-6)
        assert not torch.allclose(uvd_lateral, uvd_plain, atol=1e-4)
        for conv in lateral.lateral:
            conv.weight.zero_()
            conv.bias.zero_()
        torch.testing.assert_close(lateral.predict(x)["uvd"], plain.predict(x)["uvd"],
                                   rtol=0, atol=1e-6)


# ----------------------------------------------------------------- weights


def torchvision_resnet_layout(name: str) -> dict:
    """Key -> shape of torchvision's ``resnet18/34/50().state_dict()``, written
    out from the architecture (He et al. 2016, Table 1; torchvision's names),
    independently of the project's backbone code."""
    basic = name in ("resnet18", "resnet34")
    blocks = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3), "resnet50": (3, 4, 6, 3)}[name]
    shapes = {"conv1.weight": (64, 3, 7, 7)}

    def bn(prefix, c):
        for p in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.{p}"] = (c,)
        shapes[f"{prefix}.num_batches_tracked"] = ()

    bn("bn1", 64)
    cin = 64
    for stage, (width, n) in enumerate(zip((64, 128, 256, 512), blocks), start=1):
        cout = width if basic else 4 * width
        for j in range(n):
            p = f"layer{stage}.{j}"
            if basic:
                shapes[f"{p}.conv1.weight"] = (width, cin, 3, 3)
                shapes[f"{p}.conv2.weight"] = (width, width, 3, 3)
                bn(f"{p}.bn1", width), bn(f"{p}.bn2", width)
            else:
                shapes[f"{p}.conv1.weight"] = (width, cin, 1, 1)
                shapes[f"{p}.conv2.weight"] = (width, width, 3, 3)
                shapes[f"{p}.conv3.weight"] = (cout, width, 1, 1)
                bn(f"{p}.bn1", width), bn(f"{p}.bn2", width), bn(f"{p}.bn3", cout)
            if j == 0 and (stage > 1 or cin != cout):
                shapes[f"{p}.downsample.0.weight"] = (cout, cin, 1, 1)
                bn(f"{p}.downsample.1", cout)
            cin = cout
    shapes["fc.weight"] = (1000, cin)
    shapes["fc.bias"] = (1000,)
    return shapes


def fake_weights(name: str, seed: int = 0, drop_counters: bool = False) -> dict:
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, shape in torchvision_resnet_layout(name).items():
        if k.endswith("num_batches_tracked"):
            if not drop_counters:
                out[k] = torch.tensor(7)
        else:
            out[k] = torch.randn(shape, generator=g)
    return out


@pytest.mark.parametrize("name", ["resnet18", "resnet34", "resnet50"])
def test_backbone_loads_torchvision_layout(name):
    backbone = build_backbone(name)
    expected = {k: v for k, v in torchvision_resnet_layout(name).items() if not k.startswith("fc.")}
    assert {k: tuple(v.shape) for k, v in backbone.state_dict().items()} == expected
    weights = fake_weights(name, drop_counters=(name == "resnet34"))  # old files have no counters
    load_torchvision_weights(backbone, weights)
    own = backbone.state_dict()
    for k, v in weights.items():
        if not k.startswith("fc."):
            assert torch.equal(own[k], v), k


def test_pretrained_path_through_build_model(body, tmp_path):
    path = tmp_path / "resnet18-imagenet.pth"
    weights = fake_weights("resnet18", seed=5)
    torch.save(weights, path)
    model = build_model("heatmap", "resnet18", image_size=64, heatmap_size=(8, 16, 16), body=body,
                        pretrained=str(path))
    assert torch.equal(model.preact.layer3[1].conv2.weight, weights["layer3.1.conv2.weight"])
    # a checkpoint dict {'model': state_dict} of the same weights, via the function
    model2 = build_model("hmr", "resnet18", image_size=64, body=body)
    load_pretrained_backbone(model2, {"model": weights})
    assert torch.equal(model2.preact.conv1.weight, weights["conv1.weight"])


def test_pretrained_mismatch_names_the_keys():
    backbone = build_backbone("resnet18")
    weights = fake_weights("resnet18")
    del weights["layer2.0.downsample.1.running_var"]
    weights["layer5.0.conv1.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"missing keys: layer2\.0\.downsample\.1\.running_var.*"
                                         r"unexpected keys: layer5\.0\.conv1\.weight"):
        load_torchvision_weights(backbone, weights)
    # a ResNet-50 file for a ResNet-34 backbone
    with pytest.raises(ValueError, match=r"unexpected keys: layer1\.0\.bn3\.bias"):
        load_torchvision_weights(build_backbone("resnet34"), fake_weights("resnet50"))
    weights = fake_weights("resnet18")
    weights["layer3.0.conv2.weight"] = torch.zeros(256, 256, 1, 1)
    with pytest.raises(ValueError, match=r"'layer3\.0\.conv2\.weight' has shape \(256, 256, 1, 1\)"):
        load_torchvision_weights(backbone, weights)
    with pytest.raises(FileNotFoundError):
        load_torchvision_weights(backbone, "/nonexistent/weights.pth")


# ----------------------------------------------------------------- bad input


def test_bad_images_name_the_expected_shape(body):
    model = build_model("heatmap", "resnet18", image_size=64, heatmap_size=(8, 16, 16), body=body)
    for bad in (torch.zeros(B, 3, 128, 128), torch.zeros(B, 1, 64, 64), torch.zeros(3, 64, 64),
                torch.zeros(B, 3, 64, 32)):
        with pytest.raises(ValueError, match=r"\(B, 3, 64, 64\)"):
            model(bad)
    with pytest.raises(TypeError, match=r"\(B, 3, 64, 64\)"):
        model(torch.zeros(B, 3, 64, 64, dtype=torch.uint8))
    with pytest.raises(TypeError, match=r"\(B, 3, 64, 64\)"):
        model([[0.0]])


def test_bad_config_lists_the_valid_choices(body):
    with pytest.raises(ValueError, match="heatmap, transformer, hmr"):
        build_model(head="mlp", body=body)
    with pytest.raises(ValueError, match="resnet18, resnet34, resnet50"):
        build_model(backbone="resnet101", body=body)
    with pytest.raises(ValueError, match="multiple of 32"):
        build_model(image_size=100, body=body)
    with pytest.raises(ValueError, match=r"\(D, H, W\)"):
        build_model(heatmap_size=(64, 64), body=body)
    with pytest.raises(ValueError, match="auto, reference, cpu"):
        build_model(backend="gpu", body=body, image_size=64, heatmap_size=(8, 16, 16))
    with pytest.raises(TypeError, match="transformer"):
        build_model(head="transformer", body=body, image_size=64, deconv_channels=3)
    with pytest.raises(ValueError, match="num_heads"):
        build_model(head="transformer", body=body, image_size=64, d_model=30, num_heads=4)


def test_model_output_access():
    out = ModelOutput(uvd=torch.zeros(1, 29, 3))
    assert out.uvd is out["uvd"] and out.sigma is None and out["vertices"] is None
    out.joints = torch.ones(1)
    assert out["joints"] is out.joints
    with pytest.raises(AttributeError, match="fields"):
        out.nope
    with pytest.raises(AttributeError, match="fields"):
        out.nope = 1
    with pytest.raises(TypeError, match="unknown ModelOutput fields"):
        ModelOutput(nope=1)
