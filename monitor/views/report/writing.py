"""Writing the report: ``<stem>.html`` and ``<stem>.png`` next to the session CSV (or into ``out_dir``), both
user-only (0600), replacing an earlier report of the same CSV atomically. A folder that cannot be written raises
:class:`~emomon.errors.OutputError`."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from emomon.config import DashboardConfig
from emomon.errors import OutputError
from emomon.files import make_private_folder, output_error
from emomon.monitor.views.report.figure import figure_size_px, render_png
from emomon.monitor.views.report.page import html_pieces
from emomon.monitor.views.report.reading import read_session


def write_report(csv_path: Path, out_dir: Path | None = None, *, unsure_below: float | None = None) -> tuple[Path, Path]:
    """Write ``<stem>.html`` and ``<stem>.png`` for a session CSV (next to it, or in ``out_dir``); returns
    (html_path, png_path). Readings with a confidence below ``unsure_below`` are shown as unsure (None: the code
    default of ``[dashboard] unsure_below``; ``emomon report --config`` passes the preset's)."""
    if unsure_below is None:
        unsure_below = DashboardConfig().unsure_below
    csv_path = Path(csv_path)
    session = read_session(csv_path)
    folder = Path(out_dir) if out_dir is not None else csv_path.parent
    if not folder.exists():
        make_private_folder(folder)
    elif not folder.is_dir():
        raise OutputError(f"cannot write the report into {folder}: it is not a folder")
    html_path = folder / f"{csv_path.stem}.html"
    png_path = folder / f"{csv_path.stem}.png"
    png = render_png(session, unsure_below)
    _write_private(png_path, [png])
    _write_private(html_path, _encoded(html_pieces(session, png, figure_size_px(len(session.speakers)), unsure_below)))
    return html_path, png_path


def _encoded(pieces: Iterable[str], size: int = 1 << 20) -> Iterable[bytes]:
    """The pieces as UTF-8, gathered into blocks of about ``size`` characters (few writes, little memory)."""
    block: list[str] = []
    n = 0
    for piece in pieces:
        block.append(piece)
        n += len(piece)
        if n >= size:
            yield "".join(block).encode("utf-8")
            block, n = [], 0
    if block:
        yield "".join(block).encode("utf-8")


def _write_private(path: Path, blocks: Iterable[bytes]) -> None:
    """Write the ``blocks`` to ``path`` user-only (0600), replacing an earlier file atomically (temp file + rename);
    nothing is left behind when making or writing them fails."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as exc:
        raise output_error(path, exc, "create") from None
    try:
        try:
            os.fchmod(fd, 0o600)
            for data in blocks:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        _remove(tmp)
        raise output_error(path, exc, "write") from None
    except BaseException:
        _remove(tmp)
        raise


def _remove(tmp: Path) -> None:
    try:
        tmp.unlink()
    except OSError:
        pass
