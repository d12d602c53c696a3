"""Every ```python block of the documentation pages runs as written.

Blocks of one page run in order in one namespace, like cells of a notebook,
against the embedded sample or an emulator the block starts itself. Blocks
fenced as ```py are for real servers (they need a network and a token) and are
not run; the docs say so next to each of them.
"""

import os
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).parent.parent / "docs"
PAGES = sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.parts and "examples" not in p.parts)
BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)


def python_blocks(text: str) -> list[str]:
    """The ```python blocks of a Markdown page, in order."""
    return BLOCK.findall(text)


def test_blocks_are_found():
    fenced = "```python\nx = 1\n```\n\n```py\nnot run\n```\n\n```python\ny = x\n```\n"
    assert python_blocks(fenced) == ["x = 1\n", "y = x\n"]
    assert len(PAGES) >= 10, PAGES
    assert sum(len(python_blocks(p.read_text(encoding="utf-8"))) for p in PAGES) >= 15


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(DOCS)) for p in PAGES])
def test_page_snippets_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CONNECTOMIX_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("CONNECTOMIX_CONFIG", raising=False)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict = {"__name__": f"docs_{page.stem}"}
    environment = dict(os.environ)
    for number, block in enumerate(python_blocks(page.read_text(encoding="utf-8")), 1):
        code = compile(block, f"{page.relative_to(DOCS)} (python block {number})", "exec")
        exec(code, namespace)  # noqa: S102 - the documentation's own examples
    # a page's examples leave the process's environment as they found it (a REQUESTS_CA_BUNDLE left
    # naming a stopped emulator's deleted certificate broke every later HTTPS request of the test run)
    assert dict(os.environ) == environment, sorted(set(os.environ.items()) ^ set(environment.items()))
