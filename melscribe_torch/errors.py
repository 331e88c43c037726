"""How the command lines end on an error: one line saying what and what to do, no traceback.

``HYDRA_FULL_ERROR=1`` in the environment, or ``--debug`` on the command line (which sets
it), shows the traceback instead.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

DEBUG_FLAG = "--debug"
USER_ERROR_STATUS = 2


def take_debug_flag(argv: list[str]) -> list[str]:
    """``argv`` without ``--debug``; when it was there, tracebacks are shown from now on."""
    if DEBUG_FLAG in argv:
        os.environ["HYDRA_FULL_ERROR"] = "1"
    return [a for a in argv if a != DEBUG_FLAG]


def debugging() -> bool:
    return os.environ.get("HYDRA_FULL_ERROR", "").strip() in ("1", "true", "yes")


def one_line(error: BaseException) -> str:
    """``error: <message>`` on one line; an error the code did not expect says how to see more."""
    message = " ".join(str(error).split()) or type(error).__name__
    # Our own errors and the standard ones for bad input carry messages written for users.
    if type(error).__module__.startswith("melscribe_torch") or isinstance(
        error, (ValueError, OSError, ImportError)
    ):
        return f"error: {message}"
    return f"error: {type(error).__name__}: {message} (unexpected; rerun with {DEBUG_FLAG} for the traceback)"


@contextlib.contextmanager
def errors_in_one_line() -> Iterator[None]:
    """Turn an exception into `one_line` on stderr and exit status 2, unless `debugging`."""
    try:
        yield
    except Exception as error:
        if debugging():
            raise
        print(one_line(error), file=sys.stderr)
        raise SystemExit(USER_ERROR_STATUS) from None
