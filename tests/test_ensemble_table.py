"""benchmarks/ensemble.py's table: every row, the finding line and why each candidate was or
was not chosen (no model is run: the summary is written by hand)."""
import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
spec = importlib.util.spec_from_file_location("ensemble_bench",
                                              os.path.join(ROOT, "benchmarks", "ensemble.py"))
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def _row(ap, ar_small, members, evals, ms):
    return {"AP": ap, "AP50": ap + 0.2, "AP_small": ap - 0.2, "AR100": ap + 0.1,
            "AR_small": ar_small, "ms_per_image": {"median": ms, "p90": ms * 1.1},
            "network_evaluations_per_image": evals, "members": members, "multicrop": "none"}


def test_table_rows_finding_and_selection():
    decisions = [{"name": "a", "AP": 0.52, "chosen": True, "reason": "best held-out AP left"},
                 {"name": "b", "AP": 0.51, "chosen": False,
                  "reason": "too similar to a (cosine 0.99995 > 0.9999)"}]
    summary = {"machine": {"cpu": "CPU X", "cores": 2},
               "settings": {"data": "d", "split": "val", "images": None, "combine": "proposals",
                            "merge": "nms", "num_proposals": 50},
               "rows": {"alone_a": _row(0.50, 0.40, ["a"], 1, 40),
                        "alone_b": _row(0.45, 0.42, ["b"], 1, 30),
                        "diverse": _row(0.52, 0.45, ["a", "c"], 2, 90),
                        "diverse_multicrop": _row(0.535, 0.55, ["a", "c"], 10, 450)},
               "selection": {"data": "/h", "split": "val", "images": 300, "similarity": 0.9999,
                             "max_models": 5, "decisions": decisions}}
    text = bench.table(summary)
    assert "| alone_a | a | 1 | 40 (44) | 0.500 | 0.300 | 0.400 |" in text
    assert "| diverse_multicrop | a, c | 10 | 450 (495) | 0.535 | 0.335 | 0.550 |" in text
    # best single member by AP is alone_a (0.50), not alone_b: +3.5 points, AR_small 0.40 -> 0.55
    assert "+3.5 AP points, AR_small 0.400 -> 0.550" in text
    assert "| b | 0.5100 | no | too similar to a (cosine 0.99995 > 0.9999) |" in text
    assert "similarity 0.9999, at most 5 models" in text
