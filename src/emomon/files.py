"""Writing files safely: user-only files (0600) and folders (0700) whatever the umask, one-line errors for every
refusal, outputs checked before any work starts, and atomic writes (a temporary file beside the target, fsynced,
then renamed over it, or linked in when nothing may be replaced) so that a crash or a full disk never leaves half a
file.

Every command that writes a file checks its output paths with :func:`check_output_path` (a file) or
:func:`check_output_folder` (a folder) before anything heavy runs (imports of torch or transformers, model loads,
evaluation, training): a path that cannot be written is one :class:`~emomon.errors.OutputError` line at once, not a
traceback hours later. An existing file is replaced only when the user asked (``--overwrite``); a symbolic link, a
folder or a device in a file's place is always refused.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import tempfile
from pathlib import Path
from typing import TextIO

from emomon.errors import OutputError

#: The file and folder modes of everything emomon writes: the user's only.
FILE_MODE = 0o600
FOLDER_MODE = 0o700


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: not every file system lets a folder be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int = FILE_MODE, *, overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` atomically: readers see the old file or the whole new one, never a part.

    ``mode`` (user-only by default) is set on the temporary file before it takes the name, so the umask never
    widens it. ``overwrite=False`` never replaces anything: the file is linked in under its name, which fails with
    :class:`FileExistsError` when something took the name meanwhile. Raises :class:`OSError` (callers word it)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # atomic and never replaces: EEXIST when the name is taken
            except FileExistsError:
                raise
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                    raise
                if os.path.lexists(path):  # a file system without hard links: check, then rename
                    raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(path)) from None
                os.replace(tmp, path)
            else:
                os.unlink(tmp)
        _fsync_folder(path.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def output_error(path: Path, exc: OSError, what: str) -> OutputError:
    reason = {
        errno.ENOENT: "the folder does not exist",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.EROFS: "the file system is read-only",
        errno.ENOSPC: "the disk is full",
        errno.EDQUOT: "the disk quota is exceeded",
        errno.EEXIST: "the file already exists",
        errno.EISDIR: "it is a directory",
        errno.ENOTDIR: "a part of the path is not a folder",
        errno.ENAMETOOLONG: "the name is too long",
        errno.ELOOP: "it is a symbolic link",
    }.get(exc.errno, exc.strerror or str(exc))
    return OutputError(f"cannot {what} {path}: {reason}")


def write_output(path: Path, data: bytes, *, overwrite: bool, what: str = "write") -> None:
    """:func:`atomic_write` of a user-only file, every failure one :class:`OutputError` line (``cannot <what> ...``).
    Without ``overwrite``, a file that appeared since the output was checked is left as it is."""
    try:
        atomic_write(Path(path), data, FILE_MODE, overwrite=overwrite)
    except FileExistsError:
        raise OutputError(f"cannot {what} {path}: it already exists (it appeared while emomon worked; nothing was "
                          "replaced); choose another path, or --overwrite to replace it") from None
    except OSError as exc:
        raise output_error(Path(path), exc, what) from None


def _link_target(path: Path) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "?"


def _check_creatable(folder: Path, refuse) -> None:
    """``folder`` does not exist: the nearest folder above it that does must be a writable folder (the missing ones
    are created in it), and no dangling symbolic link may stand in the way."""
    for above in (folder, *folder.absolute().parents):
        if not os.path.lexists(above):
            continue
        if not above.exists():
            refuse(f"{above} is a symbolic link to {_link_target(above)}, which does not exist")
        if not above.is_dir():
            refuse(f"{above} is not a writable folder (it is a file)")
        if not os.access(above, os.W_OK | os.X_OK):
            refuse(f"{above} is not a writable folder")
        return


def check_output_folder(folder: Path, *, what: str, verb: str = "write", create: bool = True, new: bool = False,
                        exists_hint: str = "choose another folder") -> Path:
    """Refuse, as one :class:`OutputError` line (``cannot <verb> <what> <folder>: ...``), a folder that cannot take
    the output: a file or a dangling symbolic link in its place, a folder that is not writable, one that exists when
    ``new`` asks for a fresh one, or (when it is missing) one that cannot be created (``create``) or whose parent
    does not exist (not ``create``). Creates nothing; returns ``folder`` as a :class:`Path`."""
    try:
        return _check_output_folder(Path(folder), what=what, verb=verb, create=create, new=new, exists_hint=exists_hint)
    except OSError as exc:  # e.g. a folder on the way that may not be searched
        raise output_error(Path(folder), exc, f"{verb} {what}") from None


def _check_output_folder(folder: Path, *, what: str, verb: str, create: bool, new: bool, exists_hint: str) -> Path:
    def refuse(reason: str):
        raise OutputError(f"cannot {verb} {what} {folder}: {reason}")

    if os.path.islink(folder) and not folder.exists():
        refuse(f"it is a symbolic link to {_link_target(folder)}, which does not exist")
    if folder.exists():
        if not folder.is_dir():
            refuse("it is a file, not a folder")
        if new:
            refuse(f"it already exists; {exists_hint}")
        if not os.access(folder, os.W_OK | os.X_OK):
            refuse("the folder is not writable")
        return folder
    if create:
        _check_creatable(folder, refuse)
        return folder
    parent = folder.parent
    if not parent.exists():
        refuse(f"the folder {parent} does not exist")
    if not parent.is_dir():
        refuse(f"{parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        refuse(f"the folder {parent} is not writable")
    return folder


def check_output_path(path: Path, *, overwrite: bool, what: str, verb: str = "write", parents: bool = False,
                      exists_hint: str = "choose another path, or --overwrite to replace it") -> Path:
    """Refuse, as one :class:`OutputError` line (``cannot <verb> <what> <path>: ...``), a file path that cannot be
    written: a symbolic link (dangling or not), a folder or anything but a regular file in its place, an existing
    file unless ``overwrite``, a missing parent folder (unless ``parents``: then the missing folders must be
    creatable), a parent that is not a folder or not writable. Creates nothing; returns ``path`` as a :class:`Path`.

    Run it before any heavy work, so that a bad path costs nothing and leaves nothing behind."""
    try:
        return _check_output_path(Path(path), overwrite=overwrite, what=what, verb=verb, parents=parents,
                                  exists_hint=exists_hint)
    except OSError as exc:  # e.g. a folder on the way that may not be searched
        raise output_error(Path(path), exc, f"{verb} {what}") from None


def _check_output_path(path: Path, *, overwrite: bool, what: str, verb: str, parents: bool, exists_hint: str) -> Path:
    def refuse(reason: str):
        raise OutputError(f"cannot {verb} {what} {path}: {reason}")

    if not str(path).strip():
        refuse("the path is empty")
    if os.path.islink(path):
        target = _link_target(path)
        if not path.exists():
            refuse(f"it is a symbolic link to {target}, which does not exist")
        refuse(f"it is a symbolic link (to {target}); give the real path")
    if path.exists():
        st = path.stat()
        if stat.S_ISDIR(st.st_mode):
            refuse("it is a folder; give a file name")
        if not stat.S_ISREG(st.st_mode):
            refuse("it is not a regular file")
        if not overwrite:
            refuse(f"it already exists; {exists_hint}")
    parent = path.parent
    if not parent.exists():
        if parents:
            _check_creatable(parent, refuse)
            return path
        if os.path.lexists(parent):
            refuse(f"the folder {parent} does not exist (a symbolic link to {_link_target(parent)})")
        refuse(f"the folder {parent} does not exist")
    if not parent.is_dir():
        refuse(f"{parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        refuse(f"the folder {parent} is not writable")
    return path


def make_private_folder(folder: Path, *, exist_ok: bool = False) -> list[Path]:
    """Create ``folder`` and any missing parents, each user-only (0700) whatever the umask; a refusal is one error
    line. Returns the folders it created, outermost first (empty when ``exist_ok`` and it was there), so that a
    start that fails can remove them again."""
    folder = Path(folder)
    missing: list[Path] = []
    p = folder
    while not os.path.lexists(p) and p != p.parent:
        missing.append(p)
        p = p.parent
    if not missing:
        if exist_ok and folder.is_dir():
            return []
        raise output_error(folder, FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST)), "create folder")
    created: list[Path] = []
    p = folder
    try:
        for p in reversed(missing):
            try:
                os.mkdir(p, FOLDER_MODE)
            except FileExistsError:  # made meanwhile by someone else: use it, but it is not ours to remove
                if p.is_dir() and (p != folder or exist_ok):
                    continue
                raise
            created.append(p)
            os.chmod(p, FOLDER_MODE)  # the umask may have narrowed it (e.g. 0277); make it exactly 0700
    except OSError as exc:
        remove_folders(created)
        raise output_error(p, exc, "create folder") from None
    return created


def remove_folders(folders: list[Path]) -> None:
    """Remove folders emomon created (innermost first), each only if it is still empty; never raises."""
    for f in reversed(list(folders)):
        try:
            os.rmdir(f)
        except OSError:
            pass


def create_private_file(path: Path) -> TextIO:
    """Create ``path`` new (never overwrite, never through a symbolic link), readable and writable by the user only
    (0600)."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), FILE_MODE)
    except OSError as exc:
        raise output_error(path, exc, "create") from None
    os.fchmod(fd, FILE_MODE)  # the umask cannot widen it, but make it explicit
    return io.open(fd, "w", newline="", encoding="utf-8")
