"""benchmarks/tf_latency.py on an untrained config: one result per (size, proposals), side by side."""
import json
import subprocess
import sys

import pytest
import yaml

from tests.helpers import tiny_two_stage_config


@pytest.mark.slow  # make test stays under 15 min on 2 cores
def test_untrained_config_sizes_and_proposals(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_two_stage_config().to_dict()))
    out = tmp_path / "latency.json"
    result = subprocess.run(
        [sys.executable, "benchmarks/tf_latency.py", "--config", str(config), "--num-classes", "3",
         "--image-size", "128,64", "--num-proposals", "8", "--runs", "2", "--warmup", "1",
         "--json", str(out)], text=True, capture_output=True)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    rows = [(r["input"]["shape"][1], r["num_proposals"], r["trained"]) for r in report["results"]]
    assert rows == [(160, 8, False), (80, 8, False)]
    assert all(r["stages_ms"]["invoke"]["median"] > 0 for r in report["results"])
    assert report["machine"]["cores"] >= 1


def test_needs_a_run_or_a_config():
    result = subprocess.run([sys.executable, "benchmarks/tf_latency.py", "--json", "x.json"],
                            text=True, capture_output=True)
    assert result.returncode == 2 and "--run" in result.stderr
