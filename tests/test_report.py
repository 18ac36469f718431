"""train/report.py's two-stage rows: read from a two_stage_edge.json, foreign files skipped."""
import json
import os

from train.report import _two_stage_edge

RESULT = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "results",
                      "two_stage_edge_rfcn.json")


def test_two_stage_rows_hold_the_files_numbers(tmp_path):
    doc = json.load(open(RESULT))
    foreign = tmp_path / "other.json"
    foreign.write_text(json.dumps({"tool": "edge_runtime benchmark"}))
    broken = tmp_path / "half.json"
    broken.write_text('{"tool": "benchmarks/two_')
    lines = _two_stage_edge([RESULT, str(foreign), str(broken)])
    text = "\n".join(lines)
    rows = [l for l in lines if l.startswith("| rfcn_mobilenet_v2_shapes |")]
    assert len(rows) == len(doc["rows"])
    first = doc["rows"][0]
    assert (f"| {first['mode']} | {first['num_proposals']} | {first['bytes'] / 1e6:.2f} MB | "
            f"{first['coco']['AP']:.3f} | {first['edge']['1']['invoke']['median']:.1f} |") in rows[0]
    assert "1000 images, identical" in rows[0]
    assert f"skipped `{foreign}`: not a" in text and f"skipped `{broken}`: unreadable" in text
    assert _two_stage_edge([]) == []
