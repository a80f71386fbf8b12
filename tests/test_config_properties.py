"""Property tests of the config loader: whatever a TOML preset or a checkpoint's config table holds - NaN, infinities,
-0, huge integers, bools, wrong types, unknown keys, deep nesting - loading gives a config whose every number is
finite and in range, or one line of ConfigError; never anything else (issue 31)."""

from __future__ import annotations

import dataclasses
import json
import math
import time
import typing

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from emomon.config import (MAX_NESTING, EmomonConfig, SourceConfig, checked_number, config_from_dict, config_to_dict,
                           load_config, nesting_depth, value_depth)
from emomon.errors import ConfigError

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------------------------------------------- the schema
def _fields(cls) -> list[tuple[str, typing.Any, dict]]:
    hints = typing.get_type_hints(cls)
    return [(f.name, hints[f.name], dict(f.metadata)) for f in dataclasses.fields(cls) if f.name != "base_dir"]


SECTIONS = {name: tp for name, tp, _ in _fields(EmomonConfig) if dataclasses.is_dataclass(tp)}


def assert_in_schema(cfg, where: str = "") -> None:
    """Every setting of ``cfg`` (a config dataclass) has its field's type and lies within its declared range or
    choices; every number is finite; no bool stands for a number."""
    for name, tp, meta in _fields(type(cfg)):
        value, key = getattr(cfg, name), f"{where}{name}"
        if dataclasses.is_dataclass(tp):
            assert_in_schema(value, f"{key}.")
            continue
        if name == "sources":
            for i, s in enumerate(value):
                assert isinstance(s, SourceConfig)
                assert_in_schema(s, f"{key}[{i}].")
            continue
        items, item_tp = (value, typing.get_args(tp)[0]) if typing.get_origin(tp) is tuple else ((value,), tp)
        assert isinstance(items, tuple), key
        for v in items:
            assert type(v) is item_tp, (key, v)  # exactly: a bool is not an int here, an int not a float
            if item_tp in (int, float):
                assert math.isfinite(v), (key, v)
                assert meta["lo"] is None or v >= meta["lo"], (key, v)
                assert meta["hi"] is None or v <= meta["hi"], (key, v)
            if item_tp is str:
                assert "\x00" not in v, key
            if meta.get("choices") is not None:
                assert v in meta["choices"], (key, v)


def test_every_numeric_setting_declares_its_range():
    """The helper checks a range only where one is declared: every number a preset can set has one (or choices)."""
    def walk(cls, where):
        for name, tp, meta in _fields(cls):
            if dataclasses.is_dataclass(tp):
                yield from walk(tp, f"{where}{name}.")
            elif name == "sources":
                yield from walk(SourceConfig, f"{where}{name}[].")
            elif (typing.get_args(tp)[0] if typing.get_origin(tp) is tuple else tp) in (int, float):
                yield f"{where}{name}", meta

    numeric = list(walk(EmomonConfig, ""))
    assert len(numeric) > 60
    for key, meta in numeric:
        assert meta["choices"] is not None or (meta["lo"] is not None and meta["hi"] is not None), key


# ---------------------------------------------------------------------------------------------------- values
EXTREMES = [float("nan"), float("inf"), float("-inf"), -0.0, 0.0, 1e308, -1e308, 5e-324, 2**63, -(2**63) - 1, 2**64, 10**30,
            -(10**30), 2**1100, True, False, "", "3", "nan", "\x00", [], [float("nan")], {}, None]
numbers = st.one_of(st.floats(), st.integers(), st.integers(min_value=-(2**2000), max_value=2**2000), st.sampled_from(EXTREMES))
scalars = st.one_of(numbers, st.booleans(), st.text(max_size=12), st.none())
anything = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                        max_leaves=8)


def _plausible(tp, meta) -> st.SearchStrategy:
    """Values a setting of type ``tp`` accepts, so that the valid branch is exercised too."""
    if meta.get("choices") is not None:
        return st.sampled_from(list(meta["choices"]))
    if tp is bool:
        return st.booleans()
    if tp is int:
        return st.integers(int(meta["lo"]), int(meta["hi"]))
    if tp is float:
        return st.floats(meta["lo"], meta["hi"])
    return st.text(max_size=10)


def _setting(tp, meta) -> st.SearchStrategy:
    """A value for one setting: mostly plausible, often extreme, sometimes anything at all."""
    if typing.get_origin(tp) is tuple:
        item = typing.get_args(tp)[0]
        if dataclasses.is_dataclass(item):
            return st.lists(_table(item), max_size=2) | anything
        return st.lists(_plausible(item, meta) | numbers, max_size=3) | anything
    return st.one_of(_plausible(tp, meta), _plausible(tp, meta), numbers, anything)


def _table(cls) -> st.SearchStrategy:
    """A TOML table for the dataclass ``cls``: some of its keys, now and then an unknown one."""
    fields = _fields(cls)
    optional = {name: (_table(tp) | anything) if dataclasses.is_dataclass(tp) else
                (st.lists(_table(SourceConfig), max_size=2) | anything) if name == "sources" else _setting(tp, meta)
                for name, tp, meta in fields}
    return st.fixed_dictionaries({}, optional=optional) | st.fixed_dictionaries({"colour": anything}, optional=optional)


documents = _table(EmomonConfig)


def _check_outcome(load) -> EmomonConfig | None:
    try:
        cfg = load()
    except ConfigError as exc:
        message = str(exc)
        assert message and "\n" not in message and "\r" not in message and len(message) < 1000, message
        return None
    assert isinstance(cfg, EmomonConfig)
    assert_in_schema(cfg)
    return cfg


@FAST
@given(documents)
def test_any_document_gives_a_valid_config_or_one_config_error(doc):
    cfg = _check_outcome(lambda: config_from_dict(doc))
    if cfg is not None:  # what loaded writes back and reads again to the same config (a checkpoint does this)
        again = config_from_dict({k: v for k, v in config_to_dict(cfg).items() if k != "base_dir"})
        assert again == cfg


SETTINGS = [(section, name, tp, meta) for section, cls in sorted(SECTIONS.items()) for name, tp, meta in _fields(cls)]
NUMERIC_SETTINGS = [s for s in SETTINGS if (typing.get_args(s[2])[0] if typing.get_origin(s[2]) is tuple else s[2]) in (int, float)]
NON_FINITE = st.sampled_from([float("nan"), float("inf"), float("-inf")])


@FAST
@given(st.data())
def test_any_value_of_one_setting_gives_that_value_or_one_config_error(data):
    """One setting at a time, so that a value let through is not hidden by another setting's error."""
    section, name, tp, meta = data.draw(st.sampled_from(NUMERIC_SETTINGS) | st.sampled_from(SETTINGS))
    value = data.draw(st.one_of(NON_FINITE, st.lists(NON_FINITE | numbers, max_size=3), numbers, anything, _setting(tp, meta)))
    cfg = _check_outcome(lambda: config_from_dict({section: {name: value}}))
    if cfg is not None:
        got = getattr(getattr(cfg, section), name)
        assert got == (tuple(value) if isinstance(value, list) and name != "sources" else value) or name == "sources"


@FAST
@given(st.sampled_from(sorted(SECTIONS)), st.data())
def test_every_setting_refuses_nan_infinities_and_bools_for_numbers(section, data):
    numeric = [(n, tp, m) for n, tp, m in _fields(SECTIONS[section])
               if (typing.get_args(tp)[0] if typing.get_origin(tp) is tuple else tp) in (int, float)]
    if not numeric:
        return
    name, tp, _ = data.draw(st.sampled_from(numeric))
    bad = data.draw(st.sampled_from([float("nan"), float("inf"), float("-inf"), True, 10**400]))
    value = [bad] if typing.get_origin(tp) is tuple else bad
    with pytest.raises(ConfigError, match=rf"^{section}\.{name}(\[0\])?: "):
        config_from_dict({section: {name: value}})


@pytest.mark.parametrize("value, message", [
    (float("nan"), "must be a finite number, got nan"),
    (float("inf"), "must be a finite number, got inf"),
    (True, "expected a number, got True"),
    (2**2000, "must be <= 1.0"),
    ("0.5", "expected a number, got '0.5'"),
])
def test_checked_number_refuses_what_a_comparison_lets_through(value, message):
    with pytest.raises(ConfigError, match=message):
        checked_number(value, "x", lo=0.0, hi=1.0)
    assert checked_number(-0.0, "x", lo=0.0, hi=1.0) == 0.0 and math.copysign(1, checked_number(-0.0, "x", lo=0.0)) == 1
    assert type(checked_number(1, "x", lo=0.0, hi=1.0)) is float
    with pytest.raises(ConfigError, match="expected an integer, got 1.0"):
        checked_number(1.0, "x", integer=True)
    with pytest.raises(ConfigError, match="is out of range"):
        checked_number(10**400, "x")  # no bound, yet no float holds it


# ---------------------------------------------------------------------------------------------------- TOML text
def toml_value(v) -> str:
    """A TOML literal of a parsed value (inline tables and arrays only, every key quoted)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return toml_string(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{toml_string(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(v)


def toml_string(s: str) -> str:
    return json.dumps(s, ensure_ascii=False).replace("\x7f", "\\u007f")


def toml_document(doc: dict) -> str:
    return "".join(f"{toml_string(k)} = {toml_value(v)}\n" for k, v in doc.items())


def _no_none(v) -> bool:
    return v is not None and (all(map(_no_none, v)) if isinstance(v, list) else all(map(_no_none, v.values())) if isinstance(v, dict) else True)


@FAST
@given(documents)
def test_a_toml_file_loads_exactly_as_its_table_does(tmp_path_factory, doc):
    """Through the file (UTF-8, the nesting scan, tomllib): the same config or the same error as the table."""
    assume(_no_none(doc))  # TOML has no null
    path = tmp_path_factory.mktemp("toml") / "preset.toml"
    path.write_text(toml_document(doc), encoding="utf-8")
    from_file = _check_outcome(lambda: load_config(path))
    from_table = _check_outcome(lambda: config_from_dict(doc))
    if from_table is None:
        assert from_file is None
    else:
        assert dataclasses.replace(from_file, base_dir="") == from_table


SPECIAL = st.text(alphabet=st.sampled_from(list("[]{}\"'\\#.=\n\t ab1")), max_size=300)


@FAST
@given(SPECIAL)
def test_brackets_quotes_and_dots_inside_strings_do_not_count_as_nesting(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("toml") / "preset.toml"
    path.write_text(f"description = {toml_string(text)}  # [[[[ {text.replace(chr(10), ' ')[:40]}\n"
                    f"name = '''{text.replace(chr(39), '')}'''\n", encoding="utf-8")
    cfg = load_config(path)
    assert cfg.description == text and cfg.name == text.replace("'", "").removeprefix("\n")


json_values = st.recursive(st.none() | st.booleans() | st.floats(allow_nan=False) | SPECIAL,
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(SPECIAL, inner, max_size=3), max_leaves=30)


@FAST
@given(json_values)
def test_the_nesting_scan_measures_what_the_parser_builds(value):
    """Without parsing, the scan finds the true depth: JSON, and TOML (a document's own table has no braces)."""
    assert nesting_depth(json.dumps(value), "json") == value_depth(value)
    assert nesting_depth(json.dumps(value, indent=1), "json") == value_depth(value)
    if _no_none(value):  # TOML has no null
        doc = {"k": value}
        assert nesting_depth(toml_document(doc), "toml") == value_depth(doc) - 1


def _deep(kind: str, depth: int) -> str:
    if kind == "array":
        return "a = " + "[" * depth + "]" * depth + "\n"
    if kind == "inline":
        return "a = " + "{b = " * depth + "1" + "}" * depth + "\n"
    if kind == "dotted":
        return "a" + ".b" * depth + " = 1\n"
    if kind == "header":
        return "[a" + ".b" * depth + "]\nc = 1\n"
    if kind == "unclosed":
        return "a = " + "[" * depth + "\n"
    # within the limit in each kind, too deep together: a dotted header, a dotted key and arrays
    third = depth // 3 + 1
    return "[a" + ".b" * third + "]\nc" + ".d" * third + " = " + "[" * third + "]" * third + "\n"


@settings(max_examples=12, deadline=None)
@given(st.sampled_from(["array", "inline", "dotted", "header", "unclosed", "mixed"]),
       st.integers(MAX_NESTING + 1, 200_000))
def test_deep_nesting_is_one_config_error_found_before_parsing(tmp_path_factory, kind, depth):
    path = tmp_path_factory.mktemp("toml") / "deep.toml"
    path.write_text(_deep(kind, depth))
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=f"nested more than {MAX_NESTING} deep") as err:
        load_config(path)
    assert "\n" not in str(err.value)
    assert time.perf_counter() - start < 2.0


def test_nesting_up_to_the_limit_is_fine(tmp_path):
    """A deep but allowed document gets as far as its keys: the limit is not a false alarm."""
    path = tmp_path / "ok.toml"
    for text in ("a = " + "[" * MAX_NESTING + "]" * MAX_NESTING + "\n", "a" + ".b" * (MAX_NESTING - 1) + " = 1\n"):
        path.write_text(text)
        with pytest.raises(ConfigError, match="unknown setting a;"):
            load_config(path)


@pytest.mark.parametrize("text, message", [
    ("a = " + "9" * 5000 + "\n", "not valid TOML: Exceeds the limit"),
    ("[model]\nlayers = " + "9" * 40 + "\n", "model.layers: must be <= 24, got 9999"),
    ("[train]\nlr = 1e400\n", "train.lr: must be a finite number, got inf"),
    ('description = "a\\u0000b"\n', "description: must not contain a NUL character"),
    ('"a\\nb" = 1\n', r"unknown setting 'a\\nb'; known keys"),
    ("[segmenter]\nmax_utterance_s = nan\n", "segmenter.max_utterance_s: must be a finite number, got nan"),
    ("[replay]\ntta_speeds = [1.0, nan]\n", r"replay.tta_speeds\[1\]: must be a finite number, got nan"),
    ("[runtime]\nqueue_seconds = -nan\n", "runtime.queue_seconds: must be a finite number, got nan"),
    ("[dashboard]\nrefresh_hz = +inf\n", "dashboard.refresh_hz: must be a finite number, got inf"),
    ("[diarization]\nthreshold = nan\n", "diarization.threshold: must be a finite number, got nan"),
    ("[encoders.speech]\nlayers = [2, 1000]\n", r"encoders.speech.layers\[1\]: must be <= 64"),
    ('extends = "en-tiny"\nname = "m-{member}"\n[[members]]\nmember = 2\nseed = nan\n', "train.seed: expected an integer, got nan"),
])
def test_the_issue_cases_are_one_line_config_errors(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as err:
        load_config(path, member=2 if "[[members]]" in text else None)
    assert "\n" not in str(err.value)
