"""Text that can always be printed or drawn: the bytes of a file name that is not valid UTF-8 as escape sequences."""
from __future__ import annotations

import re
from typing import Any

__all__ = ['printable']

# Python decodes each byte of a file name that is not valid UTF-8 to a lone surrogate (U+DC80..U+DCFF);
# such a str cannot be encoded, so printing it to a strict stream, or drawing it with matplotlib, fails.
_SURROGATE = re.compile('[\ud800-\udfff]')


def printable(o: Any) -> str:
    """`str(o)` with each byte that is not valid UTF-8 written as its escape: `b'caf\\xe9'` shows as `caf\\xe9`."""
    s = str(o)
    return _SURROGATE.sub(_escape, s) if _SURROGATE.search(s) else s


def _escape(m: re.Match) -> str:
    code = ord(m.group())
    # U+DC80..U+DCFF is how os.fsdecode carries the undecodable byte 0x80..0xFF; other surrogates have no byte
    return f'\\x{code - 0xDC00:02x}' if 0xDC80 <= code <= 0xDCFF else f'\\u{code:04x}'
