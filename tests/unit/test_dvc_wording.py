"""The flow cuts `dvc repro`'s output into one Prefect task per stage where DVC says it starts a stage: pinned
here against the locked DVC's own message templates, so that a DVC upgrade that rewords them fails this test
instead of silently merging stages into one task."""

from __future__ import annotations

import inspect
import re

import dvc.stage
import dvc.stage.cache
import dvc.stage.run

from flows.train_mnist import MARKER

# what DVC logs as it takes up a pipeline stage: runs it, finds it up to date, restores it from its run-cache
STARTS = {dvc.stage.run: "Running stage '%s':", dvc.stage: "Stage '%s' didn't change, skipping",
          dvc.stage.cache: "Stage '%s' is cached - skipping run, checking out outputs"}


def test_the_flows_stage_marker_matches_each_way_the_locked_dvc_starts_a_stage():
    for module, template in STARTS.items():
        source = " ".join(inspect.getsource(module).split())  # cache.py wraps its call over lines
        assert f'"{template}"' in source, f"{module.__name__} no longer logs {template!r}: update flows' MARKER"
        found = MARKER.match(template % "train")
        assert found and (found["ran"] or found["kept"]) == "train", template
    assert MARKER.match("Running stage 'train':")["ran"] == "train"  # ran, not kept: the stage's time counts


def test_no_other_stage_message_of_the_locked_dvc_looks_like_a_start():
    """Every message of DVC's stage modules that names a pipeline stage is one of the three, or not a start."""
    for module in STARTS:
        for template in re.findall(r'logger\.\w+\(\s*"([^"]*Stage[^"]*)"', inspect.getsource(module)):
            assert template in STARTS.values() or not MARKER.match(template % "x"), template
