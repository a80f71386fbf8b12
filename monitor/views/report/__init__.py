"""Session report: a self-contained HTML page and a PNG figure from a session CSV written by the monitor.

``write_report(csv_path)`` writes ``<stem>.html`` and ``<stem>.png`` next to the CSV (or into ``out_dir``), both
user-only (0600), replacing an earlier report of the same CSV atomically. The HTML has inline CSS and the PNG
embedded as base64: no external assets, no JavaScript; every piece of text from the CSV is HTML-escaped.
Readings with a confidence below ``[dashboard] unsure_below`` (``emomon report --config``) look unsure in both:
lighter, hatched, with a ``?``.

The package is split by job:

* :mod:`.reading`: the CSV -> :class:`~.reading.Session` (rows, event notes, the alerts the session wrote, a file
  cut off by a killed session);
* :mod:`.summary`: what the report computes from the rows (emotion colours and shares, valence/arousal series,
  session times);
* :mod:`.figure`: the PNG (matplotlib, fixed pixel size);
* :mod:`.page`: the HTML page (an "Alerts" table among its sections);
* :mod:`.writing`: :func:`write_report`, writing both files.

A file that is not a session CSV (binary, wrong header, empty) raises :class:`~emomon.errors.InputError`; a folder
that cannot be written raises :class:`~emomon.errors.OutputError`.
"""

from emomon.monitor.views.report.writing import write_report

__all__ = ["write_report"]
