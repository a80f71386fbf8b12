import pytest

from emomon.errors import ConfigError
from emomon.config import EmomonConfig, config_from_dict, config_to_dict, load_config, preset_names


def test_presets_load_into_frozen_dataclasses():
    names = preset_names()
    assert {"en-tiny", "ko-seed"} <= set(names)
    cfg = load_config("en-tiny")
    assert isinstance(cfg, EmomonConfig)
    assert cfg.model.arch == "hyfuser" and cfg.model.layers == 3 and cfg.model.heads == 1 and cfg.model.ff_dim == 768
    assert cfg.model.layer_norm_eps == 1e-6
    assert cfg.train.lr == 1e-4 and cfg.train.batch_size == 32 and cfg.train.max_epochs == 30 and cfg.train.patience == 3
    with pytest.raises(Exception):
        cfg.model.layers = 4  # frozen
    ko = load_config("ko-seed")
    assert ko.encoders.text.name == "monologg/koelectra-base-v3-discriminator"
    assert ko.encoders.speech.name == "facebook/hubert-base-ls960"
    assert ko.model.text_len == 126


def test_round_trip_through_dict():
    cfg = load_config("en-tiny")
    again = config_from_dict({k: v for k, v in config_to_dict(cfg).items() if k != "base_dir"})
    assert again == cfg


@pytest.mark.parametrize(
    "doc, message",
    [
        ({"model": {"layerz": 3}}, "unknown setting model.layerz"),
        ({"colour": "red"}, "unknown setting colour"),
        ({"model": {"layers": 0}}, "model.layers: must be >= 1"),
        ({"model": {"dropout": 1.5}}, "model.dropout: must be <= 0.9"),
        ({"model": {"arch": "nope"}}, "model.arch: must be one of"),
        ({"train": {"batch_size": "32"}}, "train.batch_size: expected an integer"),
        ({"train": {"lr": True}}, "train.lr: expected a number"),
        ({"classes": ["angry", "bored"]}, "classes: 'bored' is not one of"),
        ({"data": {"sources": [{"corpus": "ravdess", "speakers": ["1"]}]}}, "unknown setting data.sources[0].speakers"),
        ({"encoders": {"speech": {"layers": "2"}}}, "encoders.speech.layers: expected a list"),
        ({"replay": {"tta_speeds": [0.95, 3.0]}}, "replay.tta_speeds[1]: must be <= 2.0"),
        ({"replay": {"baseline": "whole"}}, "replay.baseline: must be one of session, running"),
        ({"data": {"sources": ["ravdess"]}}, "data.sources[0]: expected a table"),
        ({"encoders": {"text": {"tune_corpora": ["meld", "meldd"]}}}, "encoders.text.tune_corpora[1]: must be one of"),
    ],
)
def test_bad_values_name_the_key(doc, message):
    with pytest.raises(ConfigError) as err:
        config_from_dict(doc)
    assert message in str(err.value)


def test_unreadable_configs_are_config_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[model\nlayers = 3\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="unknown preset"):
        load_config("no-such-preset")
    with pytest.raises(ConfigError, match="is a folder; give a .toml file"):
        load_config(tmp_path)
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError):
        load_config(binary)


def test_data_root_env_overrides(monkeypatch, tmp_path):
    cfg = load_config("en-tiny")
    monkeypatch.setenv("EMOMON_DATA", str(tmp_path))
    assert cfg.source_path(cfg.data.sources[0]) == tmp_path / cfg.data.sources[0].path


def test_a_preset_extends_another_table_by_table():
    tiny, mpnet = config_to_dict(load_config("en-tiny")), config_to_dict(load_config("en-mpnet"))
    assert mpnet["encoders"]["text"]["name"] == "mpnet" and mpnet["model"]["d_model"] == 384
    # everything it does not set is en-tiny's, down to the corpora and the text tuning
    assert mpnet["encoders"]["text"]["tune_corpora"] == tiny["encoders"]["text"]["tune_corpora"] == ["meld"]
    for key in ("name", "description", "encoders", "model"):
        mpnet.pop(key), tiny.pop(key)
    assert mpnet == tiny


def test_extends_in_a_file_merges_tables_and_replaces_lists(tmp_path):
    f = tmp_path / "mine.toml"
    f.write_text('extends = "en-tiny"\nname = "mine"\n[train]\nlr = 3e-4\n'
                 '[[data.sources]]\ncorpus = "ravdess"\npath = "ravdess"\ntest_speakers = ["24"]\n')
    cfg, tiny = load_config(f), load_config("en-tiny")
    assert cfg.name == "mine" and cfg.train.lr == 3e-4 and cfg.train.batch_size == tiny.train.batch_size
    assert [s.corpus for s in cfg.data.sources] == ["ravdess"]  # a list is replaced, not merged
    assert cfg.data.augment_copies == tiny.data.augment_copies and cfg.base_dir == str(tmp_path)


@pytest.mark.parametrize("value, message", [('"nope"', "bad.toml: extends = 'nope' is not a preset; presets: en-mpnet"), ("3", "extends: expected the name of a preset"),
                                            ('"other.toml"', "extends: expected the name of a preset")])
def test_bad_extends_is_a_config_error(tmp_path, value, message):
    f = tmp_path / "bad.toml"
    f.write_text(f"extends = {value}\n")
    with pytest.raises(ConfigError, match=message):
        load_config(f)


def test_presets_that_extend_each_other_in_a_loop_are_refused(tmp_path, monkeypatch):
    from emomon import config

    (tmp_path / "a.toml").write_text('extends = "b"\n')
    (tmp_path / "b.toml").write_text('extends = "a"\n')
    monkeypatch.setattr(config.resources, "files", lambda package: tmp_path)
    with pytest.raises(ConfigError, match=r"extends itself \(b -> a -> b\)|extends itself \(a -> b -> a\)"):
        load_config("a")
