"""The `.bnm` file codec (docs/model-format.md): a safetensors file whose `__metadata__`
holds the architecture (`basisnet`) and the data section's CRC-32 (`data_crc32`).

Every writer and reader of the format in the repository goes through this module: the
exporter, the golden vectors, bench/engine (peer runtimes, the paper-scale model),
add_checksum.py, from_bnm.py and the bad-model fixtures. numpy only (no torch), no
safetensors package.

  read(path)            -> (metadata, OrderedDict name -> read-only numpy array), validated
  write(path, tensors, metadata)   atomic (written next to path, then renamed)
  split(raw) / pack(header, data)  the raw layer: header dict <-> bytes, for tools that
                                   edit a file without decoding its tensors

The header's JSON is compact (`{"a":1}`) unless compact=False (`{"a": 1}`, the layout of
the files bench/engine and the fixture maker have always written); either way it is padded
with spaces to a multiple of 8 bytes.
"""
import json
import os
import struct
import zlib
from collections import OrderedDict

import numpy as np

# safetensors dtype -> (numpy little-endian dtype, bytes per element)
DTYPES = OrderedDict([("F32", ("<f4", 4)), ("F16", ("<f2", 2)), ("U8", ("u1", 1))])
CHECKSUM_KEY = "data_crc32"
ARCH_KEY = "basisnet"
MAX_DIMS = 5


class FormatError(ValueError):
    """A file or tensor set that is not a valid .bnm/safetensors; the message names it."""


def data_crc32(blobs):
    """CRC-32 (zlib's, as the engine computes it) of the data section given as one bytes
    object or a sequence of them in file order, as 8 hex digits."""
    if isinstance(blobs, (bytes, bytearray, memoryview)):
        blobs = (blobs,)
    crc = 0
    for b in blobs:
        crc = zlib.crc32(b, crc)
    return "%08x" % crc


def set_checksum(metadata, blobs):
    """Stores data_crc32 of blobs in metadata: where the key already is, else at the end."""
    metadata[CHECKSUM_KEY] = data_crc32(blobs)
    return metadata[CHECKSUM_KEY]


def dtype_name(arr):
    for name, (np_dt, _) in DTYPES.items():
        if arr.dtype == np.dtype(np_dt):
            return name
    raise FormatError("unsupported dtype %s" % arr.dtype)


def encode_tensors(tensors):
    """(OrderedDict name -> header entry, list of data blobs) of an ordered mapping name ->
    numpy array (float32/float16/uint8, 1..5 positive dimensions, floats finite)."""
    entries, blobs, off = OrderedDict(), [], 0
    for name, arr in tensors.items():
        arr = np.asarray(arr)
        dt = dtype_name(arr)
        if dt != "U8" and not np.all(np.isfinite(arr)):
            raise FormatError("tensor %s has NaN/Inf" % name)
        if any(d <= 0 for d in arr.shape) or arr.ndim > MAX_DIMS:
            raise FormatError("tensor %s: bad shape %s" % (name, arr.shape))
        data = np.ascontiguousarray(arr.astype(DTYPES[dt][0], copy=False)).tobytes()
        entries[name] = OrderedDict(dtype=dt, shape=list(arr.shape),
                                    data_offsets=[off, off + len(data)])
        blobs.append(data)
        off += len(data)
    return entries, blobs


def header_bytes(header, compact=True):
    """The JSON of a header dict, padded with spaces to a multiple of 8 bytes."""
    sep = (",", ":") if compact else (", ", ": ")
    hb = json.dumps(header, separators=sep, ensure_ascii=False).encode("utf-8")
    return pad_header(hb)


def pad_header(hb):
    return hb + b" " * (-len(hb) % 8)


def pack(header, data, compact=True, raw_header=None):
    """A whole file: u64 header length, header (header dict as JSON, or raw_header bytes
    as given, both padded to 8), data. The checksum is not touched (set_checksum)."""
    hb = pad_header(raw_header) if raw_header is not None else header_bytes(header, compact)
    return struct.pack("<Q", len(hb)) + hb + bytes(data)


def encode(tensors, metadata=None, compact=True, metadata_last=False):
    """The bytes of a .bnm/safetensors file: metadata (str -> str; data_crc32 is set, in
    its place if the mapping has the key, else at its end) first in the header, or after
    the tensors with metadata_last."""
    metadata = OrderedDict(metadata or {})
    for k, v in metadata.items():
        if not isinstance(v, str):
            raise FormatError("metadata values must be strings (%s)" % k)
    entries, blobs = encode_tensors(tensors)
    set_checksum(metadata, blobs)
    header = OrderedDict() if metadata_last else OrderedDict(__metadata__=metadata)
    header.update(entries)
    if metadata_last:
        header["__metadata__"] = metadata
    return pack(header, b"".join(blobs), compact)


def write_atomic(path, raw, mode=None):
    """Writes raw bytes to path.tmp, then renames it over path (a daemon reloading path
    never sees half a file). mode: permission bits to give the new file."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(raw)
    if mode is not None:
        os.chmod(tmp, mode)
    os.replace(tmp, path)


def write(path, tensors, metadata=None, compact=True, metadata_last=False):
    """Writes a .bnm/safetensors file atomically; see encode()."""
    write_atomic(path, encode(tensors, metadata, compact, metadata_last))


def split(raw, path="<bytes>"):
    """(header OrderedDict including __metadata__, data section bytes) of a file's bytes;
    FormatError for a file too short or a header length out of range."""
    if len(raw) < 8:
        raise FormatError("%s: too short for a safetensors header" % path)
    (n,) = struct.unpack("<Q", raw[:8])
    if n < 2 or n > len(raw) - 8:
        raise FormatError("%s: bad header length %d" % (path, n))
    try:
        header = json.loads(bytes(raw[8:8 + n]).decode("utf-8"), object_pairs_hook=OrderedDict)
    except (UnicodeDecodeError, ValueError) as e:
        raise FormatError("%s: header is not JSON: %s" % (path, e))
    if not isinstance(header, dict):
        raise FormatError("%s: header is not a JSON object" % path)
    return header, raw[8 + n:]


def decode(header, data, path="<bytes>"):
    """(metadata, OrderedDict name -> read-only numpy array) of a split file; FormatError
    for an unknown dtype, data_offsets that do not fit the shape or the data, or tensors
    that overlap."""
    header = OrderedDict(header)
    meta = header.pop("__metadata__", OrderedDict())
    out, spans = OrderedDict(), []
    for name, info in header.items():
        if not isinstance(info, dict) or info.get("dtype") not in DTYPES:
            raise FormatError("%s: tensor %s: unknown dtype %r" % (
                path, name, info.get("dtype") if isinstance(info, dict) else info))
        np_dt, size = DTYPES[info["dtype"]]
        b, e = info["data_offsets"]
        count = int(np.prod(info["shape"])) if info["shape"] else 1
        if not (0 <= b <= e <= len(data)) or e - b != count * size:
            raise FormatError("%s: tensor %s: bad data_offsets" % (path, name))
        spans.append((b, e, name))
        out[name] = np.frombuffer(data[b:e], dtype=np_dt).reshape(info["shape"])
    spans.sort()
    for (b0, e0, n0), (b1, e1, n1) in zip(spans, spans[1:]):
        if b1 < e0:
            raise FormatError("%s: tensors %s and %s overlap" % (path, n0, n1))
    return meta, out


def read(path):
    """(metadata dict, OrderedDict name -> read-only numpy array) of a file; validated as
    decode() does."""
    with open(path, "rb") as f:
        raw = f.read()
    header, data = split(raw, path)
    return decode(header, data, path)


def architecture(meta):
    """The `basisnet` document of a file's metadata (a dict), or None if it has none."""
    return json.loads(meta[ARCH_KEY]) if ARCH_KEY in meta else None


def check_checksum(meta, data):
    """(stored data_crc32 or None, the data's own CRC-32)."""
    return (meta or {}).get(CHECKSUM_KEY), data_crc32(data)
