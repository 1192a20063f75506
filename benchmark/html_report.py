"""results/report.html: the report stage's markdown as one self-contained web page.

The page is report.md rendered by markdown-it (CommonMark plus tables), so the two never disagree; figures
stay relative links (figures/<name>.png next to the page), which a browser opening the file resolves.
"""
from __future__ import annotations

import html
import re
from pathlib import Path
from urllib.parse import unquote

from markdown_it import MarkdownIt

from benchmark.io import write_text

# Plain CSS, no external fonts or scripts: the page must open offline without a single failed request.
STYLE = """
body { font-family: system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem;
       line-height: 1.45; }
table { border-collapse: collapse; margin: 1rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #bbb; padding: 0.25rem 0.5rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead { background: #eee; }
img { max-width: 100%; display: block; margin: 1rem 0; }
code { background: #f4f4f4; padding: 0 0.2rem; }
"""
IMG_SRC = re.compile(r'<img src="([^"]+)"')


def render(markdown: str, title: str) -> str:
    """The HTML page of `markdown` (a full document: doctype, charset, title, style)."""
    # html=False: text from the records and configs (task titles, messages) is shown, never run as markup
    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{html.escape(title)}</title>\n"
            # an empty icon: without it the browser asks for /favicon.ico and logs the failure
            '<link rel="icon" href="data:,">\n'
            f"<style>{STYLE}</style>\n</head>\n<body>\n{body}</body>\n</html>\n")


def write(path: Path, markdown: str, title: str) -> Path:
    """Write the page of `markdown` to `path`; every image it links must exist (relative to `path`)."""
    page = render(markdown, title)
    missing = [src for src in IMG_SRC.findall(page)
               if "://" not in src and not src.startswith("data:")
               and not (path.parent / unquote(src)).exists()]
    if missing:
        raise FileNotFoundError(f"{path}: the report links image(s) that were not written: {missing}")
    write_text(path, page)
    return path
