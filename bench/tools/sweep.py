"""`bench sweep`: a grid over method options, every cell an ordinary run in the store.

Cells are resumable runs like any other (a finished cell is skipped; class images are shared
through the cache). At the end the sweep writes, beside its runs in `<runs>/<suite>/sweep-<id>/`:
one table per varied option in the seed study's shape (metric means with intervals), a table of
final and best checkpoints when the runs kept checkpoints (best = chosen on the test metric, so
optimistic, and labelled so), and the plots of bench.reports.plots.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from bench import atomic
from bench.analysis.options import StatsOptions
from bench.analysis.results import checkpoint_steps, least_real, load_results, summarize
from bench.config import parse_assignments
from bench.errors import BenchError
from bench.paths import data_dir
from bench.reports import markdown, plots
from bench.reports.document import (
    Code,
    Document,
    Figure,
    IntervalValue,
    Paragraph,
    Section,
    Table,
    mark_best,
)
from bench.reports.labels import (
    REALNESS_NOTES,
    interval,
    interval_notes,
    realness_fields,
    run_metrics,
)
from bench.scorers.conventions import DEFAULT_CONVENTION
from bench.toml_files import parse_toml_value, read_toml, reject_unknown

PRESET_SUFFIX = ".sweep.toml"


@dataclass(frozen=True)
class SweepSpec:
    method: str
    base: dict[str, Any]  # options every cell shares
    grids: list[dict[str, list[Any]]]  # each grid is a full product; cells are their union
    checkpoints: int = 0  # evenly spaced checkpoints per run (sets checkpoint_every)
    name: str = ""

    def cells(self) -> list[dict[str, Any]]:
        seen, out = set(), []
        for grid in self.grids:
            keys = list(grid)
            for values in itertools.product(*(grid[k] for k in keys)):
                cell = {**self.base, **dict(zip(keys, values, strict=True))}
                key = json.dumps(cell, sort_keys=True, default=str)
                if key not in seen:
                    seen.add(key)
                    out.append(cell)
        return out

    def varied(self) -> list[str]:
        """The options some grid varies, each once (grids may share one, as the seed study's
        rank), in the order they first appear."""
        return list(dict.fromkeys(k for grid in self.grids for k in grid if len(grid[k]) > 1))


def parse_grid(assignments: list[str]) -> dict[str, list[Any]]:
    """`["lr=1e-3,1e-4", "rank=4,16"]` -> {"lr": [0.001, 0.0001], "rank": [4, 16]}.
    A value written as a TOML array (`class_prompt=["a robot", "a toy"]`) is taken whole."""
    grid: dict[str, list[Any]] = {}
    for item in assignments:
        key, sep, text = item.partition("=")
        if not sep or not key.strip() or not text.strip():
            raise BenchError(f"--grid {item!r}: expected key=v1,v2,..., e.g. --grid rank=4,16")
        text = text.strip()
        if text.startswith("["):
            try:
                values = parse_toml_value(text)
            except ValueError as e:
                raise BenchError(f"--grid {item!r}: {e}") from None
        else:
            values = [parse_assignments([f"v={v.strip()}"])["v"] for v in text.split(",")]
        grid[key.strip()] = list(values)
    return grid


def list_presets() -> list[tuple[str, str]]:
    return [
        (p.name.removesuffix(PRESET_SUFFIX), read_toml(p).get("description", ""))
        for p in sorted(data_dir("baselines").glob(f"*{PRESET_SUFFIX}"))
    ]


def load_spec(path: Path) -> SweepSpec:
    table = read_toml(path)
    reject_unknown(
        table, {"name", "description", "method", "set", "grid", "checkpoints", "published"}, path
    )
    grids = table.get("grid", [])
    grids = [grids] if isinstance(grids, dict) else grids
    clean = []
    for i, grid in enumerate(grids):
        grid = {k: v for k, v in grid.items() if k != "name"}
        for key, values in grid.items():
            if not isinstance(values, list) or not values:
                raise BenchError(f"{path} grid #{i + 1}: '{key}' must be a non-empty list")
        clean.append(grid)
    return SweepSpec(
        method=table.get("method", ""),
        base=table.get("set", {}),
        grids=clean,
        checkpoints=int(table.get("checkpoints", 0)),
        name=table.get("name", ""),
    )


def preset_path(name: str) -> Path:
    path = data_dir("baselines") / f"{name}{PRESET_SUFFIX}"
    if not path.is_file():
        from bench.registry import did_you_mean

        known = [n for n, _ in list_presets()]
        raise BenchError(
            f"unknown preset '{name}'{did_you_mean(name, known)}; available: {', '.join(known)}"
        )
    return path


def sweep_id(
    method: str, suite_name: str, run_ids: list[str], convention: str = DEFAULT_CONVENTION
) -> str:
    """The sweep's folder name: its runs, and the convention its tables are scored under (the
    default convention keeps the ids sweeps had before conventions)."""
    key = [method, suite_name, sorted(run_ids)]
    if convention != DEFAULT_CONVENTION:
        key.append(convention)
    digest = hashlib.sha256(json.dumps(key).encode())
    return f"sweep-{digest.hexdigest()[:8]}"


def plan_sweep(spec: SweepSpec, suite, runs_root: Path) -> list[tuple[dict, Any]]:
    """(options, prepared run) per cell, deduplicated by run id; loads no model."""
    from bench.store.runner import prepare

    planned, seen = [], set()
    for overrides in spec.cells():
        if spec.checkpoints:
            steps = _resolved_steps(spec.method, suite, overrides)
            every = max(1, math.ceil(steps / (spec.checkpoints + 1)))
            overrides = {**overrides, "checkpoint_every": every}
        prepared = prepare(spec.method, suite, overrides, runs_root)
        if prepared.run_id not in seen:
            seen.add(prepared.run_id)
            planned.append((overrides, prepared))
    return planned


def _resolved_steps(method: str, suite, overrides: dict) -> int:
    from bench import registry
    from bench.config import resolve_config
    from bench.methods.protocol import capabilities

    method_cls = registry.load(registry.METHODS, method)
    if not capabilities(method_cls).supports_checkpoints:
        raise BenchError(
            f"--checkpoints: method {method} does not save intermediate adapters "
            "(it does not declare supports_checkpoints); drop --checkpoints"
        )
    config = resolve_config(method_cls.Config, suite.method_defaults.get(method, {}), overrides)
    return config.steps


# ------------------------------------------------------------------------------- reporting


def _interval_text(iv) -> str:
    return interval(iv.mean, iv.low, iv.high, digits=4)


def _in_value_order(column: pd.Series) -> pd.Series:
    """Sort keys: numbers by value (rank 2 before 32 before 128), then anything else by text."""

    def key(value):
        number = isinstance(value, int | float) and not isinstance(value, bool) and value == value
        return (0, float(value), "") if number else (1, 0.0, str(value))

    return column.map(key)


def report(
    spec: SweepSpec,
    cells: list[tuple[dict, Path]],
    out_dir: Path,
    title: str,
    stats: StatsOptions,
    convention: str = DEFAULT_CONVENTION,
) -> dict[str, Any]:
    """Tables (markdown + JSON) and plots for the finished runs of a sweep, scored under
    `convention`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    doc, data = document(spec, cells, out_dir, title, stats, convention)
    atomic.write_text(out_dir / "sweep.md", markdown.render(doc))
    atomic.write_json(out_dir / "sweep.json", data)
    return data


def document(
    spec: SweepSpec,
    cells: list[tuple[dict, Path]],
    out_dir: Path,
    title: str,
    stats: StatsOptions,
    convention: str = DEFAULT_CONVENTION,
) -> tuple[Document, dict[str, Any]]:
    """The sweep's report (its plots drawn into `out_dir`) and its JSON twin."""
    varied = spec.varied() or sorted({k for cfg, _ in cells for k in cfg})
    summaries = []
    for overrides, run_dir in cells:
        results = load_results(run_dir, convention=convention)
        intervals = summarize(results, stats)
        summaries.append((overrides, results, intervals))
    declared = run_metrics(r for _, r, _ in summaries)
    metrics = [m for m in declared if m in summaries[0][2]]
    names = {m: declared[m].name for m in metrics}
    realness = least_real(r for _, r, _ in summaries)
    note = REALNESS_NOTES[realness]
    if note:
        title += f" ({realness})"
    doc = Document(title)
    if note:
        doc.add(Paragraph(f"**{note}**."))
    doc.add(
        Paragraph(
            f"Metric means with their intervals, final checkpoint, under convention "
            f"`{convention}`; ↑ higher is better, ↓ lower is better."
        ),
        Paragraph(
            "\n".join(
                f"{note[0].upper()}{note[1:]}."
                for note in interval_notes(iv for _, _, ivs in summaries for iv in ivs.values())
            )
        ),
    )
    data: dict[str, Any] = {
        "title": title,
        "convention": convention,
        **realness_fields(realness),
        "metrics": {m: vars(declared[m]) for m in metrics},
        "runs": [],
        "tables": {},
    }
    for overrides, results, intervals in summaries:
        data["runs"].append(
            {
                "run_id": results.run_id,
                "options": overrides,
                "metrics": {m: vars(intervals[m]) for m in metrics},
            }
        )
    for option in varied:
        others = [k for k in varied if k != option]
        rows = []
        for overrides, results, intervals in summaries:
            if option not in overrides:
                continue
            # An option this cell leaves alone shows the value its run used (the suite's or the
            # method's default), so that every row reads whole.
            config = results.record.config
            row = {k: overrides[k] if k in overrides else config.get(k) for k in others}
            row = {k: "" if v is None else v for k, v in row.items()}  # None: the method decides
            row[option] = overrides[option]
            row.update({names[m]: intervals[m] for m in metrics})
            row["run"] = results.run_id
            rows.append(row)
        frame = pd.DataFrame(rows).sort_values(by=[*others, option], key=_in_value_order)
        table = Table(
            [*others, option] + [f"{names[m]} {declared[m].arrow}" for m in metrics] + ["run"],
            index=len(others) + 1,
        )
        for record in frame.to_dict(orient="records"):
            table.rows.append(
                [_option_cell(record[k]) for k in [*others, option]]
                + [_interval_cell(record[names[m]]) for m in metrics]
                + [Code(record["run"])]
            )
        for j, m in enumerate(metrics):
            mark_best(table.rows, table.index + j, declared[m].higher_is_better)
        doc.add(Section(option).add(table))
        data["tables"][option] = [
            {k: (_interval_text(v) if k in names.values() else v) for k, v in record.items()}
            for record in frame.to_dict(orient="records")
        ]

    curves, best_rows = {}, []
    for overrides, results, intervals in summaries:
        steps = checkpoint_steps(results.root)
        if not steps:
            continue
        label = ", ".join(f"{k}={overrides[k]}" for k in varied if k in overrides)
        final_step = results.record.config.get("steps", steps[-1] + 1)
        points = {final_step: intervals}
        for step in steps:
            at_step = load_results(results.root, checkpoint=step, convention=convention)
            points[step] = summarize(at_step, stats)
        curves[label] = {
            m: [(s, iv[m].mean, iv[m].low, iv[m].high) for s, iv in points.items()] for m in metrics
        }
        row = {"config": label, "run": results.run_id}
        for m in metrics:
            sign = 1.0 if declared[m].higher_is_better else -1.0
            best_step = max(points, key=lambda s, m=m, sign=sign: sign * points[s][m].mean)
            row[f"{names[m]} final"] = _interval_text(intervals[m])
            row[f"{names[m]} best (optimistic)"] = (
                f"{_interval_text(points[best_step][m])} @ {best_step}"
            )
        best_rows.append(row)
    if curves:
        plots.metric_vs_step(curves, out_dir / "metric_vs_step.png", title, names)
        table = Table(list(best_rows[0]), index=2)
        table.rows = [[str(v) for v in row.values()] for row in best_rows]
        doc.add(
            Section("Final and best checkpoint").add(
                Paragraph(
                    "*Best* picks the checkpoint by the very metric it reports, in its "
                    "direction, on the test prompts: an optimistic number, shown for "
                    "comparison with the seed study only."
                ),
                table,
                Figure("metric_vs_step.png", "metric vs step"),
            )
        )
        data["checkpoints"] = best_rows

    points = [
        {
            "label": ", ".join(f"{k}={o[k]}" for k in varied if k in o) or r.run_id,
            **{m: (iv[m].mean, iv[m].low, iv[m].high) for m in metrics},
        }
        for o, r, iv in summaries
    ]
    for x in ("clip_i", "dino"):
        if x in metrics and "clip_t" in metrics:
            name = f"tradeoff_clip_t_vs_{x}.png"
            plots.tradeoff(points, x, "clip_t", out_dir / name, title, names)
            doc.add(Figure(name, f"CLIP-T vs {names[x]}"))
    for _, results, _ in summaries:
        name = f"contact_{results.run_id}.png"
        plots.contact_sheet(results.root, out_dir / name)
        doc.add(Paragraph(f"Contact sheet of `{results.run_id}`: [{name}]({name})"))
    return doc, data


def _option_cell(value: Any):
    """An option's value as its table cell: numbers stay numbers (aligned right)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    return str(value)


def _interval_cell(iv) -> IntervalValue:
    return IntervalValue(iv.mean, iv.low, iv.high, digits=4)
