"""The report's HTML page: one self-contained file with inline CSS and the figure embedded as a base64 PNG; no
external assets, no JavaScript, and every piece of text from the CSV HTML-escaped.

The page is made as a stream of pieces (:func:`html_pieces`) that :mod:`.writing` writes as they come, so a session
of a million rows (every one in the transcript table) never has its whole page in memory at once."""

from __future__ import annotations

import base64
import datetime as dt
import html
import math
from collections.abc import Iterator

from emomon.monitor.views.alerts import TITLES
from emomon.monitor.views.report.reading import Row, Session
from emomon.monitor.views.report.summary import (ALERT_COLORS, OTHER_ALERT_COLOR, affect_of, clock, color_map, is_unsure,
                                                 lighter, shares, time_range)
from emomon.records import Alert

CSS = """
body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;color:#222;margin:0;
background:#f6f7f9}
main{max-width:1640px;margin:0 auto;padding:24px}
h1{font-size:24px;margin:0 0 12px}h2{font-size:19px;margin:28px 0 10px}h3{font-size:16px;margin:0 0 8px}
table{border-collapse:collapse}
.meta td{padding:2px 16px 2px 0}.meta td:first-child{color:#666}
.card{background:#fff;border:1px solid #e2e4e8;border-radius:8px;padding:16px;margin:12px 0}
.note{background:#fff7e0;border:1px solid #f0d68a;border-radius:6px;padding:8px 12px;margin:8px 0}
.empty{font-size:18px;color:#666}
img.fig{width:100%;height:auto;display:block}
.chip{display:inline-block;padding:1px 8px;border-radius:10px;color:#111;font-size:13px;white-space:nowrap}
.speakers{display:flex;flex-wrap:wrap;gap:12px}.speakers .card{flex:1 1 300px;margin:0}
.shares span{margin:0 6px 4px 0}
.tr{width:100%;background:#fff;border:1px solid #e2e4e8}
.tr th{text-align:left;background:#eef0f3;padding:6px 10px;font-weight:600;position:sticky;top:0}
.tr td{padding:5px 10px;border-top:1px solid #eceef1;vertical-align:top}
.tr td.t{white-space:nowrap;color:#555;font-variant-numeric:tabular-nums}
.tr td.c{text-align:right;font-variant-numeric:tabular-nums}
.muted{color:#888;font-style:italic}
.chip.unsure{border:1px dashed #555;padding:0 7px}
.tr td.c.unsure{color:#888}
.kind{border-left:4px solid;padding-left:6px;white-space:nowrap}
"""


def render_html(session: Session, png: bytes, png_size: tuple[int, int], unsure_below: float = 0.0) -> str:
    """The whole page as one string (:func:`html_pieces` joined)."""
    return "".join(html_pieces(session, png, png_size, unsure_below))


def html_pieces(session: Session, png: bytes, png_size: tuple[int, int], unsure_below: float = 0.0) -> Iterator[str]:
    """The page, piece by piece (each piece ends with a newline but the last). Readings with a confidence below
    ``unsure_below`` show as unsure (a lighter, hatched chip and a ``?``)."""
    e = html.escape
    colors = color_map(session.emotions)
    for line in _head(session):
        yield line + "\n"
    for note in session.notes:
        yield f'<div class="note">{e(note)}</div>\n'
    if not session.rows:
        yield '<div class="card empty">No utterances were recorded in this session (the CSV has no rows).</div>\n'
    b64 = base64.b64encode(png).decode("ascii")
    alt = "Emotion timeline, valence and arousal, and emotion shares per speaker"
    yield (f'<div class="card"><img class="fig" width="{png_size[0]}" height="{png_size[1]}" alt="{e(alt)}" '
           f'src="data:image/png;base64,{b64}"></div>\n')
    if session.rows:
        yield "<h2>Speakers</h2><div class=\"speakers\">\n"
        for spk, rows in session.by_speaker.items():
            yield _speaker_card(spk, rows, session.emotions, colors) + "\n"
        yield "</div>\n"
    if session.rows or session.alerts:
        for line in _alerts(session.alerts):
            yield line + "\n"
    if session.rows:
        for line in _transcript(session.rows, colors, unsure_below):
            yield line + "\n"
    yield (f'<p class="muted">Made by emomon from {e(session.path.name)}. Valence and arousal are a display aid '
           "derived from the class probabilities (Russell's circumplex), not a calibrated measurement.</p>\n")
    yield "</main></body></html>\n"


def _ink(color: str) -> str:
    """Black or white text, whichever reads better on ``color`` ('#rrggbb')."""
    r, g, b = (int(color[i:i + 2], 16) / 255 for i in (1, 3, 5))
    return "#111" if 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.45 else "#fff"


def _chip(emotion: str, color: str, unsure: bool = False) -> str:
    """An emotion's coloured label; ``unsure``: a lighter colour, hatched, dashed border, followed by ``?``."""
    if not unsure:
        return f'<span class="chip" style="background:{color};color:{_ink(color)}">{html.escape(emotion)}</span>'
    light = lighter(color)
    hatch = f"repeating-linear-gradient(135deg,{light} 0 5px,#ffffff 5px 8px)"
    return f'<span class="chip unsure" style="background:{hatch};color:#111">{html.escape(emotion)} ?</span>'


def _head(session: Session) -> list[str]:
    """The page's lines up to the session's facts table."""
    e = html.escape
    speakers = session.speakers
    ids = session.session_ids
    sid = ", ".join(ids[:20]) + (f" (+{len(ids) - 20} more)" if len(ids) > 20 else "") or session.path.stem
    t_end = max((r.end for r in session.rows), default=0.0)
    return [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>emomon session {e(sid)}</title><style>{CSS}</style></head><body><main>",
        f"<h1>emomon session <code>{e(sid)}</code></h1>",
        '<table class="meta">',
        f"<tr><td>Session</td><td>{e(sid)}</td></tr>",
        f"<tr><td>Date / time</td><td>{e(time_range(session))}</td></tr>",
        f"<tr><td>Duration</td><td>{e(clock(t_end))} (session time to the end of the last utterance)</td></tr>",
        f"<tr><td>Utterances</td><td>{len(session.rows)}</td></tr>",
        f"<tr><td>Speakers</td><td>{len(speakers)}{': ' + e(', '.join(speakers)) if speakers else ''}</td></tr>",
        f"<tr><td>Alerts</td><td>{len(session.alerts)}</td></tr>",
        f"<tr><td>Source</td><td>{e(session.path.name)}</td></tr>",
        "</table>",
    ]


def _speaker_card(spk: str, rows: list[Row], emotions: list[str], colors: dict[str, str]) -> str:
    e = html.escape
    sh = shares(rows, emotions)
    vas = [va for va in (affect_of(r) for r in rows) if va]
    chips = " ".join(
        f'<span>{_chip(em, colors[em])} {sh[em][0] * 100:.0f}% ({sh[em][1]})</span>'
        for em in sorted(emotions, key=lambda x: -sh[x][0]) if sh[em][1])
    mean = ""
    if vas:
        mv = sum(v for v, _ in vas) / len(vas)
        ma = sum(a for _, a in vas) / len(vas)
        mean = f"<div>Mean valence {mv:+.2f}, arousal {ma:+.2f}</div>"
    talk = math.fsum(r.duration for r in rows)
    return (f'<div class="card"><h3>{e(spk)}</h3><div>{len(rows)} utterances, {e(clock(talk))} of speech'
            f"</div>{mean}<div class=\"shares\">Share of speaking time: {chips}</div></div>")


def _alerts(alerts: list[Alert]) -> Iterator[str]:
    """The alerts table (speaker, kind, since, until, detail), in order of start, every alert the CSV holds."""
    e = html.escape
    yield "<h2>Alerts</h2>"
    if not alerts:
        yield '<p class="muted">No alerts in this session (the CSV has no alert rows).</p>'
        return
    yield ('<table class="tr"><thead><tr><th>Speaker</th><th>Kind</th><th>Since</th><th>Until</th><th>Detail</th>'
           "</tr></thead><tbody>")
    for a in sorted(alerts, key=lambda a: (a.since_s, a.until_s or a.since_s, a.speaker, a.kind)):
        color = ALERT_COLORS.get(a.kind, OTHER_ALERT_COLOR)
        until = clock(a.until_s) if a.until_s is not None else "–"
        yield (f'<tr><td>{e(a.speaker)}</td><td><span class="kind" style="border-color:{color}">'
               f'{e(TITLES.get(a.kind, a.kind))}</span></td><td class="t">{clock(a.since_s)}</td>'
               f'<td class="t">{until}</td><td>{e(a.detail)}</td></tr>')
    yield "</tbody></table>"


def _transcript(rows: list[Row], colors: dict[str, str], unsure_below: float = 0.0) -> Iterator[str]:
    """The transcript table, one piece per row (every row, however many); an unsure reading's emotion is a lighter,
    hatched chip with a ``?``, and its confidence a grey number with a ``?``."""
    e = html.escape
    yield "<h2>Transcript</h2>"
    if unsure_below > 0:
        yield (f'<p class="muted">Readings with a confidence below {unsure_below:.2f} ([dashboard] unsure_below) are '
               "shown lighter and hatched, with a ?.</p>")
    yield ('<table class="tr"><thead><tr><th>Time</th><th>Speaker</th><th>Emotion</th><th>Confidence</th>'
           "<th>Transcript</th></tr></thead><tbody>")
    chips = {em: _chip(em, c) for em, c in colors.items()}
    unsure_chips = {em: _chip(em, c, unsure=True) for em, c in colors.items()}
    names: dict[str, str] = {}
    for r in rows:
        wall = _wall_clock(r.start_time)
        when = f"{clock(r.start)}–{clock(r.end)}" + (f"<br><small>{wall}</small>" if wall else "")
        conf = f"{r.confidence:.2f}" if r.confidence is not None else "–"
        unsure = is_unsure(r, unsure_below)
        if r.transcript.strip():
            text = e(r.transcript)
        else:
            text = f'<span class="muted">({e(r.asr_note or "no transcript")})</span>'
        name = names.get(r.speaker)
        if name is None:
            name = names[r.speaker] = e(r.speaker)
        if unsure:
            yield (f'<tr><td class="t">{when}</td><td>{name}</td><td>{unsure_chips[r.emotion]}'
                   f'</td><td class="c unsure">{conf} ?</td><td>{text}</td></tr>')
        else:
            yield (f'<tr><td class="t">{when}</td><td>{name}</td><td>{chips[r.emotion]}'
                   f'</td><td class="c">{conf}</td><td>{text}</td></tr>')
    yield "</tbody></table>"


def _wall_clock(s: str) -> str:
    """``HH:MM:SS`` of an ISO 8601 time as written (its own zone), or ``''`` when it is not one."""
    try:
        t = dt.datetime.fromisoformat(s) if s else None
    except ValueError:
        return ""
    return f"{t.hour:02d}:{t.minute:02d}:{t.second:02d}" if t else ""
