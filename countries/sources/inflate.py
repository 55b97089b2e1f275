"""Bodies inflated step by step under a limit: gzip and deflate as they arrive, and zip members."""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass


# What is inflated from one piece of input at a time: a deflate stream can grow 1,000 times, so
# without this a 64 KiB read of a gzip bomb would become 64 MB at once, and more for stacked codings.
INFLATE_STEP = 256 * 1024


class UnreadableBody(Exception):
    """A body that cannot be read: past the size limit, or in a coding that does not inflate."""


class BodyTooLarge(UnreadableBody):
    def __init__(self, limit: int):
        super().__init__(f"body larger than {limit} bytes (UPSTREAM_MAX_BYTES)")


class CountedPieces:
    """Pieces of a body kept while their sum stays within a limit; BodyTooLarge past it."""

    def __init__(self, limit: int):
        self.limit, self.size, self.pieces = limit, 0, []

    def add(self, piece: bytes) -> None:
        self.size += len(piece)
        if self.size > self.limit:
            raise BodyTooLarge(self.limit)
        self.pieces.append(piece)

    def extend(self, pieces: Iterator[bytes]) -> None:
        for piece in pieces:
            self.add(piece)

    def joined(self) -> bytes:
        return b"".join(self.pieces)


class Inflater:
    """One content coding, inflated at most INFLATE_STEP bytes at a time."""

    def __init__(self, coding: str):
        if coding not in ("gzip", "x-gzip", "deflate"):
            raise UnreadableBody(f"content coding {coding!r} is not one asked for")
        self.coding = coding
        gzip_framed = coding != "deflate"
        self.inflater = zlib.decompressobj(zlib.MAX_WBITS | 16 if gzip_framed else zlib.MAX_WBITS)
        self.may_be_raw = not gzip_framed  # "deflate" is zlib-framed, but some servers send raw
        self.started = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        while not self.inflater.eof:
            try:
                piece = self.inflater.decompress(data, INFLATE_STEP)
            except zlib.error as error:
                if self.may_be_raw and not self.started:
                    self.may_be_raw = False
                    self.inflater = zlib.decompressobj(-zlib.MAX_WBITS)
                    continue
                raise UnreadableBody(
                    f"a {self.coding} body that does not inflate ({error})"
                ) from None
            self.started = True
            data = self.inflater.unconsumed_tail
            if piece:
                yield piece
            if not data and len(piece) < INFLATE_STEP:  # a full step may leave output pending
                break

    def finish(self) -> Iterator[bytes]:
        yield from self.feed(b"")
        if not self.inflater.eof:
            raise UnreadableBody(f"a {self.coding} body cut short")


def inflate_through(layers: list[Inflater], chunk: bytes) -> Iterator[bytes]:
    """`chunk` through every coding, outermost first, one step at a time."""
    if not layers:
        if chunk:
            yield chunk
        return
    for piece in layers[0].feed(chunk):
        yield from inflate_through(layers[1:], piece)


def finish_through(layers: list[Inflater]) -> Iterator[bytes]:
    for index, layer in enumerate(layers):
        for piece in layer.finish():
            yield from inflate_through(layers[index + 1 :], piece)


def inflate_zip_member(archive: bytes, limit: int, name: str | None = None) -> bytes:
    """A zip archive's member (`name`, else the first file), inflated to at most `limit` bytes:
    the sizes an archive declares are the sender's word, so the bytes are counted as they come.
    Stored and deflated members only (bzip2's and LZMA's readers inflate unbounded pieces).
    Blocking: run it in a thread (Upstream.decode)."""
    try:
        with zipfile.ZipFile(io.BytesIO(archive)) as zipped:
            files = [info for info in zipped.infolist() if not info.is_dir()]
            info = zipped.getinfo(name) if name is not None else files[0]
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise UnreadableBody(f"a zip member compressed with method {info.compress_type}")
            kept = CountedPieces(limit)
            with zipped.open(info) as member:
                kept.extend(iter(lambda: member.read(INFLATE_STEP), b""))
            return kept.joined()
    except UnreadableBody:
        raise
    except (zipfile.BadZipFile, KeyError, IndexError, EOFError, zlib.error) as error:
        raise UnreadableBody(f"not a readable zip archive ({type(error).__name__})") from None
    except (RuntimeError, NotImplementedError, ValueError, OSError) as error:  # encrypted, ...
        raise UnreadableBody(f"not a readable zip archive ({type(error).__name__})") from None
