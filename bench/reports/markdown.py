"""Draw a report document (`reports.document`) as GitHub markdown."""

from __future__ import annotations

from bench.reports.document import (
    Bullets,
    Cell,
    Code,
    Document,
    Figure,
    ImageGrid,
    IntervalValue,
    Link,
    Number,
    Paragraph,
    Section,
    Table,
    cell_text,
)


def render(document: Document) -> str:
    lines = [f"# {document.title}", ""]
    for block in document.blocks:
        lines += _block(block, 2)
    return "\n".join(lines).rstrip() + "\n"


def cell(value: Cell) -> str:
    if isinstance(value, Code):
        return f"`{value.text}`{value.suffix}"
    if isinstance(value, Link):
        return f"[{value.text}]({value.href})"
    text = cell_text(value).replace("|", "\\|")
    if isinstance(value, (Number, IntervalValue)) and value.best:
        return f"**{text}**"
    return text


def table(t: Table) -> list[str]:
    """A pipe table, columns padded as tabulate pads them, so the file reads in a terminal."""
    from tabulate import tabulate

    body = [[cell(c) for c in row] for row in t.rows]
    numeric = [
        bool(t.rows) and all(_is_number(row[j]) for row in t.rows) for j in range(len(t.columns))
    ]
    align = ["right" if n else "left" for n in numeric]
    text = tabulate(body, headers=t.columns, tablefmt="pipe", disable_numparse=True, colalign=align)
    return [text]


def _is_number(value: Cell) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, (int, float, Number, IntervalValue))


def _block(block, level: int) -> list[str]:
    if isinstance(block, Paragraph):
        return [block.text, ""]
    if isinstance(block, Bullets):
        return [f"- {item}" for item in block.items] + [""]
    if isinstance(block, Table):
        head = [block.title, ""] if block.title else []
        notes = [*block.notes, ""] if block.notes else []
        return head + table(block) + [""] + notes
    if isinstance(block, Figure):
        return [f"![{block.caption}]({block.src})", ""]
    if isinstance(block, ImageGrid):
        head = [block.title, ""] if block.title else []
        rows = [
            [label] + [f"![{i.caption}]({i.src})" if i else "" for i in images]
            for label, images in block.rows
        ]
        t = Table(["", *block.columns], rows)
        return head + table(t) + [""]
    if isinstance(block, Section):
        lines = ["#" * min(level, 6) + f" {block.title}", ""]
        for child in block.blocks:
            lines += _block(child, level + 1)
        return lines
    raise TypeError(f"not a report block: {block!r}")
