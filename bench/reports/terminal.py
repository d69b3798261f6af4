"""Draw a report document (`reports.document`) in the terminal, with rich."""

from __future__ import annotations

from rich.console import Console, Group, RenderableType
from rich.markdown import Markdown
from rich.table import Table as RichTable
from rich.text import Text

from bench.reports.document import (
    Bullets,
    Cell,
    Document,
    Figure,
    ImageGrid,
    IntervalValue,
    Number,
    Paragraph,
    Section,
    Table,
    cell_text,
)


def renderable(document: Document) -> RenderableType:
    parts: list[RenderableType] = [Text(document.title, style="bold")] if document.title else []
    for block in document.blocks:
        parts += _block(block)
    return Group(*parts)


def print_document(document: Document, console: Console) -> None:
    console.print(renderable(document))


def rich_table(t: Table) -> RichTable:
    """One table as rich draws it: its notes (the caveats) as the caption, in bold red."""
    table = RichTable(
        *t.columns,
        title=t.title or None,
        caption="\n".join(t.notes) or None,
        caption_style="bold red",
    )
    for row in t.rows:
        table.add_row(*(_cell(c) for c in row))
    return table


def _cell(value: Cell) -> Text:
    best = isinstance(value, (Number, IntervalValue)) and value.best
    return Text(cell_text(value), style="bold" if best else "")


def _block(block) -> list[RenderableType]:
    if isinstance(block, Paragraph):
        return [Markdown(block.text)]
    if isinstance(block, Bullets):
        return [Markdown("\n".join(f"- {item}" for item in block.items))]
    if isinstance(block, Table):
        return [rich_table(block)]
    if isinstance(block, Figure):
        return [Text(f"{block.caption}: {block.src}")]
    if isinstance(block, ImageGrid):
        return [Text(f"{block.title or 'images'}: see the HTML report (bench report)")]
    if isinstance(block, Section):
        parts: list[RenderableType] = [Text(block.title, style="bold underline")]
        for child in block.blocks:
            parts += _block(child)
        return parts
    raise TypeError(f"not a report block: {block!r}")
