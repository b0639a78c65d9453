"""Markdown building blocks shared by every report: escaping and tables."""

from __future__ import annotations


def md_escape(text: object) -> str:
    """Escape user-supplied text for a markdown table cell or line."""
    out = str(text)
    for char in "\\`*_{}[]<>|#":
        out = out.replace(char, "\\" + char)
    return out.replace("\n", " ")


class Raw(str):
    """Text that is already markdown (its user-supplied parts escaped by whoever built it): not escaped again."""


def table(header: list[str], rows: list[list[object]]) -> str:
    """A GitHub markdown table; cells are escaped unless they are `Raw`."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell if isinstance(cell, Raw) else md_escape(cell) for cell in row) + " |"
              for row in rows]
    return "\n".join(lines)


def raw_table(header: list[str], rows: list[list[object]]) -> str:
    """A table whose cells are all markdown already (their user-supplied parts escaped with md_escape)."""
    return table(header, [[Raw(str(cell).replace("\n", " ")) for cell in row] for row in rows])
