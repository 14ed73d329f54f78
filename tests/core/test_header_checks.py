"""Header-vs-data checks count compressed data exactly (a short count would call a good file truncated)."""

from __future__ import annotations

import bz2
import gzip

from regviewer.core.imaging.header_checks import _inflated_size


def test_large_bzip2_and_gzip_streams_are_counted_in_full(tmp_path):
    data = bytes(range(256)) * 16_000  # 4 MB: several decompression chunks
    for kind, packed in (("bzip2", bz2.compress(data)), ("gzip", gzip.compress(data))):
        path = tmp_path / f"data.{kind}"
        path.write_bytes(packed)
        assert _inflated_size(path, 0, len(data), kind) == len(data), kind
