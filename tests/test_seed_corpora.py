"""Seed-corpus adapters on tiny fixtures built in each corpus's distributed layout (no network, only tmp_path)."""

from __future__ import annotations

import csv
import logging
import wave
from pathlib import Path

import pytest

from emomon.errors import InputError
from emomon.training.data import Item
from emomon.training.data.seed_corpora import SEED_READERS, read_aihub, read_iemocap, read_kemdy19, read_kemdy20


# ---------------------------------------------------------------------------------------------------- helpers
def _wav(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\x00\x00" * 160)
    return path


def _csv(path: Path, rows: list[list[str]], encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding=encoding, newline="") as f:
        csv.writer(f).writerows(rows)
    return path


def _by_id(items: list[Item]) -> dict[str, Item]:
    ids = [i.id for i in items]
    assert len(ids) == len(set(ids)), "ids must be unique"
    return {i.id: i for i in items}


def _check_common(items: list[Item], corpus: str) -> None:
    for i in items:
        assert i.corpus == corpus
        assert i.id.startswith(f"{corpus}:")
        assert i.audio is not None and i.audio.is_file() and i.audio.suffix == ".wav"
        assert i.split is None and i.start is None and i.end is None


# ---------------------------------------------------------------------------------------------------- KEMDy20
KEMDY20_HEAD = [
    ["Numb", "Wav", "", "Segment ID", "Total Evaluation", "", "", "Eval01F", "", "", "Eval02M", "", ""],
    ["", "start", "end", " ", "Emotion", "Valence", "Arousal", "Emotion", "Valence", "Arousal", "Emotion", "Valence", "Arousal"],
]


def _kemdy20_row(n: int, seg: str, emotion: str) -> list[str]:
    return [str(n), f"{n}.0", f"{n}.9", seg, emotion, "3", "3", emotion.split(";")[0], "3", "3", "neutral", "3", "3"]


def _kemdy20(root: Path) -> Path:
    ann, wav = root / "annotation", root / "wav"
    _csv(
        ann / "Sess01_eval.csv",
        KEMDY20_HEAD
        + [
            _kemdy20_row(1, "Sess01_script01_User002M_001", "neutral"),
            _kemdy20_row(2, "Sess01_script01_User001F_001", "happy;surprise"),  # tie -> skipped
            _kemdy20_row(3, "Sess01_script01_User001F_002", "disqust"),  # KEMDy typo -> disgust
            _kemdy20_row(4, "Sess01_script01_User002M_002", "sad"),
            _kemdy20_row(5, "Sess01_script01_User002M_003", "fear"),  # no wav -> skipped
            ["", "", "", "", "", "", "", "", "", "", "", "", ""],  # trailing blank row
        ],
    )
    _csv(ann / "Sess02_eval.csv", KEMDY20_HEAD + [_kemdy20_row(1, "Sess02_script03_User003F_001", "happy;happy")])
    s1 = wav / "Session01"
    for seg, text, enc in (
        ("Sess01_script01_User002M_001", "안녕하세요 반갑습니다.", "utf-8"),
        ("Sess01_script01_User001F_001", "와 정말?", "utf-8"),
        ("Sess01_script01_User001F_002", "으 냄새 너무 심하다.", "utf-8"),
        ("Sess01_script01_User002M_002", "나 오늘 너무 슬퍼.\n", "cp949"),
    ):
        _wav(s1 / f"{seg}.wav")
        (s1 / f"{seg}.txt").write_bytes(text.encode(enc))
    _wav(wav / "Session02" / "Sess02_script03_User003F_001.wav")  # no transcript
    (root / "EDA" / "Session01").mkdir(parents=True)  # the biosignal folders are ignored
    return root


def test_kemdy20_reads_distributed_layout(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = _kemdy20(tmp_path / "KEMDy20_v1_1")
    with caplog.at_level(logging.INFO, logger="emomon"):
        items = read_kemdy20(root)
    _check_common(items, "kemdy20")
    got = {i.id: (i.label, i.speaker, i.text) for i in items}
    assert got == {
        "kemdy20:Sess01_script01_User002M_001": ("neutral", "User002M", "안녕하세요 반갑습니다."),
        "kemdy20:Sess01_script01_User001F_002": ("disgust", "User001F", "으 냄새 너무 심하다."),
        "kemdy20:Sess01_script01_User002M_002": ("sad", "User002M", "나 오늘 너무 슬퍼."),  # cp949 transcript
        "kemdy20:Sess02_script03_User003F_001": ("happy", "User003F", None),
    }
    byid = _by_id(items)
    assert byid["kemdy20:Sess01_script01_User002M_001"].audio == root / "wav/Session01/Sess01_script01_User002M_001.wav"
    assert "Sess01_script01_User002M_003 has no wav" in caplog.text
    assert "KEMDy20: 4 utterances; skipped missing wav 1, tie or no label 1" in caplog.text


def test_kemdy20_unknown_label_names_file_and_line(tmp_path: Path) -> None:
    root = tmp_path / "k"
    _csv(root / "annotation/Sess01_eval.csv", KEMDY20_HEAD + [_kemdy20_row(1, "Sess01_script01_User002M_001", "bored")])
    _wav(root / "wav/Session01/Sess01_script01_User002M_001.wav")
    with pytest.raises(InputError, match=r"'bored' in Sess01_eval.csv line 3"):
        read_kemdy20(root)


def test_kemdy20_bad_segment_id_is_input_error(tmp_path: Path) -> None:
    root = tmp_path / "k"
    _csv(root / "annotation/Sess01_eval.csv", KEMDY20_HEAD + [_kemdy20_row(1, "Sess01_impro01_F001", "sad")])
    with pytest.raises(InputError, match="not a KEMDy20 segment id"):
        read_kemdy20(root)


def test_kemdy20_annotations_without_audio_is_input_error(tmp_path: Path) -> None:
    root = tmp_path / "k"
    _csv(root / "annotation/Sess01_eval.csv", KEMDY20_HEAD + [_kemdy20_row(1, "Sess01_script01_User002M_001", "sad")])
    with pytest.raises(InputError, match="no KEMDy20 utterances with audio"):
        read_kemdy20(root)


# ---------------------------------------------------------------------------------------------------- KEMDy19
KEMDY19_HEAD = [
    ["Numb", "Wav", "", "ECG", "", "E4-EDA", "", "E4-TEMP", "", "Segment ID", "Total Evaluation", "", "", "Eval01", "", ""],
    ["", "start", "end", "start", "end", "start", "end", "start", "end", "", "Emotion", "Valence", "Arousal", "Emotion", "Valence", "Arousal"],
]


def _kemdy19_row(n: int, seg: str, emotion: str) -> list[str]:
    return [str(n), "0", "1", "0", "1", "0", "1", "0", "1", seg, emotion, "3", "3", emotion, "3", "3"]


def _kemdy19(root: Path) -> Path:
    ann = root / "annotation"
    # Each file annotates its own actor; rows of the other actor's segments are ignored.
    _csv(
        ann / "Session01_F_res.csv",
        KEMDY19_HEAD
        + [
            _kemdy19_row(1, "Sess01_impro01_F001", "happy"),
            _kemdy19_row(2, "Sess01_impro01_M001", "sad"),  # male segment in the female file: ignored
            _kemdy19_row(3, "Sess01_impro01_F002", "neutral;sad"),  # tie -> skipped
        ],
    )
    _csv(
        ann / "Session01_M_res.csv",
        KEMDY19_HEAD
        + [
            _kemdy19_row(1, "Sess01_impro01_F001", "neutral"),  # female segment in the male file: ignored
            _kemdy19_row(2, "Sess01_impro01_M001", "angry"),
            _kemdy19_row(3, "Sess01_impro01_M002", "disqust"),
        ],
    )
    _csv(ann / "Session02_F_res.csv", KEMDY19_HEAD + [_kemdy19_row(1, "Sess02_script01_F001", "fear")])
    d1 = root / "wav/Session01/Sess01_impro01"
    for seg, text, enc in (
        ("Sess01_impro01_F001", "오늘 날씨 좋다!", "utf-8"),
        ("Sess01_impro01_M001", "그만 좀 해.", "cp949"),
        ("Sess01_impro01_F002", "글쎄.", "utf-8"),
        ("Sess01_impro01_M002", "으웩.", "utf-8"),
    ):
        _wav(d1 / f"{seg}.wav")
        (d1 / f"{seg}.txt").write_bytes(text.encode(enc))
    d2 = root / "wav/Session02/Sess02_script01"
    _wav(d2 / "Sess02_script01_F001.wav")
    (d2 / "Sess02_script01_F001.txt").write_bytes("  무서워\r\n 정말로  \r\n".encode("cp949"))
    return root


def test_kemdy19_reads_distributed_layout(tmp_path: Path) -> None:
    root = _kemdy19(tmp_path / "KEMDy19")
    items = read_kemdy19(root)
    _check_common(items, "kemdy19")
    assert [i.id for i in items] == [
        "kemdy19:Sess01_impro01_F001",
        "kemdy19:Sess01_impro01_M001",
        "kemdy19:Sess01_impro01_M002",
        "kemdy19:Sess02_script01_F001",
    ]
    got = {i.id: (i.label, i.speaker, i.text) for i in items}
    assert got == {
        "kemdy19:Sess01_impro01_F001": ("happy", "Sess01F", "오늘 날씨 좋다!"),
        "kemdy19:Sess01_impro01_M001": ("angry", "Sess01M", "그만 좀 해."),  # label from the M file, cp949 text
        "kemdy19:Sess01_impro01_M002": ("disgust", "Sess01M", "으웩."),
        "kemdy19:Sess02_script01_F001": ("fear", "Sess02F", "무서워 정말로"),
    }
    assert _by_id(items)["kemdy19:Sess01_impro01_F001"].audio == root / "wav/Session01/Sess01_impro01/Sess01_impro01_F001.wav"


# ---------------------------------------------------------------------------------------------------- AI-Hub
AIHUB_HEAD = [
    "wav_id", "발화문", "상황",
    "1번 감정", "1번 감정세기", "2번 감정", "2번 감정세기", "3번 감정", "3번 감정세기",
    "4번 감정", "4번감정세기", "5번 감정", "5번 감정세기", "나이", "성별",
]  # fmt: skip


def _aihub_row(wav_id: str, text: str, votes: list[str], age: str = "30", sex: str = "male") -> list[str]:
    row = [wav_id, text, "anger"]
    for v in votes:
        row += [v, "1"]
    return row + [age, sex]


def _aihub(root: Path) -> Path:
    _csv(
        root / "4차년도.csv",
        [
            AIHUB_HEAD,
            _aihub_row("5f3c9ed98a3c1005aa97c4b1", "어 청소 니가 대신 해 줘!", ["Angry", "Angry", "Angry", "Neutral", "Sadness"]),
            _aihub_row("5f3c9ed98a3c1005aa97c4b2", "오늘 정말 신난다.", ["Happiness", "Happiness", "Neutral", "Sadness", "Fear"], "20", "female"),
            _aihub_row("5f3c9ed98a3c1005aa97c4b3", "그게 무슨 말이야?", ["Angry", "Angry", "Sadness", "Sadness", "Neutral"]),  # tie
            _aihub_row("5f3c9ed98a3c1005aa97c4b4", "밥 먹었어.", ["중립", "중립", "중립", "분노", "중립"]),  # Korean words
        ],
        encoding="cp949",
    )
    _csv(
        root / "5차년도.csv",
        [
            AIHUB_HEAD,
            _aihub_row("5fbe364744697678c497c071", "깜짝이야!", ["Surprise", "Surprise", "Fear", "Surprise", "Neutral"], "40", "female"),
            _aihub_row("5fbe364744697678c497c072", "무서워.", ["Fear"] * 5, "", ""),  # no age/gender
            _aihub_row("5fbe364744697678c497c073", "없어진 파일", ["Disgust"] * 5),  # no wav -> skipped
            _aihub_row("5f3c9ed98a3c1005aa97c4b1", "중복", ["Fear"] * 5),  # wav_id already read -> skipped
        ],
        encoding="utf-8",
    )
    _csv(root / "readme_stats.csv", [["class", "count"], ["angry", "1"]])  # an unrelated CSV is ignored
    for i in ("b1", "b2", "b3", "b4"):
        _wav(root / "4차년도" / f"5f3c9ed98a3c1005aa97c4{i}.wav")
    for i in ("71", "72"):
        _wav(root / "5차년도" / "5차_wav" / f"5fbe364744697678c497c0{i}.wav")
    return root


def test_aihub_majority_vote_speakers_and_text(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = _aihub(tmp_path / "감정 분류를 위한 대화 음성 데이터셋")
    with caplog.at_level(logging.INFO, logger="emomon"):
        items = read_aihub(root)
    _check_common(items, "aihub")
    got = {i.id: (i.label, i.speaker, i.text) for i in items}
    assert got == {
        "aihub:5f3c9ed98a3c1005aa97c4b1": ("angry", "4차년도_30_male", "어 청소 니가 대신 해 줘!"),
        "aihub:5f3c9ed98a3c1005aa97c4b2": ("happy", "4차년도_20_female", "오늘 정말 신난다."),  # plurality 2 of 5
        "aihub:5f3c9ed98a3c1005aa97c4b4": ("neutral", "4차년도_30_male", "밥 먹었어."),
        "aihub:5fbe364744697678c497c071": ("surprise", "5차년도_40_female", "깜짝이야!"),
        "aihub:5fbe364744697678c497c072": ("fear", "wav:5fbe364744697678c497c072", "무서워."),
    }
    assert _by_id(items)["aihub:5fbe364744697678c497c071"].audio == root / "5차년도/5차_wav/5fbe364744697678c497c071.wav"
    assert "AI-Hub: 5 utterances; skipped duplicate wav_id 1, missing wav 1, tied or no votes 1" in caplog.text


def test_aihub_duplicated_wav_id_header_and_annotation_folder(tmp_path: Path) -> None:
    root = tmp_path / "AI_Hub"
    head = list(AIHUB_HEAD)
    head[1] = "wav_id"  # a known release quirk: the second header repeats wav_id
    _csv(root / "annotation/5차년도_2차.csv", [head, _aihub_row("abc", "미안해.", ["Sadness"] * 4 + ["Neutral"])], "cp949")
    _wav(root / "wav/abc.wav")
    [item] = read_aihub(root)
    assert (item.id, item.label, item.speaker, item.text) == ("aihub:abc", "sad", "5차년도_2차_30_male", "미안해.")


def test_aihub_unknown_vote_is_input_error(tmp_path: Path) -> None:
    root = tmp_path / "a"
    _csv(root / "4차년도.csv", [AIHUB_HEAD, _aihub_row("x", "t", ["Angry", "Bored", "Angry", "Angry", "Angry"])])
    _wav(root / "4차년도/x.wav")
    with pytest.raises(InputError, match=r"'Bored' in 4차년도.csv line 2"):
        read_aihub(root)


# ---------------------------------------------------------------------------------------------------- IEMOCAP
EVAL_HEADER = "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"


def _eval_block(start: float, end: float, utt: str, code: str) -> str:
    return (
        f"[{start:.4f} - {end:.4f}]\t{utt}\t{code}\t[2.5000, 2.5000, 2.5000]\n"
        "C-E2:\tNeutral;\t()\nC-E3:\tNeutral;\t()\nA-E3:\tval 3; act 2; dom  2;\t()\n\n"
    )


def _iemocap(root: Path) -> Path:
    s1 = root / "Session1"
    ev = s1 / "dialog/EmoEvaluation"
    ev.mkdir(parents=True)
    (ev / "Ses01F_impro01.txt").write_text(
        EVAL_HEADER
        + _eval_block(6.2901, 8.2357, "Ses01F_impro01_F000", "neu")
        + _eval_block(10.0, 11.5, "Ses01F_impro01_M000", "fru")  # skipped
        + _eval_block(12.0, 13.0, "Ses01F_impro01_M001", "exc")  # -> happy
        + _eval_block(14.0, 15.0, "Ses01F_impro01_F001", "xxx"),  # skipped
        encoding="utf-8",
    )
    (ev / "Categorical").mkdir()
    (ev / "Categorical/Ses01F_impro01_e2_cat.txt").write_text("Ses01F_impro01_F000 :Neutral state; ()\n")
    (ev / "._Ses01F_impro01.txt").write_bytes(b"\x00\x05\x16\x07\xff\xfe macOS resource fork")
    (s1 / "dialog/transcriptions").mkdir(parents=True)
    (s1 / "dialog/transcriptions/Ses01F_impro01.txt").write_text(
        "Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me.\n"
        "Ses01F_impro01_M000 [010.0000-011.5000]: Do you have your forms?\n"
        "Ses01F_impro01_MXX0 [011.6000-011.9000]: [BREATHING]\n"
        "Ses01F_impro01_M001 [012.0000-013.0000]: Yeah! [LAUGHTER]\n",
        encoding="utf-8",
    )
    for utt in ("Ses01F_impro01_F000", "Ses01F_impro01_M000", "Ses01F_impro01_M001", "Ses01F_impro01_F001"):
        _wav(s1 / "sentences/wav/Ses01F_impro01" / f"{utt}.wav")

    s2 = root / "Session2"
    (s2 / "dialog/EmoEvaluation").mkdir(parents=True)
    (s2 / "dialog/EmoEvaluation/Ses02M_script01_1.txt").write_text(
        EVAL_HEADER
        + _eval_block(1.0, 2.0, "Ses02M_script01_1_F003", "ang")
        + _eval_block(2.0, 3.0, "Ses02M_script01_1_M002", "sad")  # no transcript line
        + _eval_block(3.0, 4.0, "Ses02M_script01_1_M004", "oth")  # skipped
        + _eval_block(4.0, 5.0, "Ses02M_script01_1_M005", "sur"),  # no wav -> skipped
        encoding="utf-8",
    )
    (s2 / "dialog/transcriptions").mkdir(parents=True)
    (s2 / "dialog/transcriptions/Ses02M_script01_1.txt").write_text(
        "Ses02M_script01_1_F003 [001.0000-002.0000]: Get out.\n", encoding="utf-8"
    )
    for utt in ("Ses02M_script01_1_F003", "Ses02M_script01_1_M002", "Ses02M_script01_1_M004"):
        _wav(s2 / "sentences/wav/Ses02M_script01_1" / f"{utt}.wav")
    return root


def test_iemocap_reads_full_release_layout(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = _iemocap(tmp_path / "IEMOCAP_full_release")
    with caplog.at_level(logging.INFO, logger="emomon"):
        items = read_iemocap(root)
    _check_common(items, "iemocap")
    got = {i.id: (i.label, i.speaker, i.text) for i in items}
    assert got == {
        "iemocap:Ses01F_impro01_F000": ("neutral", "Ses01F", "Excuse me."),
        "iemocap:Ses01F_impro01_M001": ("happy", "Ses01M", "Yeah! [LAUGHTER]"),
        "iemocap:Ses02M_script01_1_F003": ("angry", "Ses02F", "Get out."),
        "iemocap:Ses02M_script01_1_M002": ("sad", "Ses02M", None),
    }
    assert _by_id(items)["iemocap:Ses01F_impro01_F000"].audio == root / "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav"
    assert "IEMOCAP: 4 utterances; skipped fru 1, missing wav 1, oth 1, xxx 1" in caplog.text


def test_iemocap_unknown_code_is_input_error(tmp_path: Path) -> None:
    root = tmp_path / "i"
    ev = root / "Session1/dialog/EmoEvaluation"
    ev.mkdir(parents=True)
    (ev / "Ses01F_impro01.txt").write_text(EVAL_HEADER + _eval_block(1, 2, "Ses01F_impro01_F000", "bor"))
    with pytest.raises(InputError, match=r"'bor' in Ses01F_impro01.txt line 3"):
        read_iemocap(root)


# ---------------------------------------------------------------------------------------------------- all readers
READERS = [read_kemdy19, read_kemdy20, read_aihub, read_iemocap]


@pytest.mark.parametrize("reader", READERS, ids=lambda r: r.__name__)
def test_missing_root_is_input_error(tmp_path: Path, reader) -> None:
    with pytest.raises(InputError, match="not found"):
        reader(tmp_path / "nope")


@pytest.mark.parametrize(
    ("reader", "expected"),
    [
        (read_kemdy19, r"annotation/Session\*\.csv"),
        (read_kemdy20, r"annotation/Sess\*_eval\.csv"),
        (read_aihub, r"4차년도\.csv"),
        (read_iemocap, r"EmoEvaluation/\*\.txt"),
    ],
    ids=lambda r: getattr(r, "__name__", ""),
)
def test_empty_root_is_input_error_naming_layout(tmp_path: Path, reader, expected: str) -> None:
    (tmp_path / "stray.wav").write_bytes(b"")
    with pytest.raises(InputError, match=expected):
        reader(tmp_path)


def test_registry_names_the_four_readers() -> None:
    assert SEED_READERS == {"kemdy19": read_kemdy19, "kemdy20": read_kemdy20, "aihub": read_aihub, "iemocap": read_iemocap}
