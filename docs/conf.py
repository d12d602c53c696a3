"""Sphinx configuration of the connectomix documentation.

Build (warnings are errors; offline, every asset comes from installed packages)::

    pip install -e ".[docs]"
    python -m sphinx -W --keep-going -b html docs docs/_build/html

The example notebooks (``examples/``, linked as ``docs/examples``) are rendered
without running them: the test suite runs them (``tests/test_examples.py``).
``CONNECTOMIX_DOCS_EXECUTE=1`` runs them during the build as well (about a
minute; the third starts its own CAVE emulator on 127.0.0.1).
"""

import os
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "_ext"))

import connectomix  # noqa: E402 - after the path set-up

project = "connectomix"
author = "connectomix developers"
copyright = "connectomix developers"
release = connectomix.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_nb",
    "connectomix_docs",  # docs/_ext: command-line help and the catalogue table, generated from the code
]

exclude_patterns = ["_build", "**.ipynb_checkpoints", "Thumbs.db", ".DS_Store"]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
root_doc = "index"

# -- API reference (autodoc + autosummary + numpydoc) -------------------------------------
autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # numpydoc sections say the types; signatures stay readable
numpydoc_show_class_members = False  # autodoc's :members: documents them (no duplicate tables)
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks: set[str] = set()
# numpydoc drops a section it does not know ("Options", "Class attributes") with a Python warning
# only; make that fail the build like any Sphinx warning.
warnings.filterwarnings("error", category=UserWarning, module=r"numpydoc(\.|$)")

# -- Markdown and notebooks (MyST, myst-nb) -----------------------------------------------
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3
nb_execution_mode = "force" if os.environ.get("CONNECTOMIX_DOCS_EXECUTE") == "1" else "off"
nb_execution_timeout = 600
nb_execution_in_temp = True
nb_execution_raise_on_error = True
nb_merge_streams = True

# -- HTML ------------------------------------------------------------------------------
html_theme = "furo"  # its CSS, JavaScript and fonts ship in the wheel: nothing is fetched
html_title = f"connectomix {release}"
html_static_path: list[str] = []
html_show_sourcelink = False
