"""How a `seglab` command ends on an error: one message, never a bare traceback.

A `SeglabError` (bad input) and an `OSError` (a file that cannot be read or written, a full disk)
print one line naming the file and exit 2. Anything else is a bug: a short message says where
the full traceback was written, and the exit status is 1.
"""

from __future__ import annotations

import errno
import os
import tempfile
import time
import traceback
from pathlib import Path

from seglab.names import printable

# What to do about the OSErrors a user can fix.
_HINTS = {
    errno.ENOSPC: "free some disk space or write elsewhere (--out); nothing half-written was kept",
    errno.EACCES: "check the permissions, or choose another path",
    errno.EROFS: "the file system is read-only: choose another path",
    errno.ENOENT: "check the path",
}


def describe_os_error(exc: OSError) -> str:
    """One line: the file, what went wrong, and how to fix it when that is known.

    Example:
        >>> describe_os_error(OSError(errno.ENOSPC, "No space left on device", "out/a.png"))
        'out/a.png: No space left on device; free some disk space or write elsewhere (--out); nothing half-written was kept'
    """  # noqa: E501
    where = printable(os.fsdecode(exc.filename)) if exc.filename is not None else "a file"
    message = f"{where}: {exc.strerror or exc}"
    hint = _HINTS.get(exc.errno or 0)
    return f"{message}; {hint}" if hint else message


def write_traceback(exc: BaseException) -> Path:
    """Write the traceback of an unexpected error to a file in the temporary folder."""
    path = Path(tempfile.gettempdir()) / f"seglab-error-{time.strftime('%Y%m%d-%H%M%S')}.txt"
    path.write_text("".join(traceback.format_exception(exc)), errors="backslashreplace")
    return path


def describe_bug(exc: BaseException) -> str:
    """The message of an unexpected error: its type and first line, and where the traceback is."""
    first_line = str(exc).splitlines()[0] if str(exc) else ""
    try:
        where = f"the full traceback is in {write_traceback(exc)}"
    except OSError:
        where = "the traceback could not be written to the temporary folder"
    return (
        f"unexpected {type(exc).__name__}: {first_line}\n"
        f"  {where}; please report it at the seglab issue tracker"
    )
