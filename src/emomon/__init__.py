"""emomon: a streaming, real-time speech emotion monitor.

The library lives in two sub-packages: :mod:`emomon.models` (encoders, fused emotion models, training) and
:mod:`emomon.monitor` (the streaming runtime). The command line in :mod:`emomon.cli` is a thin layer over both.
"""

__version__ = "0.1.0"
