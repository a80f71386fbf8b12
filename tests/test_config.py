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
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError):
        load_config(binary)


def test_data_root_env_overrides(monkeypatch, tmp_path):
    cfg = load_config("en-tiny")
    monkeypatch.setenv("EMOMON_DATA", str(tmp_path))
    assert cfg.source_path(cfg.data.sources[0]) == tmp_path / cfg.data.sources[0].path
