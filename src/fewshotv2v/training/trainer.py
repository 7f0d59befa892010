"""The few-shot vid2vid training loop (SPEC §4).

Per step: a batch of clips with K references (K drawn from 1..K_max, the first K of the sample's
references) and T frames (T = 1 in the single-frame stage, then 2, 4, ... up to a cap). For each frame t:

1. G synthesizes x~_t from s_t, the references and (t > 0) the previous output x~_{t-1} fed back detached;
2. D step: hinge loss on (real, x~_t.detach()) for the image D (+ face D in pose mode; + temporal D on the
   last T_d real vs generated frames, once the clip has T_d frames, for models with
   `use_temporal_discriminator`), Adam step;
3. G step with D frozen: hinge + feature matching + perceptual + warp + occlusion-mask (+ face, temporal)
   losses, Adam step, EMA update.

Numerics: bf16 autocast on CUDA by default (fp16 + GradScaler optional, fp32 on CPU), gradient clipping,
channels_last on CUDA; a non-finite loss skips the rest of the clip, is counted, and after
`nonfinite_limit` skips training stops with a `TrainingError`. Rank 0 writes the run folder.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fewshotv2v.config import ModelConfig
from fewshotv2v.errors import ConfigError, DeviceError, TrainingError
from fewshotv2v.losses import stack_frames
from fewshotv2v.training import checkpoint as ckpt
from fewshotv2v.training.config import TrainConfig
from fewshotv2v.training.distributed import (
    DistInfo,
    SeededItems,
    StepBatchSampler,
    all_finite,
    mean_over_ranks,
)
from fewshotv2v.training.ema import EMA
from fewshotv2v.training.logging import LossLog, label_to_rgb, sample_grid, write_loss_curves, write_png
from fewshotv2v.training.steps import DiscriminatorStep, GeneratorStep, generator_losses

STATE_FORMAT = "fewshotv2v-training-state"


def resolve_precision(name: str, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """'auto'|'fp32'|'bf16'|'fp16' -> (autocast dtype or None for fp32, use a GradScaler)."""
    if name == "auto":
        name = "bf16" if device.type == "cuda" else "fp32"
    if name == "fp32":
        return None, False
    if name == "fp16":
        if device.type != "cuda":
            raise DeviceError("fp16 training needs a CUDA device; use --precision fp32 (or bf16)")
        return torch.float16, True
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise DeviceError("this GPU does not support bf16; use --precision fp16 or fp32")
    return torch.bfloat16, False


def step_seed(seed: int, step: int, rank: int) -> int:
    """The torch seed of one step on one rank (anything random in the models depends on it only)."""
    return int(np.random.SeedSequence([seed, step, rank, 7]).generate_state(1, dtype=np.uint32)[0])


@dataclass
class StepResult:
    step: int
    losses: dict[str, float]
    k: int
    clip_len: int
    skipped: bool
    seconds: float


@dataclass
class TrainResult:
    """What `Trainer.fit` returns: the final step, the last logged losses and the last checkpoint."""

    step: int
    losses: dict[str, float] = field(default_factory=dict)
    nonfinite: int = 0
    checkpoint: Path | None = None


class Trainer:
    """Trains a `Generator` + `Discriminators` pair on a training dataset.

    Args:
        model_config: the architecture (saved as `model_config.json`).
        train_config: hyper-parameters (saved as `train_config.json`).
        load_item: `load(epoch, index, clip_len) -> sample dict` (see `dataset_loader`); `num_items` the
            number of samples per epoch.
        run_dir: the run folder (rank 0 writes into it).
        device: torch device of this process; `info`: rank layout (`distributed.init_distributed`).
        vgg_weights: path of the VGG19 safetensors for the perceptual loss (required unless
            `train_config.perceptual == "none"`).
        resume_from: a checkpoint folder to continue from; `init_from`: a model folder to finetune.
    """

    def __init__(
        self,
        model_config: ModelConfig,
        train_config: TrainConfig,
        load_item: Callable[[int, int, int], dict[str, Any]],
        num_items: int,
        run_dir: str | Path,
        *,
        device: torch.device | str = "cpu",
        info: DistInfo | None = None,
        vgg_weights: str | Path | None = None,
        resume_from: str | Path | None = None,
        init_from: str | Path | None = None,
    ):
        from fewshotv2v.losses import PerceptualLoss
        from fewshotv2v.models.discriminators import Discriminators
        from fewshotv2v.models.generator import Generator

        self.mcfg, self.tcfg = model_config, train_config
        self.info = info or DistInfo()
        self.device = torch.device(device)
        self.run_dir = Path(run_dir)
        self.load_item, self.num_items = load_item, num_items
        self.k_max = train_config.k_max or model_config.k_max
        if self.k_max > model_config.k_max:
            raise ConfigError(f"--k-max {self.k_max} exceeds the model's k_max ({model_config.k_max})")
        self.amp_dtype, use_scaler = resolve_precision(train_config.precision, self.device)
        self.channels_last = train_config.channels_last and self.device.type == "cuda"

        torch.manual_seed(train_config.seed)  # same initial weights on every rank
        if model_config.architecture != "fsv2v":
            raise ConfigError(f"{model_config.architecture} has no weights to train")
        self.generator = Generator(model_config).to(self.device)
        self.discriminators = Discriminators(model_config).to(self.device)
        if self.channels_last:
            self.generator.to(memory_format=torch.channels_last)
            self.discriminators.to(memory_format=torch.channels_last)
        if train_config.perceptual == "vgg":
            if vgg_weights is None:
                raise ConfigError("the perceptual loss needs VGG19 weights (or use --perceptual none)")
            self.perceptual = PerceptualLoss(vgg_weights).to(self.device)
        else:
            self.perceptual = PerceptualLoss(None)
        betas = (train_config.beta1, train_config.beta2)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=train_config.lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(self.discriminators.parameters(), lr=train_config.lr_d, betas=betas)
        self.scaler_g = torch.amp.GradScaler(self.device.type, enabled=use_scaler)
        self.scaler_d = torch.amp.GradScaler(self.device.type, enabled=use_scaler)

        self.step = 0
        self.epoch = 0
        self.nonfinite = 0
        self.prev_initialised = False
        if init_from is not None:
            self._load_init(Path(init_from))
        self.ema = EMA(self.generator, train_config.ema_beta)  # after --init: the average starts there
        if resume_from is not None:
            self._load_checkpoint(Path(resume_from))

        self.g_step = GeneratorStep(self.generator)
        self.d_step = DiscriminatorStep(self.discriminators)
        if self.info.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.device.index] if self.device.type == "cuda" else None
            # Separate wrappers for G and D. G has unused parameters by design (E_A when K = 1, the
            # prev-warp UNet in the single-frame stage); D only when it has a temporal D (not trained).
            self.g_step = DDP(self.g_step, device_ids=ids, find_unused_parameters=True)
            unused_d = self.discriminators.has_temporal
            self.d_step = DDP(self.d_step, device_ids=ids, find_unused_parameters=unused_d)
        self.checkpoints = ckpt.CheckpointManager(self.run_dir, train_config.keep_last)
        self.log = LossLog(self.run_dir / "log.jsonl")
        self.loss_weights = train_config.loss_weights  # what `generator_losses` weights its terms with
        # D steps only when a weighted G term uses a discriminator this model has
        self.trains_discriminators = self.loss_weights.uses_discriminators(
            face=self.discriminators.has_face, temporal=self.discriminators.has_temporal
        )

    # ---- loading ------------------------------------------------------------------------------------
    def _load_init(self, folder: Path) -> None:
        """Finetune: start G (and D when the folder has it) from a pretrained model folder."""
        from fewshotv2v.models.io import (
            D_WEIGHTS_NAME,
            WEIGHTS_NAME,
            load_weights,
            read_config,
            read_metadata,
        )

        if read_config(folder).to_dict() != self.mcfg.to_dict():
            raise ConfigError(f"--init model {folder} has a different architecture than the training config")
        load_weights(self.generator, folder / WEIGHTS_NAME)
        if (folder / D_WEIGHTS_NAME).is_file():
            load_weights(self.discriminators, folder / D_WEIGHTS_NAME)
        # A pretrained prev-warp UNet must not be overwritten, but one that never left the single-frame
        # stage is still its random init and gets the copy. Folders saved before this flag existed (or
        # by other code) cannot tell: they keep their prev UNet as before.
        self.prev_initialised = read_metadata(folder).get("prev_initialised", "True") != "False"

    def _load_checkpoint(self, folder: Path) -> None:
        from fewshotv2v.models.io import D_WEIGHTS_NAME, WEIGHTS_NAME, load_weights

        state = ckpt.load_training_state(folder)
        if state.get("format") != STATE_FORMAT:
            raise TrainingError(f"{folder} is not a fewshotv2v training checkpoint")
        if state["model_config"] != self.mcfg.to_dict():
            raise ConfigError(f"checkpoint {folder} was trained with a different model config")
        load_weights(self.generator, folder / ckpt.RAW_GENERATOR_FILE)
        load_weights(self.ema.module, folder / WEIGHTS_NAME)
        load_weights(self.discriminators, folder / D_WEIGHTS_NAME)
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        for group in self.opt_g.param_groups:  # a changed --lr on resume wins over the saved one
            group["lr"] = self.tcfg.lr_g
        for group in self.opt_d.param_groups:
            group["lr"] = self.tcfg.lr_d
        if state.get("scaler_g"):
            self.scaler_g.load_state_dict(state["scaler_g"])
            self.scaler_d.load_state_dict(state["scaler_d"])
        self.step = int(state["step"])
        self.nonfinite = int(state["nonfinite"])
        self.prev_initialised = bool(state["prev_initialised"])
        self.ema.num_updates = int(state.get("ema_updates", 0))
        if self.info.is_main:
            ckpt.restore_rng_state(state["rng"])

    # ---- schedule helpers ------------------------------------------------------------------------
    def _init_prev_from_ref(self) -> None:
        """Start of the temporal stage: the prev-warp UNet starts as a copy of the reference one, in the
        raw generator and in the EMA copy (which is what gets saved; left alone it would keep averaging
        toward the prev UNet's random init)."""
        for g in (self.generator, self.ema.module):
            g.init_prev_combine_from_ref()
        self.prev_initialised = True

    def _draw_k(self, step: int) -> int:
        """K for this step, from 1..k_max; the same on every rank (balanced work)."""
        return int(np.random.default_rng([self.tcfg.seed, step, 11]).integers(1, self.k_max + 1))

    def _prior_inputs(self, batch: dict[str, torch.Tensor], k: int) -> dict[str, torch.Tensor | None]:
        """Keypoints for the SPEC §7 flow prior, with Gaussian noise (`keypoint_noise` x crop height) on the
        present points of both the references and the targets; all None for models without the prior."""
        if not self.mcfg.uses_keypoints:
            return {"ref_keypoints": None, "keypoints": None, "ref_transforms": None}
        std = self.tcfg.keypoint_noise * self.mcfg.height

        def noisy(kps: torch.Tensor) -> torch.Tensor:
            kps = kps.to(self.device).float()
            if std <= 0:
                return kps
            noise = torch.randn(kps.shape[:-1] + (2,), device=self.device) * std
            present = (kps[..., 2:] > 0).float()
            return torch.cat([kps[..., :2] + noise * present, kps[..., 2:]], dim=-1)

        return {
            "ref_keypoints": noisy(batch["ref_keypoints"][:, :k]),  # (B, K, 137, 3)
            "keypoints": noisy(batch["keypoints"]),  # (B, T, 137, 3)
            "ref_transforms": batch["ref_transforms"][:, :k].to(self.device).float(),  # (B, K, 3)
        }

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def _optimise(self, loss, opt, scaler, params) -> None:
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if self.tcfg.grad_clip > 0:
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(params, self.tcfg.grad_clip)
        scaler.step(opt)
        scaler.update()

    # ---- one step ---------------------------------------------------------------------------------
    def train_step(self, batch: dict[str, torch.Tensor]) -> StepResult:
        """One batch of clips: per frame a D step then a G step (SPEC §4)."""
        t0 = time.perf_counter()
        step, tcfg = self.step, self.tcfg
        torch.manual_seed(step_seed(tcfg.seed, step, self.info.rank))
        if step >= tcfg.single_frame_steps and not self.prev_initialised:
            self._init_prev_from_ref()
        k = self._draw_k(step)
        ref_images = batch["ref_images"][:, :k].to(self.device)  # (B, K, 3, H, W)
        ref_labels = batch["ref_labels"][:, :k].to(self.device)  # (B, K, C, H, W)
        ref_boxes_all = batch["ref_face_boxes"][:, :k].to(self.device)  # (B, K, 4)
        prior = self._prior_inputs(batch, k)  # keypoints for the flow prior (noisy), or Nones
        images, labels = batch["images"], batch["labels"]  # (B, T, 3, H, W), (B, T, C, H, W)
        clip_len = images.shape[1]
        rows = torch.arange(images.shape[0], device=self.device)
        self.generator.train()
        self.discriminators.train()
        sums: dict[str, torch.Tensor] = {}  # per-loss sums over frames, kept on the device (no sync)
        counts: dict[str, int] = {}  # frames each loss was computed on (temporal: only t >= T_d - 1)
        prev_image = prev_label = None
        # temporal D: the last T_d - 1 real and generated (detached) frames of this clip
        history = self.discriminators.temporal_frames - 1 if self.discriminators.has_temporal else None
        real_hist: list[torch.Tensor] = []
        fake_hist: list[torch.Tensor] = []
        skipped = False
        for t in range(clip_len):
            label, real = self._to_device(labels[:, t]), self._to_device(images[:, t])
            boxes = batch["face_boxes"][:, t].to(self.device)  # (B, 4)
            with self._autocast():
                out = self.g_step(
                    ref_images,
                    ref_labels,
                    label,
                    prev_image,
                    prev_label,
                    prior["ref_keypoints"],
                    prior["keypoints"][:, t] if prior["keypoints"] is not None else None,
                    prior["ref_transforms"],
                )
            fake = out["image"]
            idx = out["ref_index"]  # (B,) the reference W warped: D is conditioned on it
            ref_image, ref_label, ref_boxes = (
                ref_images[rows, idx],
                ref_labels[rows, idx],
                ref_boxes_all[rows, idx],
            )

            real_frames = fake_frames = None
            if history is not None and len(fake_hist) == history:
                real_frames = stack_frames([*real_hist, real])
                fake_frames = stack_frames([*fake_hist, fake.float()])  # this frame keeps its graph

            # D step on the detached output (none when no G term uses D: reconstruction-only training)
            d_parts = {}
            if self.trains_discriminators:
                self.discriminators.requires_grad_(True)
                with self._autocast():
                    d_parts = self.d_step(
                        label, real, fake.detach(), ref_label, ref_image, boxes, ref_boxes, real_frames,
                        fake_frames.detach() if fake_frames is not None else None,
                    )  # fmt: skip
                loss_d = sum(d_parts.values())
                if not all_finite(loss_d, self.info):
                    skipped = True
                    break
                self._optimise(loss_d, self.opt_d, self.scaler_d, self.discriminators.parameters())

            # G step with D frozen (the unwrapped D: its DDP reducer must not see G's backward)
            self.discriminators.requires_grad_(False)
            with self._autocast():
                loss_g, g_parts = generator_losses(
                    self.discriminators,
                    self.perceptual,
                    out,
                    label=label,
                    real=real,
                    ref_label=ref_label,
                    ref_image=ref_image,
                    boxes=boxes,
                    ref_boxes=ref_boxes,
                    weights=self.loss_weights,
                    fake_frames=fake_frames,
                )
            if not all_finite(loss_g, self.info):
                skipped = True
                break
            self._optimise(loss_g, self.opt_g, self.scaler_g, self.generator.parameters())
            self.ema.update(self.generator)
            for name, value in {**d_parts, **g_parts, "g_total": loss_g}.items():
                sums[name] = sums.get(name, 0.0) + value.detach().float()
                counts[name] = counts.get(name, 0) + 1
            # feed the output back, detached: no backpropagation through time
            prev_image, prev_label = fake.detach().float(), label
            if history:
                real_hist, fake_hist = [*real_hist, real][-history:], [*fake_hist, prev_image][-history:]
        self.discriminators.requires_grad_(True)
        if skipped:
            self.nonfinite += 1
            if self.nonfinite >= tcfg.nonfinite_limit:
                raise TrainingError(
                    f"training stopped at step {step}: {self.nonfinite} steps had non-finite losses "
                    f"(limit {tcfg.nonfinite_limit}); lower the learning rates, use --precision fp32 or "
                    "bf16, or resume from an earlier checkpoint"
                )
        self.step += 1
        means = torch.stack(list(sums.values())).cpu().tolist() if sums else []  # one host sync
        totals = {name: value / counts[name] for name, value in zip(sums, means, strict=True)}
        return StepResult(step, totals, k, clip_len, skipped, time.perf_counter() - t0)

    # ---- outputs (rank 0) ---------------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        from fewshotv2v.models.io import save_pretrained
        from fewshotv2v.models.weights import save_safetensors

        def write(folder: Path) -> None:
            meta = {"step": self.step, "ema": True, "prev_initialised": self.prev_initialised}
            save_pretrained(folder, self.ema.module, discriminators=self.discriminators, metadata=meta)
            # the raw generator, as save_pretrained stores weights: detached, contiguous CPU copies
            raw = {k: v.detach().cpu().contiguous().clone() for k, v in self.generator.state_dict().items()}
            save_safetensors(raw, folder / ckpt.RAW_GENERATOR_FILE, {"step": str(self.step), "ema": "False"})
            state = {
                "format": STATE_FORMAT,
                "version": 1,
                "step": self.step,
                "epoch": self.epoch,
                "nonfinite": self.nonfinite,
                "prev_initialised": self.prev_initialised,
                "ema_updates": self.ema.num_updates,
                "opt_g": self.opt_g.state_dict(),
                "opt_d": self.opt_d.state_dict(),
                "scaler_g": self.scaler_g.state_dict() if self.scaler_g.is_enabled() else {},
                "scaler_d": self.scaler_d.state_dict() if self.scaler_d.is_enabled() else {},
                "rng": ckpt.capture_rng_state(),
                "model_config": self.mcfg.to_dict(),
                "train_config": self.tcfg.to_dict(),
            }
            ckpt.save_training_state(folder, state)

        return self.checkpoints.save(self.step, write)

    @torch.no_grad()
    def save_samples(self, batch: dict[str, torch.Tensor], k: int) -> Path:
        """samples/step-XXXXXXXX.png: reference | label | EMA output | real, first frame, up to 4 rows."""
        n = min(4, batch["images"].shape[0])
        g = self.ema.module
        ref_images = batch["ref_images"][:n, :k].to(self.device)
        ref_labels = batch["ref_labels"][:n, :k].to(self.device)
        label, real = batch["labels"][:n, 0].to(self.device), batch["images"][:n, 0]
        prior = self._prior_inputs({key: v[:n] for key, v in batch.items() if v.dim() > 1}, k)
        kps = prior["keypoints"][:, 0] if prior["keypoints"] is not None else None
        with self._autocast():
            refs = g.encode_references(ref_images, ref_labels, prior["ref_keypoints"])
            out = g(label, refs, keypoints=kps, ref_transform=prior["ref_transforms"]).image.float().cpu()

        def to01(x: torch.Tensor) -> np.ndarray:
            return ((x.float().cpu() + 1.0) / 2.0).numpy()

        label_rgb = np.stack([label_to_rgb(m) for m in label.float().cpu().numpy()])
        grid = sample_grid([to01(ref_images[:, 0]), label_rgb, to01(out), to01(real)])
        path = self.run_dir / "samples" / f"step-{self.step:08d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_png(path, grid)
        return path

    # ---- the loop ---------------------------------------------------------------------------------
    def fit(self, on_step: Callable[[StepResult, int], None] | None = None) -> TrainResult:
        """Train until `train_config.steps`; `on_step(result, total_steps)` is called on rank 0 after
        every step (progress display)."""
        from torch.utils.data import DataLoader

        tcfg = self.tcfg
        sampler = StepBatchSampler(
            self.num_items,
            tcfg.batch_size,
            info=self.info,
            seed=tcfg.seed,
            start_step=self.step,
            total_steps=tcfg.steps,
            clip_len=tcfg.clip_len,
        )
        self.epoch = sampler.epoch_of(self.step)
        loader = DataLoader(
            SeededItems(self.load_item, self.num_items, tcfg.seed),
            batch_sampler=sampler,
            num_workers=tcfg.workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
        )
        if self.info.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.log.truncate_after(self.step)
        result = TrainResult(step=self.step, nonfinite=self.nonfinite)
        window: list[StepResult] = []
        for batch in loader:
            self.epoch = sampler.epoch_of(self.step)
            res = self.train_step(batch)
            window.append(res)
            done = self.step
            if done % tcfg.log_every == 0 or done == tcfg.steps:
                losses = _mean_losses(window)
                losses = mean_over_ranks(losses, self.info, self.device)
                if self.info.is_main:
                    self.log.write(
                        {
                            "step": done,
                            "epoch": self.epoch,
                            "losses": losses,
                            "lr_g": self.opt_g.param_groups[0]["lr"],
                            "lr_d": self.opt_d.param_groups[0]["lr"],
                            "k": res.k,
                            "T": res.clip_len,
                            "nonfinite": self.nonfinite,
                            "sec_per_step": sum(r.seconds for r in window) / len(window),
                        }
                    )
                result.losses = losses
                window = []
            if self.info.is_main:
                if done % tcfg.sample_every == 0 or done == tcfg.steps:
                    self.save_samples(batch, res.k)
                    write_loss_curves(self.log.path, self.run_dir / "losses.png")
                if done % tcfg.checkpoint_every == 0 or done == tcfg.steps:
                    result.checkpoint = self.save_checkpoint()
                if on_step is not None:
                    on_step(res, tcfg.steps)
        result.step, result.nonfinite = self.step, self.nonfinite
        return result


class DatasetLoader:
    """`load(epoch, index, clip_len)` over a `data.dataset.TrainingDataset` (its randomness is drawn from
    `(seed, epoch, index)`, so a sample depends on nothing else). A class, not a closure, so that data
    loader workers can be spawned (pickled) as well as forked."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __call__(self, epoch: int, index: int, clip_len: int) -> dict[str, Any]:
        self.dataset.set_epoch(epoch)
        self.dataset.set_clip_len(clip_len)
        return self.dataset[index]


dataset_loader = DatasetLoader


def _mean_losses(window: list[StepResult]) -> dict[str, float]:
    """Mean of each loss over the non-skipped steps of a log window."""
    good = [r.losses for r in window if r.losses]
    names = sorted({k for losses in good for k in losses})
    out = {}
    for name in names:
        values = [losses[name] for losses in good if name in losses]
        out[name] = float(sum(values) / len(values)) if values else math.nan
    return out
