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
130   interrupted (Ctrl-C / SIGINT); 143 for SIGTERM; finished results are kept
====  =====================================================================
"""

from __future__ import annotations


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
