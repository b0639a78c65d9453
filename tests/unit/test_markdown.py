"""The markdown helpers: a table too wide for the Prefect UI becomes a list that says the same."""

from __future__ import annotations

from mnist_pipeline.reporting.markdown import narrow_tables, split_row, table


def test_a_wide_two_column_table_becomes_a_list_and_a_narrow_one_stays():
    narrow = table(["what", "value"], [["images", "5,000"]])
    wide = table(["what", "value"], [["checks passed", "13: " + ", ".join(["images are uint8"] * 10)],
                                     ["a | pipe", "kept"]])
    text = "## Data\n\n" + wide + "\n\nbetween\n\n" + narrow + "\n"
    out = narrow_tables(text)
    assert narrow in out  # untouched
    assert "- **checks passed**: 13: images are uint8, images are uint8" in out
    assert "- **a \\| pipe**: kept" in out  # an escaped pipe stays in its cell
    assert "| checks passed |" not in out and out.startswith("## Data\n\n- **checks passed**")
    assert out.endswith("between\n\n" + narrow + "\n")


def test_a_wide_table_of_more_columns_names_each_column_in_its_row():
    wide = table(["distortion", "how", "accuracy"], [["rotation", "turned 15-25 degrees, either way " * 4, "86.00%"]])
    out = narrow_tables(wide)
    assert out.startswith("- **rotation**: how turned 15-25 degrees") and out.endswith("; accuracy 86.00%")


def test_split_row_keeps_escaped_pipes():
    assert split_row("| a \\| b | c |") == ["a \\| b", "c"]
