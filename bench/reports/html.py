"""Draw a report document (`reports.document`) as a self-contained HTML page (Jinja2): styles
and scripts inline, every link relative, nothing fetched from elsewhere, so a page opens from a
file or from any static host."""

from __future__ import annotations

import functools
import json

from markupsafe import Markup

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


@functools.cache
def _environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("bench.reports", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["inline"] = inline
    env.filters["block"] = block_markdown
    env.filters["cell"] = cell
    env.filters["details"] = lambda d: json.dumps(d, ensure_ascii=False)
    env.tests["table"] = lambda b: isinstance(b, Table)
    env.tests["paragraph"] = lambda b: isinstance(b, Paragraph)
    env.tests["bullets"] = lambda b: isinstance(b, Bullets)
    env.tests["figure"] = lambda b: isinstance(b, Figure)
    env.tests["grid"] = lambda b: isinstance(b, ImageGrid)
    env.tests["section"] = lambda b: isinstance(b, Section)
    return env


@functools.cache
def _markdown():
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).enable("table")


def inline(text: str) -> Markup:
    """Inline markdown (`code`, **bold**, [links](x)) as HTML; raw HTML in it is escaped."""
    return Markup(_markdown().renderInline(text))


def block_markdown(text: str) -> Markup:
    return Markup(_markdown().render(text))


def cell(value: Cell) -> Markup:
    if isinstance(value, Code):
        return inline(f"`{value.text}`{value.suffix}")
    if isinstance(value, Link):
        return Markup('<a href="{}">{}</a>').format(value.href, value.text)
    text = cell_text(value)
    if isinstance(value, (Number, IntervalValue)):
        if value.best:
            return Markup('<strong class="best num">{}</strong>').format(text)
        return Markup('<span class="num">{}</span>').format(text)
    return Markup("{}").format(text)


def render(document: Document, *, nav: list[tuple[str, str]] = (), script: str = "") -> str:
    """The page; `nav` is (label, relative href) links at the top; `script` is a page-specific
    script, inlined."""
    template = _environment().get_template("page.html.j2")
    return template.render(doc=document, nav=list(nav), script=Markup(script))


def render_template(name: str, **context) -> str:
    return _environment().get_template(name).render(**context)
