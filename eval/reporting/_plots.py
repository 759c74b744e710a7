"""The cost–quality chart of a comparison report (matplotlib Agg, imported lazily)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tierwise.router.errors import ConfigError

if TYPE_CHECKING:
    from tierwise.eval.reporting._report import ComparisonReport, Row

_POLICY_COLORS = ("#1f77b4", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def _xy(points: tuple[tuple[float, float], ...]) -> tuple[np.ndarray, np.ndarray]:
    arr = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return arr[:, 0], arr[:, 1]


def _dense(hx: np.ndarray, hy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hull segments are straight in linear cost (random mixing), so on a log axis they are
    curves: sample each segment densely instead of letting matplotlib draw a straight line."""
    xs = [hx[:1]]
    for a, b in itertools.pairwise(hx):
        if a > 0 and b > a * 1.05:
            xs.append(np.geomspace(a, b, 24)[1:])
        elif a <= 0 < b:  # from a free model: linear near 0, logarithmic further out
            xs.append(np.unique(np.r_[np.linspace(a, b, 48)[1:], np.geomspace(b * 1e-4, b, 48)]))
        else:
            xs.append(np.array([b]))
    x = np.concatenate(xs)
    return x, np.interp(x, hx, hy)


def _step_hull(row: Row, x_right: float) -> tuple[np.ndarray, np.ndarray]:
    """The frontier as AIQ reads it, flat to the right edge of the chart."""
    hx, hy = _xy(row.hull)
    return _dense(np.append(hx, x_right), np.append(hy, hy[-1]))


def _label_models(ax: Any, rows: list[Row], reference: str) -> None:
    """Label each single model next to its point, dodging labels already placed."""
    fig = ax.figure
    fig.canvas.draw()  # fixes the data -> pixel transform
    char_w, line_h = 7.5 * fig.dpi / 72 * 0.6, 7.5 * fig.dpi / 72 * 1.3
    placed: list[tuple[float, float, float, float]] = []
    frame = ax.get_window_extent()
    candidates = [(5, -12), (5, 4), (-5, -12), (-5, 4), (5, -24), (5, 16), (-5, -24), (-5, 16)]
    for r in rows:
        x, y = _xy(r.points)
        label = r.name.split("/")[-1] + (" (ref)" if r.name == reference else "")
        px, py = ax.transData.transform((x[0], y[0]))
        width = char_w * len(label)
        choice = candidates[0]
        for dx, dy in candidates:
            # Offsets are in points; convert to pixels for the overlap test.
            ox, oy = dx * fig.dpi / 72, dy * fig.dpi / 72
            x0 = px + ox if dx > 0 else px + ox - width
            box = (x0, py + oy, x0 + width, py + oy + line_h)
            inside = frame.x0 <= box[0] and box[2] <= frame.x1 and frame.y0 <= box[1]
            if inside and not any(
                box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed
            ):
                choice = (dx, dy)
                placed.append(box)
                break
        ax.annotate(
            label,
            (x[0], y[0]),
            textcoords="offset points",
            xytext=choice,
            ha="left" if choice[0] > 0 else "right",
            fontsize=7.5,
            color="#333333",
            # legible over the lines it sits on
            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85},
            zorder=7,
        )


def _draw_model(ax: Any, r: Row, reference: str) -> None:
    x, y = _xy(r.points)
    ref = r.name == reference
    kind = "reference model" if ref else "single model"
    first = kind not in ax.get_legend_handles_labels()[1]
    ax.scatter(x, y, s=46, color="#333333", marker="D" if ref else "o", zorder=5,
               label=kind if first else None)  # fmt: skip


def _draw_zero(ax: Any, r: Row, x_right: float) -> None:
    x, y = _step_hull(r, x_right)
    label = f"zero router (AIQ {r.aiq:.3f})"
    ax.plot(x, y, color="#555555", lw=1.6, ls="--", zorder=5, label=label)


def _draw_oracle(ax: Any, r: Row, x_right: float) -> None:
    x, y = _step_hull(r, x_right)
    ax.plot(x, y, color="#2ca02c", lw=1.8, label=f"oracle frontier (AIQ {r.aiq:.3f})")
    ax.scatter([r.cost_per_1k], [r.quality], marker="*", s=180, color="#2ca02c", zorder=6,
               label="oracle (best model per prompt)")  # fmt: skip


def _draw_policy(ax: Any, r: Row, color: str, x_right: float) -> None:
    """A policy's swept points and frontier (a "random @" row: the same colour, dotted)."""
    random = r.kind == "random"
    width, style = (1.1, ":") if random else (2.2, "-")
    x, y = _xy(r.points)
    ax.scatter(x, y, s=10 if random else 18, color=color, alpha=0.75, zorder=4)
    if len(r.hull) > 1:
        hx, hy = _step_hull(r, x_right)
        ax.plot(hx, hy, color=color, lw=width, ls=style, zorder=4)
    aiq = "" if not np.isfinite(r.aiq) else f", AIQ {r.aiq:.3f}"
    name = f"{r.name} (realized{aiq})" if random else f"{r.name}{aiq}"
    ax.plot([], [], color=color, marker="o", ms=4, lw=width, ls=style, label=name)
    if not random:
        seen = "operating point" in str(ax.get_legend_handles_labels()[1])
        ax.scatter([r.cost_per_1k], [r.quality], s=90, facecolors="none", edgecolors=color,
                   linewidths=2, zorder=6,
                   label=None if seen else "operating point (the table's row)")  # fmt: skip


def _draw_rows(ax: Any, report: ComparisonReport, x_right: float) -> None:
    colors: dict[str, str] = {}  # policy name -> colour; its "random @" row shares it
    for r in report.rows:
        if r.kind == "model":
            _draw_model(ax, r, report.reference)
        elif r.kind == "zero":
            _draw_zero(ax, r, x_right)
        elif r.kind == "oracle":
            _draw_oracle(ax, r, x_right)
        else:
            of = r.name.split(" @ ", 1)[-1] if r.kind == "random" else r.name
            color = colors.setdefault(of, _POLICY_COLORS[len(colors) % len(_POLICY_COLORS)])
            _draw_policy(ax, r, color, x_right)


def _cost_axis(ax: Any, all_x: np.ndarray, x_lo: float, x_right: float) -> None:
    if (all_x <= 0).any():
        # Free models sit at 0, which a log axis cannot show: linear up to the cheapest paid cost.
        ax.set_xscale("symlog", linthresh=x_lo)
        ax.set_xlim(-0.3 * x_lo, x_right)
        ax.set_xlabel("cost per 1,000 queries (USD, log scale; linear near 0)")
    else:
        ax.set_xscale("log")
        ax.set_xlim(x_lo / 1.6, x_right)
        ax.set_xlabel("cost per 1,000 queries (USD, log scale)")


def _output_path(path: str | Path) -> Path:
    out = Path(path)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot create the plot directory {out.parent}: {err}") from None
    return out


def plot_comparison(report: ComparisonReport, path: str | Path, title: str | None = None) -> Path:
    """Write the chart to ``path`` (PNG) and return the path.

    Cost per 1,000 queries on a log axis (a symmetric-log axis when some cost is 0), quality on
    the vertical axis: every single model labelled, the zero-router hull, random routing, the
    oracle frontier and point, and each policy's points with its frontier (a ring marks the
    operating point shown in the table).
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    out = _output_path(path)
    rows = list(report.rows)
    all_x = np.concatenate([_xy(r.points)[0] for r in rows] + [_xy(r.hull)[0] for r in rows])
    positive = all_x[all_x > 0]
    x_lo = float(positive.min()) if positive.size else 1e-6
    x_right = float(max(all_x.max(), report.c_max_per_1k)) * 1.6

    fig, ax = plt.subplots(figsize=(10, 7.5), dpi=120)
    _draw_rows(ax, report, x_right)
    _cost_axis(ax, all_x, x_lo, x_right)
    ax.axvline(report.c_max_per_1k, color="#bbbbbb", lw=0.8, ls=":",
               label="costliest single model (AIQ's cost range)")  # fmt: skip
    ax.set_ylabel("mean quality")
    ax.set_title(title or f"Cost vs quality on {report.n_prompts} prompts")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.11), ncol=2, fontsize=8, frameon=False)
    fig.tight_layout()
    _label_models(ax, [r for r in rows if r.kind == "model"], report.reference)
    try:
        fig.savefig(out, format="png")
    except OSError as err:
        raise ConfigError(f"cannot write the plot to {out}: {err}") from None
    finally:
        plt.close(fig)
    return out
