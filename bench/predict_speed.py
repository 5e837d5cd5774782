"""End-to-end speed of ``hybrik-fast predict`` and of its renderer.

    python bench/predict_speed.py [--model cpu-quick | public:hrnet48] [--set key=value ...] [--batch 1,8]
                                  [--backends auto,reference] [--threads 2] [--device cpu|cuda]
                                  [--detector hog|none] [--json PATH]

The model: a published architecture (``--model public:hrnet48``, see
:func:`make_public`), or a ``hybrik-fast train`` preset (``--model``) with config overrides
(``--set backbone=... image_size=...``), random weights (seeded; the camera
bias set so that people come out at the synthetic set's median depth, as a
trained model sees them, rather than next to the camera where the mesh
covers the picture and the render costs several times more) saved as a
checkpoint and loaded by :class:`hybrik_fast.predict.Predictor`, or an
existing checkpoint (``--checkpoint``).  Inputs: the held-out full-frame
scenes of :mod:`hybrik_fast.predict.scenes` (512×384, 1-3 people) as JPEG
bytes, ``--images`` of them (cycled).  Per image: decode (``cv2.imdecode``),
detect (the detector runs and is timed; the people's true boxes are used,
so every configuration crops the same people), crop, network, IK, body
model, render (overlay + side view) and write (npz + JPEG to a temporary
folder), each as wall time (images/s and shares) and as the process's CPU
time (all threads) per image: on a shared machine the wall time includes
waiting for a core.  ``--batch`` images go through ``predict_batch`` together.

Renderer: a 6890-vertex closed mesh (SMPL's vertex count; a latitude-
longitude ellipsoid 1.7 m tall) at 512×512, filling 70% of the height,
rasterised and shaded on one thread, median of 20: wall time, and the
process's CPU time (on a shared machine the wall time includes the time the
thread waits for a core).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np
import torch

from hybrik_fast.camera import FOCAL_NORM
from hybrik_fast.predict import Predictor
from hybrik_fast.predict.cli import Writer
from hybrik_fast.predict.detect import make_detector
from hybrik_fast.predict.render import render_people
from hybrik_fast.predict.scenes import write_scenes
from hybrik_fast.train import checkpoint, config
from hybrik_fast.train.loop import build_model

#: metres: the synthetic set's median root depth (hybrik_fast.data.synthetic)
MEDIAN_DEPTH = 8.0
STAGES = ("decode", "detect", "crop", "network", "ik", "body", "render", "write")


def ellipsoid(n_lat: int = 84, n_lon: int = 82):
    """(vertices (2 + n_lat·n_lon, 3), faces (F, 3)) of an ellipsoid, outward winding; 6890 vertices by default."""
    theta = np.linspace(0, np.pi, n_lat + 2)[1:-1]
    phi = np.linspace(0, 2 * np.pi, n_lon, endpoint=False)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    ring = np.stack([0.25 * np.sin(t) * np.cos(p), 0.85 * np.cos(t), 0.15 * np.sin(t) * np.sin(p)], -1)
    v = np.concatenate([[[0, 0.85, 0]], ring.reshape(-1, 3), [[0, -0.85, 0]]])
    idx = 1 + np.arange(n_lat * n_lon).reshape(n_lat, n_lon)
    nxt = np.roll(idx, -1, axis=1)
    faces = [np.stack([np.zeros(n_lon, int), nxt[0], idx[0]], 1)]
    for i in range(n_lat - 1):
        faces += [np.stack([idx[i], nxt[i], nxt[i + 1]], 1), np.stack([idx[i], nxt[i + 1], idx[i + 1]], 1)]
    faces.append(np.stack([np.full(n_lon, len(v) - 1), idx[-1], nxt[-1]], 1))
    return v, np.concatenate(faces)


def bench_render(repeats: int = 20) -> dict:
    torch.set_num_threads(1)
    v, f = ellipsoid()
    S, focal = 512, 512.0
    z = focal * 1.7 / (0.7 * S)
    v = v * np.array([1, -1, 1]) + [0, 0, z]
    times, cpu = [], []
    for _ in range(repeats + 2):
        t, c = time.perf_counter(), time.process_time()
        _, mask = render_people(v[None], f, focal, (S / 2, S / 2), (S, S))
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return {"vertices": len(v), "faces": len(f), "size": S, "threads": 1, "pixels": int(mask.sum()),
            "ms_median": 1e3 * statistics.median(times[2:]), "ms_min": 1e3 * min(times[2:]),
            "cpu_ms_median": 1e3 * statistics.median(cpu[2:])}


def make_checkpoint(preset: str, sets: list[str], folder: str) -> str:
    cfg = config.make_config(preset, overrides=dict(s.split("=", 1) for s in sets))
    torch.manual_seed(0)
    model = build_model(cfg, torch.device("cpu"))
    if hasattr(model, "deccam"):    # people at the training set's median depth, as a trained model reads them
        with torch.no_grad():
            model.deccam.bias[0] = math.log(FOCAL_NORM / MEDIAN_DEPTH / float(model.init_cam[0]))
    path = os.path.join(folder, "model.pt")
    checkpoint.atomic_save({"format": checkpoint.FORMAT, "model": model.state_dict(), "step": 0, "epoch": 0,
                            "config": config.to_dict(cfg)}, path)
    return path


def make_public(name: str) -> torch.nn.Module:
    """The published architecture ``name`` (hrnet48, hrnet32, resnet34) with random weights
    (seeded), the procedural body, and the camera scale that puts people at the synthetic
    set's median depth, with no per-sample spread (the camera head's weights scaled down)."""
    from hybrik_fast import BodyModel
    from hybrik_fast.models import HybrIKHRNetCam, HybrIKResNetCam
    torch.manual_seed(0)
    cls = HybrIKHRNetCam if name.startswith("hrnet") else HybrIKResNetCam
    model = cls(BodyModel.synthetic(), backbone=name)
    with torch.no_grad():
        model.deccam.weight.mul_(1e-3)
        model.deccam.bias.zero_()
        model.deccam.bias[0] = FOCAL_NORM / MEDIAN_DEPTH - float(model.init_cam[0])   # z = F / (256 s)
    return model.eval()


def run(ckpt, data: list, truth: list, batch: int, backend: str, device: str, detector: str,
        out: str) -> dict:
    """ckpt: a checkpoint path, or a published model (its ops set to ``backend``)."""
    if isinstance(ckpt, torch.nn.Module):
        ckpt.backend = backend
    p = Predictor(ckpt, device=device, batch_size=max(batch, 8), detector="none", backend=backend)
    det = make_detector(detector)
    writer = Writer(p, out, render=True, save_mesh=False, smooth=False)
    n = len(data)
    for warm in (True, False):
        p.seconds.clear()
        p.cpu_seconds.clear()
        t0 = time.perf_counter()
        for i in range(0, 2 * batch if warm else n, batch):
            images = []
            for j in range(i, i + batch):
                with p.timer("decode"):
                    images.append(cv2.imdecode(data[j % n], cv2.IMREAD_COLOR))
                with p.timer("detect"):
                    det(images[-1])
            results = p.predict_batch(images, [truth[j % n] for j in range(i, i + batch)])
            for j, (image, r) in enumerate(zip(images, results)):
                writer.image(f"img{(i + j) % n}.jpg", image, r)
        seconds = time.perf_counter() - t0
    people = sum(len(truth[j % n]) for j in range(n))
    return {"batch": batch, "backend": backend, "device": device, "images": n, "people": people,
            "images_per_s": n / seconds, "seconds": seconds,
            "share": {k: p.seconds[k] / seconds for k in STAGES},
            "ms_per_image": {k: 1e3 * p.seconds[k] / n for k in STAGES},
            "cpu_ms_per_image": {k: 1e3 * p.cpu_seconds[k] / n for k in STAGES}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="cpu-quick",
                    help="a train preset, or public:hrnet48 | public:resnet34 (random weights)")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides")
    ap.add_argument("--checkpoint", help="use this checkpoint instead")
    ap.add_argument("--batch", default="1,8")
    ap.add_argument("--backends", default="auto,reference")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--detector", default="hog" if hasattr(cv2, "HOGDescriptor") else "none")
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    report = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus",
              "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                       text=True).stdout.strip(),
              "torch": torch.__version__, "opencv": cv2.__version__, "model": args.model, "set": args.set,
              "detector": args.detector, "load_average": os.getloadavg()}
    report["render"] = bench_render()
    r = report["render"]
    print(f"render: {r['vertices']} vertices, {r['faces']} faces at {r['size']}x{r['size']}, 1 thread: "
          f"{r['ms_median']:.1f} ms median ({r['ms_min']:.1f} min), CPU time {r['cpu_ms_median']:.1f} ms, "
          f"{r['pixels']} px")
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        if args.checkpoint:
            ckpt = args.checkpoint
        elif args.model.startswith("public:"):
            ckpt = make_public(args.model.split(":", 1)[1])
        else:
            ckpt = make_checkpoint(args.model, args.set, tmp)
        paths = write_scenes(os.path.join(tmp, "scenes"), count=min(args.images, 8))
        boxes = json.load(open(os.path.join(tmp, "scenes", "boxes.json")))
        data = [np.fromfile(paths[i % len(paths)], np.uint8) for i in range(args.images)]
        truth = [boxes[os.path.basename(paths[i % len(paths)])] for i in range(args.images)]
        report["runs"] = []
        for batch in (int(b) for b in args.batch.split(",")):
            for backend in args.backends.split(","):
                res = run(ckpt, data, truth, batch, backend, args.device, args.detector,
                          os.path.join(tmp, "out"))
                report["runs"].append(res)
                shares = " ".join(f"{k} {v:.0%}" for k, v in res["share"].items())
                cpu = " ".join(f"{k} {v:.1f}" for k, v in res["cpu_ms_per_image"].items())
                print(f"{args.model} batch {batch} {backend:>9} {args.device} {args.threads} threads: "
                      f"{res['images_per_s']:.2f} images/s ({res['people']} people / {res['images']} "
                      f"images); wall shares: {shares}; CPU ms per image: {cpu}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
