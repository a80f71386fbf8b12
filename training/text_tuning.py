"""Fine-tuning the top layers of the text encoder on the preset's labelled sentences, before feature extraction.

Why: a sentence-similarity MiniLM puts "I'm fine" and "I'm furious" close together; its token states carry emotion
only weakly (a linear probe reaches 0.56 weighted F1 on MELD test). Tuning its top ``encoders.text.tune_layers``
layers with a mean-pool + linear head on labelled sentences (``tune_corpora``) makes the states the fusion model
reads emotion-bearing: one epoch of MELD train gives 0.584 on MELD test with the top 2 layers and 0.597 with all 6
(adding as many GoEmotions Reddit comments gave 0.569, so the en-tiny preset tunes on MELD, the corpus closest to
conversation). The embeddings and tokenizer stay exactly those of the package, so only the tuned layers ship (fp16,
1.8 M parameters per MiniLM layer) beside the checkpoint.

The tuned layers are a file (``text_encoder.safetensors``): training writes it into the output directory, the text
encoder loads it over the packaged model, and its SHA-256 is part of the encoder's fingerprint (so cached features
of the frozen encoder are never mixed with tuned ones) and is checked when a checkpoint is loaded. The tuning's own
head is kept beside the layers in the cache (``x.head.safetensors``, naming the SHA-256 of its layers and the
classes): with ``train.text_branch_from_tuning`` it becomes the fused model's text branch, frozen.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import save
from torch import nn

from emomon.cache import default_cache_root
from emomon.config import EmomonConfig
from emomon.errors import ConfigError, InputError, ModelError
from emomon.files import atomic_write
from emomon.models.checkpoint import file_sha256, load_checkpoint
from emomon.models.encoders import build_text_encoder
from emomon.models.encoders.text import text_fingerprint
from emomon.models.encoders.tuned_text import tuned_parameter_names
from emomon.models.ensemble import EnsembleModel
from emomon.progress import progress_bar
from emomon.training.metrics import classification_metrics

logger = logging.getLogger("emomon")

#: Sentences per optimiser step of the tuning.
TUNE_BATCH = 32


def _tuning_sources(cfg: EmomonConfig, sources) -> list:
    wanted = cfg.encoders.text.tune_corpora
    return [s for s in sources if not s.has_audio and (not wanted or s.config.corpus in wanted)]


def _labelled_sentences(cfg: EmomonConfig, sources, split: str) -> dict[str, list[tuple[str, int]]]:
    """(sentence, class index) of each tuning corpus's ``split``, by source name."""
    index = {c: i for i, c in enumerate(cfg.classes)}
    return {s.name: [(it.text, index[it.label]) for it in s.items if it.split == split and it.text and it.label in index]
            for s in _tuning_sources(cfg, sources)}


def tune_text_encoder(cfg: EmomonConfig, sources, out_path: Path | None = None, *, device: str = "cpu",
                      cache_dir: Path | None = None) -> Path:
    """Fine-tune the top layers on the tuning corpora's train splits; keep the epoch with the best validation
    weighted F1. The tuned layers (fp16) and that epoch's head (:func:`tuning_head_file`) are kept in ``cache_dir``
    under the identity of encoder, data and settings, so a repeated run takes them from there; returns the layers'
    file, or a copy at ``out_path`` (with the head beside it) when one is given."""
    t = cfg.encoders.text
    by_source = _labelled_sentences(cfg, sources, "train")
    val = [x for xs in _labelled_sentences(cfg, sources, "val").values() for x in xs]
    if not any(by_source.values()):
        raise InputError("encoders.text.tune_layers is set but no text-only corpus (of tune_corpora) has labelled training sentences")
    weights = {s.name: s.config.weight for s in _tuning_sources(cfg, sources)}
    seed = t.tune_seed if t.tune_seed >= 0 else cfg.train.seed
    settings = (text_fingerprint(t.name, t.layer, t.max_tokens), t.tune_layers, t.tune_epochs, t.tune_lr,
                t.tune_epoch_size, seed, sorted(weights.items()), sorted(by_source.items()))
    if t.tune_schedule != "constant":  # (the constant schedule keeps the identity it had before schedules existed)
        settings += (t.tune_schedule,)
    ident = hashlib.sha256(repr(settings).encode()).hexdigest()[:16]
    cached = (Path(cache_dir) if cache_dir else default_cache_root().parent / "tuned") / f"text-{ident}.safetensors"

    def result() -> Path:
        if out_path is None:
            return cached
        Path(out_path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cached, out_path)
        if tuning_head_file(cached).exists():
            shutil.copyfile(tuning_head_file(cached), tuning_head_file(Path(out_path)))
        return Path(out_path)

    # Tuned layers cached before the head was kept are used as they are, unless the preset needs the head: tuning
    # again is not bit-reproducible on CPU threads, and new layers would invalidate every cached text feature.
    if cached.exists() and (tuning_head_file(cached).exists() or not cfg.train.text_branch_from_tuning):
        logger.info("text encoder: tuned layers taken from %s", cached)
        return result()

    base = build_text_encoder(dataclasses.replace(t, tune_layers=0), device)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model, tok = base.model, base.tokenizer
    names = set(tuned_parameter_names(model, t.tune_layers))
    for name, p in model.named_parameters():
        p.requires_grad_(name in names)
    head = nn.Sequential(nn.Dropout(0.1), nn.Linear(base.dim, len(cfg.classes))).to(base.device)
    params = [p for n, p in model.named_parameters() if n in names] + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=t.tune_lr, weight_decay=0.01)
    steps_per_epoch = -(-sum(_epoch_counts(by_source, weights, t.tune_epoch_size).values()) // TUNE_BATCH)
    schedule = learning_rate_schedule(opt, t.tune_schedule, t.tune_epochs * steps_per_epoch)

    def pooled(texts: list[str]) -> torch.Tensor:
        b = tok(texts, padding=True, truncation=True, max_length=t.max_tokens, return_tensors="pt").to(base.device)
        h = model(**b).last_hidden_state
        m = b["attention_mask"][..., None].to(h.dtype)
        return (h * m).sum(1) / m.sum(1)

    def evaluate() -> float:
        if not val:
            return 0.0
        model.eval()
        head.eval()
        preds = []
        with torch.inference_mode():
            for i in range(0, len(val), 128):
                preds.append(head(pooled([s for s, _ in val[i : i + 128]])).argmax(-1).cpu().numpy())
        return classification_metrics([y for _, y in val], np.concatenate(preds), cfg.classes).weighted_f1

    best, best_state, best_head = -1.0, None, None
    for epoch in range(t.tune_epochs):
        data = _draw(by_source, weights, t.tune_epoch_size, rng)
        model.train()
        head.train()
        t0 = time.time()
        with progress_bar(f"tuning text encoder, epoch {epoch + 1}/{t.tune_epochs}", len(data)) as advance:
            for i in range(0, len(data), TUNE_BATCH):
                batch = data[i : i + TUNE_BATCH]
                loss = F.cross_entropy(head(pooled([s for s, _ in batch])), torch.tensor([y for _, y in batch], device=base.device),
                                       label_smoothing=cfg.train.label_smoothing)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                schedule.step()
                advance(len(batch))
        score = evaluate()
        logger.info("text encoder epoch %d: validation weighted F1 %.4f (%.0f s)%s", epoch + 1, score, time.time() - t0,
                    "  * best" if score > best else "")
        if score > best:
            best = score
            best_state = {n: p.detach().to("cpu", torch.float16).contiguous() for n, p in model.named_parameters() if n in names}
            best_head = {"weight": head[1].weight.detach().to("cpu", torch.float32).contiguous(),
                         "bias": head[1].bias.detach().to("cpu", torch.float32).contiguous()}
    blob = save(best_state, metadata={"format": "emomon-tuned-text-layers", "base": base.fingerprint, "val_weighted_f1": f"{best:.4f}"})
    head_blob = save(best_head, metadata={"format": "emomon-text-tuning-head", "layers_sha256": hashlib.sha256(blob).hexdigest(),
                                          "classes": ",".join(cfg.classes), "val_weighted_f1": f"{best:.4f}"})
    cached.parent.mkdir(parents=True, exist_ok=True)
    for path, data in ((tuning_head_file(cached), head_blob), (cached, blob)):  # the layers last: they mark the pair done
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    return result()


def tuning_head_file(layers: Path) -> Path:
    """Where the tuning's own classifier head is kept beside tuned layers ``x.safetensors``: ``x.head.safetensors``."""
    layers = Path(layers)
    return layers.with_name(layers.name.removesuffix(".safetensors") + ".head.safetensors")


def load_tuning_head(layers: Path, classes) -> tuple[torch.Tensor, torch.Tensor]:
    """The tuning head (weight (classes, dim), bias (classes,)) that was trained with the tuned layers ``layers``
    (a mean-pool linear softmax over the encoder's raw token states). Errors are one-line ModelErrors: a missing
    file, one that is unreadable, or one that belongs to other layers or other classes."""
    path = tuning_head_file(layers)
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
            weight, bias = f.get_tensor("weight").float(), f.get_tensor("bias").float()
    except FileNotFoundError:
        raise ModelError(f"the text tuning's head {path} is missing (train.text_branch_from_tuning needs it; tune again)") from None
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"{path} is not a readable text tuning head ({exc})") from None
    if meta.get("layers_sha256") != file_sha256(Path(layers)):
        raise ModelError(f"{path} was not trained with the tuned layers {layers}")
    if meta.get("classes") != ",".join(classes) or weight.ndim != 2 or weight.shape[0] != len(classes) or bias.shape != (len(classes),):
        raise ModelError(f"{path} is a head for classes {meta.get('classes')!r}, not {','.join(classes)!r}")
    if not (torch.isfinite(weight).all() and torch.isfinite(bias).all()):
        raise ModelError(f"{path} holds NaN or infinite values")
    return weight, bias


def adopt_tuned_text(cfg: EmomonConfig, out_path: Path | None = None, *, cache_dir: Path | None = None) -> Path:
    """The tuned layers of the checkpoint ``encoders.text.tuned_from`` instead of a tuning of their own, so that a new
    training reads the very text encoder of that checkpoint (tuning again is not bit-reproducible on CPU threads) and
    can join its ensemble. With ``train.text_branch_from_tuning`` the tuning's head is recovered too: the checkpoint's
    (first member's) text branch is that head carried into its scaled space, ``W' = W * std``, ``b' = b + W mean``
    (:meth:`~emomon.models.branches.BranchHeads.set_text_head`), so ``W = W' / std`` and ``b = b' - W mean``. The
    layers (with the head beside them, as :func:`tuning_head_file` names it) are written to ``out_path``, or to
    ``cache_dir``; returns the layers' path. Errors are one-line ConfigErrors or ModelErrors."""
    source = cfg.encoders.text.tuned_from
    ckpt = load_checkpoint(source)
    own, theirs = cfg.encoders.text, ckpt.config.encoders.text
    if ckpt.text_layers is None:
        raise ConfigError(f"encoders.text.tuned_from: {source} has no tuned text layers to take")
    for key in ("name", "layer", "max_tokens", "tune_layers"):
        if getattr(own, key) != getattr(theirs, key):
            raise ConfigError(f"encoders.text.tuned_from: {source} has encoders.text.{key} = {getattr(theirs, key)!r}, "
                              f"this preset {getattr(own, key)!r}")
    blob = ckpt.text_layers.read_bytes()
    layers_sha = hashlib.sha256(blob).hexdigest()
    head_blob = None
    if cfg.train.text_branch_from_tuning:
        first = ckpt.model.members[0] if isinstance(ckpt.model, EnsembleModel) else ckpt.model
        branches = getattr(first, "branches", None)
        if branches is None or not ckpt.config.train.text_branch_from_tuning:
            raise ConfigError(f"encoders.text.tuned_from: {source}'s text branch is not its text tuning's head "
                              "(it was not trained with train.text_branch_from_tuning), so there is no head to take")
        if ckpt.classes != cfg.classes:
            raise ConfigError(f"encoders.text.tuned_from: {source} has classes {','.join(ckpt.classes)}, this preset {','.join(cfg.classes)}")
        linear = branches.text_head[1]
        with torch.no_grad():
            weight = (linear.weight.float() / first.text_std.float()[None]).cpu()
            bias = (linear.bias.float() - weight @ first.text_mean.float().cpu()).cpu()
        head_blob = save({"weight": weight.contiguous(), "bias": bias.contiguous()},
                         metadata={"format": "emomon-text-tuning-head", "layers_sha256": layers_sha,
                                   "classes": ",".join(cfg.classes), "recovered_from": str(ckpt.path)})
    if out_path is None:
        out_path = (Path(cache_dir) if cache_dir else default_cache_root().parent / "tuned") / f"text-from-{layers_sha[:16]}.safetensors"
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if head_blob is not None:
        atomic_write(tuning_head_file(out_path), head_blob)
    atomic_write(out_path, blob)
    logger.info("text encoder: tuned layers%s taken from %s", " and the tuning's head" if head_blob else "", ckpt.path)
    return out_path


def learning_rate_schedule(opt, kind: str, total_steps: int, warmup: float = 0.06):
    """``constant``, or ``linear``: a linear warm-up over the first ``warmup`` of the steps (multiplied by the decay
    line, so it peaks at 1.0 at the warm-up's end), then a linear decay to 0 at ``total_steps``. That is the usual
    recipe for fine-tuning BERT-like encoders; on MELD it gave MiniLM's tuning head dev / test weighted F1
    0.586 / 0.613 after 4 epochs at 5e-5, against 0.566 / 0.597 at a constant 3e-5."""
    if kind == "constant":
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    warm = max(1, int(warmup * total_steps))
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: min(1.0, (step + 1) / warm) * max(0.0, (total_steps - step) / max(1, total_steps - warm)))


def _epoch_counts(by_source: dict[str, list], weights: dict[str, float], size: int) -> dict[str, int]:
    """Sentences of each source in one epoch: all of them (``size`` = 0), or ``size`` split by source weight."""
    if size == 0:
        return {name: len(xs) for name, xs in by_source.items()}
    total = sum(weights[n] for n in by_source if by_source[n]) or 1.0
    return {name: max(1, int(round(size * weights[name] / total))) for name, xs in by_source.items() if xs}


def _draw(by_source: dict[str, list], weights: dict[str, float], size: int, rng: np.random.Generator) -> list:
    """One epoch (:func:`_epoch_counts` sentences of each source), shuffled."""
    if size == 0:
        data = [x for xs in by_source.values() for x in xs]
    else:
        data = []
        for name, n in _epoch_counts(by_source, weights, size).items():
            xs = by_source[name]
            data += [xs[i] for i in rng.choice(len(xs), n, replace=n > len(xs))]
    return [data[i] for i in rng.permutation(len(data))]
