"""One self-contained HTML report: summary metrics, tables and image galleries in a single file.

Images are embedded as base64 data URIs and the CSS is inline, so the file can be mailed, attached
to a ticket or opened offline with nothing next to it.

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
    """

    title: str
    text: str = ""
    table: list[dict[str, object]] | None = None
    images: list[tuple[str, Path]] = field(default_factory=list)
    legend_html: str = ""
    table_csv: str = "per_image.csv"


_CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d232a;
       max-width: 1180px; margin: 0 auto; padding: 24px; background: #fff; }
h1 { font-size: 1.6em; margin: 0 0 0.6em; }
h2 { font-size: 1.2em; margin: 2em 0 0.5em; padding-bottom: 0.2em;
     border-bottom: 1px solid #dde1e6; }
p { margin: 0.4em 0; white-space: pre-line; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
th, td { padding: 4px 10px; border-bottom: 1px solid #e6e9ed; text-align: left; }
th { background: #f4f6f8; font-weight: 600; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
.table-wrap { overflow-x: auto; }
.summary td:first-child { color: #4a5560; }
.note { color: #6a737d; font-style: italic; }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(220px, 1fr));
           gap: 14px; margin: 0.8em 0; }
figure { margin: 0; }
figure img { width: 100%; height: auto; display: block; border: 1px solid #e6e9ed;
             image-rendering: pixelated; }
figure.wide { grid-column: 1 / -1; }
figure.wide img { width: auto; max-width: 100%; image-rendering: auto; }
figcaption { font-size: 0.85em; color: #4a5560; margin-top: 4px; word-break: break-all; }
footer { margin-top: 3em; padding-top: 0.6em; border-top: 1px solid #dde1e6; color: #6a737d;
         font-size: 0.85em; }
"""


def _fmt(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _cell(value: object, tag: str = "td", numeric: bool | None = None) -> str:
    cls = ' class="num"' if (_is_number(value) if numeric is None else numeric) else ""
    return f"<{tag}{cls}>{html.escape(_fmt(value))}</{tag}>"


def _summary_html(summary: dict[str, float | int | str]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(str(key))}</td>{_cell(value)}</tr>" for key, value in summary.items()
    )
    return f'<table class="summary"><tr><th>Metric</th><th>Value</th></tr>{rows}</table>'


def _table_html(rows: list[dict[str, object]], csv_name: str) -> str:
    shown = rows[:MAX_TABLE_ROWS]
    columns = list(dict.fromkeys(key for row in shown for key in row))
    # Numbers are right-aligned, so their headers must be too or they drift off their column.
    numeric = {c for c in columns if all(_is_number(r.get(c)) or r.get(c) is None for r in shown)}
    head = "".join(_cell(str(c), "th", c in numeric) for c in columns)
    body = "".join("<tr>" + "".join(_cell(row.get(c)) for c in columns) + "</tr>" for row in shown)
    out = f'<div class="table-wrap"><table><tr>{head}</tr>{body}</table></div>'
    if len(rows) > len(shown):
        note = f"… {len(rows) - len(shown)} more rows in {csv_name}"
        out += f'<p class="note">{html.escape(note)}</p>'
    return out


def _figure_html(caption: str, path: Path) -> str:
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise DataError(path, f"cannot read report image ({err.strerror})") from err
    if not data.startswith(_PNG_SIGNATURE) or len(data) < 24:
        raise DataError(path, "report images must be PNG files", hint="write them with save_png")
    width = int.from_bytes(data[16:20], "big")  # IHDR: the first chunk, fixed layout
    cls = ' class="wide"' if width > _PIXELATED_MAX_WIDTH else ""
    src = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    cap = html.escape(caption)
    return f'<figure{cls}><img src="{src}" alt="{cap}"><figcaption>{cap}</figcaption></figure>'


def _section_html(section: ReportSection) -> str:
    parts = [f"<section><h2>{html.escape(section.title)}</h2>"]
    for paragraph in section.text.split("\n\n"):
        if paragraph.strip():
            parts.append(f"<p>{html.escape(paragraph.strip())}</p>")
    if section.table:
        parts.append(_table_html(section.table, section.table_csv))
    if section.legend_html:
        parts.append(section.legend_html)
    if section.images:
        figures = "".join(_figure_html(caption, path) for caption, path in section.images)
        parts.append(f'<div class="gallery">{figures}</div>')
    parts.append("</section>")
    return "\n".join(parts)


def write_report_html(
    path: str | Path,
    title: str,
    summary: dict[str, float | int | str],
    sections: list[ReportSection],
    generator: str = "seglab",
) -> None:
    """Writes a single self-contained HTML report, atomically.

    Args:
        path: Destination ``.html`` file; parent folders are created.
        title: Page title and top heading.
        summary: Headline metrics shown first; floats are printed with 4 decimals.
        sections: Blocks shown in order below the summary.
        generator: Who wrote the report (e.g. ``"seglab 0.1.0 evaluate"``), shown in the footer.

    Raises:
        DataError: If an image of a section is missing or is not a PNG.
    """
    generated = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")
    body = [f"<h1>{html.escape(title)}</h1>"]
    if summary:
        body.append(_summary_html(summary))
    body.extend(_section_html(section) for section in sections)
    body.append(
        f"<footer>Generated by {html.escape(generator)} on {html.escape(generated)}</footer>"
    )
    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )
    atomic_write_text(path, page)
