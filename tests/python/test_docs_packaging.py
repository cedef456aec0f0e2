"""Packaging metadata and the documents that ship (issue 14, packaging and
docs items): a LICENSE file with the SPDX license form in pyproject (and no
setuptools deprecation warning from `pip install .`), the 3.11-3.13
classifiers, a CHANGELOG, an sdist manifest that carries the tests and the
docs, and user-facing texts that point at pages that exist instead of
files that do not ship (SPEC.md, STYLE.md, BENCHMARKS.md, "the article").

The wheel (manylinux, installed without a compiler) and the sdist (the
suite passes from it) are checked by tools/check-wheel.sh (run by `make
wheel`) and tools/check-sdist.sh: they take minutes and need PyPI.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib

import pytest

import sharptask
import sharptask.bench
import sharptask.demo

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def _read(*parts):
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as f:
        return f.read()


def _pyproject():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)


def test_packaging_license_file_is_mit():
    """Issue 14 packaging: a LICENSE file, MIT as pyproject says, copyright
    the sharptask developers."""
    text = _read("LICENSE")
    assert text.startswith("MIT License")
    assert re.search(r"Copyright \(c\) \d{4} the sharptask developers", text)
    assert "WITHOUT WARRANTY OF ANY KIND" in text


def test_packaging_spdx_license_and_classifiers():
    """Issue 14 packaging: the SPDX form (`license = "MIT"`,
    `license-files`), no deprecated License classifier, classifiers for
    3.11, 3.12 and 3.13, and a setuptools that understands the SPDX form."""
    data = _pyproject()
    project = data["project"]
    assert project["license"] == "MIT"
    assert project["license-files"] == ["LICENSE"]
    classifiers = project["classifiers"]
    assert not [c for c in classifiers if c.startswith("License ::")]
    for version in ("3.11", "3.12", "3.13"):
        assert f"Programming Language :: Python :: {version}" in classifiers
    requires = data["build-system"]["requires"]
    assert any(re.fullmatch(r"setuptools>=(\d+)", r)
               and int(r.split(">=")[1]) >= 77 for r in requires), requires


@pytest.mark.timeout(300)
def test_packaging_pip_install_prints_no_deprecation_warning():
    """Issue 14 packaging: `pip install .` gives no setuptools deprecation
    warning (the license table and License classifiers gave three). pip
    prepares the metadata — where setuptools reads pyproject.toml and warns
    — in its isolated build environment, without compiling (--dry-run)."""
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps",
         "--disable-pip-version-check", "-v", "."],
        cwd=ROOT, capture_output=True, text=True, timeout=280)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "Would install sharptask" in out, out[-4000:]
    warned = [line for line in out.splitlines()
              if re.search(r"deprecat", line, re.I)
              and "pip" not in line.split(":")[0]]
    assert not warned, "\n".join(warned)


def test_packaging_changelog_names_this_version():
    """Issue 14 packaging: CHANGELOG.md exists and has an entry for the
    package's version."""
    text = _read("CHANGELOG.md")
    assert text.startswith("# Changelog")
    assert re.search(rf"^## {re.escape(sharptask.__version__)}\b", text,
                     re.M), sharptask.__version__


def test_packaging_manifest_carries_tests_and_docs():
    """Issue 14 packaging: the sdist manifest carries the tests, the docs
    sources, the C sources and the files the suite needs."""
    lines = {line.strip() for line in _read("MANIFEST.in").splitlines()}
    for needed in ("graft tests", "graft docs", "graft csrc",
                   "graft benchmarks", "graft tools"):
        assert needed in lines, needed
    include = " ".join(line for line in lines if line.startswith("include "))
    for name in ("LICENSE", "CHANGELOG.md", "Makefile", "setup.py"):
        assert name in include, name


def test_packaging_readme_starts_with_the_two_commands():
    """Issue 14 docs: the README still opens with exactly the two set-up
    commands."""
    assert _read("README.md").startswith("```sh\nmake demo\nmake test\n```\n")


_MISSING = re.compile(r"SPEC\.md|STYLE\.md|BENCHMARKS\.md|\b[Aa]rticle\b")


@pytest.mark.parametrize("what", ["README.md", "sharptask.__doc__",
                                  "sharptask/demo.py", "sharptask/bench.py"])
def test_docs_texts_point_at_pages_that_ship(what):
    """Issue 14 docs: the README, the module docstring, the demos and the
    bench runner no longer send readers to SPEC.md, STYLE.md, BENCHMARKS.md
    or "the article" (none ships); the pages they name do exist."""
    if what == "README.md":
        text = _read("README.md")
    elif what == "sharptask.__doc__":
        text = sharptask.__doc__
    else:
        module = sharptask.demo if "demo" in what else sharptask.bench
        with open(module.__file__, encoding="utf-8") as f:
            text = f.read()
    assert not _MISSING.findall(text), _MISSING.findall(text)
    for page in re.findall(r"docs/[\w/-]+\.md", text):
        if "NAME" in page:
            continue
        assert os.path.exists(os.path.join(ROOT, page)), page
