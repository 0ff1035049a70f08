"""One self-contained HTML report: what was evaluated, the headline scores, tables and images.

Images are embedded as base64 data URIs, and the CSS and the few lines of script that sort the
tables are inline, so the file can be mailed, attached to a ticket or opened offline with nothing
next to it.

Example:
    >>> write_report_html(
    ...     "runs/exp1/report.html",
    ...     title="exp1 — evaluation",
    ...     summary={"dice": 0.8731, "images": 120},
    ...     sections=[ReportSection("Worst", images=[("img_007", Path("worst/img_007.png"))])],
    ... )
"""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from seglab.atomic_files import atomic_write_text
from seglab.errors import DataError
from seglab.evaluation.report_facts import HeadlineGroup, HeadlineMetric, ReportHeader

MAX_TABLE_ROWS = 200  # beyond this a browser table is unreadable; the CSV holds the rest
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PIXELATED_MAX_WIDTH = 512  # narrower PNGs are masks/crops to upscale; wider ones are plots


@dataclass
class ReportSection:
    """A titled block of the report.

    Attributes:
        title: Heading of the section.
        text: Plain text shown under the heading; blank lines separate paragraphs. Escaped.
        table: Rows to show as a table; columns are the keys in order of first appearance.
            Only the first ``MAX_TABLE_ROWS`` rows are shown.
        images: ``(caption, png_path)`` pairs shown as a gallery.
        legend_html: Trusted HTML shown above the gallery, inserted without escaping, e.g.
            :func:`seglab.viz.confusion_legend_html`. Never put user-supplied text here.
        table_csv: File holding the full table, named in the note when rows are cut.
        columns: The table's columns to show (all when ``None``); the CSV has the rest.
        sortable: Clicking a column header sorts the table by that column.
        decimals: Decimals of the table's floats.
        strips: ``(caption, png_path)`` pairs shown one per row at the full page width, e.g.
            image | truth | prediction | errors of one image.
        strip_labels: Column labels shown above the strips, one per panel.
        gallery_width: Smallest width of a gallery image, in CSS pixels.
    """

    title: str
    text: str = ""
    table: list[dict[str, object]] | None = None
    images: list[tuple[str, Path]] = field(default_factory=list)
    legend_html: str = ""
    table_csv: str = "per_image.csv"
    columns: list[str] | None = None
    sortable: bool = False
    decimals: int = 4
    strips: list[tuple[str, Path]] = field(default_factory=list)
    strip_labels: tuple[str, ...] = ()
    gallery_width: int = 220


_CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d232a;
       max-width: 1180px; margin: 0 auto; padding: 24px; background: #fff; }
h1 { font-size: 1.6em; margin: 0 0 0.6em; }
h2 { font-size: 1.2em; margin: 2em 0 0.5em; padding-bottom: 0.2em;
     border-bottom: 1px solid #dde1e6; }
h3 { font-size: 1em; margin: 1.2em 0 0.4em; }
p { margin: 0.4em 0; white-space: pre-line; }
a { color: #0b5cad; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
th, td { padding: 4px 10px; border-bottom: 1px solid #e6e9ed; text-align: left; }
th { background: #f4f6f8; font-weight: 600; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
.table-wrap { overflow-x: auto; }
table.sortable { width: 100%; }
table.sortable td { overflow-wrap: anywhere; }
table.sortable th { cursor: pointer; user-select: none; white-space: nowrap; }
table.sortable th[data-order="asc"]::after { content: " \\25B2"; }
table.sortable th[data-order="desc"]::after { content: " \\25BC"; }
.summary td:first-child { color: #4a5560; }
.note { color: #6a737d; font-style: italic; }
.facts { display: grid; grid-template-columns: repeat(auto-fill, minmax(260px, 1fr));
         gap: 2px 24px; margin: 0 0 1em; padding: 10px 14px; background: #f7f8fa;
         border: 1px solid #e6e9ed; border-radius: 6px; }
.facts div { overflow-wrap: anywhere; }
.facts b { color: #4a5560; font-weight: 600; margin-right: 0.4em; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(250px, 1fr)); gap: 12px; }
.card { border: 1px solid #dde1e6; border-radius: 6px; padding: 8px 12px; }
.card .value { font-size: 1.7em; font-weight: 600; font-variant-numeric: tabular-nums; }
.card .name { font-weight: 600; }
.card .meaning { color: #4a5560; font-size: 0.88em; }
details { margin: 1.2em 0; }
summary { cursor: pointer; color: #0b5cad; }
.gallery { display: grid; gap: 14px; margin: 0.8em 0; }
figure { margin: 0; }
figure img { width: 100%; height: auto; display: block; border: 1px solid #e6e9ed;
             image-rendering: pixelated; }
figure.wide { grid-column: 1 / -1; }
figure.wide img { width: auto; max-width: 100%; image-rendering: auto; }
figcaption { font-size: 0.85em; color: #4a5560; margin-top: 4px; word-break: break-all; }
.strip-labels { display: grid; gap: 0 1%; font-weight: 600; text-align: center; }
.strips figure { margin: 0 0 14px; }
footer { margin-top: 3em; padding-top: 0.6em; border-top: 1px solid #dde1e6; color: #6a737d;
         font-size: 0.85em; }
"""

# Clicking a header of a sortable table sorts its rows by that column, numbers as numbers;
# clicking again reverses the order.
_SORT_SCRIPT = """
for (const th of document.querySelectorAll("table.sortable th")) {
  th.addEventListener("click", () => {
    const body = th.closest("table").tBodies[0], col = th.cellIndex;
    const up = th.dataset.order !== "asc";
    for (const other of th.parentNode.children) delete other.dataset.order;
    th.dataset.order = up ? "asc" : "desc";
    const key = (row) => {
      const text = row.cells[col].textContent.trim(), n = Number(text);
      return text === "" || Number.isNaN(n) ? text : n;
    };
    const rows = Array.from(body.rows).sort((a, b) => {
      const x = key(a), y = key(b);
      const order = typeof x === typeof y ? (x < y ? -1 : x > y ? 1 : 0)
        : typeof x === "number" ? -1 : 1;
      return up ? order : -order;
    });
    body.append(...rows);
  });
}
"""


def _fmt(value: object, decimals: int = 4) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.{decimals}f}"
    return str(value)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _cell(value: object, tag: str = "td", numeric: bool | None = None, decimals: int = 4) -> str:
    cls = ' class="num"' if (_is_number(value) if numeric is None else numeric) else ""
    return f"<{tag}{cls}>{html.escape(_fmt(value, decimals))}</{tag}>"


def _summary_html(summary: dict[str, float | int | str]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(str(key))}</td>{_cell(value)}</tr>" for key, value in summary.items()
    )
    return f'<table class="summary"><tr><th>Metric</th><th>Value</th></tr>{rows}</table>'


def _header_html(header: ReportHeader) -> str:
    facts = "".join(
        f"<div><b>{html.escape(label)}</b>{html.escape(text)}</div>"
        for label, text in header.rows()
    )
    return f'<div class="facts">{facts}</div>'


def _headline_html(groups: list[tuple[HeadlineGroup, list[tuple[HeadlineMetric, float]]]]) -> str:
    parts = []
    for group, values in groups:
        cards = "".join(
            f'<div class="card"><div class="value">{html.escape(_fmt(value, 3))}</div>'
            f'<div class="name">{html.escape(metric.name)}</div>'
            f'<div class="meaning">{html.escape(metric.meaning)}</div></div>'
            for metric, value in values
        )
        parts.append(f'<h3>{html.escape(group.title)}</h3><div class="cards">{cards}</div>')
        if group.note:
            parts.append(f'<p class="note">{html.escape(group.note)}</p>')
    return '<section class="headline">' + "".join(parts) + "</section>"


def _table_html(rows: list[dict[str, object]], section: ReportSection) -> str:
    shown = rows[:MAX_TABLE_ROWS]
    columns = section.columns or list(dict.fromkeys(key for row in shown for key in row))
    # Numbers are right-aligned, so their headers must be too or they drift off their column.
    numeric = {c for c in columns if all(_is_number(r.get(c)) or r.get(c) is None for r in shown)}
    head = "".join(_cell(str(c), "th", c in numeric) for c in columns)
    body = "".join(
        "<tr>" + "".join(_cell(row.get(c), decimals=section.decimals) for c in columns) + "</tr>"
        for row in shown
    )
    cls = ' class="sortable"' if section.sortable else ""
    out = (
        f'<div class="table-wrap"><table{cls}><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )
    csv_link = f'<a href="{html.escape(section.table_csv)}">{html.escape(section.table_csv)}</a>'
    if len(rows) > len(shown):
        out += f'<p class="note">… {len(rows) - len(shown)} more rows in {csv_link}</p>'
    elif section.columns is not None:
        out += f'<p class="note">All columns: {csv_link}</p>'
    return out


def _png_bytes(path: Path) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise DataError(path, f"cannot read report image ({err.strerror})") from err
    if not data.startswith(_PNG_SIGNATURE) or len(data) < 24:
        raise DataError(path, "report images must be PNG files", hint="write them with save_png")
    return data


def _figure_html(caption: str, path: Path, wide: bool | None = None) -> str:
    data = _png_bytes(path)
    width = int.from_bytes(data[16:20], "big")  # IHDR: the first chunk, fixed layout
    if wide is None:
        wide = width > _PIXELATED_MAX_WIDTH
    src = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    cap = html.escape(caption)
    cls = ' class="wide"' if wide else ""
    return f'<figure{cls}><img src="{src}" alt="{cap}"><figcaption>{cap}</figcaption></figure>'


def _strips_html(section: ReportSection) -> str:
    labels = "".join(f"<div>{html.escape(label)}</div>" for label in section.strip_labels)
    grid = f"grid-template-columns: repeat({max(len(section.strip_labels), 1)}, 1fr)"
    figures = "".join(_figure_html(caption, path, False) for caption, path in section.strips)
    return (
        f'<div class="strip-labels" style="{grid}">{labels}</div>'
        f'<div class="strips">{figures}</div>'
    )


def _section_html(section: ReportSection) -> str:
    parts = [f"<section><h2>{html.escape(section.title)}</h2>"]
    for paragraph in section.text.split("\n\n"):
        if paragraph.strip():
            parts.append(f"<p>{html.escape(paragraph.strip())}</p>")
    if section.table:
        parts.append(_table_html(section.table, section))
    if section.legend_html:
        parts.append(section.legend_html)
    if section.strips:
        parts.append(_strips_html(section))
    if section.images:
        figures = "".join(_figure_html(caption, path) for caption, path in section.images)
        grid = f"grid-template-columns: repeat(auto-fill, minmax({section.gallery_width}px, 1fr))"
        parts.append(f'<div class="gallery" style="{grid}">{figures}</div>')
    parts.append("</section>")
    return "\n".join(parts)


def write_report_html(
    path: str | Path,
    title: str,
    summary: dict[str, float | int | str],
    sections: list[ReportSection],
    generator: str = "seglab",
    header: ReportHeader | None = None,
    headline: list[tuple[HeadlineGroup, list[tuple[HeadlineMetric, float]]]] | None = None,
) -> None:
    """Writes a single self-contained HTML report, atomically.

    Args:
        path: Destination ``.html`` file; parent folders are created.
        title: Page title and top heading.
        summary: Every metric, floats printed with 4 decimals; folded under the headline
            (shown open when there is no headline).
        sections: Blocks shown in order below the summary.
        generator: Who wrote the report (e.g. ``"seglab 0.1.0 evaluate"``), shown in the footer.
        header: What was evaluated, shown under the title.
        headline: The scores shown first, by group with their meanings
            (:func:`seglab.evaluation.report_facts.headline`).

    Raises:
        DataError: If an image of a section is missing or is not a PNG.
    """
    generated = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    body = [f"<h1>{html.escape(title)}</h1>"]
    if header is not None:
        body.append(_header_html(header))
    if headline:
        body.append(_headline_html(headline))
    if summary and headline:
        body.append(
            f"<details><summary>All metrics ({len(summary)})</summary>"
            f"{_summary_html(summary)}</details>"
        )
    elif summary:
        body.append(_summary_html(summary))
    body.extend(_section_html(section) for section in sections)
    body.append(
        f"<footer>Generated by {html.escape(generator)} on {html.escape(generated)}</footer>"
    )
    if any(section.sortable for section in sections):
        body.append(f"<script>{_SORT_SCRIPT}</script>")
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )
    atomic_write_text(path, page)
