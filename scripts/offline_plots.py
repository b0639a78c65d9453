"""Write `.dvc/offline-plots.html`: the HTML template `dvc plots show` and `dvc plots diff` use (`.dvc/config`,
`plots.html_template`), with vega, vega-lite and vega-embed inlined, so the plots draw without internet.

DVC's own page loads those three scripts from a CDN (dvc_render's `VegaRenderer.SCRIPTS`), so offline it is
blank. The template has no `{scripts}` placeholder: DVC then adds no CDN tag, and the inlined copies draw the
plots. The versions are the ones dvc_render names, from the npm registry, each checked against its pinned
sha512 integrity before it is used. The template is committed; run this again only when the locked dvc-render
names other versions (tests/unit/test_offline_plots.py says so):

    python scripts/offline_plots.py              # npm pack the three packages into a temporary folder
    python scripts/offline_plots.py --from DIR   # or use the .tgz files already in DIR
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / ".dvc" / "offline-plots.html"

# package -> (version, the npm registry's dist.integrity, the script inside the tarball)
PACKAGES = {
    "vega": ("5.20.2",
             "sha512-qmH7aD9GGPpssVdxL1xgcdxTbQzyRUeRR16Os385ymvQhiwCYQNA6+eXUPAZDTVLfk0RXu6Jzj6kUE5jQ80EVw==",
             "package/build/vega.min.js"),
    "vega-lite": ("5.2.0",
                  "sha512-Yxcg8MvYfxHcG6BbkaKT0oVCIMIcE19UvqIsEwBmyd/7h2nzW7oRnID81T8UrY7hpDrIr6wa2JADOT2dhGNErw==",
                  "package/build/vega-lite.min.js"),
    "vega-embed": ("6.18.2",
                   "sha512-wcDyQPE4J5aiCDc3/suH5RQDvrKkjuLkhzUcbOLwEkNF8/+pp17tS0JghzEvAPNRg+5aG1/N2ydixq8Lk3dOlg==",
                   "package/build/vega-embed.min.js"),
}

PAGE = """<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <title>DVC Plot</title>
    <!-- made by scripts/offline_plots.py: {versions}, inlined from the npm registry so that the plots
         draw offline (DVC's own page loads them from a CDN). Their licence (BSD-3-Clause) follows each. -->
{inlined}
    <style>
        table {
            border-spacing: 15px;
        }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def integrity(path: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def tarball(folder: Path, name: str, version: str) -> Path:
    """The package's .tgz in `folder`, packed from the npm registry when absent."""
    path = folder / f"{name}-{version}.tgz"
    if not path.is_file():
        subprocess.run(["npm", "pack", f"{name}@{version}", "--silent"], cwd=folder, check=True,
                       stdout=subprocess.DEVNULL)
    return path


def script(path: Path, member: str) -> tuple[str, str]:
    """The minified script and the licence text of one package tarball."""
    with tarfile.open(path) as archive:
        code = archive.extractfile(member).read().decode()
        licence = archive.extractfile("package/LICENSE").read().decode()
    if "</script" in code.lower():
        raise SystemExit(f"{path.name}: its script holds '</script': it cannot be inlined")
    return code, licence


def build(folder: Path) -> str:
    parts = []
    for name, (version, expected, member) in PACKAGES.items():
        path = tarball(folder, name, version)
        if integrity(path) != expected:
            raise SystemExit(f"{path.name}: sha512 differs from the pinned npm integrity")
        code, licence = script(path, member)
        parts.append(f"    <script>/* {name} {version} */\n{code}\n</script>\n"
                     f"    <!-- {name} {version} licence:\n{licence.replace('--', '- -')}\n    -->")
    versions = ", ".join(f"{name} {version}" for name, (version, _, _) in PACKAGES.items())
    # DVC fills {refresh_tag} and {plot_divs}, and finds no {scripts} to fill with its CDN tags
    return PAGE.replace("{versions}", versions).replace("{inlined}", "\n".join(parts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="folder", type=Path, help="a folder holding the three .tgz files")
    args = parser.parse_args()
    if args.folder:
        page = build(args.folder)
    else:
        with tempfile.TemporaryDirectory() as folder:
            page = build(Path(folder))
    TEMPLATE.write_text(page, encoding="utf8")
    print(f"wrote {TEMPLATE.relative_to(ROOT)} ({len(page.encode()) / 1e6:.2f} MB)", file=sys.stderr)


if __name__ == "__main__":
    main()
