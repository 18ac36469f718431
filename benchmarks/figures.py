"""The report's figures (the paper's Figs. 2, 3, 4, 6, 7 and the edge frontier), matplotlib Agg.

Each function takes validated cells, draws one PNG and returns its path, or None when the
cells hold nothing to draw (the report then says so). Time is TensorFlow's median latency, on a
log axis as in the paper; untrained cells (no AP) appear only where no axis is AP. Ensembles
(``train ensemble`` eval.json) are points of Fig. 2 only.
"""
from __future__ import annotations


import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from benchmarks.ensembles import label as ens_label, point as ens_point  # noqa: E402
from benchmarks.frontier import critical_points, pareto_front, short_name  # noqa: E402
from train.report_figures import save_png  # noqa: E402

META_COLOURS = {"ssd": "tab:blue", "faster_rcnn": "tab:red", "rfcn": "tab:green"}
META_LABELS = {"ssd": "SSD", "faster_rcnn": "Faster R-CNN", "rfcn": "R-FCN"}


def _time(c):
    return c["tf_latency_ms"]["median"]


def _colours(cells, by):
    """{group: colour} and a cell -> group function, for colouring by meta-arch or extractor."""
    group = (lambda c: c["cell"][by])
    if by == "meta_architecture":
        return META_COLOURS, group
    names = sorted({group(c) for c in cells})
    cmap = plt.get_cmap("tab10")
    return {n: cmap(i % 10) for i, n in enumerate(names)}, group


def _log_x(ax):
    """Log time axis with plain numbers (20, 50, 100), not 2x10^1."""
    ax.set_xscale("log")
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain)
    ax.tick_params(axis="x", which="both", labelsize=8)


def _save(fig, path):
    return save_png(fig, path, dpi=110)


def scatter_frontier(ax, points, labels, colours, legend, markers=None):
    """Points [(time, ap)], their frontier as a step line, frontier points named."""
    for (t, a), c, m in zip(points, colours, markers or ["o"] * len(points)):
        ax.scatter(t, a, color=c, marker=m, s=36 if m == "o" else 150, edgecolor="k",
                   linewidth=0.4, zorder=3)
    front = pareto_front(points)
    roles = critical_points(points, front)
    if front:
        xs = [points[i][0] for i in front]
        ys = [points[i][1] for i in front]
        ax.step(xs, ys, where="post", color="0.3", linestyle="--", linewidth=1,
                label="optimality frontier", zorder=2)
        for i in front:
            text = labels[i] + (f" ({roles[i]})" if i in roles else "")
            last = i == front[-1] and len(front) > 1  # its name goes left, inside the axes
            ax.annotate(text, points[i], xytext=(-4 if last else 4, 4), fontsize=7,
                        textcoords="offset points", ha="right" if last else "left")
    for name, colour in legend.items():
        ax.scatter([], [], color=colour, edgecolor="k", linewidth=0.4, label=name)
    _log_x(ax)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return front, roles


def ap_vs_time(cells, path, by="meta_architecture", ensembles=()):
    """Fig. 2: AP vs time of the trained cells, coloured by ``by``, and of each ensemble (a
    black star); one frontier over both."""
    trained = [c for c in cells if c.get("ap")]
    if not trained and not ensembles:
        return None
    colours, group = _colours(trained, by)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    used = {group(c) for c in trained}
    legend = {META_LABELS.get(g, g): colours[g] for g in colours if g in used}
    if ensembles:
        ax.scatter([], [], color="k", marker="*", s=150, label="ensemble")
    scatter_frontier(ax, [(_time(c), c["ap"]["AP"]) for c in trained]
                     + [ens_point(e) for e in ensembles],
                     [short_name(c["cell"]) for c in trained] + [ens_label(e) for e in ensembles],
                     [colours[group(c)] for c in trained] + ["k"] * len(ensembles), legend,
                     ["o"] * len(trained) + ["*"] * len(ensembles))
    ax.set_xlabel("TensorFlow time per image, median (ms)")
    ax.set_ylabel("AP@[.5:.95]")
    ax.set_title(f"AP vs time, by {by.replace('_', ' ')}")
    return _save(fig, path)


def _xy_by_extractor(cells, path, y, ylabel, title, ylog=False):
    if not cells:
        return None
    colours, group = _colours(cells, "extractor")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, colour in colours.items():
        mine = [c for c in cells if group(c) == name]
        ax.scatter([_time(c) for c in mine], [y(c) for c in mine], color=colour, label=name,
                   edgecolor="k", linewidth=0.4, s=36)
    for c in cells:
        ax.annotate(short_name(c["cell"]), (_time(c), y(c)), xytext=(3, 3),
                    textcoords="offset points", fontsize=6)
    _log_x(ax)
    if ylog:
        ax.set_yscale("log")
    ax.set_xlabel("TensorFlow time per image, median (ms)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)


def memory_vs_time(cells, path):
    """Fig. 3: peak memory vs time, coloured by extractor (untrained cells included)."""
    return _xy_by_extractor(cells, path, lambda c: c["peak_memory_mb"], "peak memory (MB)",
                            "Memory vs time")


def flops_vs_time(cells, path):
    """Fig. 7: FLOPs vs time, coloured by extractor (untrained cells included)."""
    return _xy_by_extractor(cells, path, lambda c: c["flops"] / 1e9, "GFLOPs (batch 1)",
                            "FLOPs vs time", ylog=True)


def ap_by_size(cells, path):
    """Fig. 4a: AP on small / medium / large objects for each trained cell (-1: no such objects,
    drawn as a missing bar)."""
    trained = [c for c in cells if c.get("ap")]
    if not trained:
        return None
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(trained) + 2), 4.5))
    width = 0.27
    for k, (key, colour) in enumerate((("AP_small", "tab:purple"), ("AP_medium", "tab:orange"),
                                       ("AP_large", "tab:cyan"))):
        xs = [i + (k - 1) * width for i in range(len(trained))]
        ys = [max(c["ap"][key], 0) for c in trained]
        ax.bar(xs, ys, width, color=colour, label=key.replace("AP_", ""))
    ax.set_xticks(range(len(trained)))
    ax.set_xticklabels([short_name(c["cell"]) for c in trained], rotation=30, ha="right",
                       fontsize=7)
    ax.set_ylabel("AP@[.5:.95]")
    ax.set_title("AP by object size")
    ax.set_ylim(0, 1.15 * max(max(c["ap"][k] for k in ("AP_small", "AP_medium", "AP_large"))
                               for c in trained) + 1e-3)
    ax.legend(fontsize=7, ncol=3, loc="upper left")
    ax.grid(True, axis="y", alpha=0.3)
    return _save(fig, path)


def proposals(cells, path):
    """Fig. 6: AP (solid) and time (dotted) vs number of proposals, Faster R-CNN and R-FCN;
    one colour per model (extractor, resolution, stride)."""
    two = [c for c in cells if c["cell"]["meta_architecture"] in ("faster_rcnn", "rfcn")]
    if not two:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), constrained_layout=True)
    cmap = plt.get_cmap("tab10")
    for ax, meta in zip(axes, ("faster_rcnn", "rfcn")):
        groups = {}
        for c in two:
            if c["cell"]["meta_architecture"] == meta:
                k = c["cell"]
                groups.setdefault((k["extractor"], k["resolution"], k.get("stride")), []).append(c)
        twin = ax.twinx()
        handles = [Line2D([], [], color="k", marker="o", label="AP"),
                   Line2D([], [], color="k", linestyle=":", marker="x", label="time")]
        for i, (key, g) in enumerate(sorted(groups.items(), key=lambda kv: str(kv[0]))):
            g = sorted(g, key=lambda c: c["cell"]["num_proposals"])
            colour = cmap(i % 10)
            twin.plot([c["cell"]["num_proposals"] for c in g], [_time(c) for c in g], ":",
                      marker="x", color=colour)
            scored = [c for c in g if c.get("ap")]
            ax.plot([c["cell"]["num_proposals"] for c in scored],
                    [c["ap"]["AP"] for c in scored], "-", marker="o", color=colour)
            label = f"{key[0]} {key[1]}" + (f" s{key[2]}" if key[2] else "")
            handles.append(Line2D([], [], color=colour, linewidth=4,
                                  label=label + ("" if scored else " (untrained: time only)")))
        _log_x(ax)
        ax.set_xlabel("number of proposals")
        ax.set_ylabel("AP@[.5:.95] (solid)")
        twin.set_ylabel("time, median ms (dotted)")
        ax.set_title(META_LABELS[meta] + ("" if groups else " (no cells)"))
        ax.grid(True, which="both", alpha=0.3)
        if groups:
            ax.legend(handles=handles, fontsize=7, loc="best")
    return _save(fig, path)


def edge_frontier(panels, path):
    """The frontier on the edge axis: one panel per device, [(title, points, labels, colours)]."""
    panels = [p for p in panels if p[1]]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.5), squeeze=False)
    for ax, (title, points, labels, colours) in zip(axes[0], panels):
        legend = {"float32": "tab:blue", "int8": "tab:orange"}
        scatter_frontier(ax, points, labels, colours, legend)
        ax.set_xlabel("LiteRT invoke, median (ms)")
        ax.set_ylabel("AP@[.5:.95]")
        ax.set_title(title, fontsize=9)
    return _save(fig, path)
