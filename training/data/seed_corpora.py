"""Adapters for the seed model's training corpora: KEMDy19, KEMDy20, AI-Hub 263 and IEMOCAP.

Each reader takes the corpus folder exactly as distributed (unzipped, nothing renamed) and returns
:class:`~emomon.training.data.Item` lists like the readers in :mod:`emomon.training.data.corpora`: one item per labelled
utterance, ``audio`` = the per-utterance wav, ``text`` = its transcript, ``id`` = ``<corpus>:<utterance id>``.

Shared rules:

* Labels go through :func:`~emomon.labels.normalize_label` after a small per-corpus map for spellings that
  are not aliases there (KEMDy's ``disqust`` typo, AI-Hub's Korean words). A label that is *known* but outside the 7
  classes (IEMOCAP ``fru``/``oth``/``xxx``, KEMDy/AI-Hub ties) is skipped; a label nobody knows is an
  :class:`InputError` naming the file and line, so a layout mismatch never passes silently.
* An utterance whose wav file is missing is skipped with a warning (the corpora ship a few annotation rows without
  audio); a root with no annotation files, or whose annotations match no audio at all, is an :class:`InputError`
  naming the expected layout.
* Each reader logs one ``info`` line counting what it kept and skipped, by reason.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections import Counter
from pathlib import Path
from typing import Callable, Iterable

from emomon.errors import InputError
from emomon.training.data import Item, require_dir
from emomon.labels import normalize_label

logger = logging.getLogger("emomon")

__all__ = ["read_kemdy19", "read_kemdy20", "read_aihub", "read_iemocap", "SEED_READERS"]


# ---------------------------------------------------------------------------------------------------- helpers
def _decode(path: Path, encodings: tuple[str, ...] = ("utf-8-sig", "cp949")) -> str:
    """The file's text in the first encoding that decodes it strictly (KEMDy/AI-Hub files are UTF-8 or CP949)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    for enc in encodings:
        try:
            return data.decode(enc)
        except UnicodeDecodeError:
            continue
    raise InputError(f"{path}: not text in any of {', '.join(encodings)}")


def _read_transcript(path: Path) -> str | None:
    """A per-utterance ``.txt`` transcript as one line (UTF-8, else CP949), or ``None`` when absent or empty."""
    if not path.is_file():
        return None
    text = re.sub(r"\s+", " ", _decode(path)).strip()
    return text or None


def _wav_index(folder: Path) -> dict[str, Path]:
    """``stem -> path`` for every ``.wav`` under ``folder`` (first in sorted order wins; dot-files are ignored)."""
    index: dict[str, Path] = {}
    if folder.is_dir():
        for f in sorted(folder.rglob("*")):
            if f.suffix.lower() == ".wav" and not f.name.startswith(".") and f.is_file():
                index.setdefault(f.stem, f)
    return index


def _summary(corpus: str, kept: int, skipped: Counter) -> None:
    detail = ", ".join(f"{reason} {n}" for reason, n in sorted(skipped.items()))
    logger.info("%s: %d utterances%s", corpus, kept, f"; skipped {detail}" if detail else "")


# ---------------------------------------------------------------------------------------------------- KEMDy
# KEMDy19/20 spell the emotions in English; 'disqust' is the corpus's own typo for disgust.
_KEMDY_LABELS = {"disqust": "disgust"}


def _kemdy_label(raw: str, where: str) -> str | None:
    """``Total Evaluation`` emotion -> one of the 7 classes, or ``None`` for a tie / an empty cell.

    KEMDy writes a tie between the evaluators' top emotions as ``a;b``. Rule: after normalising each part, a single
    distinct emotion is kept (``happy`` or ``happy;happy``); two or more distinct emotions are a tie and skipped.
    """
    parts = [p.strip().lower() for p in raw.split(";") if p.strip()]
    if not parts:
        return None
    labels = {normalize_label(_KEMDY_LABELS.get(p, p), where=where) for p in parts}
    return labels.pop() if len(labels) == 1 else None


def _kemdy_annotation(path: Path) -> Iterable[tuple[str, str, str]]:
    """``(where, segment id, Total Evaluation emotion)`` for each data row of a KEMDy annotation CSV.

    The CSVs have two header rows: the first names the groups (``Numb, Wav, , Segment ID, Total Evaluation, , ,
    Eval01F, ...``; KEMDy19 adds ``ECG``/``E4-EDA``/``E4-TEMP`` before ``Segment ID``), the second the fields inside
    each group (``, start, end, , Emotion, Valence, Arousal, Emotion, ...``). A single-row header whose emotion
    column is called ``Emotion`` or ``Total Evaluation`` is accepted as well.
    """
    rows = list(csv.reader(io.StringIO(_decode(path))))
    header_at = next((i for i, r in enumerate(rows) if any(c.strip().lower() == "segment id" for c in r)), None)
    if header_at is None:
        raise InputError(f"{path}: no 'Segment ID' column (not a KEMDy annotation CSV)")
    top = [c.strip().lower() for c in rows[header_at]]
    seg_col = top.index("segment id")
    group, filled = "", []
    for c in top:
        group = c or group
        filled.append(group)
    sub = [c.strip().lower() for c in rows[header_at + 1]] if header_at + 1 < len(rows) else []
    first_data = header_at + 1
    if "emotion" in sub:
        first_data += 1
        sub += [""] * (len(top) - len(sub))
        emo_col = next((i for i, (g, s) in enumerate(zip(filled, sub)) if g == "total evaluation" and s == "emotion"), None)
    else:
        emo_col = next((i for i, c in enumerate(top) if c in ("total evaluation", "emotion")), None)
    if emo_col is None:
        raise InputError(f"{path}: no 'Total Evaluation' / 'Emotion' column")
    for n in range(first_data, len(rows)):
        row = rows[n]
        seg = row[seg_col].strip() if seg_col < len(row) else ""
        if not seg:
            continue  # blank / trailing rows
        yield f"{path.name} line {n + 1}", seg, row[emo_col] if emo_col < len(row) else ""


def _read_kemdy(
    corpus: str,
    root: Path,
    annotation_glob: str,
    segment_re: re.Pattern[str],
    speaker_of: Callable[[re.Match[str]], str],
    keep_row: Callable[[Path, re.Match[str]], bool],
) -> list[Item]:
    name = corpus.upper().replace("KEMDY", "KEMDy")
    root = require_dir(root, name)
    annotations = sorted(p for p in (root / "annotation").glob(annotation_glob) if not p.name.startswith("."))
    if not annotations:
        raise InputError(f"no {name} annotation CSVs (annotation/{annotation_glob}) under {root}")
    wavs = _wav_index(root / "wav")
    items: list[Item] = []
    seen: set[str] = set()
    skipped: Counter = Counter()
    for ann in annotations:
        for where, seg, raw in _kemdy_annotation(ann):
            m = segment_re.fullmatch(seg)
            if not m:
                raise InputError(f"{where}: {seg!r} is not a {name} segment id")
            if not keep_row(ann, m) or seg in seen:
                continue
            seen.add(seg)
            label = _kemdy_label(raw, where)
            if label is None:
                skipped["tie or no label"] += 1
                continue
            audio = wavs.get(seg)
            if audio is None:
                skipped["missing wav"] += 1
                logger.warning("%s: %s has no wav under %s; skipped", name, seg, root / "wav")
                continue
            items.append(
                Item(
                    id=f"{corpus}:{seg}",
                    corpus=corpus,
                    label=label,
                    speaker=speaker_of(m),
                    audio=audio,
                    text=_read_transcript(audio.with_suffix(".txt")),
                )
            )
    if not items:
        raise InputError(f"no {name} utterances with audio under {root} (annotation/{annotation_glob} + wav/Session*/...wav)")
    _summary(name, len(items), skipped)
    return items


_KEMDY19_SEGMENT = re.compile(r"(Sess\d+)_([A-Za-z]+\d+)_([FM])(\d+)")
_KEMDY19_FILE_GENDER = re.compile(r"Session\d+_([FM])_", re.IGNORECASE)


def read_kemdy19(root: Path) -> list[Item]:
    """KEMDy19 (ETRI, voice actors; nanum.etri.re.kr/share/kjnoh/KEMDy19) as distributed::

        annotation/Session01_F_res.csv, annotation/Session01_M_res.csv, ...   (two header rows, see below)
        wav/Session01/Sess01_impro01/Sess01_impro01_F001.wav  (+ .txt transcript)

    Layout as loaded by the public ``erc`` KEMDy loaders (``merge_csv_kemdy19``: ``annotation/Session*_M_*`` /
    ``Session*_F_*``, wav/txt at ``wav/Session{NN}/Sess{NN}_{script}/``; ``kemdy19_fold`` scripts reading
    ``Session{NN}_{F|M}_res.csv`` with header ``Total Evaluation``/``Emotion``).

    * Each session's ``_F_`` file carries the female actor's emotion annotations and the ``_M_`` file the male
      actor's; as in ``merge_csv_kemdy19``, a row is used only from the file of the utterance's own speaker
      (``..._F001`` from ``_F_res.csv``), so each segment is read once, with its speaker's labels.
    * Label = ``Total Evaluation`` emotion; ties (``a;b`` with distinct emotions) and empty cells are skipped.
    * Speaker = session + gender (``Sess01_impro01_F001`` -> ``Sess01F``): one actor per gender per session.
    * Transcript = the ``.txt`` next to the wav, UTF-8 or CP949.
    """

    def keep(ann: Path, m: re.Match[str]) -> bool:
        g = _KEMDY19_FILE_GENDER.match(ann.name)
        return g is None or g.group(1).upper() == m.group(3)

    return _read_kemdy(
        "kemdy19", root, "Session*.csv", _KEMDY19_SEGMENT, lambda m: f"{m.group(1)}{m.group(3)}", keep
    )


_KEMDY20_SEGMENT = re.compile(r"(Sess\d+)_([A-Za-z]+\d+)_(User\d+[FM])_(\d+)")


def read_kemdy20(root: Path) -> list[Item]:
    """KEMDy20 (ETRI, general speakers; nanum.etri.re.kr/share/kjnoh/KEMDy20) v1.1/v1.2 as distributed::

        annotation/Sess01_eval.csv ... Sess40_eval.csv      (two header rows, see below)
        wav/Session01/Sess01_script01_User002M_001.wav  (+ .txt transcript, usually CP949)

    Layout as loaded by public code: ``erc`` (``merge_csv_kemdy20``: ``annotation/*.csv``, columns Numb, Wav
    start/end, Segment ID, Total Evaluation Emotion/Valence/Arousal; ``KEMDy20Dataset``: wav+txt at
    ``wav/Session{NN}/{segment}.wav``, ``TEXT_ENCODING = "cp949"``) and loaders reading ``annotation/Sess{i}_eval.csv``
    with ``header=[0, 1]`` and ``('Segment ID', ' ')`` / ``('Eval01F', 'Emotion')`` columns.

    * Label = ``Total Evaluation`` emotion (``disqust`` = disgust); ties ``a;b`` and empty cells are skipped.
    * Speaker = the participant id in the segment id (``Sess01_script01_User002M_001`` -> ``User002M``).
    * Transcript = the ``.txt`` next to the wav, UTF-8 or CP949.
    """
    return _read_kemdy("kemdy20", root, "Sess*_eval.csv", _KEMDY20_SEGMENT, lambda m: m.group(3), lambda a, m: True)


# ---------------------------------------------------------------------------------------------------- AI-Hub 263
# The released CSVs write the annotators' emotions in English (Angry, Sadness, Happiness, Neutral, Fear, Disgust,
# Surprise; the 상황 column also 'anger'/'sad'); Korean words are accepted too, should a release use them.
_AIHUB_LABELS = {
    "분노": "angry",
    "화남": "angry",
    "슬픔": "sad",
    "행복": "happy",
    "기쁨": "happy",
    "중립": "neutral",
    "공포": "fear",
    "두려움": "fear",
    "혐오": "disgust",
    "놀람": "surprise",
}
_AIHUB_VOTE = re.compile(r"([1-5])번\s*감정")


def read_aihub(root: Path) -> list[Item]:
    """AI-Hub "감정 분류를 위한 대화 음성 데이터셋" (aihub.or.kr dataSetSn=263) as distributed::

        4차년도.csv, 5차년도.csv, 5차년도_2차.csv            (anywhere under root, e.g. annotation/; CP949 or UTF-8)
        4차년도/<wav_id>.wav, 5차년도/5차_wav/<wav_id>.wav, 5차년도_2차/<wav_id>.wav   (any folders under root)

    CSV columns: ``wav_id, 발화문, 상황, 1번 감정, 1번 감정세기, ..., 5번 감정, 5번 감정세기, 나이, 성별`` (one release
    writes ``4번감정세기``; another repeats ``wav_id`` as the second header, which is then read as ``발화문``). Layout
    as used by public loaders of the set (folders per release with ``5차년도/5차_wav``; ``wav_id`` -> ``<wav_id>.wav``;
    ``encoding='cp949'``; five ``N번 감정`` votes with English values Angry/Sadness/Happiness/...).

    * Label = plurality of the five annotators' votes (``N번 감정``): the emotion with the most votes wins when it is
      the only one with that count (``angry x2, sad, fear, neutral`` -> angry); a tie for the top count (``angry x2,
      sad x2, neutral``) is skipped. Empty votes are not counted. The scripted ``상황`` column is not the label.
    * Speaker: the CSVs have no speaker id, so the speaker is a pseudo-speaker group ``<release>_<나이>_<성별>``
      (e.g. ``4차년도_30_male``): every utterance of one person lands in one group, so speaker-held-out splits do not
      leak, at the cost of grouping several people. Without age/gender it is ``wav:<wav_id>`` (one per utterance).
    * Text = ``발화문``. Item id = ``aihub:<wav_id>``; a ``wav_id`` seen again (in the same or another CSV) is skipped.
    """
    root = require_dir(root, "AI-Hub")
    wavs = _wav_index(root)
    items: list[Item] = []
    seen: set[str] = set()
    skipped: Counter = Counter()
    tables = 0
    for path in sorted(root.rglob("*.csv")):
        if path.name.startswith("."):
            continue
        rows = list(csv.reader(io.StringIO(_decode(path))))
        if not rows:
            continue
        header = [c.strip() for c in rows[0]]
        if header[:2] == ["wav_id", "wav_id"]:
            header[1] = "발화문"
        votes = [i for i, c in enumerate(header) if _AIHUB_VOTE.fullmatch(c)]
        if "wav_id" not in header or not votes:
            continue  # some other CSV
        tables += 1
        col = {c: i for i, c in reversed(list(enumerate(header)))}
        release = path.stem

        def cell(row: list[str], name: str) -> str:
            i = col.get(name)
            return row[i].strip() if i is not None and i < len(row) else ""

        for n, row in enumerate(rows[1:], start=2):
            wav_id = cell(row, "wav_id")
            if not wav_id:
                continue
            where = f"{path.name} line {n}"
            if wav_id in seen:
                skipped["duplicate wav_id"] += 1
                continue
            seen.add(wav_id)
            counts: Counter = Counter()
            for i in votes:
                raw = row[i].strip() if i < len(row) else ""
                if raw:
                    counts[normalize_label(_AIHUB_LABELS.get(raw, raw), where=where)] += 1
            top = counts.most_common()
            if not top or (len(top) > 1 and top[0][1] == top[1][1]):
                skipped["tied or no votes"] += 1
                continue
            audio = wavs.get(wav_id)
            if audio is None:
                skipped["missing wav"] += 1
                logger.warning("AI-Hub: %s (%s) has no wav under %s; skipped", wav_id, where, root)
                continue
            age, sex = cell(row, "나이"), cell(row, "성별")
            items.append(
                Item(
                    id=f"aihub:{wav_id}",
                    corpus="aihub",
                    label=top[0][0],
                    speaker=f"{release}_{age}_{sex}" if age and sex else f"wav:{wav_id}",
                    audio=audio,
                    text=cell(row, "발화문") or None,
                )
            )
    if not tables:
        raise InputError(f"no AI-Hub emotion CSVs (4차년도.csv, 5차년도.csv, 5차년도_2차.csv with wav_id, N번 감정 columns) under {root}")
    if not items:
        raise InputError(f"no AI-Hub utterances with audio under {root} (expected <wav_id>.wav files next to the CSVs)")
    _summary("AI-Hub", len(items), skipped)
    return items


# ---------------------------------------------------------------------------------------------------- IEMOCAP
# Categorical codes of EmoEvaluation/*.txt: 'exc' (excited) merges with happy; these have no class among the 7.
_IEMOCAP_SKIP = {"fru": "frustrated", "oth": "other", "xxx": "no agreement"}
_IEMOCAP_EVAL = re.compile(r"\[\s*([\d.]+)\s*-\s*([\d.]+)\s*\]\s+(\S+)\s+(\S+)\s+\[.*\]")
_IEMOCAP_TRANSCRIPT = re.compile(r"(\S+)\s+\[[\d.]+\s*-\s*[\d.]+\]:\s*(.*)")
_IEMOCAP_UTT = re.compile(r"(Ses\d\d)[FM]_\S*_([FM])[A-Z]*\d+")


def read_iemocap(root: Path) -> list[Item]:
    """IEMOCAP full release (sail.usc.edu/iemocap) as distributed::

        Session1/dialog/EmoEvaluation/Ses01F_impro01.txt     "[6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5000, ...]"
        Session1/dialog/transcriptions/Ses01F_impro01.txt    "Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me."
        Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav

    The layout every public IEMOCAP loader uses (``Session?/dialog/EmoEvaluation/*.txt`` parsed with a
    ``[start - end] turn emotion [V, A, D]`` regex; ``Session{n}/sentences/wav/{dialog}/{utt}.wav``). Only the
    top-level ``EmoEvaluation/*.txt`` are read (not ``Categorical/``, ``Attribute/``, ``Self-evaluation/``);
    macOS ``._*`` files are ignored.

    * Label = the consensus code: neu, hap, exc (-> happy), ang, sad, fea, sur, dis; ``fru``, ``oth`` and ``xxx``
      are skipped (no class among the 7).
    * Speaker = session + the gender letter of the utterance's own turn (``Ses01F_impro01_M003`` -> ``Ses01M``): in
      each session one actress and one actor play both the F- and M-led dialogs.
    * Text = the utterance's line in ``transcriptions/<dialog>.txt``. ``start``/``end`` stay unset because ``audio``
      is already the per-utterance wav.
    """
    root = require_dir(root, "IEMOCAP")
    evaluations = sorted(
        p for p in root.glob("Session*/dialog/EmoEvaluation/*.txt") if not p.name.startswith(".") and p.is_file()
    )
    if not evaluations:
        raise InputError(f"no IEMOCAP label files (Session1..5/dialog/EmoEvaluation/*.txt) under {root}")
    items: list[Item] = []
    skipped: Counter = Counter()
    for ev in evaluations:
        session_dir = ev.parents[2]
        dialog = ev.stem
        texts: dict[str, str] = {}
        tr = session_dir / "dialog" / "transcriptions" / ev.name
        if tr.is_file():
            for line in _decode(tr, ("utf-8-sig", "latin-1")).splitlines():
                m = _IEMOCAP_TRANSCRIPT.fullmatch(line.strip())
                if m and m.group(2).strip():
                    texts[m.group(1)] = m.group(2).strip()
        wav_dir = session_dir / "sentences" / "wav" / dialog
        for n, line in enumerate(_decode(ev, ("utf-8-sig", "latin-1")).splitlines(), start=1):
            m = _IEMOCAP_EVAL.fullmatch(line.strip())
            if not m:
                continue  # header, blank, and the per-evaluator "C-E1:" / "A-E2:" lines
            utt, code = m.group(3), m.group(4).strip().lower()
            where = f"{ev.name} line {n}"
            if code in _IEMOCAP_SKIP:
                skipped[code] += 1
                continue
            label = normalize_label(code, where=where)
            um = _IEMOCAP_UTT.fullmatch(utt)
            if not um:
                raise InputError(f"{where}: {utt!r} is not an IEMOCAP utterance id (SesNNx_<dialog>_<F|M>NNN)")
            audio = wav_dir / f"{utt}.wav"
            if not audio.is_file():
                skipped["missing wav"] += 1
                logger.warning("IEMOCAP: %s has no wav at %s; skipped", utt, audio)
                continue
            items.append(
                Item(
                    id=f"iemocap:{utt}",
                    corpus="iemocap",
                    label=label,
                    speaker=f"{um.group(1)}{um.group(2)}",
                    audio=audio,
                    text=texts.get(utt),
                )
            )
    if not items:
        raise InputError(f"no IEMOCAP utterances with audio under {root} (Session*/sentences/wav/<dialog>/<utt>.wav)")
    _summary("IEMOCAP", len(items), skipped)
    return items


#: To merge into :data:`emomon.training.data.corpora.READERS`.
SEED_READERS: dict[str, Callable[[Path], list[Item]]] = {
    "kemdy19": read_kemdy19,
    "kemdy20": read_kemdy20,
    "aihub": read_aihub,
    "iemocap": read_iemocap,
}
