"""The training loop: DFAT + DKAM, AdamW with parameter groups, cosine schedule with warm-up,
AMP on GPU, gradient accumulation and checkpointing, DDP under torchrun, exact resume.

Determinism: the sample order of epoch e is a permutation drawn from a generator seeded with
(seed, e), and batches are consecutive slices of it, so a resumed run sees exactly the batches
the uninterrupted run would have seen. With acquisition-shift augmentation (config `augment`)
image i at step t is re-acquired from a generator seeded with (seed, t, i): the same holds.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from radz_train.dkam import encode_anchors, load_knowledge
from radz_train.losses import RadzLoss
from radz_train.model import create_model
from radz_train.model.trainable import count_parameters, parameter_groups
from radz_train.training.checkpoint import load_model, load_trainer_state, restore_rng, save_checkpoint
from radz_train.training.config import TrainConfig
from radz_train.training.data import (
    ImageReportSet,
    augmented_batch,
    load_image_report_set,
    read_rows,
    same_text_mask,
    to_model_input,
)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def cosine_with_warmup(optimizer, total_steps: int, warmup_steps: int):
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n)


class Distributed:
    """torchrun's environment, or a single process."""

    def __init__(self) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.enabled = self.world > 1
        if self.enabled and not torch.distributed.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            torch.distributed.init_process_group(backend)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """All ranks' rows, with gradients flowing back to this rank's rows."""
        if not self.enabled:
            return tensor
        from torch.distributed.nn.functional import all_gather

        return torch.cat(all_gather(tensor), dim=0)


def phantom_sites(sites) -> bool:
    """True when every site name is one of the phantom generator's (augmentation's auto default)."""
    from radz_train.data.phantom import SITES

    sites = list(sites)
    return bool(sites) and all(s in SITES for s in sites)


def resolve_augment(config: TrainConfig, data: ImageReportSet | None) -> bool:
    """config.augment, with None (auto) = on for phantom training sets (that can be augmented)."""
    if config.augment is not None:
        if config.augment and data is not None and data.stored is None:
            raise ValueError("augment: the given training set has no stored pixels (load it with keep_stored=True)")
        return config.augment
    if data is not None:
        return data.stored is not None and phantom_sites(data.sites)
    return phantom_sites(r.get("site", "") for r in read_rows(config.train_csv)[: config.limit])


class Trainer:
    def __init__(
        self, config: TrainConfig, data: ImageReportSet | None = None, resume: str | Path | None = None
    ) -> None:
        self.config = config
        self.dist = Distributed()
        self.device = pick_device(config.device)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
            torch.cuda.set_device(self.device)
        if config.threads:
            torch.set_num_threads(config.threads)
        torch.manual_seed(config.seed)
        self.out_dir = Path(config.out_dir)
        self.resume_from = Path(resume) if resume else None
        self.knowledge = load_knowledge(config.knowledge)
        self.classes = list(config.classes)

        if self.resume_from:
            self.model = load_model(self.resume_from, device="cpu").train()
        elif config.init_from:
            self.model = load_model(config.init_from, device="cpu").train()
        if config.init_from:
            # Frozen pretrained parts are not in model.safetensors: loading this run later rebuilds
            # them from the sources its base was built from, so its config names them too.
            source = self.resume_from or Path(config.init_from)
            built_from = json.loads((source / "train_config.json").read_text())
            for key in ("checkpoint", "vision_checkpoint", "language_checkpoint"):
                setattr(config, key, built_from.get(key))
        if not (self.resume_from or config.init_from):
            from radz_train.model.registry import get_model_config

            model_config = get_model_config(config.model, config.model_overrides)
            corpus = None
            if (
                model_config.tokenizer.get("type") == "bpe"
                and config.checkpoint is None
                and config.language_checkpoint is None
            ):
                corpus = [r["report"] for r in read_rows(config.train_csv)[: config.limit]]
                # descriptions of the training classes only: an unseen class stays unseen
                corpus += [self.knowledge[c] for c in self.classes if c in self.knowledge]
            self.model = create_model(
                model_config,
                corpus=corpus,
                checkpoint=config.checkpoint,
                vision_checkpoint=config.vision_checkpoint,
                language_checkpoint=config.language_checkpoint,
                seed=config.seed,
            )
        self.model.to(self.device)
        if config.gradient_checkpointing:
            for part in (self.model.decoder, self.model.vision_tower):
                if hasattr(part, "gradient_checkpointing_enable"):
                    part.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.augment = resolve_augment(config, data)
        self.data = (
            data
            if data is not None
            else load_image_report_set(
                config.train_csv,
                self.classes,
                self.model.config.image_size,
                "labeler",
                config.limit,
                keep_stored=self.augment,
            )
        )
        self.augment_seconds = 0.0  # time spent re-acquiring + preprocessing batches (this process)
        self.augment_wait_seconds = 0.0  # of which the training loop waited for (the rest overlapped)
        self._augment_lock = threading.Lock()
        self._pool = None  # the prefetch thread, started on the first augmented step
        self._ahead: dict = {}  # step -> Future of its batch
        self.loss_fn = RadzLoss(self.model.config.tau, config.lam, config.crossed, config.dkam_mode)
        self.optimizer = torch.optim.AdamW(parameter_groups(self.model, config.learning_rates, config.weight_decay))
        self.steps_per_epoch = len(self.data) // config.batch_size
        if self.steps_per_epoch < 1:
            raise ValueError(f"train_csv: {len(self.data)} samples is less than one batch of {config.batch_size}")
        self.total_steps = config.max_steps or max(1, int(round(config.epochs * self.steps_per_epoch)))
        warmup = int(round(config.warmup_ratio * self.total_steps))
        self.scheduler = cosine_with_warmup(self.optimizer, self.total_steps, warmup)
        self.step = 0
        if self.resume_from:
            state = load_trainer_state(self.resume_from)
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            self.step = int(state["step"])
            restore_rng(state)
        self.ddp_model = self.model
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            # Layers after feature_layer (and the final norm) get no gradient: tell DDP.
            self.ddp_model = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=ids, find_unused_parameters=True
            )

    # -- one step -------------------------------------------------------------------------------
    def batch_indices(self, step: int) -> np.ndarray:
        epoch, position = divmod(step, self.steps_per_epoch)
        order = epoch_order(len(self.data), self.config.seed, epoch)
        bs = self.config.batch_size
        indices = order[position * bs : (position + 1) * bs]
        if self.dist.enabled:  # each rank takes its share of the global batch
            indices = np.array_split(indices, self.dist.world)[self.dist.rank]
        return indices

    def autocast(self):
        if self.device.type != "cuda" or self.config.precision == "fp32":
            return nullcontext()
        dtype = torch.bfloat16 if self.config.precision == "bf16" else torch.float16
        return torch.autocast("cuda", dtype=dtype)

    def batch_grey(self, indices: np.ndarray, step: int | None = None) -> np.ndarray:
        """Grey [B, S, S] float16 for these samples: fresh augmented variants for `step` (default:
        the current one), or the set preprocessed at load when augmentation is off."""
        if not self.augment:
            return self.data.images[indices]
        start = time.perf_counter()
        grey = augmented_batch(
            self.data,
            indices,
            self.model.config.image_size,
            self.config.seed,
            self.step if step is None else step,
            self.config.augment_probabilities,
        )
        with self._augment_lock:
            self.augment_seconds += time.perf_counter() - start
        return grey

    def step_grey(self, indices: np.ndarray) -> np.ndarray:
        """batch_grey for the current step; with augment_prefetch the next step's batch is made
        in a background thread meanwhile (same variants: they depend on (seed, step, index) only)."""
        if not self.augment:
            return self.data.images[indices]
        pending = self._ahead.pop(self.step, None)
        if pending is not None:
            start = time.perf_counter()
            grey = pending.result()
            self.augment_wait_seconds += time.perf_counter() - start
        else:
            start = time.perf_counter()
            grey = self.batch_grey(indices, self.step)
            self.augment_wait_seconds += time.perf_counter() - start
        following = self.step + 1
        if self.config.augment_prefetch and following < self.total_steps:
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(1, thread_name_prefix="radz-augment")
            self._ahead = {following: self._pool.submit(self.batch_grey, self.batch_indices(following), following)}
        return grey

    def close(self) -> None:
        """Stop the augmentation thread (waits for a batch in progress)."""
        self._ahead = {}
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def micro_step(self, indices: np.ndarray, scale: float, grey: np.ndarray | None = None) -> dict[str, float]:
        model = self.model
        images = to_model_input(
            torch.from_numpy(self.batch_grey(indices) if grey is None else grey).to(self.device),
            model.config.input["mean"],
            model.config.input["std"],
        )
        reports = [self.data.reports[i] for i in indices]
        text = model.tokenize(reports, device=self.device)
        labels = torch.from_numpy(self.data.labels[indices]).to(self.device)
        with self.autocast():
            img, txt = self.ddp_model(images, **text)
            anchors = encode_anchors(model, self.classes, self.knowledge) if self.config.lam < 1 else None
        img.global_, img.local = self.dist.gather(img.global_), self.dist.gather(img.local)
        txt.global_, txt.local = self.dist.gather(txt.global_), self.dist.gather(txt.local)
        if self.dist.enabled:
            labels = self.dist.gather(labels)
            reports = self._gather_reports(reports)
        positives = same_text_mask(reports).to(self.device) if self.config.same_report_positives else None
        losses = self.loss_fn(img, txt, anchors, labels, positives)
        (losses["loss"] * scale).backward()
        return {k: float(v.detach()) for k, v in losses.items()}

    def _gather_reports(self, reports: list[str]) -> list[str]:
        gathered: list = [None] * self.dist.world
        torch.distributed.all_gather_object(gathered, reports)
        return [r for part in gathered for r in part]

    def train_step(self) -> dict[str, float]:
        indices = self.batch_indices(self.step)
        grey = self.step_grey(indices)
        chunks = np.array_split(np.arange(len(indices)), self.config.grad_accum)
        totals: dict[str, float] = {}
        for chunk in chunks:
            for key, value in self.micro_step(indices[chunk], 1.0 / len(chunks), grey[chunk]).items():
                totals[key] = totals.get(key, 0.0) + value / len(chunks)
        norm = torch.nn.utils.clip_grad_norm_(
            [p for p in self.model.parameters() if p.requires_grad], self.config.max_grad_norm
        )
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.step += 1
        totals["grad_norm"] = float(norm)
        totals["lr"] = self.scheduler.get_last_lr()[0]
        totals["augment_s"] = self.augment_seconds  # cumulative, this process: making augmented batches
        totals["augment_wait_s"] = self.augment_wait_seconds  # cumulative: the loop waiting for them
        return totals

    # -- the loop -------------------------------------------------------------------------------
    def save(self) -> Path:
        return save_checkpoint(
            self.out_dir / f"checkpoint-{self.step}",
            self.model,
            self.config.to_dict(),
            self.step,
            self.optimizer,
            self.scheduler,
        )

    def fit(self, progress: bool = True) -> Path:
        self.model.train()
        log_path = self.out_dir / "metrics.jsonl"
        if self.dist.main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "train_config.json").write_text(json.dumps(self.config.to_dict(), indent=2))
            counts = count_parameters(self.model)
            print(
                f"model {self.model.config.name}: {counts['total'] / 1e6:.2f}M parameters, "
                f"{counts['trainable'] / 1e6:.2f}M trainable; {len(self.data)} samples; "
                f"{self.total_steps} steps of {self.config.batch_size} on {self.device}; "
                f"augmentation {'on' if self.augment else 'off'}"
            )
        bar = None
        if progress and self.dist.main:
            from tqdm import tqdm

            bar = tqdm(total=self.total_steps, initial=self.step, desc="train", unit="step", dynamic_ncols=True)
        last = None
        start = time.perf_counter()
        done_at_start = self.step
        try:  # an interrupt between steps (radz train's Ctrl-C) still stops the prefetch thread
            while self.step < self.total_steps:
                metrics = self.train_step()
                elapsed = time.perf_counter() - start
                samples_per_s = (self.step - done_at_start) * self.config.batch_size / max(elapsed, 1e-9)
                metrics.update(step=self.step, samples_per_s=samples_per_s, elapsed_s=elapsed)
                if self.dist.main:
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(loss=f"{metrics['loss']:.3f}", samples_s=f"{samples_per_s:.1f}")
                    if self.step % self.config.log_every == 0 or self.step == self.total_steps:
                        with log_path.open("a") as handle:
                            handle.write(json.dumps(metrics) + "\n")
                    if (
                        self.config.save_every
                        and self.step % self.config.save_every == 0
                        and self.step < self.total_steps
                    ):
                        self.save()
        finally:
            self.close()
        if bar is not None:
            bar.close()
        if self.dist.main:
            last = self.save()
            final = self.out_dir / "final"
            if final.is_symlink() or final.exists():
                final.unlink()
            final.symlink_to(last.name)
        if self.dist.enabled:
            torch.distributed.barrier()
        return last if last is not None else self.out_dir / f"checkpoint-{self.step}"
