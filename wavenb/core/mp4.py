"""Is this file a whole MP4? A pure check of the ISO-BMFF box structure, without decoding.

A download can end early and still look fine: a close-delimited body cut after 1 MB, or a CDN's
200 "Access denied" HTML page saved as ``<id>.mp4``. So before a video is recorded as done,
its top-level boxes are walked from the first byte to the last:

- the first box is ``ftyp`` (every MP4 the model and the sandbox make starts so);
- each box's size (32-bit, or 64-bit when the 32-bit size is 1) lands exactly on the next box,
  and the last one exactly on the end of the file: a cut file fails here. A size of 0 ("to the
  end of the file", which a streaming writer may leave) is refused: such a box fits any cut,
  so it cannot prove the file whole (FFmpeg, the sandbox and the provider write real sizes);
- a ``moov`` box (the index without which nothing plays) and media data (``mdat``) exist.

Reading costs one 16-byte header per box (a handful of seeks), whatever the file's size.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

__all__ = ["Mp4Boxes", "NotMp4", "check_mp4"]

_HEADER: Final = 8
_LARGE: Final = 16
_MAX_BOXES: Final = 10_000
"""A real MP4 has a few top-level boxes; a file claiming thousands is not one."""
_KNOWN: Final = frozenset(
    {
        b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"uuid", b"moof", b"mfra",
        b"styp", b"sidx", b"meta", b"pdin", b"prft", b"emsg", b"ssix", b"udta", b"pnot",
    }
)  # fmt: skip
"""Top-level box types seen in MP4 / QuickTime files; anything else means this is not one."""


class NotMp4(ValueError):
    """The file is not a complete MP4; the message says why, in words."""


@dataclass(frozen=True, slots=True)
class Mp4Boxes:
    """The top-level boxes of a complete MP4, in file order."""

    types: tuple[str, ...]
    """Box types, e.g. ``("ftyp", "moov", "mdat")``."""
    size: int
    """The file's size in bytes."""


def check_mp4(path: str | Path) -> Mp4Boxes:
    """Return the boxes of a complete MP4, or raise ``NotMp4`` saying what is wrong.

    Raises:
        NotMp4: empty, not starting with ``ftyp``, cut short, with trailing bytes, or lacking
            ``moov`` / ``mdat``.
        OSError: the file cannot be read.
    """
    with Path(path).open("rb") as file:
        file.seek(0, 2)
        size = file.tell()
        file.seek(0)
        return _walk(file, size)


def _walk(file: BinaryIO, size: int) -> Mp4Boxes:
    if size == 0:
        raise NotMp4("the file is empty")
    types: list[str] = []
    offset = 0
    head = _peek(file)
    if head[4:8] != b"ftyp":
        raise NotMp4(f"it does not start with an MP4 'ftyp' box (starts with {head!r})")
    while offset < size:
        if len(types) >= _MAX_BOXES:
            raise NotMp4("too many top-level boxes for a video")
        kind, length = _box(file, offset, size)
        if kind not in _KNOWN:
            raise NotMp4(f"unexpected box {kind!r} at byte {offset}: not an MP4 structure")
        types.append(kind.decode("latin-1"))
        offset += length
    if offset != size:
        raise NotMp4(f"the last box ends at byte {offset} but the file has {size}: it was cut")
    for needed in ("moov", "mdat"):
        if needed not in types and not (needed == "mdat" and "moof" in types):
            raise NotMp4(f"it has no '{needed}' box: the file is incomplete")
    return Mp4Boxes(tuple(types), size)


def _box(file: BinaryIO, offset: int, size: int) -> tuple[bytes, int]:
    """The type and total length of the box at ``offset``; checks it fits in the file."""
    file.seek(offset)
    header = file.read(_HEADER)
    if len(header) < _HEADER:
        raise NotMp4(f"a box header at byte {offset} is cut short: the file was cut")
    length, kind = struct.unpack(">I4s", header)
    if length == 1:
        large = file.read(_LARGE - _HEADER)
        if len(large) < _LARGE - _HEADER:
            raise NotMp4(f"a box header at byte {offset} is cut short: the file was cut")
        (length,) = struct.unpack(">Q", large)
        minimum = _LARGE
    elif length == 0:
        # "To the end of the file": true of a cut file too, so it proves nothing.
        raise NotMp4(
            f"the box {kind!r} at byte {offset} has no size (it runs to the end of the file): "
            "a cut download would look the same"
        )
    else:
        minimum = _HEADER
    if length < minimum:
        raise NotMp4(f"a box at byte {offset} has an impossible size ({length})")
    if offset + length > size:
        raise NotMp4(
            f"the box {kind!r} at byte {offset} needs {length} bytes but only "
            f"{size - offset} are there: the file was cut"
        )
    return kind, length


def _peek(file: BinaryIO) -> bytes:
    file.seek(0)
    return file.read(16)
