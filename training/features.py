"""A disk cache of encoder outputs, so each clip and sentence is encoded once across training runs.

Layout: ``<root>/<encoder fingerprint hash>/<group>/part-NNNNN.safetensors``, each part a dict of item key -> fp16
(time, dim) array; ``.json`` parts hold strings (ASR transcripts). New results are appended as new parts every few
hundred items, so an interrupted extraction keeps what it finished. The default root is
``$EMOMON_CACHE`` or ``~/.cache/emomon/features``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from emomon.cache import default_cache_root
from emomon.progress import progress_bar

logger = logging.getLogger("emomon")


def text_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


@functools.lru_cache(maxsize=65536)
def _content_digest(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_key(path: Path, extra: str = "") -> str:
    """Identity of an audio file for the cache: its content digest and size (+ a variant tag).

    Content rather than path or modification time: a corpus copied, re-mounted or moved keeps its cache (a re-copy
    changes every mtime, which once cost an hour of re-encoding). Digests are memoised per (path, size, mtime).
    """
    st = path.stat()
    digest = _content_digest(str(path.resolve()), st.st_size, st.st_mtime_ns)
    return hashlib.sha1(f"{digest}|{st.st_size}|{extra}".encode()).hexdigest()


class FeatureStore:
    def __init__(self, root: Path | None = None, flush_every: int = 256):
        self.root = Path(root) if root else default_cache_root()
        self.flush_every = flush_every

    def _dir(self, fingerprint: str, group: str) -> Path:
        fp = hashlib.sha1(fingerprint.encode()).hexdigest()[:16]
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", group)
        d = self.root / fp / safe
        d.mkdir(parents=True, exist_ok=True)
        marker = self.root / fp / "fingerprint.txt"
        if not marker.exists():
            marker.write_text(fingerprint + "\n")
        return d

    # ------------------------------------------------------------------------------------------------ arrays
    def load_arrays(self, fingerprint: str, group: str) -> dict[str, np.ndarray]:
        from safetensors.numpy import load_file  # deferred: safetensors loads only when the cache is read

        out: dict[str, np.ndarray] = {}
        for part in sorted(self._dir(fingerprint, group).glob("part-*.safetensors")):
            try:
                out.update(load_file(str(part)))
            except Exception as exc:  # a part cut short by a crash: drop it, its items are recomputed
                logger.warning("feature cache part %s is unreadable (%s); recomputing its items", part, exc)
                part.unlink(missing_ok=True)
        return out

    def _write_arrays(self, d: Path, arrays: dict[str, np.ndarray]) -> None:
        from safetensors.numpy import save_file  # deferred: safetensors loads only when the cache is written

        n = len(list(d.glob("part-*.safetensors")))
        tmp = d / f".part-{n:05d}.tmp"
        save_file({k: np.ascontiguousarray(v, dtype=np.float16) for k, v in arrays.items()}, str(tmp))
        os.replace(tmp, d / f"part-{n:05d}.safetensors")

    def arrays(self, fingerprint: str, group: str, keys: Sequence[str], compute: Callable[[list[str]], list[np.ndarray]],
               batch_size: int = 8, description: str = "") -> dict[str, np.ndarray]:
        """Cached arrays for ``keys``; missing ones are computed ``batch_size`` at a time, with a progress bar."""
        d = self._dir(fingerprint, group)
        have = self.load_arrays(fingerprint, group)

        def compute_fp16(chunk: list[str]) -> list[np.ndarray]:  # what is returned is what a later run reads back
            return [np.asarray(v, dtype=np.float16) for v in compute(chunk)]

        self._fill(have, keys, compute_fp16, batch_size, description or f"encoding {group}", lambda part: self._write_arrays(d, part))
        return {k: have[k] for k in keys}

    # ------------------------------------------------------------------------------------------------ strings
    def strings(self, fingerprint: str, group: str, keys: Sequence[str], compute: Callable[[list[str]], list[str]],
                batch_size: int = 1, description: str = "") -> dict[str, str]:
        """Cached strings (e.g. transcripts) for ``keys``, stored as JSON parts."""
        d = self._dir(fingerprint, group)
        have: dict[str, str] = {}
        for part in sorted(d.glob("part-*.json")):
            try:
                have.update(json.loads(part.read_text(encoding="utf-8")))
            except (OSError, ValueError):
                part.unlink(missing_ok=True)

        def write(part: dict[str, str]) -> None:
            n = len(list(d.glob("part-*.json")))
            tmp = d / f".part-{n:05d}.tmp"
            tmp.write_text(json.dumps(part, ensure_ascii=False), encoding="utf-8")
            os.replace(tmp, d / f"part-{n:05d}.json")

        self._fill(have, keys, compute, batch_size, description or group, write)
        return {k: have[k] for k in keys}

    def _fill(self, have: dict, keys: Sequence[str], compute: Callable, batch_size: int, description: str,
              write: Callable[[dict], None]) -> None:
        """Compute the keys missing from ``have`` in batches, writing a new part every ``flush_every`` results."""
        missing = [k for k in dict.fromkeys(keys) if k not in have]
        if not missing:
            return
        pending: dict = {}
        with progress_bar(description, len(missing)) as advance:
            for i in range(0, len(missing), batch_size):
                chunk = missing[i : i + batch_size]
                pending.update(zip(chunk, compute(chunk)))
                advance(len(chunk))
                if len(pending) >= self.flush_every:
                    write(pending)
                    have.update(pending)
                    pending = {}
        if pending:
            write(pending)
            have.update(pending)
