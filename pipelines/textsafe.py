"""Text from data, shown literally: control characters made visible, nothing interpreted.

Used wherever a value read from a file reaches a terminal, a log or a message: ESC, NUL, BEL and
the other C0/C1 controls (and DEL, and the Unicode line/paragraph separators and bidi overrides)
become ``\\x1b``-style escapes; printing goes through :func:`literal`, which makes a rich ``Text``
(no markup such as ``[/bold]``, no emoji codes such as ``:x:``).
"""

from __future__ import annotations

import re

from rich.text import Text

_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_CONTROL_OR_NEWLINE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(value: object, newlines: bool = True) -> str:
    """``str(value)`` with control characters escaped (``\\x1b``); ``newlines=False`` escapes line
    breaks and tabs too (for one-line cells)."""
    text = "" if value is None else str(value)
    return (_CONTROL if newlines else _CONTROL_OR_NEWLINE).sub(_escape, text)


def literal(value: object, style: str = "", newlines: bool = True) -> Text:
    """A rich ``Text`` showing ``value`` exactly (controls visible, no markup, no emoji)."""
    return Text(visible(value, newlines), style=style)


STORED_CONTROLS = [chr(c) for c in [*range(0x00, 0x09), 0x0b, 0x0c, *range(0x0e, 0x20), *range(0x7f, 0xa0),
                                     0x2028, 0x2029, *range(0x202a, 0x202f), *range(0x2066, 0x206a)]]


def visible_expr(expr):
    """A polars expression: text with control characters replaced by their visible escapes (tab,
    line feed and carriage return kept: they are legitimate inside a quoted field)."""
    return expr.str.replace_many(STORED_CONTROLS, [_escape(re.match(".", c, re.S)) for c in STORED_CONTROLS])
