"""File names that are not valid UTF-8, written into text files and figures.

On Linux a file name is bytes; Python decodes the bytes that are not UTF-8 to lone surrogates
(`b"a\\xffb"` becomes `"a\\udcffb"`), which a UTF-8 text file cannot hold. seglab writes each
such byte as the four characters `\\xNN` (its value in hex) in CSV, HTML, text files and figure
titles; everything else in a name is written as is. JSON files use JSON's own escape
(`"a\\udcffb"`), which `json.loads` turns back into the name Python uses for the file.
"""

from __future__ import annotations

import codecs

# The `errors=` handler of every text file seglab writes (registered on import).
NAME_ERRORS = "seglab.names"


def _escape_bytes(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeEncodeError):
        raise error
    bad = error.object[error.start : error.end]
    escaped = "".join(
        f"\\x{ord(c) - 0xDC00:02x}" if 0xDC80 <= ord(c) <= 0xDCFF else f"\\u{ord(c):04x}"
        for c in bad
    )
    return escaped, error.end


codecs.register_error(NAME_ERRORS, _escape_bytes)


def printable(name: str) -> str:
    """`name` as seglab writes it into text: undecodable bytes as `\\xNN`.

    Example:
        >>> printable("a\\udcffb"), printable("nuclei_0001")
        ('a\\\\xffb', 'nuclei_0001')
    """
    return name.encode("utf-8", NAME_ERRORS).decode("utf-8")
