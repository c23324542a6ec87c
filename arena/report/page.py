"""The pieces every results page is built from: escaping, numbers, censored values, tables, images.

Pure functions from data to HTML strings, shared by a run's `report.html` (`html`) and an
experiment's `summary.html` (`experiment`), and the one writer of a finished page (`write_page`).
Everything read from disk reaches the page through `e()` (HTML-escaped): text is shown exactly as
written, never as markup.

Censored values (a measurement stopped by a budget: an attack not exploited within it) are
written `≥ 150` wherever they are shown (`censored_value`), never as a bare `150`.
"""
from __future__ import annotations

import base64
import contextlib
import html
import json
import math
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from arena.types import ArenaError

MAX_PNG_BYTES = 20 * 2**20
"""An embedded PNG larger than this is left out (a run directory is data: a huge file is not read)."""
GE = "≥ "
"""The mark of a censored value: the true value is at least the one shown."""
CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1100px;
       padding: 0 1em; color: #1d1d1f; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; }
h3 { margin-top: 1.4em; }
.meta { color: #555; } .note { color: #666; font-size: 0.9em; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { border: 1px solid #d0d0d0; padding: 0.25em 0.6em; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; } td.l, th.l { text-align: left; } td.w { white-space: normal; min-width: 14em; }
td .ci { color: #666; font-size: 0.85em; }
th .hl { border-bottom: 2px solid #3b6fd8; }
.cens { color: #a5560b; } .yes { color: #1a7f37; } .no { color: #b42318; }
.figs { display: flex; flex-wrap: wrap; gap: 0.8em; }
.figs img { width: 340px; border: 1px solid #eee; } .figs img.mid { width: 460px; }
img.wide { max-width: 100%; border: 1px solid #eee; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
"""


def e(x: Any) -> str:
    """`x` as HTML text (escaped, quotes included)."""
    return html.escape(str(x), quote=True)


def text(x: Any) -> str:
    """A value from a file as text: strings as they are, anything else as JSON."""
    return x if isinstance(x, str) else json.dumps(x, default=str)


def num(x: Any) -> float | None:
    """A finite number from the run's data, else None (strings, NaN, missing)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x) if math.isfinite(x) else None


def fmt(x: Any, spec: str = ".4g") -> str:
    v = num(x)
    return "–" if v is None else format(v, spec)


def censored_value(x: Any, censored: bool, spec: str = ".4g") -> str:
    """A value as HTML: `≥ 150` (marked, with a tooltip) when censored, else `150`."""
    if not censored or num(x) is None:
        return e(fmt(x, spec))
    return f'<span class="cens" title="censored: at least this">{e(GE + fmt(x, spec))}</span>'


def ci(mean: Any, lower: Any, upper: Any, spec: str, censored: bool = False) -> str:
    """`mean [lower, upper]` as HTML (no brackets without both bounds); `≥` before a censored mean."""
    lo, hi = num(lower), num(upper)
    bounds = f' <span class="ci">[{format(lo, spec)}, {format(hi, spec)}]</span>' if lo is not None and hi is not None \
        else ""
    return censored_value(mean, censored, spec) + bounds


def count_of(k: int, n: int) -> str:
    return f"{k} of {n}"


def png_img(data: bytes, alt: str, cls: str = "") -> str:
    """An `<img>` with the PNG embedded (the page needs no other file)."""
    klass = f' class="{cls}"' if cls else ""
    return f'<img{klass} alt="{e(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode("ascii")}">'


def png_file(path: Any, alt: str, cls: str = "") -> str:
    """The `<img>` of a PNG file in a run directory; '' when it is missing, too large or no PNG."""
    try:
        if not path.is_file() or path.stat().st_size > MAX_PNG_BYTES:
            return ""
        data = path.read_bytes()
    except OSError:
        return ""
    return png_img(data, alt, cls) if data[:8] == b"\x89PNG\r\n\x1a\n" else ""


def json_section(head: str, out_dir: Path, name: str, body: Callable[[Any], str], figure: str, alt: str) -> str:
    """`head`, `body(doc)` of the JSON document `out_dir/name` and the figure `out_dir/figure`; the
    document is untrusted data: when it cannot be read, or `body` finds it of the wrong shape (an
    error), the section is `head` and a one-line note instead."""
    try:
        html_body = body(json.loads((out_dir / name).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as err:
        return head + f'<p class="note">Cannot read {e(out_dir.name)}/{e(name)}: {e(err)}</p>'
    return head + html_body + png_file(out_dir / figure, alt, "wide")


def table(header: Sequence[str], rows: Iterable[Sequence[str]], left: int = 1, wrap: Sequence[int] = ()) -> str:
    """An HTML table from already-escaped cells; the first `left` columns left-aligned, the
    columns in `wrap` left-aligned and wrapped (long text: the paper's figure)."""
    def cls(i: int) -> str:
        return " class='l w'" if i in wrap else " class=l" if i < left else ""

    head = "".join(f"<th{' class=l' if i < left or i in wrap else ''}>{h}</th>" for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f"<td{cls(i)}>{c}</td>" for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f'<div class="scroll"><table><tr>{head}</tr>{body}</table></div>'


def document(title: str, parts: Sequence[str]) -> str:
    """A whole self-contained page: its style inline, nothing loaded from elsewhere."""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{e(title)}</title><style>{CSS}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")


def write_page(path: Path, page: str) -> Path:
    """Write `page` to `path` atomically (a temporary file beside it, renamed); return `path`."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(page, encoding="utf-8")
        tmp.replace(path)
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp.unlink()  # nothing half written is left beside the report
        raise ArenaError(f"cannot write {path}: {err.strerror}") from None
    return path
