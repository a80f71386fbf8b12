"""Corpus adapters on tiny fixtures in each corpus's distributed layout, and speaker-held-out splits."""

import csv

import numpy as np
import pytest

from emomon.errors import ConfigError, InputError
from emomon.training.data.corpora import assign_splits, read_corpus, read_manifest
from emomon.training.data.synth import write_wav

from conftest import SHARED_DATA, requires_shared


def wav(path, seconds=0.2):
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_wav(path, np.zeros(int(seconds * 16000), np.float32))


def test_manifest(tmp_path):
    wav(tmp_path / "a" / "x.wav")
    rows = [
        {"audio": "a/x.wav", "text": "hello", "label": "joy", "speaker": "s1", "split": "train"},
        {"audio": "", "text": "only words", "label": "Sadness", "speaker": "s2", "split": "dev"},
        {"audio": str(tmp_path / "a" / "x.wav"), "text": "", "label": "calm", "speaker": "s3", "split": ""},
    ]
    m = tmp_path / "m.csv"
    with open(m, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["audio", "text", "label", "speaker", "split"])
        w.writeheader()
        w.writerows(rows)
    items = read_manifest(m)
    assert [i.label for i in items] == ["happy", "sad", "neutral"]
    assert items[0].audio == tmp_path / "a" / "x.wav" and items[1].audio is None and items[2].text is None
    assert [i.split for i in items] == ["train", "val", None]


@pytest.mark.parametrize(
    "content, message",
    [
        ("audio,text,label,speaker,split\nx.wav,hi,bored,s1,train\n", "unknown emotion label 'bored' in m.csv line 2"),
        ("audio,text,label,speaker,split\n,,angry,s1,train\n", "neither audio nor text"),
        ("audio,text,label,speaker,split\nx.wav,hi,angry,s1,holdout\n", "unknown split 'holdout'"),
        ("audio,text,emotion\nx.wav,hi,angry\n", "needs the columns"),
        ("", "has no rows"),
    ],
)
def test_bad_manifests(tmp_path, content, message):
    m = tmp_path / "m.csv"
    m.write_text(content)
    with pytest.raises(InputError, match=message):
        read_manifest(m)


def test_ravdess_layout(tmp_path):
    for name in ["03-01-02-01-01-01-01", "03-01-05-02-02-01-01", "03-01-08-01-01-02-12"]:
        wav(tmp_path / f"Actor_{name[-2:]}" / f"{name}.flac")
    wav(tmp_path / "Actor_01" / "02-01-05-02-02-01-01.wav")  # video-only modality code: ignored
    items = read_corpus("ravdess", tmp_path)
    assert sorted((i.label, i.speaker, i.text) for i in items) == [
        ("angry", "1", "Dogs are sitting by the door."),
        ("neutral", "1", "Kids are talking by the door."),
        ("surprise", "12", "Kids are talking by the door."),
    ]


def test_meld_and_goemotions_layouts(tmp_path):
    meld = tmp_path / "meld"
    meld.mkdir()
    header = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID\n"
    (meld / "train_sent_emo.csv").write_text(header + '1,"Oh. That\x92s so Monica",Rachel,joy,positive,0,1\n', encoding="utf-8")
    (meld / "test_sent_emo.csv").write_text(header + "1,No way!,Ross,surprise,positive,3,0\n", encoding="utf-8")
    items = read_corpus("meld", meld)
    assert [(i.text, i.label, i.split, i.speaker) for i in items] == [
        ("Oh. That's so Monica", "happy", "train", "Rachel"),
        ("No way!", "surprise", "test", "Ross"),
    ]
    go = tmp_path / "go"
    go.mkdir()
    (go / "labels.txt").write_text("anger\ndisgust\nfear\njoy\nneutral\nsadness\nsurprise\n")
    (go / "train.tsv").write_text("so mad\t0\tc1\nmixed\t3,5\tc2\nmeh\t4\tc3\n")
    items = read_corpus("goemotions", go)
    assert [(i.text, i.label) for i in items] == [("so mad", "angry"), ("meh", "neutral")]  # multi-label row skipped


def test_ased_and_nemo_layouts(tmp_path):
    ased = tmp_path / "ased"
    wav(ased / "01Neutral" / "n1-01-01-01-07.ogg")
    wav(ased / "05Angry" / "a3-02-03-02-12.ogg")
    items = read_corpus("ased", ased)
    assert sorted((i.label, i.speaker, i.text) for i in items) == [("angry", "12", None), ("neutral", "7", None)]
    nemo = tmp_path / "nemo"
    wav(nemo / "samples" / "AB0_anger_1.ogg")
    (nemo / "data.tsv").write_text("file_id\temotion\traw_text\tnormalized_text\tspeaker_id\tgender\tage\n"
                                   "AB0_anger_1.wav\tanger\tDzień dobry.\tdzień dobry\t        AB0\tmale\t30\n", encoding="utf-8")
    (item,) = read_corpus("nemo", nemo)
    assert (item.label, item.speaker, item.text, item.audio.suffix) == ("angry", "AB0", "Dzień dobry.", ".ogg")


def test_missing_corpus_and_unknown_reader(tmp_path):
    with pytest.raises(InputError, match="RAVDESS corpus not found"):
        read_corpus("ravdess", tmp_path / "nope")
    with pytest.raises(InputError, match="no reader for corpus"):
        read_corpus("swbd", tmp_path)


def test_speaker_held_out_splits():
    from emomon.training.data import Item

    items = [Item(f"x:{s}:{k}", "x", "happy", str(s)) for s in range(1, 11) for k in range(3)]
    out = assign_splits(items, test_speakers=("9", "10"), val_speakers=("8",))
    by = {(i.speaker, i.split) for i in out}
    assert {s for s, sp in by if sp == "test"} == {"9", "10"} and {s for s, sp in by if sp == "val"} == {"8"}
    frac = assign_splits(items, test_fraction=0.2, val_fraction=0.1)
    speakers = {sp: {i.speaker for i in frac if i.split == sp} for sp in ("train", "val", "test")}
    assert len(speakers["test"]) == 2 and len(speakers["val"]) == 1
    assert not (speakers["train"] & speakers["test"]) and not (speakers["train"] & speakers["val"])
    with pytest.raises(ConfigError):
        assign_splits(items, test_speakers=("1",), val_speakers=("1",))


def test_a_speaker_the_corpus_lacks_is_an_error_not_a_test_speaker_trained_on():
    from emomon.training.data import Item

    items = [Item(f"ravdess:{s}:{k}", "ravdess", "happy", str(s)) for s in range(1, 25) for k in range(2)]
    # RAVDESS speakers are "19", not "Actor_19": without the check actor 19 would silently land in training
    with pytest.raises(ConfigError, match=r"data.sources\[0\].test_speakers: speaker 'Actor_19' is not in ravdess; its speakers: 1, 2, "):
        assign_splits(items, test_speakers=("Actor_19", "20"), where="data.sources[0].")
    with pytest.raises(ConfigError, match="val_speakers: speaker '019'"):
        assign_splits(items, test_speakers=("19",), val_speakers=("019",))


def test_a_manifest_may_not_split_one_speakers_clips(tmp_path):
    def manifest(rows):
        path = tmp_path / "m.csv"
        path.write_text("audio,text,label,speaker,split\n" + "".join(f"{r}\n" for r in rows))
        return read_manifest(path)

    crossing = manifest(["a.wav,,happy,s1,train", "b.wav,,sad,s2,train", "c.wav,,sad,s1,test"])
    with pytest.raises(InputError, match=r"speaker 's1' has clips in both train \(manifest:1\) and test \(manifest:3\)"):
        assign_splits(crossing)
    # unnamed speakers and text-only rows carry no speaker identity to hold out
    fine = manifest(["a.wav,,happy,,train", "b.wav,,sad,,test", ",hi there,happy,Ross,train", ",oh no,sad,Ross,test"])
    assert [i.split for i in assign_splits(fine)] == ["train", "test", "train", "test"]
    # named held-out speakers override the column, so the crossing manifest is fine that way
    assert {i.split for i in assign_splits(crossing, test_speakers=("s1",)) if i.speaker == "s1"} == {"test"}


@requires_shared
def test_shared_corpora_read_whole():
    counts = {name: len(read_corpus(name, SHARED_DATA / sub)) for name, sub in
              [("ravdess", "ravdess"), ("ased", "ased"), ("nemo", "nemo"), ("meld", "text/meld")]}
    assert counts == {"ravdess": 1440, "ased": 2474, "nemo": 4481, "meld": 13708}
