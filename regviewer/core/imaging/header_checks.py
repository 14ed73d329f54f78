"""Check a MetaImage or NRRD header against the data it points to, before ITK reads it.

ITK zero-fills a compressed MetaImage whose data stops short and allocates whatever
size an NRRD header claims before finding the data missing (a 1000^3 claim over 29
bytes). Both are cheap to catch first: the raw data's length is known from the file
size; compressed data is inflated in chunks and only counted, never kept.
"""

from __future__ import annotations

import bz2
import zlib
from pathlib import Path

from regviewer.core.errors import ImageReadError

_HEADER_LIMIT = 64 * 1024
_CHUNK = 1 << 20


def check_data_size(p: Path, suffix: str, expected: int) -> None:
    """Raise `ImageReadError` when the data holds fewer than `expected` bytes."""
    if suffix in (".mha", ".mhd"):
        found = _metaimage_bytes(p, expected)
    else:
        found = _nrrd_bytes(p, expected)
    if found is not None and found < expected:
        raise ImageReadError(
            p, f"the file is truncated: its header describes {expected:,} bytes of image data, the data holds "
               f"{found:,}")


def check_header_fields(p: Path, suffix: str) -> None:
    """Refuse a MetaImage or NRRD header whose dimension or sizes are not positive
    integers that agree, before ITK parses it: ITK crashes the process on some of
    these (a MetaImage with ``NDims = -1`` is a segmentation fault), which no error
    handling can catch."""
    if suffix in (".mha", ".mhd"):
        fields = _metaimage_fields(_read_header(p))
        dim_key, size_key, limit = "NDims", "DimSize", 8
    elif suffix in (".nrrd", ".nhdr"):
        head = _read_header(p)
        if not head.startswith(b"NRRD"):
            return
        end = head.find(b"\n\n")
        fields = _nrrd_fields(head[: end if end >= 0 else len(head)])
        dim_key, size_key, limit = "dimension", "sizes", 16
    else:
        return
    dims, sizes = fields.get(dim_key), fields.get(size_key)
    if dims is None:
        return  # ITK reports a missing dimension itself
    if not dims.isdigit() or not 1 <= int(dims) <= limit:
        raise ImageReadError(p, f"its header says {dim_key} = {dims!r}; it must be 1 to {limit}")
    if sizes is None:
        return
    values = sizes.split()
    if len(values) != int(dims) or not all(v.isdigit() and int(v) > 0 for v in values):
        raise ImageReadError(p, f"its header says {size_key} = {sizes!r}; it needs {dims} whole numbers above 0")


def _metaimage_fields(head: bytes) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in head.split(b"\n"):
        key, sep, value = line.decode("latin-1").partition("=")
        if sep:
            fields.setdefault(key.strip(), value.strip())
        if key.strip() == "ElementDataFile":
            break
    return fields


def _nrrd_fields(head: bytes) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in head.split(b"\n")[1:]:
        text = line.decode("latin-1")
        if text.startswith("#") or ":" not in text:
            continue
        key, _, value = text.partition(":")
        fields.setdefault(key.strip().lower(), value.lstrip("=").strip())
    return fields


def _read_header(p: Path) -> bytes:
    with p.open("rb") as fh:
        return fh.read(_HEADER_LIMIT)


def _metaimage_bytes(p: Path, expected: int) -> int | None:
    head = _read_header(p)
    fields: dict[str, str] = {}
    offset = 0
    for line in head.split(b"\n"):
        offset += len(line) + 1
        if b"=" not in line:
            continue
        key, _, value = line.decode("latin-1").partition("=")
        fields[key.strip()] = value.strip()
        if key.strip() == "ElementDataFile":
            break
    else:
        return None  # no data-file line within the header: let ITK judge
    data_file = fields.get("ElementDataFile", "")
    if data_file == "LOCAL":
        source, start = p, offset
    elif data_file and " " not in data_file and "%" not in data_file and data_file != "LIST":
        source, start = p.parent / data_file, 0
        if not source.is_file():
            raise ImageReadError(p, f"its data file '{data_file}' does not exist (looked in {p.parent})")
    else:
        return None  # a list of slice files: ITK checks each
    header_size = fields.get("HeaderSize", "0")
    if data_file != "LOCAL" and header_size.lstrip("-").isdigit() and int(header_size) > 0:
        start = int(header_size)
    if fields.get("CompressedData", "False").lower() == "true":
        return _inflated_size(source, start, expected, "zlib")
    return max(0, source.stat().st_size - start) if header_size != "-1" else None


def _nrrd_bytes(p: Path, expected: int) -> int | None:
    head = _read_header(p)
    if not head.startswith(b"NRRD"):
        return None
    end = head.find(b"\n\n")
    if end < 0:
        return None
    fields: dict[str, str] = {}
    for line in head[:end].split(b"\n")[1:]:
        text = line.decode("latin-1")
        if text.startswith("#") or ":" not in text:
            continue
        key, _, value = text.partition(":")
        fields[key.strip().lower()] = value.lstrip("=").strip()
    if "line skip" in fields or "lineskip" in fields or "byte skip" in fields or "byteskip" in fields:
        return None
    data_file = fields.get("data file") or fields.get("datafile")
    if data_file:
        if " " in data_file or data_file.upper().startswith("LIST"):
            return None
        source, start = p.parent / data_file, 0
        if not source.is_file():
            raise ImageReadError(p, f"its data file '{data_file}' does not exist (looked in {p.parent})")
    else:
        source, start = p, end + 2
    encoding = fields.get("encoding", "raw").lower()
    if encoding == "raw":
        return max(0, source.stat().st_size - start)
    if encoding in ("gzip", "gz"):
        return _inflated_size(source, start, expected, "gzip")
    if encoding in ("bzip2", "bz2"):
        return _inflated_size(source, start, expected, "bzip2")
    return None  # text or hex: sizes do not compare


def _inflated_size(source: Path, start: int, expected: int, kind: str) -> int:
    """Bytes the compressed stream inflates to, counting up to `expected` (then stop)."""
    if kind == "bzip2":
        inflater = bz2.BZ2Decompressor()
    else:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS if kind == "gzip" else zlib.MAX_WBITS)
    total = 0
    try:
        with source.open("rb") as fh:
            fh.seek(start)
            while total < expected:
                chunk = fh.read(_CHUNK)
                if not chunk:
                    break
                if kind == "bzip2":
                    total += len(inflater.decompress(chunk, _CHUNK))
                    # decompress() returns at most _CHUNK bytes and keeps the rest of its input
                    while not inflater.eof and not inflater.needs_input and total < expected:
                        total += len(inflater.decompress(b"", _CHUNK))
                    if inflater.eof:
                        break
                else:
                    while chunk and total < expected:
                        total += len(inflater.decompress(chunk, _CHUNK))
                        chunk = inflater.unconsumed_tail
                    if inflater.eof:
                        break
    except (zlib.error, OSError, EOFError) as exc:
        raise ImageReadError(source, f"its compressed image data is damaged ({exc})") from None
    return total


__all__ = ["check_data_size", "check_header_fields"]
