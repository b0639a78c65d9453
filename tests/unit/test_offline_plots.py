"""`dvc plots show` offline: the committed HTML template inlines the very scripts the locked dvc-render names."""

from __future__ import annotations

import configparser
import re

from dvc_render.vega import VegaRenderer

from scripts.offline_plots import PACKAGES, TEMPLATE
from tests.harness import ROOT


def test_the_template_inlines_the_versions_dvc_render_loads_from_its_cdn():
    named = dict(re.findall(r"npm/([a-z-]+)@([0-9.]+)", VegaRenderer.SCRIPTS))
    assert named == {name: version for name, (version, _, _) in PACKAGES.items()}, \
        "dvc-render names other vega versions: run python scripts/offline_plots.py"
    page = TEMPLATE.read_text()
    for name, (version, _, _) in PACKAGES.items():
        assert f"/* {name} {version} */" in page
    assert "{plot_divs}" in page and "{scripts}" not in page  # DVC adds no CDN tag
    assert not re.search(r"<script[^>]+src=", page)  # nothing loaded from anywhere


def test_dvc_config_names_the_template():
    config = configparser.ConfigParser()
    config.read(ROOT / ".dvc" / "config")
    assert (ROOT / ".dvc" / config["plots"]["html_template"]) == TEMPLATE
