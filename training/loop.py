"""Training and evaluation loops (HyFusER Table 3 defaults: Adam 1e-4, batch 32, <= 30 epochs, early stopping with
patience 3 on validation accuracy, best checkpoint kept)."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from emomon.config import EmomonConfig, config_to_dict
from emomon.errors import ConfigError, ModelError
from emomon.models.base import align_length
from emomon.models.checkpoint import load_checkpoint
from emomon.models.frames import autocast, pick_device
from emomon.models.encoders.tuned_text import TUNED_TEXT_FILE
from emomon.models.ensemble import EnsembleModel
from emomon.models.registry import build_model, model_class
from emomon.models.scaler import JointStandardScaler
from emomon.models.speaker_baseline import fit_population, random_offsets, stream_offsets
from emomon.progress import progress_bar
from emomon.training.batching import batches, branch_labelled, collate
from emomon.training.feature_bank import FeatureBank
from emomon.training.feature_builder import FeatureBuilder
from emomon.training.features import FeatureStore
from emomon.training.metrics import Metrics, classification_metrics
from emomon.training.pairing import Example, ExampleSampler
from emomon.training.resume import LoopState, clear_training_state, load_training_state, save_training_state
from emomon.training.saving import save_checkpoint
from emomon.training.sources import load_sources
from emomon.training.text_tuning import adopt_tuned_text, load_tuning_head, tune_text_encoder

logger = logging.getLogger("emomon")


@dataclass
class Evaluation:
    """Metrics of the fused output and of each step, on one example set."""

    fused: Metrics
    steps: dict[str, Metrics] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"fused": self.fused.as_dict(), "steps": {k: v.as_dict() for k, v in self.steps.items()}}


def _frame_rate(model, bank: FeatureBank) -> float | None:
    """The speech frame rate when the architecture reads word timings (else None: no timing extras)."""
    return getattr(bank, "frame_rate", None) if getattr(model, "uses_word_times", False) else None


def predict_examples(model, examples: list[Example], bank: FeatureBank, batch_size: int = 128) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Fused and per-step probabilities (n, classes) for a list of examples."""
    model.eval()
    fused, steps = [], {}
    rate = _frame_rate(model, bank)
    if getattr(model, "speaker_baseline", None) is not None:
        stream_offsets(bank, [e.speech for e in examples if e.speech], model.speaker_baseline)
    with torch.inference_mode():
        for batch in batches(examples, batch_size):
            text, speech, _, extras = collate(batch, bank, model.text_dim, model.speech_dim, rate)
            out = model(model.prepare(text, speech, extras))
            fused.append(out.probs.float().cpu().numpy())
            for k, v in out.steps.items():
                steps.setdefault(k, []).append(v.float().cpu().numpy())
    n_classes = model.n_classes
    cat = lambda xs: np.concatenate(xs) if xs else np.zeros((0, n_classes))  # noqa: E731
    return cat(fused), {k: cat(v) for k, v in steps.items()}


def evaluate_examples(model, examples: list[Example], bank: FeatureBank, classes) -> Evaluation:
    probs, steps = predict_examples(model, examples, bank)
    y = [e.label for e in examples]
    return Evaluation(classification_metrics(y, probs.argmax(1), classes),
                      {k: classification_metrics(y, p.argmax(1), classes) for k, p in steps.items()})


def fit_scaler(bank: FeatureBank, examples: list[Example], model, limit: int = 4000, seed: int = 0) -> JointStandardScaler:
    """Joint statistics over real text tokens and aligned speech frames of (a sample of) the training examples."""
    rng = np.random.default_rng(seed)
    speech_keys = sorted({e.speech for e in examples if e.speech})
    text_keys = sorted({e.text for e in examples if e.text})
    speech_keys = [speech_keys[i] for i in rng.permutation(len(speech_keys))[:limit]]
    text_keys = [text_keys[i] for i in rng.permutation(len(text_keys))[:limit]]

    def speech_frames():
        for k in speech_keys:
            x = torch.from_numpy(np.asarray(bank.speech_frames(k), dtype=np.float32))
            yield (align_length(x, model.cfg.speech_len) if model.aligns_speech else x).numpy()

    def text_frames():
        for k in text_keys:
            yield bank.text[k][: model.cfg.text_len].astype(np.float32)

    return JointStandardScaler.fit(text_frames(), speech_frames())


@dataclass
class PreparedData:
    """Corpora with their cached features: built once, shared by several training runs (e.g. bench/compare.py)."""

    sources: list
    bank: FeatureBank
    fingerprints: dict[str, str]
    text_dim: int
    speech_dim: int
    text_layers: Path | None = None  # the tuned text encoder layers (encoders.text.tune_layers > 0)


def prepare_data(cfg: EmomonConfig, *, store: FeatureStore | None = None, device: str = "cpu", word_times: bool | None = None,
                 work_dir: str | Path | None = None) -> PreparedData:
    """Read the preset's corpora, tune the text encoder's top layers when the preset asks (a copy goes to
    ``work_dir`` when given), and compute (or load from the cache) every feature training needs."""
    sources = load_sources(cfg)
    for s in sources:
        counts = {sp: sum(1 for it in s.items if it.split == sp) for sp in ("train", "val", "test")}
        logger.info("source %s: %d train, %d val, %d test items", s.name, counts["train"], counts["val"], counts["test"])
    text_layers = None
    if cfg.encoders.text.tune_layers:
        out = Path(work_dir) / TUNED_TEXT_FILE if work_dir is not None else None
        cache = store.root.parent / "tuned" if store else None
        if cfg.encoders.text.tuned_from:
            text_layers = adopt_tuned_text(cfg, out, cache_dir=cache)
        else:
            text_layers = tune_text_encoder(cfg, sources, out, device=device, cache_dir=cache)
    builder = FeatureBuilder(cfg, store, device=device, text_layers=text_layers)
    if word_times is None:
        word_times = bool(getattr(model_class(cfg.model.arch), "uses_word_times", False))
    bank = builder.build(sources, train=True, word_times=word_times)
    bank.frame_rate = builder.speech_encoder.frame_rate
    return PreparedData(sources, bank, builder.fingerprints(), builder.text_encoder.dim, builder.speech_encoder.dim, text_layers)


def _draw_offsets(bank: FeatureBank, examples: list[Example], pool: list[str], model, rng: np.random.Generator) -> None:
    """Fresh random speaker baselines for an epoch's training examples (no-op without speaker baseline)."""
    if model.speaker_baseline is None:
        return
    random_offsets(bank, [e.speech for e in examples if e.speech], pool, model.speaker_baseline, rng)


def _weights_copy(model) -> dict:
    """A CPU copy of the model's weights as they are now (an epoch kept for a soup)."""
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _mean_state(states: list[dict]) -> dict:
    """Element-wise mean of the floating-point tensors of several state dicts; others (counters) from the first."""
    return {k: torch.stack([s[k].float() for s in states]).mean(0).to(v.dtype) if v.is_floating_point() else v
            for k, v in states[0].items()}


def greedy_soup(model, ranked: list[tuple[float, int, dict]], score) -> tuple[list[int], float]:
    """Greedy weight soup (Wortsman et al. 2022): ``ranked`` holds (validation accuracy, epoch, weights), best
    first. Each epoch's weights join the average, in that order, only if ``score(model)`` (validation accuracy) of
    the averaged weights does not fall. Why: the late epochs of one run usually lie in one basin, and their average
    often generalises better than any one of them, at no cost at inference. Leaves ``model`` holding the soup;
    returns its epochs and validation accuracy."""
    best_val, best_epoch, best_state = ranked[0]
    kept, kept_val = [(best_epoch, best_state)], best_val
    for val, epoch, state in ranked[1:]:
        model.load_state_dict(_mean_state([st for _, st in kept] + [state]))
        trial = score(model)
        joined = trial >= kept_val
        logger.info("soup: + epoch %d (alone %.4f) -> val acc %.4f%s", epoch, val, trial, "  kept" if joined else "")
        if joined:
            kept.append((epoch, state))
            kept_val = trial
    model.load_state_dict(_mean_state([st for _, st in kept]))
    return [e for e, _ in kept], kept_val


def init_from_checkpoint(model, name: str) -> int:
    """Copy into ``model`` every weight of checkpoint ``name`` whose name and shape match (``train.init_from``);
    the scaler and speaker baseline stay those fitted on this run's data. Returns the number of tensors copied."""
    loaded = load_checkpoint(name).model
    if isinstance(loaded, EnsembleModel):
        raise ModelError(f"train.init_from: {name} is an ensemble; start from one of its members")
    source = loaded.state_dict()
    own = model.state_dict()
    copied = {k: v for k, v in source.items() if k in own and own[k].shape == v.shape}
    if not copied:
        raise ModelError(f"train.init_from: no weight of {name} fits this model ({type(model).__name__})")
    model.load_state_dict(copied, strict=False)
    logger.info("init_from: %d of %d weight tensors from %s", len(copied), len(own), name)
    return len(copied)


@dataclass
class TrainResult:
    checkpoint: Path
    best_epoch: int
    best_val: float | None  # of the best epoch, or of the soup when one was kept; None: keep = "last" without validation
    history: list[dict]
    test: dict[str, dict]
    soup_epochs: list[int] = field(default_factory=list)  # the epochs averaged into the kept checkpoint (train.soup)



def train(cfg: EmomonConfig, out_dir: str | Path, *, store: FeatureStore | None = None, device: str | None = None,
          data: PreparedData | None = None, evaluate_test: bool = True, resume: bool = False) -> TrainResult:
    """Build features (or use ``data``), train ``cfg.model.arch`` with early stopping, keep the best checkpoint
    (``train.keep = "last"``: exactly ``max_epochs``, keep the last),
    evaluate on the test splits (``evaluate_test=False`` leaves that to the caller, e.g. a benchmark with its own).
    After every epoch the loop's state is kept in ``out_dir`` (``models/resume.py``); ``resume=True`` continues an
    interrupted run from it."""
    out_dir = Path(out_dir)
    dev = pick_device(device or cfg.train.device)
    torch.manual_seed(cfg.train.seed)
    rng = np.random.default_rng(cfg.train.seed)
    data = data or prepare_data(cfg, store=store, device=str(dev), work_dir=out_dir)
    run = _TrainingRun(cfg, out_dir, dev, rng, data)
    loop = run.start_loop(resume)
    run.run_epochs(loop)
    soup = run.choose_weights(loop)
    best_model = run.kept_model(loop, soup)
    test = run.test_metrics(best_model) if evaluate_test else {}
    return run.save_result(loop, soup, best_model, test)


def _mean_or_none(accs: dict[str, float]) -> float | None:  # None: no validation data (train.keep = "last")
    return float(np.mean(list(accs.values()))) if accs else None


def _is_soup(soup: dict | None) -> bool:
    """Whether the kept weights average several epochs (else they are one epoch's)."""
    return soup is not None and len(soup["epochs"]) > 1


class _TrainingRun:
    """The steps of one :func:`train` and what they share: the examples, the model, its optimiser and the random
    generator. Built, it holds the model ready for its first epoch."""

    def __init__(self, cfg: EmomonConfig, out_dir: Path, dev: torch.device, rng: np.random.Generator, data: PreparedData):
        self.cfg, self.out_dir, self.dev, self.rng, self.data = cfg, out_dir, dev, rng, data
        self.bank = data.bank
        self.sampler = ExampleSampler(cfg, data.sources, data.bank)
        self.val_sets = self.sampler.fixed("val")
        self.keep_last = cfg.train.keep == "last"
        if not self.val_sets and not self.keep_last:
            raise ConfigError("no validation data: name val_speakers for a source, use corpora with a dev split, "
                              "or set train.keep = \"last\" to train a fixed number of epochs")
        self.model, self.first_epoch, self.baseline_pool = self._build_model()
        self.opt = self._optimiser()
        self.n_params = sum(p.numel() for p in self.model.parameters())
        logger.info("model %s: %d parameters, device %s", cfg.model.arch, self.n_params, dev)
        # fp16 autocast (CUDA without bf16) needs loss scaling; bf16 and CPU do not.
        self.grad_scaler = torch.amp.GradScaler("cuda", enabled=dev.type == "cuda" and not torch.cuda.is_bf16_supported())

    # ------------------------------------------------------------------------------------------- the model
    def _build_model(self):
        """The model with its speaker baseline, scaler and starting weights, the first epoch's examples (which the
        scaler is fitted on) and the speech keys random speaker baselines are drawn from."""
        cfg, bank = self.cfg, self.bank
        model = build_model(cfg, self.data.text_dim, self.data.speech_dim, len(cfg.classes)).to(self.dev)
        first_epoch = self.sampler.epoch(self.rng, cfg.train.epoch_size)
        baseline_pool: list[str] = []
        if cfg.model.speaker_baseline > 0:
            baseline_pool = sorted({k for keys in self.sampler.speech_by_label.values() for k in keys} | set(bank.synth_key.values()))
            model.speaker_baseline = fit_population(bank, baseline_pool, cfg.model.speaker_baseline)
            _draw_offsets(bank, first_epoch, baseline_pool, model, self.rng)
        model.set_scaler(fit_scaler(bank, first_epoch, model, seed=cfg.train.seed))
        if cfg.train.init_from:
            init_from_checkpoint(model, cfg.train.init_from)
        if cfg.train.text_branch_from_tuning:  # after init_from, whose text branch it replaces
            model.branches.set_text_head(*load_tuning_head(self.data.text_layers, cfg.classes), model.text_mean, model.text_std)
            logger.info("text branch: the text tuning's own head (frozen)")
        return model, first_epoch, baseline_pool

    def _optimiser(self):
        params = [p for p in self.model.parameters() if p.requires_grad]
        if self.cfg.train.weight_decay:
            return torch.optim.AdamW(params, lr=self.cfg.train.lr, weight_decay=self.cfg.train.weight_decay)
        return torch.optim.Adam(params, lr=self.cfg.train.lr)

    def validate(self, m) -> dict[str, float]:
        return {name: evaluate_examples(m, exs, self.bank, self.cfg.classes).fused.accuracy for name, exs in self.val_sets.items()}

    # ------------------------------------------------------------------------------------------- the epochs
    def start_loop(self, resume: bool) -> LoopState:
        """The loop's state: restored from ``out_dir`` (into the model, optimiser, loss scaler and generator) when
        resuming, else a fresh one. loop.ranked: the train.soup best epochs' weights, best first; loop.averaged: the
        train.average_epochs weights."""
        if resume:
            return load_training_state(self.out_dir, self.cfg, self.model, self.opt, self.grad_scaler, self.rng)
        # a fresh start: an earlier run's state there must not be resumed into this one
        clear_training_state(self.out_dir)
        return LoopState()

    def run_epochs(self, loop: LoopState) -> None:
        """Epochs from ``loop.epochs_done`` to ``train.max_epochs`` or early stopping; the loop's state is saved after
        each one but the last."""
        cfg = self.cfg
        for epoch in range(loop.epochs_done, cfg.train.max_epochs):
            examples = self._epoch_examples(epoch)
            t0 = time.time()
            losses = self._train_epoch(epoch, examples)
            if self._end_epoch(loop, epoch, losses, t0):
                break
            if epoch + 1 < cfg.train.max_epochs:
                loop.epochs_done = epoch + 1
                save_training_state(self.out_dir, cfg, loop, self.model, self.opt, self.grad_scaler, self.rng)

    def _epoch_examples(self, epoch: int) -> list[Example]:
        """An epoch's examples by the pairing recipe, with fresh random speaker baselines (the first epoch's were
        drawn with the model)."""
        if epoch > 0:
            examples = self.sampler.epoch(self.rng, self.cfg.train.epoch_size)
            _draw_offsets(self.bank, examples, self.baseline_pool, self.model, self.rng)
        else:
            examples = self.first_epoch
        return examples

    def _train_epoch(self, epoch: int, examples: list[Example]) -> list[float]:
        """One pass of the optimiser over ``examples``; returns each batch's loss."""
        cfg, model, dev = self.cfg, self.model, self.dev
        model.train()
        losses = []
        with progress_bar(f"epoch {epoch + 1}/{cfg.train.max_epochs}", len(examples)) as advance:
            rate = _frame_rate(model, self.bank)
            for batch in batches(examples, cfg.train.batch_size):
                text, speech, labels, extras = collate(batch, self.bank, self.data.text_dim, self.data.speech_dim, rate)
                with autocast(dev):
                    out = model(model.prepare(text, speech, extras))
                    mask = branch_labelled(batch) if cfg.train.branch_label_mask else None
                    loss = model.loss(out, labels.to(dev), cfg.train.label_smoothing, mask)
                self.opt.zero_grad(set_to_none=True)
                self.grad_scaler.scale(loss).backward()
                self.grad_scaler.step(self.opt)
                self.grad_scaler.update()
                losses.append(float(loss.detach()))
                advance(len(batch))
        return losses

    def _end_epoch(self, loop: LoopState, epoch: int, losses: list[float], t0: float) -> bool:
        """Validate the epoch, record it, keep its weights as the recipe says; True: stop early."""
        cfg = self.cfg
        val = self.validate(self.model)
        val_acc = _mean_or_none(val)
        if epoch + 1 in cfg.train.average_epochs:
            loop.averaged.append(_weights_copy(self.model))
        if cfg.train.soup > 1:
            loop.ranked.append((val_acc, epoch + 1, _weights_copy(self.model)))
            loop.ranked = sorted(loop.ranked, key=lambda r: -r[0])[: cfg.train.soup]
        record = {"epoch": epoch + 1, "loss": float(np.mean(losses)), "val_accuracy": val_acc, "val": val, "seconds": round(time.time() - t0, 1)}
        loop.history.append(record)
        improved = not self.keep_last and val_acc > loop.best
        shown = "none" if val_acc is None else f"{val_acc:.4f} ({', '.join(f'{k} {v:.3f}' for k, v in val.items())})"
        logger.info("epoch %d: loss %.4f  val acc %s%s", epoch + 1, record["loss"], shown, "  * best" if improved else "")
        if self.keep_last:  # no selection: the model in memory after the last epoch is what is kept (saved once, below)
            loop.best, loop.best_epoch = val_acc, epoch + 1
        elif improved:
            loop.best, loop.best_epoch, loop.bad = val_acc, epoch + 1, 0
            save_checkpoint(self.out_dir, self.model, cfg, self.data.fingerprints,
                            {"training": {"epoch": epoch + 1, "val_accuracy": val_acc, "val": val}}, text_layers=self.data.text_layers)
        else:
            loop.bad += 1
            if loop.bad >= cfg.train.patience:
                logger.info("early stopping: no better validation accuracy for %d epochs", loop.bad)
                return True
        return False

    # ------------------------------------------------------------------------------------------- the result
    def choose_weights(self, loop: LoopState) -> dict | None:
        """Load a soup or an epoch average into the model when the recipe keeps one; returns its epochs and validation
        accuracy (None: neither)."""
        soup = None
        if len(loop.ranked) > 1:  # train.soup (keep = "best"): chosen on validation
            epochs, soup_val = greedy_soup(self.model, loop.ranked, lambda m: _mean_or_none(self.validate(m)))
            soup = {"epochs": epochs, "val_accuracy": soup_val}
            if len(epochs) > 1:
                logger.info("soup of epochs %s: val acc %.4f (best epoch alone %.4f)", epochs, soup_val, loop.best)
        elif loop.averaged:  # train.average_epochs (keep = "last"): fixed in advance
            self.model.load_state_dict(_mean_state(loop.averaged))
            soup = {"epochs": sorted(self.cfg.train.average_epochs), "val_accuracy": _mean_or_none(self.validate(self.model))}
            logger.info("kept the mean of epochs %s (train.average_epochs)", soup["epochs"])
        loop.ranked, loop.averaged = [], []  # their weight copies are no longer needed
        return soup

    def kept_model(self, loop: LoopState, soup: dict | None):
        """The model to keep: the soup, the last epoch's (keep = "last"), or the best epoch's checkpoint."""
        if _is_soup(soup):  # the model holds the soup; it is saved once, with the metadata, below
            loop.best = soup["val_accuracy"]
            return self.model
        if self.keep_last:
            return self.model
        return load_checkpoint(self.out_dir, device=self.dev).model

    def test_metrics(self, model) -> dict[str, dict]:
        """Metrics of ``model`` on each source's test split, in every modality mode."""
        test = {}
        for mode in ("paired", "text-only", "speech-only"):
            for name, exs in self.sampler.fixed("test", mode).items():
                test.setdefault(name, {})[mode] = evaluate_examples(model, exs, self.bank, self.cfg.classes).as_dict()
        return test

    def save_result(self, loop: LoopState, soup: dict | None, best_model, test: dict[str, dict]) -> TrainResult:
        """Save the kept model with the training's record and ``metrics.json``, and remove the resume state."""
        cfg, sources = self.cfg, self.data.sources
        metadata = {
            "training": {"best_epoch": loop.best_epoch, "val_accuracy": loop.best, "soup": soup, "history": loop.history, "parameters": self.n_params,
                         "sources": [{"name": s.name, "corpus": s.config.corpus, "items": len(s.items)} for s in sources]},
            "test": test,
        }
        save_checkpoint(self.out_dir, best_model, cfg, self.data.fingerprints, metadata, text_layers=self.data.text_layers)
        (self.out_dir / "metrics.json").write_text(json.dumps({"config": config_to_dict(cfg), **metadata}, indent=1) + "\n")
        clear_training_state(self.out_dir)
        return TrainResult(self.out_dir, loop.best_epoch, loop.best, loop.history, test, soup["epochs"] if _is_soup(soup) else [])
