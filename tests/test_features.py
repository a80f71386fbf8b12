"""The feature cache: computed once, reused, and robust to a part cut short by a crash."""

import numpy as np

from emomon.training.features import FeatureStore


def test_arrays_are_computed_once_and_reused(tmp_path):
    store = FeatureStore(tmp_path, flush_every=2)
    calls = []

    def compute(keys):
        calls.extend(keys)
        return [np.full((len(k), 3), float(len(k))) for k in keys]

    got = store.arrays("enc:1", "g", ["a", "bb", "ccc"], compute, batch_size=2)
    assert calls == ["a", "bb", "ccc"] and got["bb"].shape == (2, 3) and got["bb"].dtype == np.float16
    again = FeatureStore(tmp_path).arrays("enc:1", "g", ["bb", "dddd"], compute)
    assert calls == ["a", "bb", "ccc", "dddd"] and float(again["dddd"][0, 0]) == 4.0
    # another encoder fingerprint is another cache
    FeatureStore(tmp_path).arrays("enc:2", "g", ["a"], compute)
    assert calls[-1] == "a"


def test_a_damaged_part_is_dropped_and_recomputed(tmp_path):
    store = FeatureStore(tmp_path, flush_every=1)
    store.arrays("enc", "g", ["a", "b"], lambda ks: [np.ones((1, 2))] * len(ks), batch_size=1)  # one part each
    parts = sorted(tmp_path.rglob("part-*.safetensors"))
    parts[0].write_bytes(parts[0].read_bytes()[:20])
    recomputed = []
    store.arrays("enc", "g", ["a", "b"], lambda ks: recomputed.extend(ks) or [np.zeros((1, 2))] * len(ks))
    assert len(recomputed) == 1


def test_strings(tmp_path):
    store = FeatureStore(tmp_path)
    assert store.strings("asr", "g", ["x", "y"], lambda ks: [k.upper() for k in ks]) == {"x": "X", "y": "Y"}
    assert FeatureStore(tmp_path).strings("asr", "g", ["y"], lambda ks: ["never"]) == {"y": "Y"}


def test_file_key_follows_content_not_path_or_mtime(tmp_path):
    import os
    import shutil

    from emomon.training.features import file_key

    a = tmp_path / "a.wav"
    a.write_bytes(b"RIFF" + bytes(range(256)) * 10)
    copy = tmp_path / "elsewhere" / "a.wav"
    copy.parent.mkdir()
    shutil.copy(a, copy)
    os.utime(copy, (1_000_000, 1_000_000))  # a re-copied corpus: same bytes, new place and time
    assert file_key(a, "x") == file_key(copy, "x")
    assert file_key(a, "x") != file_key(a, "y")
    copy.write_bytes(b"RIFF" + bytes(range(255, -1, -1)) * 10)  # same size, other content
    assert file_key(a, "x") != file_key(copy, "x")


def test_a_sentence_several_items_share_is_read_once_and_given_to_each(tmp_path, monkeypatch):
    """MELD repeats short sentences ("Okay."): each item must get the rendering, not only the last one read."""
    import emomon.training.data.synth as synth
    from emomon.config import load_config
    from emomon.training.data import Item
    from emomon.training.feature_bank import FeatureBank
    from emomon.training.feature_builder import FeatureBuilder
    from emomon.models.frames import Frames

    spoken = []
    monkeypatch.setattr(synth, "speak", lambda text, voice="en-us", **_: spoken.append(text) or np.zeros(160, np.float32))

    class Encoder:
        fingerprint = "fake-encoder"

        def encode(self, audios):
            return Frames.pad([np.ones((2, 4), np.float32) for _ in audios], 4)

    builder = FeatureBuilder(load_config("en-tiny"), FeatureStore(tmp_path))
    builder._speech = Encoder()
    items = [Item(f"meld:test:{d}_0", "meld", "neutral", "Joey", text=t)
             for d, t in enumerate(["Okay.", "Okay.", "Oh my God!", "Okay.", ""])]
    bank = FeatureBank()
    builder.synth_features(items, bank, voice="en-us")
    assert sorted(spoken) == ["Oh my God!", "Okay."]  # one reading per distinct sentence
    assert set(bank.synth_key) == {it.id for it in items[:4]}  # every item with text, the empty one without
    assert bank.synth_key[items[0].id] == bank.synth_key[items[1].id] == bank.synth_key[items[3].id] != bank.synth_key[items[2].id]
    assert all(k in bank.speech and bank.speaker_of[k] == "espeak:en-us" for k in bank.synth_key.values())
