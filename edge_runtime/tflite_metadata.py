"""Reads the standard TFLite Model Metadata embedded in a ``.tflite`` (no TensorFlow, no MediaPipe).

The metadata is a flatbuffer (``metadata_schema.fbs``, file identifier "M001") in the buffer that
the model's ``metadata`` entry "TFLITE_METADATA" names; its associated files (labels.txt, ...)
are a zip archive appended to the model. The model and metadata tables are read with the
``flatbuffers`` runtime (setup.py's edge extra) and the schemas' field order
(a table's field ``i`` sits at vtable slot ``4 + 2 i``; a union takes two slots, type first):

    ModelMetadata      0 name, 1 description, 2 version, 3 subgraph_metadata, 4 author,
                       5 license, 6 associated_files, 7 min_parser_version
    SubGraphMetadata   2 input_tensor_metadata, 3 output_tensor_metadata
    TensorMetadata     0 name, 1 description, 3 content, 4 process_units, 6 associated_files
    Content            0-1 content_properties (union), ImageProperties: 0 color_space
    ProcessUnit        0-1 options (union; 1 = NormalizationOptions: 0 mean, 1 std)
    AssociatedFile     0 name, 1 description, 2 type (2 axis labels, 3 value labels)

Only what a detector needs is read: labels, normalisation, colour space, the model's name,
version, author and licence, and the associated files' bytes. The writer is MediaPipe's
(convert/tflite_metadata.py); tests/test_tflite_metadata.py checks this reader against the JSON
that MediaPipe's own C++ parser makes of the same buffer.
"""
from __future__ import annotations

import io
import struct
import zipfile

import flatbuffers
from flatbuffers.table import Table

METADATA_NAME = "TFLITE_METADATA"
IDENTIFIER = b"M001"
TENSOR_AXIS_LABELS, TENSOR_VALUE_LABELS = 2, 3
NORMALIZATION_OPTIONS = 1
COLOR_SPACES = {0: "UNKNOWN", 1: "RGB", 2: "GRAYSCALE"}


def _field(t: Table, i: int) -> int:
    return t.Offset(4 + 2 * i)


def _string(t: Table, i: int) -> str | None:
    o = _field(t, i)
    return t.String(o + t.Pos).decode("utf-8") if o else None


def _tables(t: Table, i: int) -> list[Table]:
    o = _field(t, i)
    if not o:
        return []
    start, n = t.Vector(o), t.VectorLen(o)
    return [Table(t.Bytes, t.Indirect(start + 4 * k)) for k in range(n)]


def _child(t: Table, i: int) -> Table | None:
    o = _field(t, i)
    return Table(t.Bytes, t.Indirect(o + t.Pos)) if o else None


def _floats(t: Table, i: int) -> list[float]:
    o = _field(t, i)
    if not o:
        return []
    start, n = t.Vector(o), t.VectorLen(o)
    return list(struct.unpack_from(f"<{n}f", t.Bytes, start))


def _byte(t: Table, i: int, default: int = 0) -> int:
    o = _field(t, i)
    return t.Get(flatbuffers.number_types.Int8Flags, o + t.Pos) if o else default


def _union(t: Table, i: int) -> tuple[int, Table | None]:
    kind = _field(t, i)
    kind = t.Get(flatbuffers.number_types.Uint8Flags, kind + t.Pos) if kind else 0
    return kind, _child(t, i + 1)


def metadata_buffer(model: bytes) -> bytes | None:
    """The TFLITE_METADATA buffer of a model flatbuffer, or None (schema.fbs: Model 4 buffers,
    6 metadata; Metadata 0 name, 1 buffer; Buffer 0 data, 1 offset, 2 size)."""
    root = Table(model, flatbuffers.encode.Get(flatbuffers.packer.uoffset, model, 0))
    buffers = _tables(root, 4)
    for entry in _tables(root, 6):
        if _string(entry, 0) != METADATA_NAME:
            continue
        o = _field(entry, 1)
        index = entry.Get(flatbuffers.number_types.Uint32Flags, o + entry.Pos) if o else 0
        if index >= len(buffers):
            raise ValueError(f"{METADATA_NAME} names buffer {index} of {len(buffers)}")
        b = buffers[index]
        offset, size = _ulong(b, 1), _ulong(b, 2)
        if offset > 1:  # models over 2 GB keep buffers after the flatbuffer
            return bytes(model[offset:offset + size])
        o = _field(b, 0)
        if not o:
            return b""
        start = b.Vector(o)
        return bytes(model[start:start + b.VectorLen(o)])
    return None


def _ulong(t: Table, i: int) -> int:
    o = _field(t, i)
    return t.Get(flatbuffers.number_types.Uint64Flags, o + t.Pos) if o else 0


def _associated(tables: list[Table]) -> list[dict]:
    return [{"name": _string(f, 0), "description": _string(f, 1), "type": _byte(f, 2)}
            for f in tables]


def _tensor(t: Table) -> dict:
    info = {"name": _string(t, 0), "description": _string(t, 1),
            "associated_files": _associated(_tables(t, 6))}
    content = _child(t, 3)
    if content is not None:
        kind, props = _union(content, 0)
        if kind == 2 and props is not None:  # ContentProperties.ImageProperties
            info["color_space"] = COLOR_SPACES.get(_byte(props, 0), "UNKNOWN")
    for unit in _tables(t, 4):
        kind, options = _union(unit, 0)
        if kind == NORMALIZATION_OPTIONS and options is not None:
            info["mean"], info["std"] = _floats(options, 0), _floats(options, 1)
    return info


def parse(metadata: bytes) -> dict:
    """A metadata flatbuffer -> {"name", "description", "version", "author", "license",
    "min_parser_version", "associated_files", "inputs": [tensor], "outputs": [tensor]}, a
    tensor being {"name", "description", "associated_files", "mean"?, "std"?, "color_space"?}.
    Raises ValueError for a buffer that is not TFLite metadata or is malformed."""
    if len(metadata) < 8 or metadata[4:8] != IDENTIFIER:
        raise ValueError(f"no \"{IDENTIFIER.decode()}\" file identifier (not TFLite metadata)")
    try:
        root = Table(metadata, flatbuffers.encode.Get(flatbuffers.packer.uoffset, metadata, 0))
        subgraphs = _tables(root, 3)
        if len(subgraphs) != 1:
            raise ValueError(f"subgraph_metadata has {len(subgraphs)} entries, expected 1")
        return {"name": _string(root, 0), "description": _string(root, 1),
                "version": _string(root, 2), "author": _string(root, 4),
                "license": _string(root, 5), "min_parser_version": _string(root, 7),
                "associated_files": _associated(_tables(root, 6)),
                "inputs": [_tensor(t) for t in _tables(subgraphs[0], 2)],
                "outputs": [_tensor(t) for t in _tables(subgraphs[0], 3)]}
    except (struct.error, IndexError, UnicodeDecodeError, OverflowError, TypeError) as e:
        raise ValueError(f"malformed metadata flatbuffer ({type(e).__name__}: {e})") from None


def associated_files(model: bytes) -> dict[str, bytes]:
    """{name: bytes} of the zip archive the metadata writer appends to the model ({} if none)."""
    try:
        with zipfile.ZipFile(io.BytesIO(model)) as z:
            return {name: z.read(name) for name in z.namelist()}
    except zipfile.BadZipFile:
        return {}
    except (zipfile.LargeZipFile, OSError, EOFError, ValueError, KeyError) as e:
        raise ValueError(f"its associated files are unreadable ({e})") from None


def labels_file(tensor: dict) -> str | None:
    """The name of a tensor's label file (value labels first, as MediaPipe reads them)."""
    for kind in (TENSOR_VALUE_LABELS, TENSOR_AXIS_LABELS):
        for f in tensor.get("associated_files", []):
            if f["type"] == kind and f["name"]:
                return f["name"]
    return None
