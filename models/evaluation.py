"""Evaluating a checkpoint on corpora: its own test splits, or any corpus/manifest the user names."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from emomon.models.checkpoint import Checkpoint
from emomon.config import SourceConfig
from emomon.models.dataset import FeatureBuilder, fixed_examples, load_sources
from emomon.models.features import FeatureStore
from emomon.models.metrics import confusion_table
from emomon.models.training import Evaluation, evaluate_examples

MODES = ("paired", "text-only", "speech-only")


@dataclass
class EvalReport:
    split: str
    results: dict[str, dict[str, Evaluation]]  # source -> mode -> evaluation

    def as_dict(self) -> dict:
        return {"split": self.split, "results": {s: {m: e.as_dict() for m, e in d.items()} for s, d in self.results.items()}}

    def render(self, confusion: bool = True) -> str:
        lines = []
        for source, modes in self.results.items():
            for mode, ev in modes.items():
                lines.append(f"{source:<12} {mode:<12} fused  {ev.fused.summary()}")
                for step, m in ev.steps.items():
                    lines.append(f"{'':<12} {'':<12} {step:<6} {m.summary()}")
                if confusion and mode == "paired":
                    lines.append(confusion_table(ev.fused))
        return "\n".join(lines)


def evaluate_checkpoint(ckpt: Checkpoint, sources: tuple[SourceConfig, ...] | None = None, split: str = "test",
                        modes: tuple[str, ...] = MODES, store: FeatureStore | None = None, device: str = "cpu") -> EvalReport:
    """Metrics of the fused output and each step, per source and per modality mode.

    ``sources`` defaults to the corpora the checkpoint was trained with (so ``split="test"`` reproduces its
    held-out test figures); a source given here with no speakers named is evaluated whole when ``split="all"``.
    """
    cfg = ckpt.config
    if sources is not None:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, sources=tuple(sources)))
    wanted = ("train", "val", "test") if split == "all" else (split,)
    srcs = load_sources(cfg, splits=wanted)
    if split == "all":
        for s in srcs:
            s.items = [dataclasses.replace(it, split="test") for it in s.items]
        split = "test"
    builder = FeatureBuilder(cfg, store, device=device, text_layers=ckpt.text_layers)
    bank = builder.build(srcs, train=False, word_times=bool(getattr(ckpt.model, "uses_word_times", False)))
    bank.frame_rate = builder.speech_encoder.frame_rate
    got = builder.fingerprints()
    if got["text"].split(":")[:2] != ckpt.fingerprints["text"].split(":")[:2] or got["speech"].split(":")[0] != ckpt.fingerprints["speech"].split(":")[0]:
        from emomon.errors import ModelError

        raise ModelError(f"the checkpoint was trained on encoders {ckpt.fingerprints}, but {got} are configured")
    model = ckpt.model.to(device)
    results: dict[str, dict[str, Evaluation]] = {}
    for mode in modes:
        for name, exs in fixed_examples(cfg, srcs, bank, split, mode).items():
            results.setdefault(name, {})[mode] = evaluate_examples(model, exs, bank, cfg.classes)
    return EvalReport(split, results)
