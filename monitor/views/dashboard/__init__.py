"""The live terminal dashboard: a Rich view of the session that fits 80x24 and uses the room of a wide terminal.

What it shows, top to bottom:

* **Header**: session time, the inputs, the model/preset and device, speed (x real time) and/or median latency,
  the queue depth, and, only when non-zero, dropped audio seconds and dropped utterances. Input problems reported
  through :meth:`Dashboard.notice` (or the status' ``notice``) show on the line below, so a dead microphone is
  never silent.
* **Alerts**: ``"<speaker>: negative affect high for 2m10s"`` for each speaker whose smoothed negative affect has
  stayed above ``alert_threshold`` for ``alert_seconds`` (:class:`~emomon.monitor.views.affect.AffectTracker` decides).
* **Legend** (once for the whole screen): the colour and letter of each emotion in the timelines.
* **One block per speaker** (speakers appear as their first result arrives): current emotion, a rolling timeline,
  emotion shares and smoothed valence/arousal (:mod:`.speaker`), in the richest form the screen allows
  (:mod:`.layout`); the output is cropped to the height Rich gives, so the screen never scrolls.
* **Transcript tail**: up to the last ``transcript_lines`` utterances with session time, speaker, emotion (coloured)
  and text, as many as the rows the speaker panels leave; ASR text the guards rejected shows as a dim note.

The package is split into what is known (:mod:`.state`: no Rich), how it looks (:mod:`.style`, :mod:`.speaker`,
:mod:`.layout`) and the sink that ties them to the pipeline and to ``rich.live.Live`` (:mod:`.sink`).
"""

from emomon.monitor.views.dashboard.sink import Dashboard
from emomon.monitor.views.dashboard.state import DashboardStatus

__all__ = ["Dashboard", "DashboardStatus"]
