"""The training loop: one loop for every recipe, checkpointed, exactly resumable, and torchrun-ready.

A run directory holds `checkpoint.pt` (model, optimiser, scheduler, step, RNG state, recipe; written
atomically), `best.safetensors` (the best validation weights, self-describing), `final.safetensors` (the
weights of the last step, which the zoo ships), `recipe.yaml` and the run's log (`srkit.runlog`). The batch of
step k is drawn from a generator seeded by (seed, rank, k), so a resumed run sees exactly the batches an
uninterrupted one would. `train_stages` trains the stages of a recipe in order, a run each, and goes on from the
stage it stopped in.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
import yaml
from safetensors.torch import load_file
from torch import nn
from tqdm import tqdm

from srkit import models
from srkit.data import TrainSet, benchmark, training_files
from srkit.errors import SrkitError
from srkit.files import atomic_path, remove_orphans, write_text
from srkit.machine import cpu
from srkit.metrics import psnr
from srkit.recipes import STAGE, Recipe, Stage
from srkit.revive import revive_dead
from srkit.runlog import RunLog
from srkit.upscale import from_range, sr_for_metrics, to_range
from srkit.zoo import save_weights

log = logging.getLogger(__name__)

# Recipe keys that may change when a run is resumed: they do not alter what is computed before `steps` (but a
# cosine or linear decay, which is fitted to `steps`, changes its course from the resumed step on), or, for
# decay_steps and min_lr, only the decay at the end of a run (one lengthened before its decay starts may lengthen
# its decay too), or, for amp, only its rounding (a bf16 run can go on in float32 on a CPU without bf16
# arithmetic, and the other way round), or, for channels_last, only the memory layout (the faster one for float32
# on an AVX2 CPU).
RESUMABLE_CHANGES = {
    *("steps", "decay_steps", "min_lr"),
    *("val_every", "checkpoint_every", "log_every", "threads", "amp", "channels_last"),
}


@dataclass
class Progress:
    step: int = 0
    elapsed: float = 0.0  # training seconds, summed over resumed sessions
    best_psnr: float = -math.inf
    best_step: int = 0


class _Stop:
    """Turns SIGINT/SIGTERM into a flag the loop checks between steps, so a checkpoint is never torn."""

    def __init__(self) -> None:
        self.signal: str | None = None
        self._old = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}

    def _handle(self, signum: int, frame: object) -> None:
        self.signal = signal.Signals(signum).name

    def restore(self) -> None:
        for s, handler in self._old.items():
            signal.signal(s, handler)


def _lr_factor(recipe: Recipe, step: int) -> float:
    """The learning rate at `step` as a multiple of recipe.lr."""
    if step < recipe.warmup_steps:
        return (step + 1) / recipe.warmup_steps
    if recipe.schedule == "step":
        return recipe.gamma ** sum(step >= m for m in recipe.milestones)
    if recipe.schedule in ("cosine", "linear"):
        t = min(step / max(recipe.steps - 1, 1), 1.0)
        floor = recipe.min_lr / recipe.lr
        decay = 0.5 * (1 + math.cos(math.pi * t)) if recipe.schedule == "cosine" else 1 - t
        return floor + (1 - floor) * decay
    if recipe.decay_steps:
        decay = min(recipe.decay_steps, recipe.steps)
        t = min(max((step - (recipe.steps - decay)) / decay, 0.0), 1.0)
        return 1 - (1 - recipe.min_lr / recipe.lr) * t
    return 1.0


def _optimizer(recipe: Recipe, model: nn.Module) -> torch.optim.Optimizer:
    last = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))][-1]
    last_ids = {id(p) for p in last.parameters()}
    groups = [
        {"params": [p for p in model.parameters() if id(p) not in last_ids], "lr": recipe.lr},
        {"params": list(last.parameters()), "lr": recipe.lr * recipe.last_layer_lr},
    ]
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(groups, momentum=recipe.momentum, weight_decay=recipe.weight_decay)
    # The fused kernel updates a tensor in one pass (3x faster than the per-op loop for ESPCN's few small tensors).
    return torch.optim.Adam(groups, betas=recipe.betas, weight_decay=recipe.weight_decay, fused=True)


class Trainer:
    """Builds everything a recipe asks for and runs it; `run()` returns the best validation PSNR."""

    def __init__(self, recipe: Recipe, out: Path, data_root: Path, device: str = "cpu", progress: bool = True) -> None:
        self.recipe, self.out, self.progress = recipe, Path(out), progress
        self.rank, self.world = _init_distributed(device)
        self.device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if device == "cuda" else device)
        if recipe.amp == "fp16" and self.device.type != "cuda":
            raise SrkitError("--amp fp16 needs --device cuda (bf16 also runs on the CPU)")
        self.amp_dtype = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[recipe.amp]
        if recipe.threads:
            torch.set_num_threads(recipe.threads)
        self.device_name = _device_name(self.device)

        torch.manual_seed(recipe.seed)
        self.model = models.build(recipe.model, recipe.scale, **recipe.model_options)
        if recipe.init_from:
            _warm_start(self.model, _init_file(recipe.init_from, self.out), recipe.init_exclude)
        memory_format = torch.channels_last if recipe.channels_last else torch.contiguous_format
        self.model.to(self.device, memory_format=memory_format)
        self.info = self.model.info
        self.optimizer = _optimizer(recipe, self.model)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: _lr_factor(recipe, s))
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.content = self._content_loss()
        self.disc = self.disc_optimizer = None
        if recipe.discriminator:
            self.disc = models.build(recipe.discriminator).to(self.device, memory_format=memory_format)
            self.disc_optimizer = torch.optim.Adam(self.disc.parameters(), lr=recipe.discriminator_lr)
        self.net = self.model
        if self.world > 1:
            self.net = nn.parallel.DistributedDataParallel(self.model)
            if self.disc is not None:
                self.disc = nn.parallel.DistributedDataParallel(self.disc)

        files = training_files(recipe.train_sets, data_root)
        self.data = TrainSet(
            files,
            recipe.train_scales,
            self.info.channels,
            self.info.upsampled_input,
            recipe.patch_size,
            recipe.downscale_augment,
        )
        self.val = {s: benchmark(recipe.val_set, s, data_root) for s in recipe.train_scales} if self.rank == 0 else {}
        self.state = Progress()

    def _content_loss(self):
        recipe = self.recipe
        if recipe.loss in ("mse", "l1"):
            return F.mse_loss if recipe.loss == "mse" else F.l1_loss
        from srkit.models.vgg import VGGFeatures

        vgg = VGGFeatures(recipe.loss, weights=recipe.vgg_weights).to(self.device)
        # SRGAN rescales the VGG feature maps by 1/12.75 so that the loss is on the scale of the MSE loss.
        return lambda sr, hr: F.mse_loss(vgg(sr) / 12.75, vgg(hr) / 12.75)

    # -- checkpoints -------------------------------------------------------------------------------------

    @property
    def checkpoint_path(self) -> Path:
        return self.out / "checkpoint.pt"

    def save_checkpoint(self) -> None:
        if self.rank != 0:
            return
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "progress": vars(self.state).copy(),
            "recipe": self.recipe.to_dict(),
            "rng": torch.get_rng_state(),
        }
        if self.disc is not None:
            state["discriminator"] = _unwrap(self.disc).state_dict()
            state["discriminator_optimizer"] = self.disc_optimizer.state_dict()
        with atomic_path(self.checkpoint_path) as tmp:
            torch.save(state, tmp)

    def load_checkpoint(self) -> None:
        if not self.checkpoint_path.is_file():
            raise SrkitError(f"--resume: no checkpoint at {self.checkpoint_path}")
        state = torch.load(self.checkpoint_path, map_location=self.device, weights_only=True)
        _check_resumable(self.recipe, state["recipe"])
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        if self.disc is not None:
            _unwrap(self.disc).load_state_dict(state["discriminator"])
            self.disc_optimizer.load_state_dict(state["discriminator_optimizer"])
        self.state = Progress(**state["progress"])
        torch.set_rng_state(state["rng"].cpu())

    def _revive_dead(self) -> None:
        """Revive the dead (or, with revive_threshold, dormant) ReLU channels of the warm-started network, found on 16
        batches that training never draws (those of the steps after the last)."""
        fresh = models.build(self.recipe.model, self.recipe.scale, **self.recipe.model_options).to(self.device)
        batches = [self._batch(self.recipe.steps + k)[0] for k in range(16)]
        lines = revive_dead(self.model, fresh, batches, self.recipe.revive_threshold)
        if self.world > 1:  # each process sampled batches of its own: all take the network of rank 0
            for tensor in self.model.state_dict().values():
                dist.broadcast(tensor, 0)
        if self.rank == 0:
            for line in lines:
                log.info("revive_dead: %s", line)

    # -- one step ----------------------------------------------------------------------------------------

    def _batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        generator = torch.Generator().manual_seed((self.recipe.seed * 1_000_003 + self.rank) * 1_000_000_007 + step)
        lr, hr = self.data.batch(self.recipe.batch_size, generator, self.recipe.augment)
        fmt = torch.channels_last if self.recipe.channels_last else torch.contiguous_format
        lr = to_range(lr, self.info.input_range).to(self.device, memory_format=fmt, non_blocking=True)
        return lr, hr.to(self.device, non_blocking=True)

    def train_step(self, step: int) -> float:
        lr, hr = self._batch(step)
        autocast = torch.autocast(self.device.type, self.amp_dtype) if self.amp_dtype else nullcontext()
        with autocast:
            raw = self.net(lr)
            sr = from_range(raw, self.info.output_range)
            # The loss is taken in the model's own output range, as its paper trains it (seed 000: [-1, 1]).
            loss = self.content(raw.float(), to_range(hr, self.info.output_range))
            if self.disc is not None:
                loss = loss + self.recipe.adversarial_weight * self._adversarial_step(sr, hr)
        if not torch.isfinite(loss):
            raise SrkitError(
                f"loss is {loss.item()} at step {step + 1}: training stopped; the last good checkpoint is "
                f"{self.checkpoint_path} (step {self._saved_step})"
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.recipe.clip_theta:
            self.scaler.unscale_(self.optimizer)
            # VDSR: clip each gradient to [-theta/lr, theta/lr] with the current rate (adjustable clipping).
            bound = self.recipe.clip_theta / self.optimizer.param_groups[0]["lr"]
            torch.nn.utils.clip_grad_value_(self.model.parameters(), bound)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return loss.item()

    def _adversarial_step(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        """Update the discriminator on (HR, SR), then return the generator's adversarial loss."""
        bce = F.binary_cross_entropy_with_logits
        real, fake = self.disc(hr), self.disc(sr.detach())
        d_loss = bce(real, torch.ones_like(real)) + bce(fake, torch.zeros_like(fake))
        self.disc_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        self.disc_optimizer.step()
        judged = self.disc(sr)
        return bce(judged, torch.ones_like(judged))

    @torch.no_grad()
    def validate(self) -> float:
        """Mean protocol PSNR over the validation set at every training scale."""
        self.model.eval()
        values = [
            psnr(sr_for_metrics(self.model, pair.lr, s), pair.hr, s) for s, pairs in self.val.items() for pair in pairs
        ]
        self.model.train()
        return float(np.mean(values))

    # -- the run -----------------------------------------------------------------------------------------

    def run(self, resume: bool = False) -> float:
        recipe = self.recipe
        if resume:
            self.load_checkpoint()
        elif self.checkpoint_path.exists():
            raise SrkitError(f"{self.out} already holds a run; pass --resume to continue it or choose another --out")
        elif recipe.revive_dead:
            self._revive_dead()
        self._saved_step = self.state.step
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)
            remove_orphans(self.out)  # a checkpoint half-written when a killed run stopped
            write_text(self.out / "recipe.yaml", yaml.safe_dump(_plain(recipe.to_dict()), sort_keys=False))
        self.logger = RunLog(self.out, self.state.step) if self.rank == 0 else None
        stop = _Stop()
        self.model.train()
        self.bar = tqdm(total=recipe.steps, initial=self.state.step, disable=not self.progress or self.rank != 0)
        self._losses: list[float] = []
        self._last_log = (self.state.step, self.state.elapsed)
        try:
            for step in range(self.state.step, recipe.steps):
                start = time.perf_counter()
                self._losses.append(self.train_step(step))
                self.state.step = step + 1
                self.state.elapsed += time.perf_counter() - start  # training time only, not validation
                self._bookkeeping(force_checkpoint=stop.signal is not None)
                self.bar.update(1)
                if stop.signal:
                    raise SrkitError(
                        f"stopped by {stop.signal} at step {self.state.step}; checkpoint saved to "
                        f"{self.checkpoint_path}; continue with --resume"
                    )
        finally:
            stop.restore()
            self.bar.close()
            if self.logger:
                self.logger.close()
        return self.state.best_psnr

    def _bookkeeping(self, force_checkpoint: bool) -> None:
        """After a step: log, validate and checkpoint when their intervals come round."""
        recipe, done = self.recipe, self.state.step
        last = done == recipe.steps
        row = {"step": done, "elapsed_s": f"{self.state.elapsed:.1f}"}
        if done % recipe.log_every == 0 or last:
            step0, elapsed0 = self._last_log
            row |= {
                "loss": f"{np.mean(self._losses):.6g}",
                "lr": f"{self.optimizer.param_groups[0]['lr']:.3g}",
                "steps_per_s": f"{(done - step0) / max(self.state.elapsed - elapsed0, 1e-9):.2f}",
                "cpu": self.device_name,
                "amp": self.recipe.amp,
            }
            self._losses, self._last_log = [], (done, self.state.elapsed)
            self.bar.set_postfix(loss=row["loss"], best_psnr=f"{self.state.best_psnr:.2f}")
        if self.rank == 0 and (done % recipe.val_every == 0 or last):
            value = self.validate()
            row["val_psnr"] = f"{value:.4f}"
            if value > self.state.best_psnr:
                self.state.best_psnr, self.state.best_step = value, done
                save_weights(
                    self.model,
                    self.out / "best.safetensors",
                    recipe.model_options,
                    recipe.train_scales,
                    val_psnr=f"{value:.4f}",
                    val_set=recipe.val_set,
                    step=str(done),
                )
            self.bar.set_postfix(loss=row.get("loss", "-"), psnr=f"{value:.2f}", best=f"{self.state.best_psnr:.2f}")
        if self.rank == 0 and last:  # what the zoo ships: chosen by the schedule, not by a test set's PSNR
            save_weights(
                self.model, self.out / "final.safetensors", recipe.model_options, recipe.train_scales, step=str(done)
            )
        if self.logger and len(row) > 2:
            self.logger.write(row)
        if done % recipe.checkpoint_every == 0 or last or force_checkpoint:
            self.save_checkpoint()
            self._saved_step = done


def train_stages(
    stages: tuple[Stage, ...],
    out: Path,
    data_root: Path,
    device: str = "cpu",
    progress: bool = True,
    resume: bool = False,
) -> list[Progress]:
    """Train a recipe's stages in order, each a run in out/NAME (an unnamed stage in `out` itself); the progress of
    each. With `resume`, a finished stage is kept as it is and the recipe goes on from the stage it stopped in."""
    out = Path(out)
    saved = [_saved(out / stage.name) for stage in stages]
    if any(saved) and not resume:
        run = next(out / s.name for s, state in zip(stages, saved, strict=True) if state)
        raise SrkitError(f"{run} already holds a run; pass --resume to continue it or choose another --out")
    if resume and not saved[0]:
        raise SrkitError(f"--resume: no checkpoint at {out / stages[0].name / 'checkpoint.pt'}")
    finished = []
    for i, (stage, state) in enumerate(zip(stages, saved, strict=True)):
        if state:
            _check_resumable(stage.recipe, state["recipe"], f" of stage {stage.name}" if stage.name else "")
        finished.append(bool(state) and state["progress"]["step"] >= stage.recipe.steps)
        if not finished[i] and any(saved[i + 1 :]):
            raise SrkitError(f"--resume: stage {stage.name} is unfinished, but a stage after it has started from it")
    results = []
    for i, (stage, state) in enumerate(zip(stages, saved, strict=True)):
        if finished[i]:
            log.info("%s: finished at step %d, kept", out / stage.name, state["progress"]["step"])
            results.append(Progress(**state["progress"]))
            continue
        if stage.name:
            log.info("stage %s (%d of %d): %s", stage.name, i + 1, len(stages), out / stage.name)
        trainer = Trainer(stage.recipe, out / stage.name, data_root, device, progress)
        trainer.run(resume=state is not None)
        results.append(trainer.state)
        if dist.is_initialized():  # the next stage starts from the weights that rank 0 has just written
            dist.barrier()
    return results


def _saved(run: Path) -> dict | None:
    """The progress and recipe of a run's checkpoint, or None where it has none."""
    path = run / "checkpoint.pt"
    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    return {"progress": state["progress"], "recipe": state["recipe"]}


def _check_resumable(recipe: Recipe, saved: dict, of: str = "") -> None:
    """A run resumes only under the recipe it was started with, but for the keys that may change."""
    changed = {k for k, v in saved.items() if _differs(recipe, k, v)} - RESUMABLE_CHANGES
    if changed:
        raise SrkitError(f"--resume: the recipe{of} differs from the checkpoint's in {', '.join(sorted(changed))}")


def _init_file(init_from: str, out: Path) -> str:
    """init_from as a file: `stage:NAME` is the final weights of stage NAME, the run beside `out`."""
    if not init_from.startswith(STAGE):
        return init_from
    path = out.parent / init_from.removeprefix(STAGE) / "final.safetensors"
    if not path.is_file():
        raise SrkitError(f"recipe: init_from {init_from}: {path} is not a file (train that stage first)")
    return str(path)


def _warm_start(model: nn.Module, path: str, exclude: tuple[str, ...]) -> None:
    """Load every parameter of the file `path` into `model` but those in `exclude`, which must be all it lacks."""
    state = {k: v for k, v in load_file(path).items() if k not in exclude}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as error:  # shapes that differ: one line per parameter after a heading
        details = "; ".join(line.strip() for line in str(error).splitlines()[1:])
        raise SrkitError(f"recipe: init_from {path} does not fit {model.info.name}: {details}") from None
    if set(missing) != set(exclude) or unexpected:
        lacking = ", ".join(sorted(set(missing) - set(exclude))) or "nothing"
        raise SrkitError(f"recipe: init_from {path} lacks {lacking} and has extra {', '.join(unexpected) or 'nothing'}")


def _init_distributed(device: str) -> tuple[int, int]:
    """(rank, world size); under torchrun, joins the process group (gloo on CPU, NCCL on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world == 1:
        return 0, 1
    if not dist.is_initialized():
        if device == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group("nccl" if device == "cuda" else "gloo")
    return dist.get_rank(), world


def _device_name(device: torch.device) -> str:
    """What trains the steps, for the run's log: the GPU's name, or the CPU (an Apple chip's, for mps)."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu()


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def _differs(recipe: Recipe, key: str, value) -> bool:
    """Whether a checkpoint's recipe value differs from the recipe's; a key that srkit has since dropped (such as
    ema) differs only if it was on (not 0, '' or ())."""
    if not hasattr(recipe, key):
        return bool(value)
    return _plain(getattr(recipe, key)) != _plain(value)


def _plain(value):
    """Tuples as lists, recursively: how YAML and checkpoints store a recipe."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
