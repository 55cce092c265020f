"""Line splitting for every line-based reader: same lines, numbers and rejects whatever the
block size, against a plain Python split of the whole input."""

from __future__ import annotations

import io
import random

import pytest

from breachtrace.ingest.base import RejectLog, line_batches


def _expected(data: bytes, skip_prefix: bytes | None) -> tuple[list[tuple[int, str]], list[int]]:
    parts = data.split(b"\n")
    if parts[-1] == b"":  # a final newline ends the last line; it does not start another
        parts.pop()
    lines, bad = [], []
    for number, part in enumerate(parts, start=1):
        try:
            text = part.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError:
            bad.append(number)
            continue
        if text.strip() and not (skip_prefix and text.startswith(skip_prefix.decode())):
            lines.append((number, text))
    return lines, bad


def _sample(rng: random.Random) -> bytes:
    pieces = []
    for _ in range(300):
        kind = rng.random()
        if kind < 0.05:
            pieces.append(b"")
        elif kind < 0.08:
            pieces.append(b" \t ")
        elif kind < 0.10:
            pieces.append(b'{"bad": "\xff\xfe"}')
        elif kind < 0.13:
            pieces.append(b"# comment")
        else:
            text = "".join(rng.choice('abcxyz {}:,"üé€') for _ in range(rng.randrange(1, 90)))
            pieces.append(text.encode() + (b"\r" if rng.random() < 0.1 else b""))
    return b"\n".join(pieces) + (b"\n" if rng.random() < 0.5 else b"")


@pytest.mark.parametrize("block_bytes", [1, 5, 64, 1000, 1 << 20])
@pytest.mark.parametrize("skip_prefix", [None, b"#"])
def test_lines_agree_with_a_plain_split(block_bytes: int, skip_prefix: bytes | None) -> None:
    for seed in range(4):
        data = _sample(random.Random(seed))
        rejects = RejectLog()
        tables = list(
            line_batches(
                io.BytesIO(data),
                rejects,
                skip_prefix=skip_prefix,
                block_bytes=block_bytes,
                batch_bytes=4 * block_bytes,
            )
        )
        got = [
            (number, line)
            for t in tables
            for number, line in zip(
                t["input_record"].to_pylist(), t["line"].to_pylist(), strict=True
            )
        ]
        lines, bad = _expected(data, skip_prefix)
        assert got == lines
        assert [r.input_record for r in rejects.items] == bad
        assert all("not UTF-8" in r.reason for r in rejects.items)


def test_no_trailing_newline_and_empty_input() -> None:
    tables = list(line_batches(io.BytesIO(b"a\r\nb"), RejectLog(), block_bytes=2))
    assert [t["line"].to_pylist() for t in tables] == [["a", "b"]]
    assert list(line_batches(io.BytesIO(b""), RejectLog())) == []
