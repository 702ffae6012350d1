"""Turn one untrusted input (xml, gzip, zip, nested compression, an e-mail) into report payloads.

Pure in the project's sense: it reads only the file object it is handed and returns bounded
streams of bytes; no paths are opened, nothing is written. Containers are recognised by their
magic bytes, not by names or MIME types (senders label gzip as zip, attach plain XML, wrap gzip in
gzip). Every stage is capped and counted while streaming: decompressed output never trusts a
header, a zip's member count is checked before reading, and nesting is bounded.

The result is a list of ``Payload``: a name (``file.zip!member.xml``), a kind (``aggregate`` for
XML, ``tlsrpt`` for JSON) and an iterator of byte chunks to hand to the parsers.
"""

from __future__ import annotations

import email
import email.policy
import io
import itertools
import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from mailfleet.dmarc.model import Limits, Rejected, Unsafe

CHUNK = 256 * 1024
GZIP_MAGIC = b"\x1f\x8b"
ZIP_MAGIC = b"PK\x03\x04"
EMPTY_ZIP_MAGIC = b"PK\x05\x06"
_HEADER_LINE = re.compile(rb"^(?:From |[!-9;-~]{1,76}:[ \t]?)")
_BOM = b"\xef\xbb\xbf"


@dataclass
class Payload:
    name: str
    kind: str  # "aggregate" (XML) or "tlsrpt" (JSON)
    chunks: Iterator[bytes]


class Budget:
    """Counts decompressed bytes across one whole input file (all members, all levels), so a
    thousand small bombs are caught as surely as one big one."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.decompressed = 0

    def spend(self, amount: int) -> None:
        self.decompressed += amount
        if self.decompressed > self.limits.max_decompressed_bytes:
            raise Unsafe(
                f"decompressed size exceeds the cap of {self.limits.max_decompressed_bytes} bytes "
                "(a decompression bomb or an oversized report); raise max_decompressed_bytes if it is genuine")


def iter_payloads(name: str, source: BinaryIO | bytes, limits: Limits) -> Iterator[Payload]:
    """Yield every report payload in one input, or raise ``Rejected`` saying why it is none.

    Payloads must be consumed in order (they are lazy streams sharing one budget)."""
    budget = Budget(limits)
    if isinstance(source, (bytes, bytearray)):
        if len(source) > limits.max_input_bytes:
            raise _too_big(len(source), limits)
        chunks: Iterator[bytes] = iter([bytes(source)]) if source else iter(())
        seekable: BinaryIO | None = io.BytesIO(source)
    else:
        chunks = _read_file(source, limits)
        seekable = source if _is_seekable(source) else None
    head, chunks = _peek(chunks, 64)
    if not head:
        raise Rejected("empty file: not a report")
    if head.startswith(ZIP_MAGIC) or head.startswith(EMPTY_ZIP_MAGIC):
        if seekable is not None:
            _check_size(seekable, limits)
            seekable.seek(0)
            yield from _zip_payloads(name, seekable, budget, 0)
            return
    found = False
    for payload in _payloads_from_stream(name, head, chunks, budget, 0):
        found = True
        yield payload
    if not found:
        raise Rejected("no DMARC aggregate or SMTP TLS report found in it")


def sniff(head: bytes) -> str:
    """Name the format of a stream from its first bytes: zip, gzip, xml, json, email or unknown."""
    if head.startswith(ZIP_MAGIC) or head.startswith(EMPTY_ZIP_MAGIC):
        return "zip"
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    text = head[3:] if head.startswith(_BOM) else head
    text = text.lstrip()
    if text.startswith(b"<"):
        return "xml"
    if text.startswith(b"{"):
        return "json"
    if _HEADER_LINE.match(head):
        return "email"
    return "unknown"


def _payloads_from_stream(name: str, head: bytes, chunks: Iterator[bytes], budget: Budget,
                          depth: int) -> Iterator[Payload]:
    kind = sniff(head)
    if kind == "xml":
        yield Payload(name, "aggregate", chunks)
    elif kind == "json":
        yield Payload(name, "tlsrpt", chunks)
    elif kind in ("gzip", "zip", "email"):
        if depth >= budget.limits.max_nesting:
            raise Unsafe(f"{name}: containers nested more than {budget.limits.max_nesting} levels deep")
        if kind == "gzip":
            inner = _gunzip(name, chunks, budget)
            inner_head, inner = _peek(inner, 64)
            if not inner_head:
                raise Rejected(f"{name}: the gzip stream is empty")
            yield from _payloads_from_stream(_strip_suffix(name, ".gz"), inner_head, inner, budget, depth + 1)
        elif kind == "zip":
            data = _collect(chunks, budget.limits.max_decompressed_bytes, f"{name}: zip archive")
            yield from _zip_payloads(name, io.BytesIO(data), budget, depth)
        else:
            data = _collect(chunks, budget.limits.max_email_bytes, f"{name}: e-mail")
            yield from _email_payloads(name, data, budget, depth)
    else:
        preview = head[:24].decode("ascii", "backslashreplace")
        raise Rejected(f"{name}: not a report: it is neither XML, JSON, gzip, zip nor an e-mail "
                       f"(it starts with {preview!r})")


def _zip_payloads(name: str, archive: BinaryIO, budget: Budget, depth: int) -> Iterator[Payload]:
    limits = budget.limits
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise Rejected(f"{name}: not a readable zip archive ({exc})") from None
    with zf:
        members = [info for info in zf.infolist() if not info.is_dir()]
        if len(members) > limits.max_zip_members:
            raise Unsafe(f"{name}: zip has {len(members)} members, over the cap of {limits.max_zip_members}")
        if not members:
            raise Rejected(f"{name}: the zip archive is empty")
        for info in members:
            member_name = f"{name}!{info.filename}"
            if info.flag_bits & 0x1:
                raise Rejected(f"{member_name}: the zip member is encrypted")
            stream = _zip_member_chunks(zf, info, member_name, budget)
            head, stream = _peek(stream, 64)
            if not head:
                continue
            if sniff(head) == "unknown":
                continue  # a readme or signature next to the report; not an error
            yield from _payloads_from_stream(member_name, head, stream, budget, depth + 1)


def _zip_member_chunks(zf: zipfile.ZipFile, info: zipfile.ZipInfo, member_name: str,
                       budget: Budget) -> Iterator[bytes]:
    try:
        with zf.open(info) as member:
            while True:
                block = member.read(CHUNK)
                if not block:
                    return
                budget.spend(len(block))
                yield block
    except (zipfile.BadZipFile, zlib.error, NotImplementedError, EOFError, OSError) as exc:
        raise Rejected(f"{member_name}: cannot decompress the zip member ({exc})") from None


def _email_payloads(name: str, data: bytes, budget: Budget, depth: int) -> Iterator[Payload]:
    message = email.message_from_bytes(data, policy=email.policy.compat32)
    parts = 0
    for part in message.walk():
        if part.is_multipart():
            continue
        parts += 1
        if parts > budget.limits.max_email_parts:
            raise Unsafe(f"{name}: e-mail has more than {budget.limits.max_email_parts} parts")
        ctype = part.get_content_type()
        filename = part.get_filename() or ""
        if ctype.startswith("text/") and not filename and ctype not in ("text/xml", "text/json"):
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes) or not payload:
            continue
        label = f"{name}!{filename or ctype}"
        kind = sniff(payload[:64])
        if kind in ("unknown", "email"):
            continue
        yield from _payloads_from_stream(label, payload[:64], iter([payload]), budget, depth + 1)


def _gunzip(name: str, chunks: Iterator[bytes], budget: Budget) -> Iterator[bytes]:
    """Stream gzip, member after member; trailing junk after the last member is ignored
    (Mimecast appends CRLF, which ``gzip.decompress`` refuses)."""
    decomp = zlib.decompressobj(zlib.MAX_WBITS | 16)
    finished = False
    try:
        for chunk in chunks:
            data = chunk
            while data and not finished:
                out = decomp.decompress(data, CHUNK)
                if out:
                    budget.spend(len(out))
                    yield out
                data = decomp.unconsumed_tail
                if decomp.eof:
                    rest = decomp.unused_data + data
                    data = b""
                    if rest.startswith(GZIP_MAGIC):
                        decomp = zlib.decompressobj(zlib.MAX_WBITS | 16)
                        data = rest
                    else:
                        finished = True
        if not finished:
            out = decomp.flush()
            if out:
                budget.spend(len(out))
                yield out
            if not decomp.eof:
                raise Rejected(f"{name}: the gzip stream is truncated")
    except zlib.error as exc:
        raise Rejected(f"{name}: corrupt gzip data ({exc})") from None


def _read_file(source: BinaryIO, limits: Limits) -> Iterator[bytes]:
    total = 0
    while True:
        block = source.read(CHUNK)
        if not block:
            return
        total += len(block)
        if total > limits.max_input_bytes:
            raise _too_big(total, limits)
        yield block


def _too_big(size: int, limits: Limits) -> Unsafe:
    return Unsafe(f"input is over the cap of {limits.max_input_bytes} bytes (read {size}); "
                    "raise max_input_bytes if it is a genuine report")


def _check_size(source: BinaryIO, limits: Limits) -> None:
    size = source.seek(0, io.SEEK_END)
    if size > limits.max_input_bytes:
        raise _too_big(size, limits)


def _is_seekable(source: BinaryIO) -> bool:
    try:
        return bool(source.seekable())
    except (AttributeError, OSError):
        return False


def _peek(chunks: Iterator[bytes], size: int) -> tuple[bytes, Iterator[bytes]]:
    taken: list[bytes] = []
    have = 0
    for chunk in chunks:
        if not chunk:
            continue
        taken.append(chunk)
        have += len(chunk)
        if have >= size:
            break
    joined = b"".join(taken)
    return joined[:size], (itertools.chain((joined,), chunks) if joined else chunks)


def _collect(chunks: Iterator[bytes], cap: int, what: str) -> bytes:
    parts: list[bytes] = []
    have = 0
    for chunk in chunks:
        have += len(chunk)
        if have > cap:
            raise Unsafe(f"{what} is over the cap of {cap} bytes")
        parts.append(chunk)
    return b"".join(parts)


def _strip_suffix(name: str, suffix: str) -> str:
    return name[: -len(suffix)] if name.endswith(suffix) else name
