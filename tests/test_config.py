import pytest

from emomon.errors import ConfigError
from emomon.config import (EmomonConfig, config_from_dict, config_to_dict, load_config, preset_names, recipe_names,
                           runtime_preset_names)


def test_presets_load_into_frozen_dataclasses():
    names = preset_names()
    assert {"default", "en-tiny", "ko-seed"} <= set(names)
    # runtime presets in configs/, training recipes in configs/recipes/; one name never means both
    assert runtime_preset_names() == ["default"]
    assert {"en-tiny", "ko-seed", "en-mpnet", "en-tiny-refit-member"} <= set(recipe_names())
    assert sorted(runtime_preset_names() + recipe_names()) == names and len(set(names)) == len(names)
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


@pytest.mark.parametrize("value, message", [('"nope"', "bad.toml: extends = 'nope' is not a preset; presets: default, en-mpnet"), ("3", "extends: expected the name of a preset"),
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


def test_a_name_in_both_preset_folders_is_refused(tmp_path, monkeypatch):
    from emomon import config

    (tmp_path / "recipes").mkdir()
    for f in (tmp_path / "x.toml", tmp_path / "recipes" / "x.toml", tmp_path / "recipes" / "y.toml"):
        f.write_text('name = "x"\n')
    monkeypatch.setattr(config.resources, "files", lambda package: tmp_path)
    assert load_config("y").name == "x" and config.runtime_preset_names() == ["x"] and config.recipe_names() == ["x", "y"]
    with pytest.raises(ConfigError, match="'x' is both a runtime preset .* and a training recipe"):
        load_config("x")


RUNTIME_SECTIONS = ("asr", "segmenter", "runtime", "replay", "dashboard", "alerts", "diarization")


def test_the_default_runtime_preset_writes_out_every_runtime_setting_at_its_code_default():
    import dataclasses
    import tomllib
    from importlib import resources

    text = resources.files("emomon.configs").joinpath("default.toml").read_text()
    doc = tomllib.loads(text)
    assert set(doc) == {"name", "description", *RUNTIME_SECTIONS}
    cfg, code = load_config("default"), EmomonConfig()
    for section in RUNTIME_SECTIONS:
        fields = [f.name for f in dataclasses.fields(getattr(code, section))]
        assert list(doc[section]) == fields, section  # every key, in the dataclass's order
        assert getattr(cfg, section) == getattr(code, section), section  # behaviour unchanged: the code defaults
    for line in text.splitlines():  # each key says what it is, on its own line
        if "=" in line and not line.startswith("#") and not line.startswith(("name", "description")):
            assert "  # " in line and len(line.split("  # ", 1)[1].strip()) > 10, line
    assert cfg.runtime.model == "hyfuser-tiny-en"


def test_replay_and_live_read_the_default_runtime_preset():
    from emomon.cli import build_parser

    for command in (["replay", "x.wav"], ["live"]):
        assert build_parser().parse_args(command).config == "default"
    # what they read before (the en-tiny recipe's runtime sections, all code defaults) is what they read now;
    # runtime.model names the same checkpoint under its new name (tests/test_shipped_model.py checks the alias)
    old, new = load_config("en-tiny"), load_config("default")
    for section in RUNTIME_SECTIONS:
        assert getattr(old, section) == getattr(new, section), section
    old_model = config_from_dict({"runtime": {"model": "en-tiny"}}).runtime  # an old user preset still loads
    assert old_model.model == "en-tiny"


# Facts of the eight presets the member recipe replaced, configs/en-tiny-refit-{b,c,d,e}.toml and their -cut stages
# (git show 3096aaf:configs/...): each member's letter, train.seed and encoders.text.tuned_from ("en-tiny", the
# shipped checkpoint's old name, for members 4 and 5).
OLD_MEMBERS = {2: ("b", 1, ""), 3: ("c", 2, ""), 4: ("d", 3, "en-tiny"), 5: ("e", 4, "en-tiny")}


@pytest.mark.parametrize("k", sorted(OLD_MEMBERS))
def test_member_k_resolves_to_what_its_old_presets_resolved_to(k):
    from dataclasses import replace

    letter, seed, tuned_from = OLD_MEMBERS[k]
    refit = load_config("en-tiny-refit")
    # en-tiny-refit-<letter>.toml: the refit with stage 3's text settings from the start, tuning seed 0, its own seed
    old_1 = replace(refit, name=f"en-tiny-refit-{letter}",
                    encoders=replace(refit.encoders, text=replace(refit.encoders.text, tune_epochs=4, tune_lr=5e-5,
                                                                  tune_schedule="linear", tune_seed=0, tuned_from=tuned_from)),
                    model=replace(refit.model, min_asr_logprob=-1.0),
                    train=replace(refit.train, seed=seed, text_branch_from_tuning=True))
    # en-tiny-refit-<letter>-cut.toml: from stage 1's run, clips cut like the monitor, clean copies, Adam 5e-5, 4 epochs,
    # the mean of epochs 1 and 4 kept
    old_2 = replace(old_1, name=f"en-tiny-refit-{letter}-cut",
                    data=replace(old_1.data, cut_like_monitor=True, augment_copies=0),
                    train=replace(old_1.train, init_from=f"runs/en-tiny-refit-{letter}", lr=5e-5, max_epochs=4,
                                  average_epochs=(1, 4)))
    new_1 = load_config("en-tiny-refit-member", member=k)
    new_2 = load_config("en-tiny-refit-member-cut", member=k)
    # only names changed: the runs are named by the member's number, stage 2 starts from stage 1's default --out, and
    # the shipped text layers of members 4 and 5 are named by the checkpoint's new name
    assert (new_1.name, new_2.name) == (f"en-tiny-refit-member-{k}", f"en-tiny-refit-member-{k}-cut")
    assert new_2.train.init_from == f"runs/{new_1.name}"
    assert new_1.encoders.text.tuned_from == new_2.encoders.text.tuned_from == ("hyfuser-tiny-en" if tuned_from else "")
    for new, old in ((new_1, old_1), (new_2, old_2)):
        renamed = replace(new, name=old.name, encoders=replace(new.encoders, text=replace(new.encoders.text, tuned_from=tuned_from)),
                          train=replace(new.train, init_from=old.train.init_from))
        assert renamed == old


@pytest.mark.parametrize(
    "members, member, message",
    [
        (None, None, r"trains one member of an ensemble: choose it with --member K \(K = 2, 3\)"),
        (None, 4, "--member 4: .* has members 2, 3"),
        ("[[members]]\nmember = 2\nseed = 1\ncolour = 1\n", 2, r"unknown setting members\[0\].colour; known keys here: member, seed, tuned_from"),
        ("[[members]]\nmember = 2\nseed = 1\n[[members]]\nmember = 2\nseed = 3\n", 2, r"members\[1\].member: member 2 is listed twice"),
        ("[[members]]\nmember = \"two\"\nseed = 1\n", 2, r"members\[0\].member: expected the member's number"),
        ("[[members]]\nmember = 2\nseed = -1\n", 2, "train.seed: must be >= 0"),
        ("members = 3\n", 2, "members: expected \\[\\[members\\]\\] tables"),
    ],
)
def test_bad_members_are_one_line_config_errors(tmp_path, members, member, message):
    f = tmp_path / "ens.toml"
    f.write_text('extends = "en-tiny"\nname = "ens-{member}"\n'
                 + (members if members is not None else "[[members]]\nmember = 2\nseed = 1\n[[members]]\nmember = 3\nseed = 2\n"))
    with pytest.raises(ConfigError, match=message) as err:
        load_config(f, member=member)
    assert "\n" not in str(err.value)


def test_members_need_their_number_in_the_name_and_only_member_recipes_take_one(tmp_path):
    f = tmp_path / "ens.toml"
    f.write_text('extends = "en-tiny"\nname = "ens"\n[[members]]\nmember = 2\nseed = 1\n')
    with pytest.raises(ConfigError, match=r"name: a recipe with \[\[members\]\] puts \{member\} in its name"):
        load_config(f, member=2)
    with pytest.raises(ConfigError, match=r"--member 2: en-tiny has no \[\[members\]\]"):
        load_config("en-tiny", member=2)
    # a file can extend a member recipe: it inherits the members, and {member} fills its own strings too
    f.write_text('extends = "en-tiny-refit-member-cut"\nname = "mine-{member}"\n[train]\ninit_from = "elsewhere/{member}"\n')
    cfg = load_config(f, member=5)
    assert (cfg.name, cfg.train.init_from, cfg.train.seed) == ("mine-5", "elsewhere/5", 4)
