"""The live terminal dashboard: a Rich view of the session that fits 80x24 and uses the room of a wide terminal.

What it shows, top to bottom:

* **Header**: session time, the inputs, the model/preset and device, speed (x real time) and/or median latency,
  the queue depth, and, only when non-zero, dropped audio seconds and dropped utterances. Input problems reported
  through :meth:`Dashboard.notice` (or the status' ``notice``) show on the line below, so a dead microphone is
  never silent.
* **Alerts**: one line per alert going on (``"<speaker>: negative affect high for 2m10s"``, ``"silent for 1m30s"``,
  rising arousal, falling valence), then a dim line naming the latest that ended; the session's
  :class:`~emomon.monitor.views.alerts.AlertTracker` decides them, the same that the CSV's alert rows come from.
* **Legend** (once for the whole screen): the colour and letter of each emotion in the timelines, and ``?`` unsure.
* **One block per speaker** (speakers appear as their first result arrives): current emotion, the speaker's utterance
  count, a timeline with a mark (its class's letter) per utterance, emotion shares and smoothed valence/arousal
  (:mod:`.speaker`), in the richest form the screen allows (:mod:`.layout`); the output is cropped to the height
  Rich gives, so the screen never scrolls.
* **Transcript tail**: up to the last ``transcript_lines`` utterances with session time, speaker, emotion (coloured)
  and text, as many as the rows the speaker panels leave; ASR text the guards rejected shows as a dim note.

**Confidence**: a reading whose confidence (top class probability) is below ``[dashboard] unsure_below`` is drawn
dim with a ``?`` (``surprise? 0.43``; ``U?░░`` in a timeline), so a guess never looks like a firm reading.

**The end**: when the session closes the sink (``close(status)``), the header says how it ended, and a view that ran
on the alternate screen prints its final frame (every delivered result) on the normal screen, leaving room for the
caller's summary below it.

The package is split into what is known (:mod:`.state`: no Rich), how it looks (:mod:`.style`, :mod:`.speaker`,
:mod:`.layout`) and the sink that ties them to the pipeline and to ``rich.live.Live`` (:mod:`.sink`).
"""

from emomon.monitor.views.dashboard.sink import Dashboard
from emomon.monitor.views.dashboard.state import DashboardStatus

__all__ = ["Dashboard", "DashboardStatus"]
