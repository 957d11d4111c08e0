#!/usr/bin/env python3
"""check_safetensors.py — an independent reader of safetensors files, to cross-check what
fqt writes (core/safetensors.c) against the format without sharing any code with it.

For: `scripts/check_safetensors.py FILE...` prints each tensor (dtype, shape, byte range,
first values) and the metadata, and exits non-zero with a message on any format violation.
`--strict` also demands what the Hugging Face reader demands: tensors contiguous from offset
0 with no gaps and no bytes after the last one. Not for: make test (it needs only python3,
no packages, but is run by hand), or large-scale numerics.
"""
import json
import math
import struct
import sys

SIZES = {"F32": 4, "BF16": 2, "F16": 2, "I32": 4, "I64": 8, "U8": 1, "U16": 2}
MAX_HEADER = 100_000_000


def decode(dtype, raw, count):
    """First `count` elements of raw as Python numbers."""
    n = min(count, len(raw) // SIZES[dtype])
    if dtype == "F32":
        return list(struct.unpack("<%df" % n, raw[: 4 * n]))
    if dtype == "BF16":
        return [struct.unpack("<f", b"\0\0" + raw[2 * i: 2 * i + 2])[0] for i in range(n)]
    if dtype == "F16":
        return list(struct.unpack("<%de" % n, raw[: 2 * n]))
    fmt = {"I32": "i", "I64": "q", "U8": "B", "U16": "H"}[dtype]
    return list(struct.unpack("<%d%s" % (n, fmt), raw[: SIZES[dtype] * n]))


def check(path, strict):
    with open(path, "rb") as fp:
        blob = fp.read()
    if len(blob) < 8:
        raise ValueError("file is %d bytes, too short" % len(blob))
    (hlen,) = struct.unpack("<Q", blob[:8])
    if hlen > len(blob) - 8 or hlen > MAX_HEADER:
        raise ValueError("header length %d does not fit the %d-byte file" % (hlen, len(blob)))
    text = blob[8: 8 + hlen].decode("utf-8")

    def no_dups(pairs):
        keys = [k for k, _ in pairs]
        dup = {k for k in keys if keys.count(k) > 1}
        if dup:
            raise ValueError("duplicate keys %s" % sorted(dup))
        return dict(pairs)

    header = json.loads(text, object_pairs_hook=no_dups)
    if not isinstance(header, dict):
        raise ValueError("header is not an object")
    if strict and hlen % 8:
        raise ValueError("header length %d is not a multiple of 8" % hlen)
    data = blob[8 + hlen:]
    meta = header.pop("__metadata__", None)
    if meta is not None and (not isinstance(meta, dict)
                             or not all(isinstance(v, str) for v in meta.values())):
        raise ValueError("__metadata__ must be an object of strings")
    spans = []
    for name, e in header.items():
        dtype, shape, (b, end) = e["dtype"], e["shape"], e["data_offsets"]
        if dtype not in SIZES:
            raise ValueError("%s: unknown dtype %r" % (name, dtype))
        if len(shape) > 8 or not all(isinstance(s, int) and s >= 0 for s in shape):
            raise ValueError("%s: bad shape %r" % (name, shape))
        need = math.prod(shape) * SIZES[dtype]
        if not (0 <= b <= end <= len(data)) or end - b != need:
            raise ValueError("%s: data_offsets [%d, %d] vs %d bytes needed, %d in the data "
                             "section" % (name, b, end, need, len(data)))
        spans.append((b, end, name))
        print("  %-40s %-4s %-18s [%d, %d) %s" % (name, dtype, shape, b, end,
                                                   decode(dtype, data[b:end], 4)))
    spans.sort()
    pos = 0
    for b, end, name in spans:
        if b < pos and b != end:
            raise ValueError("%s overlaps the previous tensor" % name)
        if strict and b != pos:
            raise ValueError("%s starts at %d, not %d (gap)" % (name, b, pos))
        pos = max(pos, end)
    if strict and pos != len(data):
        raise ValueError("%d bytes after the last tensor" % (len(data) - pos))
    print("  metadata: %s" % meta)
    return len(spans)


def main():
    args = [a for a in sys.argv[1:] if a != "--strict"]
    strict = "--strict" in sys.argv[1:]
    if not args:
        print(__doc__)
        return 2
    bad = 0
    for path in args:
        print(path)
        try:
            n = check(path, strict)
            print("  ok: %d tensors" % n)
        except (ValueError, KeyError, TypeError, UnicodeDecodeError, OSError) as err:
            print("  ERROR: %s: %s" % (path, err))
            bad = 1
    return bad


if __name__ == "__main__":
    sys.exit(main())
