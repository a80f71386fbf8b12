"""How a session's compute threads share the cores: one setting, ``runtime.threads``, for PyTorch and CTranslate2.

Two threads compute in a session: the inference worker (every PyTorch model) and the ASR thread (CTranslate2's
decoder). Left alone, PyTorch keeps an intra-op and an inter-op pool per process and CTranslate2 its own, so on a
2-core machine up to six compute threads fight for two cores. The plan gives the worker about half the cores and the
decoder the rest, and PyTorch no inter-op pool: the two stages then overlap instead of oversubscribing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class ThreadPlan:
    cores: int
    #: PyTorch intra-op threads (the inference worker's models)
    torch: int
    #: CTranslate2 threads (the ASR thread's decoder)
    decoder: int


def available_cores() -> int:
    """Cores this process may run on (its affinity mask, e.g. under taskset or a container), else the CPU count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def thread_plan(threads: int = 0) -> ThreadPlan:
    """``threads`` cores in all (0 = every available core): PyTorch gets half (at least one), CTranslate2 the rest
    (at least one)."""
    cores = threads if threads > 0 else available_cores()
    torch_threads = max(1, cores // 2)
    return ThreadPlan(cores, torch_threads, max(1, cores - torch_threads))


def apply_torch_threads(plan: ThreadPlan) -> None:
    """Set PyTorch's pools for this process (from the worker thread, before its first model call)."""
    # deferred: the plan is made before models load; torch is imported by the worker that applies it
    import torch

    torch.set_num_threads(plan.torch)
    try:
        torch.set_num_interop_threads(1)  # no inter-op parallelism is used; its pool would only compete
    except RuntimeError:
        pass  # already fixed for this process (a second session in one process): it stays as it was
