"""The training loop: one flat function, read top to bottom.

    setup: distributed, seeds, output dir, data, model, optimiser, schedule
    resume: restore everything from OUT/last.pt
    baselines: the untrained model and the mean-pose baseline on the held-out split
    loop: forward, loss, backward, clip, NaN/inf check, step, log, checkpoint
    end: held-out evaluation, best.pt, metrics.json, PNGs

Determinism.  The data order of epoch e is DistributedSampler(seed, epoch e)
(one replica when not distributed); a resumed run skips the batches of the
current epoch that the checkpoint says were consumed, and restores every RNG
(dropout included), so on CPU with a fixed thread count a killed and resumed
run logs the same per-step losses as an uninterrupted one.

One step is :func:`train_step` (``hybrik-fast bench --train`` times the
same function).  Logging (log.csv, TensorBoard, the bar) is :mod:`.runlog`;
fitting the run to ``time_budget`` is :mod:`.budget`.

Costly points are marked ``# host sync``.
"""
from __future__ import annotations

import json
import math
import os
import signal
import time
import warnings

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, DistributedSampler
from . import checkpoint, config, plot, schedule
from .budget import TimeBudget
from .config import Config
from .data import build_dataset, collate, materialise, skipped_images
from .evaluate import MeanPoseModel, evaluate, format_table
from .runlog import RunLog


class TrainingError(RuntimeError):
    """The run cannot go on (too many bad steps, a bad configuration of the data, ...)."""


# ----------------------------------------------------------------------------- helpers

def build_body(cfg: Config):
    """The body model: ``cfg.body`` (an SMPL-format file) or the synthetic body."""
    from hybrik_fast.body import BodyModel
    return BodyModel.load(cfg.body) if cfg.body else BodyModel.synthetic()


def build_model(cfg: Config, device: torch.device, body=None) -> torch.nn.Module:
    from hybrik_fast.models import build_model as build
    return build(head=cfg.head, backbone=cfg.backbone, image_size=cfg.image_size,
                 heatmap_size=tuple(cfg.heatmap_size), body=body if body is not None else build_body(cfg),
                 backend=cfg.backend, pretrained=cfg.pretrained or None, **cfg.model_kwargs).to(device)


def build_optimizer(cfg: Config, params: list) -> torch.optim.Optimizer:
    """Adam or AdamW with torch's fused update (one kernel over all parameters)
    where it exists for the parameters' device and dtype (CPU and CUDA, torch
    >= 2.4), else the default implementation.  On CPU it is the difference
    between 9 ms and 54 ms per step for the cpu-quick model (13.5 M
    parameters, one thread)."""
    opt_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    try:
        return opt_cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    except (RuntimeError, TypeError):  # a device or dtype without the fused kernel
        return opt_cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def build_loss(cfg: Config) -> torch.nn.Module:
    from hybrik_fast.losses import HybrIKLoss
    return HybrIKLoss(**cfg.loss)


def setup_distributed(cfg: Config) -> tuple[int, int, torch.device]:
    """(rank, world size, device); initialises the process group under torchrun."""
    if cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available()):
        device_type = "cuda"
    else:
        device_type = "cpu"
    if "RANK" not in os.environ:
        return 0, 1, torch.device(device_type)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    device = torch.device("cuda", local_rank) if device_type == "cuda" else torch.device("cpu")
    return rank, world, device


def autocast_dtype(cfg: Config, device: torch.device) -> torch.dtype | None:
    if cfg.amp == "fp16":
        if device.type != "cuda":
            raise config.ConfigError("amp=fp16 needs CUDA; use amp=bf16 or amp=off on CPU")
        return torch.float16
    if cfg.amp == "bf16" or (cfg.amp == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


def build_scaler(device: torch.device, amp_dtype: torch.dtype | None) -> torch.amp.GradScaler:
    """The loss scaler: active for float16 autocast only (bfloat16 needs none)."""
    return torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def batchnorm_state(model: torch.nn.Module) -> list[torch.Tensor]:
    """The running statistics that a forward pass in train mode changes."""
    return [b for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
            for b in (m.running_mean, m.running_var, m.num_batches_tracked) if b is not None]


def unreached_parameters(model, loss_fn, batch: dict, params: list) -> list:
    """The parameters that get no gradient from the loss (one forward in eval mode: no
    dropout draw, no batch-norm update)."""
    model.eval()
    loss, _ = loss_fn(model(batch["image"]), batch)
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    model.train()
    return [p for p, g in zip(params, grads) if g is None]


def params_finite(model: torch.nn.Module) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in model.state_dict().values()
               if torch.is_tensor(t) and t.is_floating_point())


def param_checksum(model: torch.nn.Module) -> str:
    """sha256 of every parameter's bytes: equal iff the parameters are bit-identical.

    Buffers are left out: batch-norm running statistics are per rank between
    DDP's broadcasts (at the start of each forward)."""
    import hashlib
    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters()):
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def clip_gradients(params: list, max_norm: float, per_param: bool = False) -> torch.Tensor:
    """Clip the gradients of ``params`` to norm ``max_norm`` (<= 0: none); returns the global
    gradient norm before clipping (0-dim tensor).

    Global (default): every gradient scaled by min(1, max_norm / (‖g‖ + 1e-6)), ‖g‖ the
    norm of all of them together (``clip_grad_norm_``).  ``per_param``: each parameter's
    gradient g_p by min(1, max_norm / (‖g_p‖ + 1e-6)) on its own, as the public HybrIK
    training script does (``clip_grad_norm_(p, 5)`` for each parameter p)."""
    if not per_param or max_norm <= 0:
        return torch.nn.utils.clip_grad_norm_(params, max_norm if max_norm > 0 else math.inf)
    grads = [p.grad for p in params if p.grad is not None]
    norms = torch._foreach_norm(grads)                                  # one 0-dim norm per tensor
    for g, n in zip(grads, norms):
        g.mul_(torch.clamp(max_norm / (n + 1e-6), max=1.0))
    return torch.linalg.vector_norm(torch.stack(norms))


def train_step(model: torch.nn.Module, loss_fn, optimizer: torch.optim.Optimizer, scaler, batch: dict,
               params: list, grad_clip: float, amp_dtype: torch.dtype | None,
               poison: bool = False, clip_per_param: bool = False) -> tuple[float, float, dict]:
    """One optimisation step on ``batch`` (its "image" (B, 3, S, S) on the model's device).

    Forward under autocast (``amp_dtype``; None: off), loss, scaled backward,
    unscale, gradient clipping to ``grad_clip`` (<= 0: none; per parameter with
    ``clip_per_param``, see :func:`clip_gradients`), then the NaN/inf
    check of the loss and the gradient norm together: a finite step updates
    the parameters, a non-finite one leaves them and restores the batch-norm
    statistics its forward changed.  The gradients are freed either way and
    the scaler updated.  ``poison`` multiplies the loss by NaN (debugging).

    Returns (loss, gradient norm, loss terms as tensors); the step was taken
    iff both numbers are finite.
    """
    bn_before = [b.clone() for b in batchnorm_state(model)]
    images = batch["image"]                                             # (B, 3, S, S)
    with torch.autocast(images.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        out = model(images)
        loss, terms = loss_fn(out, batch)
    if poison:
        loss = loss * float("nan")
    scaler.scale(loss).backward()                                      # .grad is None here
    scaler.unscale_(optimizer)
    grad_norm = clip_gradients(params, grad_clip, clip_per_param)
    # host sync: one per step.  The loss and the all-reduced gradient
    # norm are checked together, so every rank takes the same decision.
    loss_value, gnorm_value = torch.stack([loss.detach().float(), grad_norm.float()]).tolist()
    finite = math.isfinite(loss_value) and math.isfinite(gnorm_value)
    if finite:
        scaler.step(optimizer)
    # the gradients are freed as soon as they are used, so that the next
    # forward's activations do not share memory with them (nanoGPT's order)
    optimizer.zero_grad(set_to_none=True)
    if not finite:
        with torch.no_grad():                                           # undo the BN update
            for b, saved in zip(batchnorm_state(model), bn_before):
                b.copy_(saved)
    scaler.update()
    return loss_value, gnorm_value, terms


# ----------------------------------------------------------------------------- the run

def train(cfg: Config, *, resume: bool = False, overrides: dict | None = None,
          model: torch.nn.Module | None = None, loss_fn=None,
          train_set=None, val_set=None) -> dict:
    """Run a training job; returns the summary (also OUT/metrics.json on rank 0).

    ``resume``: continue from ``cfg.out``/last.pt, whose configuration wins
    except for the keys in ``overrides``.  ``model``, ``loss_fn``,
    ``train_set`` and ``val_set`` replace the ones built from ``cfg`` (tests).
    """
    t_start = time.time()
    ckpt = None
    last_path = os.path.join(cfg.out, "last.pt")
    if resume:
        if not os.path.exists(last_path):
            raise TrainingError(f"--resume: no checkpoint at {last_path!r}")
        ckpt = checkpoint.load(last_path)
        cfg = config.from_dict({**ckpt["config"], **(overrides or {}), "out": cfg.out})

    rank, world, device = setup_distributed(cfg)
    master = rank == 0
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)                  # identical model init on every rank
    import numpy as np
    import random
    np.random.seed(cfg.seed)
    random.seed(cfg.seed)
    if master:
        os.makedirs(cfg.out, exist_ok=True)
        config.save(cfg, os.path.join(cfg.out, "config.yaml"))

    # ---- data
    body = build_body(cfg) if model is None else model.smpl
    if train_set is None:
        train_set = build_dataset(cfg.data, cfg, split="train", body=body)
    if val_set is None and master:
        val_set = build_dataset(cfg.val_data or cfg.data, cfg, split="val", body=body)
    if cfg.in_memory:
        train_set = materialise(train_set, "training set", progress=cfg.progress and master,
                                workers=cfg.num_workers)
        if master:
            val_set = materialise(val_set, "held-out set", progress=cfg.progress, workers=cfg.num_workers)
    B = cfg.batch_size
    steps_per_epoch = len(train_set) // (B * world)
    if steps_per_epoch == 0:
        raise TrainingError(f"batch size {B} × {world} process(es) is larger than the training set "
                            f"({len(train_set)} samples): lower batch_size or use more data")
    total_steps = cfg.max_steps if cfg.max_steps > 0 else math.ceil(cfg.epochs * steps_per_epoch)

    # ---- model, loss, optimiser, schedule
    raw_model = model.to(device) if model is not None else build_model(cfg, device, body)
    if cfg.init and ckpt is None:                                    # --init: fine-tune from its weights
        note = checkpoint.init_weights(raw_model, cfg.init)
        if master:
            print(note, flush=True)
    loss_fn = (loss_fn if loss_fn is not None else build_loss(cfg)).to(device)
    params = [p for p in raw_model.parameters() if p.requires_grad]
    optimizer = build_optimizer(cfg, params)
    if world > 1:
        # DDP all-reduces a bucket only when every parameter in it got a gradient, so
        # parameters the loss never reaches (sigma's head without the Laplace loss) are
        # frozen first; the optimiser skips them anyway (their grad stays None)
        probe = to_device(collate([train_set[i] for i in range(B)]), device)
        for p in unreached_parameters(raw_model, loss_fn, probe, params):
            p.requires_grad_(False)
        train_model = DDP(raw_model, device_ids=[device.index] if device.type == "cuda" else None)
    else:
        train_model = raw_model
    scheduler = schedule.build(optimizer, cfg, total_steps)
    amp_dtype = autocast_dtype(cfg, device)
    scaler = build_scaler(device, amp_dtype)

    step, epoch, epoch_step, bad_total, seconds_before = 0, 0, 0, 0, 0.0
    extra: dict = {}
    best_mpjpe = math.inf
    if ckpt is not None:
        raw_model.load_state_dict(checkpoint.model_state(ckpt))
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        step, epoch, epoch_step = ckpt["step"], ckpt["epoch"], ckpt["epoch_step"]
        extra = dict(ckpt.get("extra", {}))
        total_steps = extra.get("total_steps", total_steps)
        scheduler.lr_lambdas[0] = schedule.lr_factor(cfg, total_steps)
        bad_total = extra.get("bad_steps", 0)
        seconds_before = extra.get("seconds", 0.0)
        best_mpjpe = extra.get("best_mpjpe", math.inf)
        checkpoint.set_rng_state(ckpt["rng"])
        del ckpt

    def save(path: str, metrics: dict | None = None) -> None:
        if not params_finite(raw_model):        # never write a NaN state
            raise TrainingError(f"refusing to write {path!r}: the model holds non-finite values")
        checkpoint.atomic_save({
            "format": checkpoint.FORMAT, "model": raw_model.state_dict(),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(), "rng": checkpoint.rng_state(),
            "step": step, "epoch": epoch, "epoch_step": epoch_step,
            "config": config.to_dict(cfg), "metrics": metrics or {},
            "extra": {**extra, "bad_steps": bad_total, "best_mpjpe": best_mpjpe,
                      "seconds": seconds_before + time.time() - t_start},
        }, path)

    def held_out(m: torch.nn.Module) -> dict:
        return evaluate(m, val_set, batch_size=B, device=device,
                        max_batches=cfg.eval_batches, amp_dtype=amp_dtype)

    # ---- baselines (rank 0, once per run); their time sizes the budget's reserve
    budget = TimeBudget(cfg.time_budget, t_start, "total_steps" not in extra, world, device)
    if master and cfg.baselines and "untrained" not in extra:
        t0 = time.time()
        extra["untrained"] = held_out(raw_model)
        budget.t_eval = time.time() - t0
        extra["mean_pose"] = held_out(MeanPoseModel.fit(train_set, raw_model.smpl).to(device))

    # ---- the loop
    log = RunLog(cfg.out, step, total_steps, master, cfg.progress, cfg.log_every)
    bad_run = 0
    while step < total_steps:
        if hasattr(train_set, "set_epoch"):                             # MixedDataset's draw
            train_set.set_epoch(epoch)
        sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True,
                                     seed=cfg.seed, drop_last=True)
        sampler.set_epoch(epoch)
        order = list(sampler)[epoch_step * B:steps_per_epoch * B]   # skip what was consumed
        loader = DataLoader(train_set, batch_size=B, sampler=order, drop_last=True,
                            collate_fn=collate, num_workers=0 if cfg.in_memory else cfg.num_workers,
                            pin_memory=device.type == "cuda",
                            generator=torch.Generator().manual_seed(cfg.seed * 1000003 + epoch))
        train_model.train()
        for batch in loader:
            batch = to_device(batch, device)
            loss_value, gnorm_value, terms = train_step(
                train_model, loss_fn, optimizer, scaler, batch, params, cfg.grad_clip, amp_dtype,
                poison=step + 1 in cfg.inject_nan_steps,                # debugging: a NaN loss
                clip_per_param=cfg.grad_clip_per_param)
            finite = math.isfinite(loss_value) and math.isfinite(gnorm_value)
            if finite:
                bad_run = 0
            else:
                bad_run += 1
                bad_total += 1
                log.write(f"step {step + 1}: non-finite loss/gradient ({loss_value}, {gnorm_value}); "
                          f"step skipped ({bad_run} in a row, {bad_total} in all)")
                if bad_run >= cfg.max_bad_steps:
                    log.close()
                    raise TrainingError(
                        f"stopping at step {step + 1}: {bad_run} consecutive steps had a non-finite loss "
                        f"or gradient (max_bad_steps={cfg.max_bad_steps}). Nothing was saved from them; "
                        f"the last good checkpoint is {last_path!r}")
            lr = scheduler.get_last_lr()[0]
            with warnings.catch_warnings():       # a skipped first step: "scheduler before optimizer"
                warnings.simplefilter("ignore", UserWarning)
                scheduler.step()
            step += 1
            epoch_step += 1
            log.step(step, epoch, loss_value, lr, gnorm_value, not finite, terms, images=B * world)

            # ---- time budget: fit the run length to it once, after the first steps
            fit = budget.fit(step)
            if fit is not None:
                if fit < total_steps:
                    total_steps = fit
                    scheduler.lr_lambdas[0] = schedule.lr_factor(cfg, total_steps)
                    log.set_total(total_steps)
                extra["total_steps"] = total_steps
                log.write(f"time budget {cfg.time_budget:.0f} s: {budget.per_step:.2f} s/step, "
                          f"running {total_steps} steps")

            # ---- checkpoints and held-out evaluation (rank 0 writes, the others wait)
            end_of_epoch = epoch_step == steps_per_epoch
            if end_of_epoch:
                epoch, epoch_step = epoch + 1, 0
            if cfg.eval_every and step % cfg.eval_every == 0 and step < total_steps:
                if master:
                    metrics = held_out(raw_model)
                    if metrics["mpjpe"] < best_mpjpe:
                        best_mpjpe = metrics["mpjpe"]
                        save(os.path.join(cfg.out, "best.pt"), metrics)
                    log.write(f"step {step}: held-out MPJPE {metrics['mpjpe']:.1f} mm "
                              f"(best {best_mpjpe:.1f})")
                    train_model.train()
            if (cfg.ckpt_every and step % cfg.ckpt_every == 0) or end_of_epoch:
                if master:
                    save(last_path)
            if world > 1:
                dist.barrier()
            if cfg.kill_after_step and step == cfg.kill_after_step:     # debugging: simulate a crash
                os.kill(os.getpid(), signal.SIGKILL)
            if step >= total_steps or end_of_epoch:
                break
    log.close()

    # ---- end: held-out evaluation, checkpoints, artefacts (rank 0)
    summary: dict = {}
    if master:
        trained = held_out(raw_model)
        if trained["mpjpe"] < best_mpjpe:
            best_mpjpe = trained["mpjpe"]
            save(os.path.join(cfg.out, "best.pt"), trained)
        save(last_path, trained)
        for name in ("untrained", "mean_pose"):
            if name in extra:
                summary[name] = extra[name]
        summary["trained"] = trained
        summary["bad_steps"] = bad_total
        summary["skipped_images"] = skipped_images(train_set) + skipped_images(val_set)
        summary["steps"] = step
        summary["seconds"] = seconds_before + time.time() - t_start
        with open(os.path.join(cfg.out, "metrics.json"), "w") as f:
            json.dump(summary, f, indent=2)
        plot.training_curve(log.rows, os.path.join(cfg.out, "training_curve.png"))
        if cfg.predictions_png:
            plot.predictions(raw_model, val_set, os.path.join(cfg.out, "predictions.png"),
                             n=cfg.predictions_png, device=device)
        print(format_table({k: summary[k] for k in ("untrained", "mean_pose", "trained") if k in summary}))
        print(f"{step} steps, {bad_total} skipped (non-finite), {summary['skipped_images']} unreadable "
              f"images skipped, {summary['seconds']:.1f} s; wrote {cfg.out}")
    if world > 1:
        summary["checksum"] = param_checksum(raw_model)
        print(f"rank {rank}: parameter sha256 {summary['checksum']}", flush=True)
        dist.barrier()
        dist.destroy_process_group()
    return summary
