"""The paper's greedy choice of ensemble members (Huang et al. 2017, Sec. 4.2).

Candidates are taken in order of held-out AP, best first; one joins unless its per-category AP
vector is too close -- cosine similarity above ``similarity`` -- to one already chosen
("pruning away models that are too similar"), until ``max_models`` are chosen. What was chosen
and why is returned beside the choice, so a report can say it.
"""
from __future__ import annotations

import numpy as np


class SelectionError(ValueError):
    pass


def cosine(a, b) -> float:
    """Cosine similarity of two per-category AP vectors (NaN categories -- absent from the
    held-out split -- count as 0); 1.0 for two zero vectors."""
    a = np.nan_to_num(np.asarray(a, np.float64))
    b = np.nan_to_num(np.asarray(b, np.float64))
    if a.shape != b.shape:
        raise SelectionError(f"per-category AP vectors of different lengths: {a.size} vs {b.size}")
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return 1.0 if na == nb else 0.0
    return float(a @ b / (na * nb))


def greedy_select(candidates: dict, max_models: int, similarity: float) -> tuple[list, list]:
    """``candidates``: {name: {"AP": float, "per_category_AP": [K]}} (held-out scores).

    Returns (chosen names in the order chosen, decisions: one dict per candidate looked at,
    ``{"name", "AP", "chosen": bool, "reason", "max_similarity", "closest"}``). Ties in AP go
    to the name first in sorted order, so the choice is deterministic."""
    if max_models < 1:
        raise SelectionError(f"max_models must be >= 1, got {max_models}")
    if not 0.0 <= similarity <= 1.0:
        raise SelectionError(f"similarity must be in [0, 1], got {similarity}")
    if not candidates:
        raise SelectionError("no candidate models to select from")
    order = sorted(candidates, key=lambda n: (-float(candidates[n]["AP"]), n))
    chosen, decisions = [], []
    for name in order:
        c = candidates[name]
        if len(chosen) == max_models:
            decisions.append({"name": name, "AP": c["AP"], "chosen": False,
                              "reason": f"{max_models} models already chosen"})
            continue
        sims = {o: cosine(c["per_category_AP"], candidates[o]["per_category_AP"])
                for o in chosen}
        closest = max(sims, key=sims.get) if sims else None
        top = sims[closest] if sims else None
        if top is not None and top > similarity:
            decisions.append({"name": name, "AP": c["AP"], "chosen": False,
                              "reason": f"too similar to {closest} (cosine {top:.6f} > "
                                        f"{similarity})", "max_similarity": top,
                              "closest": closest})
            continue
        chosen.append(name)
        decisions.append({"name": name, "AP": c["AP"], "chosen": True,
                          "reason": "best held-out AP left" + (
                              f"; cosine to {closest} {top:.6f} <= {similarity}" if sims else ""),
                          "max_similarity": top, "closest": closest})
    return chosen, decisions
