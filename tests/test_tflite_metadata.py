"""The standard TFLite metadata: MediaPipe's writer (convert/tflite_metadata.py), edge_runtime's
reader (edge_runtime/tflite_metadata.py, held to MediaPipe's own C++ parser), and what edge_runtime
makes of a model that carries it, with or without a sidecar."""
import json
import os
import subprocess
import sys

import flatbuffers
import numpy as np
import numpy as np
import pytest

from convert import tflite_metadata as writer
from edge_runtime import tflite_metadata as reader
from edge_runtime.detector import Detector
from edge_runtime.metadata import embedded_metadata, metadata_path, read_metadata

ASSET = os.path.join(os.path.dirname(__file__), "assets", "shapes_ssd_mobilenet_v2_int8.tflite")
LABELS = ["circle", "triangle", "square", "star", "cross", "ring", "hexagon", "heart"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _model_bytes():
    with open(ASSET, "rb") as f:
        return f.read()


def _embed(**kw):
    model = _model_bytes()
    args = dict(labels=LABELS, mean=0.0, std=1.0, output_tensors=writer.signature_outputs(model),
                name="test SSD", description="a test", version="v7", author="tests",
                licence="Apache-2.0", record={"format": "frontier-detector", "category_ids":
                                              list(range(1, 9))})
    args.update(kw)
    return writer.embed(model, **args)


def _metadata_fb():
    writer._writer_modules()
    from mediapipe.tasks.metadata import metadata_schema_py_generated as fb
    return fb


def _version_of(**subgraph_fields) -> str:
    fb = _metadata_fb()
    sg = fb.SubGraphMetadataT()
    for k, v in subgraph_fields.items():
        setattr(sg, k, v)
    md = fb.ModelMetadataT()
    md.subgraphMetadata = [sg]
    b = flatbuffers.Builder(0)
    b.Finish(md.Pack(b), b"M001")
    return writer.min_parser_version(bytes(b.Output()))


def test_min_parser_version_follows_the_schema_changelog():
    fb = _metadata_fb()

    def tensor_with_file(**fields):
        f = fb.AssociatedFileT()
        for k, v in fields.items():
            setattr(f, k, v)
        t = fb.TensorMetadataT()
        t.associatedFiles = [f]
        return [t]

    group = fb.TensorGroupT()
    group.name = "g"
    custom = fb.CustomMetadataT()
    custom.name = "c"
    assert _version_of() == "1.0.0"
    assert _version_of(outputTensorMetadata=tensor_with_file(
        type=fb.AssociatedFileType.TENSOR_VALUE_LABELS)) == "1.0.0"
    assert _version_of(outputTensorMetadata=tensor_with_file(
        type=fb.AssociatedFileType.VOCABULARY)) == "1.0.1"
    assert _version_of(outputTensorGroups=[group]) == "1.2.0"
    assert _version_of(outputTensorMetadata=tensor_with_file(version="3")) == "1.4.1"
    assert _version_of(customMetadata=[custom], outputTensorGroups=[group]) == "1.5.0"


def test_reader_agrees_with_mediapipes_own_parser(tmp_path):
    from mediapipe.tasks.python.metadata import metadata as mp_metadata

    model = _embed()
    parsed = reader.parse(reader.metadata_buffer(model))
    truth = json.loads(mp_metadata.MetadataDisplayer.with_model_buffer(model).get_metadata_json())
    assert {k: parsed[k] for k in ("name", "description", "version", "author", "license",
                                   "min_parser_version")} == {
        k: truth[k] for k in ("name", "description", "version", "author", "license",
                              "min_parser_version")}
    assert parsed["min_parser_version"] == "1.2.0"  # the detection_result tensor group
    sub = truth["subgraph_metadata"][0]
    image = sub["input_tensor_metadata"][0]
    assert parsed["inputs"][0]["mean"] == image["process_units"][0]["options"]["mean"] == [0.0]
    assert parsed["inputs"][0]["std"] == [1.0]
    assert parsed["inputs"][0]["color_space"] == image["content"]["content_properties"][
        "color_space"] == "RGB"
    assert [t["name"] for t in parsed["outputs"]] == [
        t["name"] for t in sub["output_tensor_metadata"]]
    for mine, theirs in zip(parsed["outputs"], sub["output_tensor_metadata"]):
        assert [f["name"] for f in mine["associated_files"]] == [
            f["name"] for f in theirs.get("associated_files", [])]
    assert [f["name"] for f in parsed["associated_files"]] == [
        f["name"] for f in truth["associated_files"]] == ["frontier.json"]
    files = reader.associated_files(model)
    assert files["labels.txt"].decode().split("\n") == LABELS
    assert json.loads(files["frontier.json"])["category_ids"] == list(range(1, 9))


def test_outputs_are_paired_by_signature_name_not_tensor_order():
    """The writer's own pairing takes the tensors in index order; ours names each output, so a
    model whose outputs are in another order still gets "location" on its boxes."""
    model = _model_bytes()
    names = writer.signature_outputs(model)
    swapped = {**names, "detection_boxes": names["detection_scores"],
               "detection_scores": names["detection_boxes"]}
    parsed = reader.parse(reader.metadata_buffer(_embed(output_tensors=swapped)))
    from ai_edge_litert import schema_py_generated as schema
    m = schema.Model.GetRootAsModel(model, 0)
    sg = m.Subgraphs(0)
    order = [sg.Tensors(sg.Outputs(i)).Name().decode() for i in range(sg.OutputsLength())]
    by_tensor = dict(zip(order, (t["name"] for t in parsed["outputs"])))
    assert by_tensor[names["detection_scores"]] == "location"
    assert by_tensor[names["detection_boxes"]] == "score"


@pytest.mark.parametrize("labels, message", [
    ([], "empty"), (["a", "a"], "duplicate"), (["a", "b\nc"], "line break"),
    (["a", ""], "non-empty"), (["a", 3], "non-empty"), (["a", "b\udcff"], "UTF-8")])
def test_labels_the_metadata_cannot_hold(labels, message):
    with pytest.raises(writer.MetadataError, match=message):
        _embed(labels=labels)


def test_model_made_elsewhere_with_standard_metadata_gets_its_class_names(tmp_path):
    """MediaPipe's stock writer, as another tool would use it: no frontier.json, no sidecar."""
    _, _, mw = writer._writer_modules()
    from mediapipe.tasks.python.metadata.metadata_writers import object_detector
    names = ["cat", "dog", "bird", "fish", "cow", "hen", "fox", "owl"]
    model, _ = object_detector.MetadataWriter.create_for_models_with_nms(
        bytearray(_model_bytes()), [0.0], [1.0], mw.Labels().add(names)).populate()
    path = tmp_path / "elsewhere.tflite"
    path.write_bytes(bytes(model))
    det = Detector(str(path))
    assert det.labels == names and det.metadata["standard"]["name"] == "ObjectDetector"
    assert "category_ids" not in det.metadata
    import cv2
    image = cv2.imread(os.path.join(ROOT, "android_demo", "docs", "screenshot.png"))
    cv2.imwrite(str(tmp_path / "frame.png"), image)
    out = subprocess.run([sys.executable, "-m", "edge_runtime", "detect", str(path),
                          str(tmp_path / "frame.png"), "--score", "0", "--no-progress",
                          "--json", str(tmp_path / "d.json")], capture_output=True, text=True,
                         cwd=ROOT)
    assert out.returncode == 0, out.stderr
    with open(tmp_path / "d.json") as f:
        found = json.load(f)
    assert found and {d["label"] for d in found} <= set(names)


def test_sidecar_that_disagrees_with_the_embedded_metadata_is_named(tmp_path):
    path = tmp_path / "model.tflite"
    path.write_bytes(_embed())
    meta = embedded_metadata(str(path))
    assert meta["labels"] == LABELS and meta["input"]["mean"] == 0.0
    sidecar = {**meta, "check": {"identical": True}}
    del sidecar["standard"]
    with open(metadata_path(str(path)), "w") as f:
        json.dump(sidecar, f)
    assert read_metadata(str(path))["check"] == {"identical": True}  # the sidecar's extra keys
    with open(metadata_path(str(path)), "w") as f:
        json.dump({**sidecar, "labels": LABELS[::-1]}, f)
    with pytest.raises(ValueError, match=r"model\.json: 'labels' is .* embedded in model\.tflite"):
        read_metadata(str(path))
    with open(metadata_path(str(path)), "w") as f:
        json.dump({**sidecar, "input": {**sidecar["input"], "std": 2.0}}, f)
    with pytest.raises(ValueError, match=r"'input\.std' is 2\.0"):
        read_metadata(str(path))


def test_corrupt_embedded_metadata_is_named(tmp_path):
    model = _embed()
    buf = reader.metadata_buffer(model)
    start = model.find(buf)
    broken = bytearray(model)
    broken[start + 4:start + 8] = b"XXXX"  # the file identifier
    path = tmp_path / "broken.tflite"
    path.write_bytes(bytes(broken))
    with pytest.raises(ValueError, match=r"broken\.tflite: embedded TFLite metadata: no \"M001\""):
        embedded_metadata(str(path))
    no_labels = model.replace(b"labels.txt", b"labelz.txt", 1)  # the name in the metadata only
    path.write_bytes(no_labels)
    with pytest.raises(ValueError, match=r"label file 'labelz\.txt', which the model does not"):
        embedded_metadata(str(path))
    image = tmp_path / "frame.png"
    image.write_bytes(open(os.path.join(ROOT, "android_demo", "docs", "screenshot.png"), "rb")
                      .read())
    cli = subprocess.run([sys.executable, "-m", "edge_runtime", "detect", str(path), str(image),
                          "--no-probe"], capture_output=True, text=True, cwd=ROOT)
    assert cli.returncode == 2 and "labelz.txt" in cli.stderr and "Traceback" not in cli.stderr


def test_readme_mediapipe_lines_run(tmp_path):
    """README's MediaPipe Python block, word for word, on an export with embedded metadata."""
    import re
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    block = re.search(r"<!-- mediapipe-python[^>]*-->\n```python\n(.*?)```", text, re.S).group(1)
    (tmp_path / "model_int8.tflite").write_bytes(_embed())
    (tmp_path / "photo.jpg").write_bytes(open(os.path.join(
        ROOT, "android_demo", "docs", "screenshot.png"), "rb").read())
    code = block + "\ndetector.close()\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


def test_per_channel_normalisation_is_compared_at_float32_precision(tmp_path):
    path = tmp_path / "model.tflite"
    path.write_bytes(_embed(mean=0.0, std=1.0))
    from edge_runtime.metadata import _first_difference
    assert _first_difference({"input": {"mean": [0.1, 0.2, 0.3]}},
                             {"input": {"mean": [float(np.float32(0.1)), 0.2, 0.3]}}) is None
    assert _first_difference({"input": {"mean": [0.1, 0.2, 0.3]}},
                             {"input": {"mean": [0.1, 0.2, 0.4]}})[0] == "input.mean"
    assert _first_difference({"input": {"mean": [0.1, 0.2, 0.3]}},
                             {"input": {"mean": 0.1}})[0] == "input.mean"
