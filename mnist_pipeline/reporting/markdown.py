"""Markdown building blocks shared by every report: escaping and tables."""

from __future__ import annotations


def md_escape(text: object) -> str:
    """Escape user-supplied text for a markdown table cell or line."""
    out = str(text)
    for char in "\\`*_{}[]<>|#":
        out = out.replace(char, "\\" + char)
    return out.replace("\n", " ")


def table(header: list[str], rows: list[list[object]]) -> str:
    """A GitHub markdown table; cells are escaped."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(md_escape(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
