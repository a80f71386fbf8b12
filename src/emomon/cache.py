"""Where emomon keeps what it can recompute: encoder features, joined packaged models."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_root() -> Path:
    env = os.environ.get("EMOMON_CACHE")
    base = Path(env).expanduser() if env else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "emomon"
    return base / "features"
