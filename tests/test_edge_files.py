"""edge_runtime.files: the one atomic writer (temporary beside the target, then os.replace)."""
import json
import os

import pytest

from edge_runtime.files import write_json, write_text


def test_writes_replace_the_file_and_leave_no_temporary(tmp_path):
    path = tmp_path / "report.json"
    write_json(path, {"AP": 0.5, "name": "ssd"})
    assert json.loads(path.read_text()) == {"AP": 0.5, "name": "ssd"}
    assert path.read_text() == json.dumps({"AP": 0.5, "name": "ssd"}, indent=2)
    write_json(str(path), [1, 2], indent=1)
    assert path.read_text() == "[\n 1,\n 2\n]"
    write_text(tmp_path / "r.md", "# Report \u2014 AP\n")
    assert (tmp_path / "r.md").read_text(encoding="utf-8") == "# Report \u2014 AP\n"
    assert sorted(os.listdir(tmp_path)) == ["r.md", "report.json"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    path = tmp_path / "eval.json"
    write_json(path, {"old": True})
    with pytest.raises(TypeError):
        write_json(path, {"bad": object()})  # not serialisable: nothing is written
    with pytest.raises(UnicodeEncodeError):
        write_text(path, "half \ud800")  # fails while writing the temporary
    assert json.loads(path.read_text()) == {"old": True}
    assert os.listdir(tmp_path) == ["eval.json"]
    with pytest.raises(FileNotFoundError):
        write_text(tmp_path / "no" / "such" / "dir.txt", "x")
