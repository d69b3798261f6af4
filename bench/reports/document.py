"""The report model: what a report says, apart from how it is drawn.

Every report (the leaderboard, a run's summary, a comparison, a sweep, the static site) first
builds a `Document`: sections holding paragraphs, lists, tables of typed cells, figures and
image grids. The renderers draw the same document for the terminal (`reports.terminal`), as
markdown (`reports.markdown`) and as HTML (`reports.html`), so a number is computed and
formatted once and reads the same everywhere.

Text in paragraphs, list items, titles and notes may use inline markdown (`code`, **bold**,
[links](x)): the markdown renderer writes it as it is, the others convert it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class Number:
    """A value; `best` marks the best of its column (in the metric's own direction)."""

    value: float | None
    digits: int = 3
    signed: bool = False
    best: bool = False

    @property
    def missing(self) -> bool:
        return self.value is None or math.isnan(self.value)

    def text(self) -> str:
        if self.missing:
            return "n.a."
        return f"{self.value:{'+' if self.signed else ''}.{self.digits}f}"


@dataclass(frozen=True)
class IntervalValue:
    """A mean with its interval ("0.812 [0.790, 0.833]"); the mean alone where no interval was
    made (NaN bounds), "n.a." without a mean."""

    mean: float | None
    low: float = math.nan
    high: float = math.nan
    digits: int = 3
    signed: bool = False
    best: bool = False

    @property
    def missing(self) -> bool:
        return self.mean is None or math.isnan(self.mean)

    def text(self) -> str:
        if self.missing:
            return "n.a."
        sign = "+" if self.signed else ""
        mean = f"{self.mean:{sign}.{self.digits}f}"
        if math.isnan(self.low):
            return mean
        return f"{mean} [{self.low:{sign}.{self.digits}f}, {self.high:{sign}.{self.digits}f}]"


@dataclass(frozen=True)
class Code:
    """An identifier shown as code: a run id, an option, a file name."""

    text: str
    suffix: str = ""  # plain words after it, e.g. " (toy world)"


@dataclass(frozen=True)
class Link:
    text: str
    href: str  # relative to the document


Cell = str | int | float | Number | IntervalValue | Code | Link


def cell_text(cell: Cell) -> str:
    """A cell as plain text (what the terminal shows, and what sorting and tests read)."""
    if isinstance(cell, (Number, IntervalValue)):
        return cell.text()
    if isinstance(cell, Code):
        return cell.text + cell.suffix
    if isinstance(cell, Link):
        return cell.text
    return str(cell)


@dataclass
class Table:
    columns: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    title: str = ""  # written above the table (the terminal: its title)
    notes: list[str] = field(default_factory=list)  # caveats that travel with the numbers
    index: int = 0  # how many leading columns label the row rather than hold values


@dataclass
class Paragraph:
    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Figure:
    src: str  # relative to the document
    caption: str


@dataclass
class Image:
    """One picture of an image grid, with what a reader may ask of it."""

    src: str  # relative to the document (a thumbnail in the HTML site)
    caption: str = ""
    full: str = ""  # the full-size image, when `src` is a thumbnail
    cell: str = ""  # the cell it renders ("subject/prompt/image/replicate"): one per column
    details: dict[str, str] = field(default_factory=dict)  # prompt, seed, scores, provenance


@dataclass
class ImageGrid:
    """Rows of pictures under shared column headings: the pictures of one column render the same
    cell (same seed), so a column compares methods on the same noise."""

    columns: list[str]
    rows: list[tuple[str, list[Image | None]]]
    title: str = ""


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)
    anchor: str = ""

    def add(self, *blocks: Block) -> Section:
        self.blocks.extend(blocks)
        return self


Block = Paragraph | Bullets | Table | Figure | ImageGrid | Section


@dataclass
class Document:
    title: str
    blocks: list[Block] = field(default_factory=list)

    def add(self, *blocks: Block) -> Document:
        self.blocks.extend(blocks)
        return self


def mark_best(rows: list[list[Cell]], column: int, higher_is_better: bool) -> None:
    """Mark the best value of a column in place (ties: every one of them), in the metric's own
    direction; a column with fewer than two values marks nothing."""
    values = [
        (i, cell.value if isinstance(cell, Number) else cell.mean)
        for i, row in enumerate(rows)
        if isinstance(cell := row[column], (Number, IntervalValue)) and not cell.missing
    ]
    if len(values) < 2:
        return
    best = (max if higher_is_better else min)(v for _, v in values)
    for i, v in values:
        if v == best:
            rows[i][column] = replace(rows[i][column], best=True)
