"""emomon: a streaming, real-time speech emotion monitor.

The library lives in layers (docs/ARCHITECTURE.md): the audio layer (:mod:`emomon.audio`), the inference model layer
(:mod:`emomon.models`), training (:mod:`emomon.training`) and the streaming runtime (:mod:`emomon.monitor`). The
command line in :mod:`emomon.cli` is a thin layer over them.
"""

import os as _os

# OpenBLAS (numpy's and scipy's) starts one thread per core at import, each with its own buffers; emomon computes in
# PyTorch and CTranslate2, which get their own thread plan (emomon.monitor.threads). Under a memory limit
# (`ulimit -v`) OpenBLAS's start-up retried failing allocations without end, so it gets one thread unless the user
# says otherwise. Set before numpy is first imported, which is why it is here.
_os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
