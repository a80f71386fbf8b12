"""Corpus adapters: each reads a corpus in its documented (distributed) layout into :class:`Item` lists.

The readers never copy or convert audio; they only list files, labels, speakers and transcripts. Labels go through
:func:`~emomon.labels.normalize_label`, so an unknown label is a clear error naming the file.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import re
from dataclasses import replace
from pathlib import Path
from typing import Callable

from emomon.errors import ConfigError, InputError
from emomon.training.data import Item, require_dir
from emomon.training.data.seed_corpora import SEED_READERS  # the seeds' corpora (KEMDy19/20, AI-Hub, IEMOCAP)
from emomon.labels import EMOTIONS, normalize_label

logger = logging.getLogger("emomon")

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".m4a", ".webm", ".aac")


# ---------------------------------------------------------------------------------------------------- manifest
MANIFEST_COLUMNS = ("audio", "text", "label", "speaker", "split")


def read_manifest(path: Path) -> list[Item]:
    """Generic CSV with a header: ``audio,text,label,speaker,split`` (``text`` and ``split`` may be empty).

    ``audio`` paths are relative to the CSV's directory unless absolute; an empty ``audio`` makes a text-only item.
    Optional ``start``/``end`` columns (seconds) select a span of the audio file. ``split`` is train, val (or dev),
    test, or empty (assigned by speaker from the preset).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"manifest not found: {path}")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"cannot read manifest {path}: {exc}") from None
    if not rows:
        raise InputError(f"manifest {path} has no rows")
    missing = [c for c in ("label", "speaker") if c not in rows[0]]
    if missing or ("audio" not in rows[0] and "text" not in rows[0]):
        raise InputError(f"manifest {path} needs the columns {', '.join(MANIFEST_COLUMNS)} (missing: {', '.join(missing) or 'audio/text'})")
    items = []
    for n, row in enumerate(rows, start=2):
        where = f"{path.name} line {n}"
        audio_s = (row.get("audio") or "").strip()
        text = (row.get("text") or "").strip() or None
        if not audio_s and not text:
            raise InputError(f"{where}: neither audio nor text")
        audio = None
        if audio_s:
            audio = Path(audio_s).expanduser()
            if not audio.is_absolute():
                audio = path.parent / audio
        split = _norm_split((row.get("split") or "").strip(), where)
        start = _float_or_none(row.get("start"), where)
        end = _float_or_none(row.get("end"), where)
        items.append(
            Item(
                id=f"manifest:{n - 1}",
                corpus="manifest",
                label=normalize_label(row.get("label") or "", where=where),
                speaker=(row.get("speaker") or "").strip() or "unknown",
                audio=audio,
                text=text,
                split=split,
                start=start,
                end=end,
            )
        )
    return items


def _norm_split(s: str, where: str) -> str | None:
    s = s.lower()
    if not s:
        return None
    if s in ("train", "val", "test"):
        return s
    if s in ("dev", "valid", "validation"):
        return "val"
    raise InputError(f"{where}: unknown split {s!r} (train, val, test or empty)")


def _float_or_none(v: str | None, where: str) -> float | None:
    if v is None or not str(v).strip():
        return None
    try:
        return float(v)
    except ValueError:
        raise InputError(f"{where}: not a number: {v!r}") from None


# ---------------------------------------------------------------------------------------------------- RAVDESS
_RAVDESS_EMOTIONS = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry", "06": "fearful", "07": "disgust", "08": "surprised"}
_RAVDESS_STATEMENTS = {"01": "Kids are talking by the door.", "02": "Dogs are sitting by the door."}


def read_ravdess(root: Path) -> list[Item]:
    """RAVDESS speech: ``Actor_AA/03-01-EE-II-SS-RR-AA.(wav|flac)``; calm counts as neutral; speaker = actor number.

    The two statements are known, so ``text`` is the spoken sentence (emotionally neutral by design).
    """
    root = require_dir(root, "RAVDESS")
    items = []
    for f in sorted(root.glob("Actor_*/*")):
        if f.suffix.lower() not in AUDIO_EXTENSIONS:
            continue
        parts = f.stem.split("-")
        if len(parts) != 7 or parts[0] != "03" or parts[1] not in ("01",):  # 03 = audio only, 01 = speech
            continue
        if parts[2] not in _RAVDESS_EMOTIONS:
            raise InputError(f"{f}: unknown RAVDESS emotion code {parts[2]}")
        items.append(
            Item(
                id=f"ravdess:{f.stem}",
                corpus="ravdess",
                label=normalize_label(_RAVDESS_EMOTIONS[parts[2]]),
                speaker=str(int(parts[6])),
                audio=f,
                text=_RAVDESS_STATEMENTS.get(parts[4]),
            )
        )
    if not items:
        raise InputError(f"no RAVDESS speech files (Actor_*/03-01-*.wav|flac) under {root}")
    return items


# ---------------------------------------------------------------------------------------------------- MELD
def read_meld(root: Path) -> list[Item]:
    """MELD utterance CSVs ``{train,dev,test}_sent_emo.csv`` (text only; speaker = the character)."""
    root = require_dir(root, "MELD")
    items = []
    for split, name in (("train", "train_sent_emo.csv"), ("val", "dev_sent_emo.csv"), ("test", "test_sent_emo.csv")):
        path = root / name
        if not path.is_file():
            continue
        with open(path, newline="", encoding="utf-8") as f:
            for n, row in enumerate(csv.DictReader(f), start=2):
                text = _clean_meld(row["Utterance"])
                items.append(
                    Item(
                        id=f"meld:{split}:{row['Dialogue_ID']}_{row['Utterance_ID']}",
                        corpus="meld",
                        label=normalize_label(row["Emotion"], where=f"{name} line {n}"),
                        speaker=row.get("Speaker", "") or "unknown",
                        text=text,
                        split=split,
                    )
                )
    if not items:
        raise InputError(f"no MELD CSVs (train_sent_emo.csv, dev_sent_emo.csv, test_sent_emo.csv) in {root}")
    return items


def _clean_meld(text: str) -> str:
    # MELD's CSVs carry Windows-1252 quotes mis-decoded as C1 controls and U+2019 apostrophes.
    text = text.replace("\x92", "'").replace("\x93", '"').replace("\x94", '"').replace("\x97", "-").replace("\x85", "...")
    return re.sub(r"\s+", " ", text.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')).strip()


# ---------------------------------------------------------------------------------------------------- GoEmotions
_GOEMOTIONS_EKMAN = ("anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise")


def read_goemotions(root: Path) -> list[Item]:
    """GoEmotions, Ekman grouping: ``{train,dev,test}.tsv`` rows ``text<TAB>ids<TAB>comment_id`` and ``labels.txt``.

    Rows with several labels are skipped (the single-label subset is the usual choice for 7-class training).
    """
    root = require_dir(root, "GoEmotions")
    names = _GOEMOTIONS_EKMAN
    labels_file = root / "labels.txt"
    if labels_file.is_file():
        names = tuple(line.strip() for line in labels_file.read_text(encoding="utf-8").splitlines() if line.strip())
    items = []
    for split, name in (("train", "train.tsv"), ("val", "dev.tsv"), ("test", "test.tsv")):
        path = root / name
        if not path.is_file():
            continue
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, start=1):
                parts = line.rstrip("\n").split("\t")
                if len(parts) < 2:
                    raise InputError(f"{name} line {n}: expected text<TAB>label ids")
                ids = [x for x in parts[1].split(",") if x]
                if len(ids) != 1:
                    continue
                try:
                    raw = names[int(ids[0])]
                except (ValueError, IndexError):
                    raise InputError(f"{name} line {n}: unknown label id {ids[0]!r}") from None
                items.append(
                    Item(
                        id=f"goemotions:{split}:{parts[2] if len(parts) > 2 else n}",
                        corpus="goemotions",
                        label=normalize_label(raw, where=f"{name} line {n}"),
                        speaker="reddit",
                        text=parts[0].strip(),
                        split=split,
                    )
                )
    if not items:
        raise InputError(f"no GoEmotions TSVs (train.tsv, dev.tsv, test.tsv) in {root}")
    return items


# ---------------------------------------------------------------------------------------------------- ASED
def read_ased(root: Path) -> list[Item]:
    """ASED v1 (Amharic): ``01Neutral/ 02Fearful/ 03Happy/ 04Sad/ 05Angry/``, file ``<e><n>-<sent>-<rep>-<gender>-<spk>``.

    Label = folder, speaker = the last number. No transcripts are attached: most sentences are fixed per emotion,
    so the words would give the label away.
    """
    root = require_dir(root, "ASED")
    items = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        m = re.fullmatch(r"\d\d([A-Za-z]+)", folder.name)
        if not m:
            continue
        label = normalize_label(m.group(1), where=str(folder))
        for f in sorted(folder.iterdir()):
            if f.suffix.lower() not in AUDIO_EXTENSIONS:
                continue
            parts = f.stem.split("-")
            if len(parts) < 5:
                raise InputError(f"{f}: not an ASED file name (<e><n>-<sentence>-<repetition>-<gender>-<speaker>)")
            items.append(Item(id=f"ased:{f.stem}", corpus="ased", label=label, speaker=str(int(parts[-1])), audio=f))
    if not items:
        raise InputError(f"no ASED audio under {root} (expected 01Neutral/ ... 05Angry/)")
    return items


# ---------------------------------------------------------------------------------------------------- nEMO
def read_nemo(root: Path) -> list[Item]:
    """nEMO (Polish): ``data.tsv`` (file_id, emotion, raw_text, ..., speaker_id) and ``samples/`` audio.

    Audio may have been converted to another container (e.g. ``.ogg``); the file with the id's stem is used.
    """
    root = require_dir(root, "nEMO")
    table = root / "data.tsv"
    if not table.is_file():
        raise InputError(f"nEMO table not found: {table}")
    samples = root / "samples"
    by_stem = {f.stem: f for f in samples.iterdir() if f.suffix.lower() in AUDIO_EXTENSIONS} if samples.is_dir() else {}
    items = []
    with open(table, newline="", encoding="utf-8") as f:
        for n, row in enumerate(csv.DictReader(f, delimiter="\t"), start=2):
            stem = Path(row["file_id"].strip()).stem
            audio = by_stem.get(stem)
            if audio is None:
                raise InputError(f"data.tsv line {n}: audio for {row['file_id']} not found in {samples}")
            items.append(
                Item(
                    id=f"nemo:{stem}",
                    corpus="nemo",
                    label=normalize_label(row["emotion"], where=f"data.tsv line {n}"),
                    speaker=row["speaker_id"].strip(),
                    audio=audio,
                    text=row["raw_text"].strip() or None,
                )
            )
    return items


# ---------------------------------------------------------------------------------------------------- registry
READERS: dict[str, Callable[[Path], list[Item]]] = {
    "manifest": read_manifest,
    "ravdess": read_ravdess,
    "meld": read_meld,
    "goemotions": read_goemotions,
    "ased": read_ased,
    "nemo": read_nemo,
}


def _reader(corpus: str) -> Callable[[Path], list[Item]]:
    if corpus in READERS:
        return READERS[corpus]
    if corpus in SEED_READERS:
        return SEED_READERS[corpus]
    raise InputError(f"no reader for corpus {corpus!r}; known: {', '.join(list(READERS) + list(SEED_READERS))}")


def read_corpus(corpus: str, path: Path) -> list[Item]:
    items = _reader(corpus)(Path(path))
    bad = [i for i in items if i.label not in EMOTIONS]
    if bad:  # pragma: no cover - normalize_label guarantees this
        raise InputError(f"{corpus}: label {bad[0].label!r} is not one of {', '.join(EMOTIONS)}")
    return items


def assign_splits(items: list[Item], test_speakers: tuple[str, ...] = (), val_speakers: tuple[str, ...] = (),
                  test_fraction: float = 0.0, val_fraction: float = 0.0, where: str = "") -> list[Item]:
    """Speaker-held-out splits, never by clip.

    Named speakers go to test (``test_speakers``) or val (``val_speakers``), everyone else to train. Without named
    speakers, ``test_fraction``/``val_fraction`` of the speakers (in a fixed hash order) are held out. A corpus that
    comes with its own split (MELD, GoEmotions, a manifest's split column) keeps it when neither is given. A named
    speaker the corpus does not have is an error (``where`` prefixes its setting's name), and so is a manifest that
    puts one speaker's clips in two splits.
    """
    overlap = set(test_speakers) & set(val_speakers)
    if overlap:
        raise ConfigError(f"{where}test_speakers: speaker {sorted(overlap)[0]!r} is also in val_speakers")
    if not test_speakers and not val_speakers and (test_fraction or val_fraction):
        speakers = sorted({i.speaker for i in items}, key=lambda s: hashlib.sha1(s.encode()).hexdigest())
        n_test = int(round(len(speakers) * test_fraction)) if test_fraction else 0
        n_val = int(round(len(speakers) * val_fraction)) if val_fraction else 0
        if test_fraction and len(speakers) > 2:
            n_test = max(1, n_test)
        if val_fraction and len(speakers) > 2:
            n_val = max(1, n_val)
        test_speakers = tuple(speakers[:n_test])
        val_speakers = tuple(speakers[n_test : n_test + n_val])
    if not test_speakers and not val_speakers:
        _check_own_splits_by_speaker(items)
        return [i if i.split else replace(i, split="train") for i in items]
    # A misspelt name ("Actor_19" for RAVDESS's "19") would otherwise leave that speaker in training: test data
    # trained on, with nothing to show for it.
    present = {i.speaker for i in items}
    for setting, names in (("test_speakers", test_speakers), ("val_speakers", val_speakers)):
        missing = [s for s in names if s not in present]
        if missing:
            known = sorted(present, key=lambda s: (len(s), s))
            shown = ", ".join(known[:12]) + (f", ... ({len(known)} in all)" if len(known) > 12 else "")
            corpus = items[0].corpus if items else "this corpus"
            raise ConfigError(f"{where}{setting}: speaker {missing[0]!r} is not in {corpus}; its speakers: {shown}")
    test, val = set(test_speakers), set(val_speakers)
    return [replace(i, split="test" if i.speaker in test else "val" if i.speaker in val else "train") for i in items]


def _check_own_splits_by_speaker(items: list[Item]) -> None:
    """A manifest's own split column must hold each speaker's clips in one split: splits are by speaker, never by
    clip. Text-only rows and the speaker ``unknown`` are exempt (a dialogue corpus's characters recur across its
    splits; nothing is known of an unnamed speaker)."""
    seen: dict[str, tuple[str, str]] = {}
    for item in items:
        if item.corpus != "manifest" or item.audio is None or not item.split or item.speaker == "unknown":
            continue
        first = seen.setdefault(item.speaker, (item.split, item.id))
        if first[0] != item.split:
            raise InputError(
                f"manifest: speaker {item.speaker!r} has clips in both {first[0]} ({first[1]}) and {item.split} "
                f"({item.id}); splits are by speaker, never by clip: give each speaker one split, or leave the split "
                "column empty and name test_speakers/val_speakers in the preset"
            )
