"""Embeds the standard TFLite Model Metadata in an exported detector, with MediaPipe's writer.

What MediaPipe Tasks' ``ObjectDetector`` (Android, iOS, web, Python) and the TFLite Task Library
read from the flatbuffer itself (schema: ``mediapipe/tasks/metadata/metadata_schema.fbs``):

    model      name, description, version, author, licence
    input      "image": RGB, NormalizationOptions (mean, std; uint8 models: 0 and 1, raw pixels)
    outputs    "location" [1, N, 4] (ymin, xmin, ymax, xmax) ratios, "category" [1, N] with
               labels.txt (TENSOR_VALUE_LABELS), "score" [1, N], "number of detections" [1];
               the first three grouped as "detection_result"
    files      labels.txt, and frontier.json (model-level): what the schema cannot hold --
               COCO category ids, the resize rule, NMS settings, anchors' provenance, export
               settings (edge_runtime/metadata.py reads it back; the parity check stays in
               the sidecar, which is written after the check runs on these very bytes)

Why MediaPipe's writer (``mediapipe.tasks.python.metadata.metadata_writers``): it is maintained,
and it is the reader's own library. The alternatives do not install beside TensorFlow 2.21:
tflite-support 0.4.4 (2023, unmaintained) pins protobuf < 4, mediapipe 0.10.21 (the last with a
compiled metadata helper) numpy < 2 and protobuf < 5. mediapipe 1.2.3 itself only clashes on
paper (absl-py ~= 2.3 against tensorflow-model-optimization's ~= 1.2, and opencv-contrib-python
beside our opencv-python-headless), neither of which the writer or ``ObjectDetector`` imports,
so the Makefile installs it with ``--no-deps`` (see setup.py's MEDIAPIPE). Its metadata module
still imports ``_pywrap_metadata_version``, a compiled helper its wheel no longer ships; that
helper's one function (the schema version a reader needs) is :func:`min_parser_version`.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import types

from edge_runtime.metadata import RECORD_FILE

MEDIAPIPE = "mediapipe==1.2.3"  # keep in step with setup.py and the Makefile
# model output roles -> the signature output names of every detection export (convert/graph.py)
ROLES = {"location": "detection_boxes", "category": "detection_classes",
         "score": "detection_scores", "number of detections": "num_detections"}
_HELPER = "mediapipe.tasks.cc.metadata.python._pywrap_metadata_version"


class MetadataError(ValueError):
    """The metadata cannot be written (bad labels, MediaPipe missing, writer failure)."""


def min_parser_version(metadata_buf: bytes) -> str:
    """The lowest metadata schema version that can read every field set in ``metadata_buf``, by
    the schema's changelog (metadata_schema.fbs: 1.0.1 VOCABULARY files, 1.1.0 sub-graph
    process units, 1.2.0 tensor groups, 1.2.1 regex tokenizer, 1.3.0 audio, 1.4.0 ScaNN
    files, 1.4.1 file versions, 1.5.0 custom metadata)."""
    from mediapipe.tasks.metadata import metadata_schema_py_generated as fb

    md = fb.ModelMetadataT.InitFromObj(fb.ModelMetadata.GetRootAsModelMetadata(metadata_buf, 0))
    need = [(1, 0, 0)]
    files = list(md.associatedFiles or [])
    units = []
    for sg in md.subgraphMetadata or []:
        tensors = list(sg.inputTensorMetadata or []) + list(sg.outputTensorMetadata or [])
        files += list(sg.associatedFiles or [])
        for t in tensors:
            files += list(t.associatedFiles or [])
            units += list(t.processUnits or [])
            if t.content and t.content.contentPropertiesType == \
                    fb.ContentProperties.AudioProperties:
                need.append((1, 3, 0))
        if sg.inputProcessUnits or sg.outputProcessUnits:
            need.append((1, 1, 0))
        units += list(sg.inputProcessUnits or []) + list(sg.outputProcessUnits or [])
        if sg.inputTensorGroups or sg.outputTensorGroups:
            need.append((1, 2, 0))
        if sg.customMetadata:
            need.append((1, 5, 0))
    option = fb.ProcessUnitOptions
    for u in units:
        if u.optionsType in (option.BertTokenizerOptions, option.SentencePieceTokenizerOptions):
            need.append((1, 1, 0))
        elif u.optionsType == option.RegexTokenizerOptions:
            need.append((1, 2, 1))
    for f in files:
        if f.type == fb.AssociatedFileType.VOCABULARY:
            need.append((1, 0, 1))
        elif f.type == fb.AssociatedFileType.SCANN_INDEX_FILE:
            need.append((1, 4, 0))
        if f.version:
            need.append((1, 4, 1))
    return ".".join(map(str, max(need)))


def _writer_modules():
    """MediaPipe's metadata writer modules, with the missing compiled helper supplied."""
    if _HELPER not in sys.modules:
        parents = _HELPER.split(".")
        for i in range(3, len(parents)):  # mediapipe.tasks.cc, ...cc.metadata, ...python
            sys.modules.setdefault(".".join(parents[:i]),
                                   types.ModuleType(".".join(parents[:i])))
        helper = types.ModuleType(_HELPER)
        helper.GetMinimumMetadataParserVersion = min_parser_version
        sys.modules[_HELPER] = helper
    try:
        from mediapipe.tasks.metadata import metadata_schema_py_generated as fb
        from mediapipe.tasks.python.metadata.metadata_writers import metadata_info
        from mediapipe.tasks.python.metadata.metadata_writers import metadata_writer
    except ImportError as e:
        raise MetadataError(f"writing TFLite metadata needs MediaPipe ({e}); install it with "
                            f"`pip install --no-deps {MEDIAPIPE}` (`make install` does)") from None
    return fb, metadata_info, metadata_writer


def check_labels(labels) -> list[str]:
    """Labels the metadata's label file can hold: non-empty, unique, one line each, UTF-8."""
    labels = list(labels)
    if not labels:
        raise MetadataError("the label list is empty")
    seen = set()
    for i, name in enumerate(labels):
        if not isinstance(name, str) or not name.strip():
            raise MetadataError(f"label {i} is {name!r}: labels must be non-empty strings")
        if any(c in name for c in "\r\n"):
            raise MetadataError(f"label {i} ({name!r}) has a line break; the label file holds "
                                "one name per line")
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            raise MetadataError(f"label {i} ({name!r}) is not valid UTF-8") from None
        if name in seen:
            raise MetadataError(f"label {i} ({name!r}) is a duplicate")
        seen.add(name)
    return labels


def embed(model: bytes, *, labels, mean: float, std: float, output_tensors: dict,
          name: str, description: str, version: str, author: str, licence: str,
          record: dict) -> bytes:
    """``model`` with its metadata and associated files (see module docstring).

    ``output_tensors``: {signature output name: tensor name in the model}, so each output's
    metadata is paired by name (the writer's own pairing assumes the fused op's tensor order,
    which built-in NMS graphs do not keep). ``record``: JSON-able, stored as frontier.json.
    Raises MetadataError."""
    fb, info, mw = _writer_modules()
    labels = check_labels(labels)
    missing = sorted(set(ROLES.values()) - set(output_tensors))
    if missing:
        raise MetadataError(f"the model lacks the detection outputs {missing}")
    with tempfile.TemporaryDirectory(prefix="frontier-metadata-") as tmp:
        record_path = os.path.join(tmp, RECORD_FILE)
        with open(record_path, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=1)
        writer = mw.MetadataWriter(bytearray(model))
        # add_general_info takes only name and description; version, author and licence too:
        writer._general_md = _GeneralMd(fb, info, record_path, name=name, version=version,
                                        description=description, author=author,
                                        licenses=licence)
        writer._associated_files.append(record_path)
        writer.add_image_input([float(mean)], [float(std)])
        writer.add_detection_output(mw.Labels().add(labels))
        for md in writer._output_mds:
            md.tensor_name = output_tensors[ROLES[md.name]]
        try:
            out, _ = writer.populate()
        except (ValueError, RuntimeError, KeyError) as e:
            raise MetadataError(f"MediaPipe's metadata writer failed: {e}") from None
        finally:
            writer._temp_folder.cleanup()
            del writer  # its __del__ fails when run at interpreter exit
    return bytes(out)


def _GeneralMd(fb, info, record_path, **fields):
    """MediaPipe's GeneralMd plus frontier.json as a model-level associated file."""

    class GeneralMd(info.GeneralMd):
        def create_metadata(self):
            md = super().create_metadata()
            record = info.AssociatedFileMd(
                record_path, description="Frontier's export record (JSON): COCO category ids, "
                "the resize rule, NMS settings, anchors and export provenance",
                file_type=fb.AssociatedFileType.UNKNOWN)
            md.associatedFiles = [record.create_metadata()]
            return md

    return GeneralMd(**fields)


def signature_outputs(model: bytes) -> dict:
    """{signature output name: tensor name} of the model's first signature (LiteRT's schema)."""
    from ai_edge_litert import schema_py_generated as schema

    m = schema.Model.GetRootAsModel(model, 0)
    if not m.SignatureDefsLength():
        raise MetadataError("the model has no signature to name its outputs by")
    sig = m.SignatureDefs(0)
    tensors = m.Subgraphs(sig.SubgraphIndex())
    return {sig.Outputs(i).Name().decode(): tensors.Tensors(sig.Outputs(i).TensorIndex())
            .Name().decode() for i in range(sig.OutputsLength())}


def general_info(meta: dict, *, version: str | None = None, author: str | None = None,
                 licence: str | None = None) -> dict:
    """The model-level fields of an export from its sidecar metadata (convert/metadata.py)."""
    model, export = meta.get("model") or {}, meta.get("export") or {}
    extractor = model.get("feature_extractor")
    extractor = extractor.get("name") if isinstance(extractor, dict) else extractor
    arch = {"ssd": "SSD", "faster_rcnn": "Faster R-CNN", "rfcn": "R-FCN"}.get(
        model.get("meta_architecture"), str(model.get("meta_architecture")))
    h, w = meta["input"]["shape"][1:3]
    labels = meta["labels"]
    shown = ", ".join(labels[:20]) + (f" and {len(labels) - 20} more" if len(labels) > 20 else "")
    source = export.get("source") or {}
    checkpoint = os.path.basename(str(source.get("checkpoint") or source.get("saved_model") or ""))
    return {
        "name": f"{arch} {extractor} {h}x{w} {export.get('quantize')}",
        "description": (f"{arch} object detector ({extractor}, {h}x{w} "
                        f"{meta['input']['dtype']} input, {export.get('quantize')}) for "
                        f"{len(labels)} classes: {shown}. Exported by Frontier; "
                        f"{RECORD_FILE} holds its COCO category ids, resize rule and provenance."),
        "version": version or f"{checkpoint or 'model'} exported {export.get('date', '')}".strip(),
        "author": author or "Frontier export",
        "licence": licence or "not specified (python -m convert --license)",
    }
