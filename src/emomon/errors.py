"""Errors a user can act on, each with the exit code the command line returns for it.

Anything raised as an :class:`EmomonError` is printed by the CLI as one line (``emomon: error: ...``) and ends the
process with :attr:`EmomonError.exit_code`; anything else is a bug and keeps its traceback.

Exit codes (documented in the README):

====  =====================================================================
0     success
1     unexpected internal error (a bug: please report it with the traceback)
2     bad command line or configuration (unknown key, value out of range, unreadable TOML)
3     bad input data (missing, empty, corrupt or non-audio file; bad manifest)
4     model or checkpoint problem (missing weights, corrupt or mismatched checkpoint, offline and not cached)
5     audio device problem (unknown or unavailable input device)
6     cannot write output (missing or read-only directory, disk full)
7     out of memory or out of threads (the rows already finished are kept)
8     batch replay: some recordings failed (each is a row of the summary CSV and a line on stderr; the rest are done)
130   interrupted (Ctrl-C / SIGINT); 143 for SIGTERM; finished results are kept
====  =====================================================================
"""

from __future__ import annotations


#: ``emomon replay`` of a batch in which some recordings failed (the others' CSVs and the summary are written).
BATCH_PARTIAL = 8


class EmomonError(Exception):
    """Base class: a problem the user can fix, reported as one line."""

    exit_code = 1


class ConfigError(EmomonError):
    exit_code = 2


class InputError(EmomonError):
    exit_code = 3


class ModelError(EmomonError):
    exit_code = 4


class DeviceError(EmomonError):
    exit_code = 5


class OutputError(EmomonError):
    exit_code = 6


class ResourceError(EmomonError):
    """Out of memory or out of threads: the machine (or its limits, e.g. ``ulimit -v``) cannot run the work."""

    exit_code = 7


# How libraries word "no memory" or "no thread": Python's MemoryError, PyTorch's allocator, C++'s std::bad_alloc
# (CTranslate2), the dynamic loader under `ulimit -v`, and the threading module or a native thread pool.
_NO_MEMORY = ("can't allocate memory", "unable to mmap", "cannot allocate memory", "bad_alloc", "out of memory", "failed to map segment",
              "not enough memory")
_NO_THREAD = ("can't start new thread", "resource temporarily unavailable", "thread creation failed")


def as_resource_error(exc: BaseException) -> ResourceError | None:
    """The one-line :class:`ResourceError` for an exception that means the machine ran out of memory or threads
    (``None`` for anything else, which stays what it is)."""
    if isinstance(exc, ResourceError):
        return exc
    if isinstance(exc, MemoryError):
        return ResourceError("out of memory (free memory, raise the limit, e.g. `ulimit -v`, or read fewer inputs at once)")
    text = str(exc).lower()
    if isinstance(exc, (RuntimeError, OSError, ImportError)):
        if any(s in text for s in _NO_MEMORY):
            return ResourceError(f"out of memory ({type(exc).__name__}: {str(exc).splitlines()[0][:120]}); free memory "
                                 "or raise the limit, e.g. `ulimit -v`")
        if any(s in text for s in _NO_THREAD):
            return ResourceError("out of threads (the system or `ulimit -u`/`ulimit -v` allows no more); close other "
                                 "programs or raise the limit")
    return None
