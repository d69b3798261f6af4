"""Pictures of a sweep: metric against training step, the subject/prompt-fidelity trade-off, and
a contact sheet of a run's images. matplotlib (Agg) and PIL; PNG files."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

from bench import atomic
from bench.images import read_image
from bench.reports.labels import metric_name
from bench.store.layout import RunPaths
from bench.store.records import UnitManifest


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def metric_vs_step(
    curves: dict[str, dict[str, list[tuple]]],
    path: Path,
    title: str,
    names: dict[str, str] | None = None,
) -> None:
    """curves[label][metric] = [(step, mean, low, high), ...]: one panel per metric, named as
    its scorer declares (`names`)."""
    names = names or {}
    plt = _pyplot()
    metrics = sorted({m for per_label in curves.values() for m in per_label})
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 4), squeeze=False)
    # One colour per config (tab20 past 10 of them), the same in every panel.
    palette = plt.get_cmap("tab10" if len(curves) <= 10 else "tab20")
    colours = {label: palette(i % palette.N) for i, label in enumerate(curves)}
    lines = {}
    for ax, metric in zip(axes[0], metrics, strict=True):
        for label, per_metric in curves.items():
            points = sorted(per_metric.get(metric, []))
            if not points:
                continue
            steps, means, lows, highs = zip(*points, strict=True)
            (lines[label],) = ax.plot(steps, means, marker="o", color=colours[label])
            ax.fill_between(steps, lows, highs, alpha=0.2, color=colours[label])
        ax.set_xlabel("training step")
        ax.set_ylabel(names.get(metric) or metric_name(metric))
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    # The legend goes below the panels, so that many configs with long labels squeeze none.
    shown = [label for label in curves if label in lines]
    fig.legend(
        [lines[label] for label in shown],
        shown,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=max(1, min(len(metrics), 4)),
        fontsize=8,
        frameon=False,
    )
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png", bbox_inches="tight")
    plt.close(fig)


def tradeoff(
    points: list[dict],
    x: str,
    y: str,
    path: Path,
    title: str,
    names: dict[str, str] | None = None,
) -> None:
    """One point per config with its interval bars: points[i] = {label, x: (m, lo, hi), y: ...}."""
    names = names or {}
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    for p in points:
        (xm, xl, xh), (ym, yl, yh) = p[x], p[y]
        ax.errorbar(
            xm, ym, xerr=[[xm - xl], [xh - xm]], yerr=[[ym - yl], [yh - ym]], fmt="o", capsize=3
        )
        ax.annotate(p["label"], (xm, ym), fontsize=7, xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel(f"{names.get(x) or metric_name(x)} (subject fidelity)")
    ax.set_ylabel(f"{names.get(y) or metric_name(y)} (prompt fidelity)")
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def contact_sheet(run_root: Path, path: Path, tile: int = 96, max_columns: int = 12) -> None:
    """Rows are prompts; columns are the first images of each subject (first replicate)."""
    paths = RunPaths(run_root)
    manifests = [UnitManifest.read(RunPaths.manifest(unit)) for unit in paths.units()]
    manifests = [m for m in manifests if not m.leave_one_out]
    first = min((m.replicate for m in manifests), default=None)
    rows: dict[str, list[Path]] = {}
    for m in manifests:
        if m.replicate != first:
            continue
        unit = paths.unit(m.subject["id"], first)
        for entry in m.images:
            rows.setdefault(entry.prompt_id, []).append(unit / entry.file)
    if not rows:
        return
    label_width = 220
    columns = min(max_columns, max(len(v) for v in rows.values()))
    sheet = Image.new("RGB", (label_width + columns * tile, len(rows) * tile), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (prompt_id, files) in enumerate(rows.items()):
        draw.text((4, r * tile + tile // 2 - 6), prompt_id[:34], fill="black")
        for c, file in enumerate(files[:columns]):
            image = read_image(file).resize((tile, tile))
            sheet.paste(image, (label_width + c * tile, r * tile))
    with atomic.atomic_path(path) as tmp:
        sheet.save(tmp, format="PNG")
