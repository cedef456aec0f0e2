"""Sphinx configuration of the sharptask documentation (see README.md here).

The build imports the *installed* sharptask (the venv's, from `make venv`):
the API reference is autodoc over the real objects, C types included, with
signatures taken from the package's .pyi stubs (_ext/stubsig.py).  Warnings
are errors (`make docs` runs sphinx-build -W --keep-going).
"""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "_ext"))

import sharptask  # noqa: E402  (the installed package, not python/)

project = "sharptask"
author = "the sharptask developers"
copyright = "the sharptask developers, MIT License"
release = version = sharptask.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "stubsig",
    "plaindoc",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "README.md", "requirements.txt",
                    "benchmarks/README.md"]

# MyST: ::: fences for directives that hold code blocks (the side-by-side
# C# / sharptask pairs), anchors for headings down to ###.
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3

autodoc_default_options = {
    "members": True,
    "undoc-members": True,
    "show-inheritance": True,
}
autodoc_member_order = "alphabetical"
autodoc_typehints = "signature"

html_theme = "furo"
html_title = f"sharptask {release}"
html_static_path = ["_static"]
html_css_files = ["sharptask.css"]
pygments_style = "friendly"
pygments_dark_style = "monokai"


def _make_chart(app):
    """The benchmark chart and table, from the committed results.json,
    at every build (benchmarks/make_chart.py; needs matplotlib)."""
    script = os.path.join(HERE, "benchmarks", "make_chart.py")
    subprocess.run([sys.executable, script], check=True, timeout=120)


def setup(app):
    app.connect("builder-inited", _make_chart)
