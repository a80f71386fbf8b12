"""Writing files safely: user-only session files and folders, one-line errors for every refusal, and atomic
replacement (a temporary file beside the target, fsynced, then renamed over it) so that a crash or a full disk
never leaves half a file."""

from __future__ import annotations

import errno
import io
import os
import tempfile
from pathlib import Path
from typing import TextIO

from emomon.errors import OutputError


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` atomically; ``mode`` is set before the rename (0o600 for session files)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def output_error(path: Path, exc: OSError, what: str) -> OutputError:
    reason = {
        errno.ENOENT: "the folder does not exist",
        errno.EACCES: "permission denied",
        errno.EROFS: "the file system is read-only",
        errno.ENOSPC: "the disk is full",
        errno.EEXIST: "the file already exists",
        errno.EISDIR: "it is a directory",
    }.get(exc.errno, exc.strerror or str(exc))
    return OutputError(f"cannot {what} {path}: {reason}")


def make_private_folder(folder: Path) -> None:
    """Create ``folder`` and any missing parents, the folder itself user-only (0700); a refusal is one error line."""
    try:
        folder.mkdir(mode=0o700, parents=True)
    except OSError as exc:
        raise output_error(folder, exc, "create folder") from None


def create_private_file(path: Path) -> TextIO:
    """Create ``path`` new (never overwrite), readable and writable by the user only (0600)."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise output_error(path, exc, "create") from None
    os.fchmod(fd, 0o600)  # the umask cannot widen it, but make it explicit
    return io.open(fd, "w", newline="", encoding="utf-8")
