"""Text that enters as a name, a company or a subject is one line of printable characters:
line breaks, tabs and other control characters become a space, runs of spaces one space;
a stray NUL is dropped."""

from __future__ import annotations

import unicodedata

SPACE = frozenset({"Cc", "Zl", "Zp", "Zs"})  # controls, line and paragraph separators, spaces
JOINERS = frozenset("\u200c\u200d")  # format characters that words (and emoji) need


class _Printable(dict):
    """str.translate table built as characters are met: a space for controls and
    separators, nothing for NUL and invisible format characters (bidi overrides, BOM, …),
    U+FFFD for a lone surrogate, the character itself otherwise."""

    def __missing__(self, code: int) -> str | None:
        char = chr(code)
        kind = unicodedata.category(char)
        if code == 0:
            value = None
        elif kind in SPACE:
            value = " "
        elif kind == "Cs":
            value = "\ufffd"
        elif kind == "Cf" and char not in JOINERS:
            value = None
        else:
            value = char
        self[code] = value
        return value


_PRINTABLE = _Printable()


def one_line(value: object) -> str:
    """value as one trimmed line of printable text ("" for None)."""
    if value is None:
        return ""
    text = str(value)
    if not text.isprintable():
        text = text.translate(_PRINTABLE)
    return " ".join(text.split())
