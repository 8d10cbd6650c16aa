"""Sphinx configuration: the HTML site and the ``jobstamp(1)`` manual page, from one source."""

from __future__ import annotations

import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path[:0] = [str(DOCS / "ext"), str(ROOT)]

from jobstamps._version import __version__  # noqa: E402 - needs the path set above

project = "jobstamps"
author = "The jobstamps developers"
release = __version__
version = ".".join(__version__.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "jobstamps_docs",
]

exclude_patterns = ["_build", "man", "**/*.inc"]
# A shell session, a CMakeLists.txt, a makefile: highlight what Pygments knows, quietly.
highlight_language = "text"
suppress_warnings = ["misc.highlighting_failure"]

# Options and shell words stay as typed: "--use-hashes", not an en dash.
smartquotes = False

html_theme = "furo"
html_title = f"jobstamps {release}"

autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_google_docstring = False


def _release_date() -> str:
    """Return this release's date in the changelog, so the manual page is the same every day."""
    text = (DOCS / "changelog.rst").read_text(encoding="utf-8")
    found = re.search(rf"^{re.escape(release)} \((\d{{4}}-\d\d-\d\d)\)$", text, re.MULTILINE)
    return found.group(1) if found else ""


today = _release_date()
copyright = f"{today[:4]}, {author}"  # noqa: A001 - the name Sphinx reads
man_pages = [
    (
        "reference/cli",
        "jobstamp",
        "run a command, or replay its stored output if nothing it depends on changed",
        [author],
        1,
    ),
]
man_show_urls = False
