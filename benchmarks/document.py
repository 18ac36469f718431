"""A report as a list of blocks, rendered as Markdown or as one self-contained HTML page.

Blocks: headings, paragraphs, tables and figures (PNG files). The HTML embeds each PNG as a
base64 data URI, so the page can be mailed or opened anywhere without its folder; the Markdown
links the PNGs beside it. Inline Markdown is limited to `code` and **bold** (and *italic* for
whole paragraphs), which the HTML renderer translates.
"""
from __future__ import annotations

import base64
import html
import os
import re


def _inline(text: str) -> str:
    """Escaped HTML of one line of our inline Markdown."""
    t = html.escape(text, quote=False)
    t = re.sub(r"`([^`]+)`", r"<code>\1</code>", t)
    t = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", t)
    return re.sub(r"^\*(.+)\*$", r"<i>\1</i>", t)


class Doc:
    """Blocks: ("h", level, text) ("p", text) ("table", header, rows) ("img", file, caption)."""

    def __init__(self):
        self.blocks = []

    def h(self, text, level=2):
        self.blocks.append(("h", level, text))

    def p(self, text):
        self.blocks.append(("p", text))

    def table(self, header, rows):
        self.blocks.append(("table", header, [[str(x) for x in r] for r in rows]))

    def img(self, path, caption, empty_note):
        if path:
            self.blocks.append(("img", path, caption))
        else:
            self.p(f"*{caption}: {empty_note}*")

    def markdown(self) -> str:
        out = []
        for b in self.blocks:
            if b[0] == "h":
                out.append("#" * b[1] + " " + b[2])
            elif b[0] == "p":
                out.append(b[1])
            elif b[0] == "table":
                esc = lambda s: s.replace("|", "\\|")  # noqa: E731
                out.append("\n".join(["| " + " | ".join(map(esc, b[1])) + " |",
                                      "|" + "---|" * len(b[1])]
                                     + ["| " + " | ".join(map(esc, r)) + " |" for r in b[2]]))
            else:
                out.append(f"![{b[2]}]({os.path.basename(b[1])})\n\n*{b[2]}*")
        return "\n\n".join(out) + "\n"

    def html(self, title) -> str:
        out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
               "</title><style>body{font-family:sans-serif;max-width:1200px;margin:auto;"
               "padding:1em} table{border-collapse:collapse;font-size:13px;margin:.5em 0} "
               "td,th{border:1px solid #bbb;padding:2px 6px} th{background:#eee} "
               "img{max-width:100%}</style></head><body>"]
        for b in self.blocks:
            if b[0] == "h":
                out.append(f"<h{b[1]}>{html.escape(b[2])}</h{b[1]}>")
            elif b[0] == "p":
                out.append(f"<p>{_inline(b[1])}</p>")
            elif b[0] == "table":
                head = "".join(f"<th>{html.escape(x)}</th>" for x in b[1])
                rows = "".join("<tr>" + "".join(f"<td>{_inline(x)}</td>" for x in r)
                               + "</tr>" for r in b[2])
                out.append(f"<table><tr>{head}</tr>{rows}</table>")
            else:
                with open(b[1], "rb") as f:
                    data = base64.b64encode(f.read()).decode("ascii")
                out.append(f"<figure><img alt='{html.escape(b[2])}' src='data:image/png;base64,"
                           f"{data}'><figcaption>{html.escape(b[2])}</figcaption></figure>")
        return "\n".join(out) + "</body></html>\n"
