"""Markdown building blocks shared by every report: escaping and tables (and lists where a table would be cut off)."""

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


def split_row(line: str) -> list[str]:
    """The cells of one markdown table row (escaped pipes `\\|` stay inside their cell)."""
    cells, current, escaped = [], "", False
    for char in line.strip().removeprefix("|").removesuffix("|"):
        if char == "|" and not escaped:
            cells.append(current.strip())
            current = ""
        else:
            current += char
        escaped = char == "\\" and not escaped
    return [*cells, current.strip()]


def narrow_tables(markdown: str, width: int = 120) -> str:
    """The same markdown with every table that has a row wider than `width` characters written as a list.

    The Prefect UI draws table cells on one line (`white-space: nowrap`) in a box whose scroll bar it hides, so a
    long cell (a list of checks, a hash, the lineage) is cut off at the right edge with no way to see the rest; a
    list item wraps. A two-column table becomes `- **key**: value`; a wider one names each column in its row."""
    lines, out, i = markdown.split("\n"), [], 0
    while i < len(lines):
        end = i
        while end < len(lines) and lines[end].startswith("|"):
            end += 1
        block = lines[i:end]
        if len(block) >= 2 and set(block[1].replace("|", "").strip()) <= set("-: ") and \
                any(len(row) > width for row in block):
            header, rows = split_row(block[0]), [split_row(row) for row in block[2:]]
            for row in rows:
                rest = [f"{name} {value}" if name else value for name, value in zip(header[1:], row[1:])]
                out.append(f"- **{row[0]}**: {row[1]}" if len(header) == 2 else f"- **{row[0]}**: " + "; ".join(rest))
            i = end
        elif block:
            out.extend(block)
            i = end
        else:
            out.append(lines[i])
            i += 1
    return "\n".join(out)
