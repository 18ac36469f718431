"""Which cells of a grid one machine measures: ``python -m benchmarks sweep --shard I/N``.

Shard I of N, I counted from 0 (0/3, 1/3, 2/3), as Kubernetes counts an Indexed Job's
completion index. The index may come from the job engine instead (``--shard-count N``):

    JOB_COMPLETION_INDEX   Kubernetes Indexed Job: 0 .. completions-1
    SLURM_ARRAY_TASK_ID    Slurm job array: the task id IS the shard, so number the array
                           from 0 (``#SBATCH --array=0-2`` for 3 shards). Why not the id minus
                           SLURM_ARRAY_TASK_MIN: a re-run of one shard (``sbatch --array=1``)
                           must still be shard 1. SLURM_ARRAY_TASK_MAX >= N (an array numbered
                           1..N) is refused up front, on every task, rather than leave shard 0
                           unrun.

N always comes from the command line (Kubernetes has no variable for it; Slurm's task count is
wrong for a partial re-run). ``--shard`` and an engine index that disagree are an error.

The partition is a function of the grid's cells, N and which cells ``--runs``/``--zoo`` give a
trained run (so: of the command line) only, never of what a results folder holds: N machines that start at
different times, or a shard re-run after a crash, agree on it without talking to each other.
It is greedy LPT (longest processing time first): cells by estimated cost, largest first (ties
by id), each to the least-loaded shard (ties to the lower index); within a shard the grid's
order. Costs are whole seconds, so every machine adds them up exactly alike.
"""
from __future__ import annotations

import os
import re

ENGINE_VARS = ("JOB_COMPLETION_INDEX", "SLURM_ARRAY_TASK_ID")

# Relative TensorFlow cost of each extractor (MobileNet v2 = 1), and per proposal of the box
# classifier (R-FCN's per-region work is tiny). Fitted by hand to the 18 measured cells of the
# mobile grid (benchmarks/results/sweep_mobile, `seconds`) and the paper's relative speeds for
# the others; rough is enough: the estimate only has to order and balance cells.
EXTRACTOR_WEIGHT = {"mobilenet_v2": 1, "mobilenet_v1": 2, "inception_v2": 3, "inception_v3": 6,
                    "resnet101": 12, "inception_resnet_v2": 20, "vgg16": 20}
PER_PROPOSAL = {"ssd": 0.0, "faster_rcnn": 0.5, "rfcn": 0.05}


class ShardError(ValueError):
    """A bad --shard / --shard-count / engine index; the message names the value."""


def parse_spec(text: str) -> tuple[int, int]:
    """``"I/N"`` -> (I, N), 0 <= I < N."""
    m = re.fullmatch(r"(\d+)/(\d+)", text.strip())
    if not m:
        raise ShardError(f"--shard {text}: not I/N (shard I of N, I from 0: 0/3, 1/3, 2/3)")
    i, n = int(m[1]), int(m[2])
    if n < 1:
        raise ShardError(f"--shard {text}: N must be at least 1")
    if i >= n:
        raise ShardError(f"--shard {text}: index {i} is out of range for {n} shard(s) "
                         f"(0..{n - 1}; I counts from 0)")
    return i, n


def engine_index(env) -> tuple[int, str] | None:
    """(index, "VAR=value") from the job engine's environment, or None."""
    found = {}
    for var in ENGINE_VARS:
        v = env.get(var)
        if v is None or v == "":
            continue
        if not v.strip().isdigit():
            raise ShardError(f"{var}={v}: not a shard index (a whole number from 0)")
        found[var] = int(v)
    if len(set(found.values())) > 1:
        raise ShardError("the job engine's indices disagree: "
                         + ", ".join(f"{k}={v}" for k, v in found.items()))
    if not found:
        return None
    var, i = next(iter(found.items()))
    return i, f"{var}={env[var]}"


def resolve(spec: str | None, count: str | int | None, env=None) -> tuple[int, int] | None:
    """(I, N) from ``--shard`` / ``--shard-count`` and the engine's index; None when neither
    option is given (sharding is asked for, never guessed from the environment)."""
    env = os.environ if env is None else env
    if spec is None and count is None:
        return None
    if count is not None:
        if not str(count).strip().isdigit() or int(count) < 1:
            raise ShardError(f"--shard-count {count}: not a whole number of shards (1 or more)")
        count = int(count)
    if spec is not None:
        i, n = parse_spec(spec)
        if count is not None and count != n:
            raise ShardError(f"--shard {spec} disagrees with --shard-count {count}")
    else:
        n = count
    engine = engine_index(env)
    if engine is None and spec is None:
        raise ShardError(f"--shard-count {n}: no shard index: neither JOB_COMPLETION_INDEX "
                         f"(Kubernetes Indexed Job) nor SLURM_ARRAY_TASK_ID (Slurm array) is "
                         f"set; pass --shard I/{n}")
    if engine is not None:
        j, source = engine
        if spec is not None and j != i:
            raise ShardError(f"--shard {spec} disagrees with the job engine's {source}")
        top = env.get("SLURM_ARRAY_TASK_MAX", "")
        if source.startswith("SLURM") and top.isdigit() and int(top) >= n:
            raise ShardError(f"SLURM_ARRAY_TASK_MAX={top} is out of range for {n} shard(s): "
                             f"number the array from 0 (#SBATCH --array=0-{n - 1})")
        if j >= n:
            raise ShardError(f"{source} is out of range for {n} shard(s) (0..{n - 1})")
        i = j
    return i, n


def estimated_cost(cell, trained: bool = False) -> int:
    """Whole seconds a cell takes on the 2-core build machine, roughly: a fixed part (process,
    export, LiteRT timing) plus a share of its TensorFlow time, plus COCO AP when trained."""
    w = EXTRACTOR_WEIGHT.get(cell.extractor, 6)
    per_area = 30 if cell.meta_architecture == "ssd" else 60  # ms at 300 x 300 per weight
    tf_ms = w * per_area * cell.resolution * cell.resolution / 90000
    if cell.stride == 8:
        tf_ms *= 1.5
    tf_ms += (cell.num_proposals or 0) * w * PER_PROPOSAL.get(cell.meta_architecture, 0.5)
    return round(60 + 0.3 * tf_ms + (100 if trained else 0))


def lpt(costs: dict, n: int) -> list[list]:
    """Greedy LPT partition of ``{key: cost}`` into ``n`` lists of keys (see module doc)."""
    loads, parts = [0] * n, [[] for _ in range(n)]
    for key in sorted(costs, key=lambda k: (-costs[k], k)):
        s = min(range(n), key=lambda j: (loads[j], j))
        parts[s].append(key)
        loads[s] += costs[key]
    return parts


def shard_cells(cells: list, index: int, count: int, trained=()) -> list:
    """The cells of shard ``index`` of ``count``, in the grid's order; ``trained``: ids of the
    cells measured from a trained run (they also take COCO AP)."""
    costs = {c.id: estimated_cost(c, c.id in trained) for c in cells}
    mine = set(lpt(costs, count)[index])
    return [c for c in cells if c.id in mine]
