"""The README's code runs exactly as written, read from README.md (never copied into this file).

The same holds for the command-line guide, docs/guide/cli.md. Every fenced block of these pages that
holds code to run (```bash, ```python) is one of:

* ```python: run as a script in a fresh interpreter (an empty folder, a fresh cache); the quickstart
  snippet between the ``<!-- quickstart: start/end -->`` markers is one of them;
* ```bash preceded by a marker comment saying what happens to it:

  ``<!-- readme-test: run ... -->``
      each command is run by bash in an empty folder and must exit 0 without a traceback;
  ``<!-- readme-test: server ... -->``
      each command (a server that runs until stopped) is started from the repository's root,
      must print its 127.0.0.1 address and answer on it, and is stopped with Ctrl-C (SIGINT);
  ``<!-- readme-test: ci REASON -->``
      run by CI (.ci/run), which must hold each of its lines verbatim;
  ``<!-- readme-test: skip REASON -->``
      not run, for the reason given (which must not be empty).

A ```bash block without a marker, an unknown marker, or a fenced block without a language fails
the inventory test, so nothing is skipped silently.
"""

from __future__ import annotations

import os
import re
import signal
import ssl
import subprocess
import urllib.error
import urllib.request
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = (README, ROOT / "docs" / "guide" / "cli.md")  # pages held to the marker convention
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.S | re.M)
MARKER = re.compile(r"<!--\s*readme-test:\s*(\S+)\s*(.*?)\s*-->\s*\Z", re.S)
MODES = ("run", "server", "ci", "skip")
CODE = ("bash", "python")  # languages whose blocks are code to run (toml etc. are data)


@dataclass(frozen=True)
class Block:
    page: str  # path relative to the repository
    language: str
    code: str
    line: int  # 1-based line of the opening fence
    offset: int  # character offset of the opening fence
    mode: str | None  # the marker's mode (bash blocks), None without a marker
    reason: str

    @property
    def commands(self) -> list[str]:
        """The block's commands: one per line, backslash continuations joined, blank lines dropped."""
        return [c for c in re.sub(r"\\\n", " ", self.code).splitlines() if c.strip()]


def readme_blocks(text: str, page: str = "README.md") -> list[Block]:
    """Every fenced block of a Markdown text, with the readme-test marker just above it (if any)."""
    blocks = []
    for m in FENCE.finditer(text):
        before = text[: m.start()].rstrip()
        marker = MARKER.search(before[before.rfind("\n") + 1:] if "\n" in before else before)
        blocks.append(Block(page, m.group(1).strip(), m.group(2), text.count("\n", 0, m.start()) + 1, m.start(),
                            marker.group(1) if marker else None, marker.group(2) if marker else ""))
    return blocks


BLOCKS = [b for page in PAGES
          for b in readme_blocks(page.read_text(encoding="utf-8"), str(page.relative_to(ROOT)))]


def _blocks(language: str, mode: str | None = None, page: str | None = None) -> list[Block]:
    return [b for b in BLOCKS
            if b.language == language and (mode is None or b.mode == mode) and (page is None or b.page == page)]


def _commands(mode: str, page: str | None = None) -> list[tuple[str, str]]:
    """``(where, command)`` of every command of the bash blocks marked ``mode``."""
    return [(f"{b.page} line {b.line}", c) for b in _blocks("bash", mode, page) for c in b.commands]


def _env(tmp_path: Path) -> dict[str, str]:
    """The environment of a user who ran the README's set-up: this interpreter's bin first, a fresh cache."""
    env = {k: v for k, v in os.environ.items() if k not in ("CONNECTOMIX_CONFIG", "COLUMNS")}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["CONNECTOMIX_CACHE_DIR"] = str(tmp_path / "cache")
    env["MPLBACKEND"] = "Agg"
    return env


def _http_status(url: str) -> int:
    """The HTTP status a server answers ``url`` with (its certificate is the emulator's own, not checked)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=30, context=context) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


# -- the inventory: nothing is skipped silently -------------------------------------------------------------


def test_the_parser_reads_markers_and_languages():
    text = ("intro\n\n<!-- readme-test: skip needs data -->\n```bash\nconnectomix x \\\n  --y\n\nls\n```\n\n"
            "```python\nprint(1)\n```\n\n<!-- readme-test: run -->\n\n```bash\nls\n```\n```\nplain\n```\n")
    blocks = readme_blocks(text)
    assert [(b.page, b.language, b.mode, b.reason)[1:] for b in blocks] == [
        ("bash", "skip", "needs data"), ("python", None, ""), ("bash", "run", ""), ("", None, "")]
    assert blocks[0].commands == ["connectomix x    --y", "ls"] and blocks[0].line == 4


def test_every_readme_code_block_is_run_or_marked_with_a_reason():
    problems = []
    for b in BLOCKS:
        where = f"{b.page} line {b.line}"
        if not b.language:
            problems.append(f"{where}: a fenced block without a language (```bash, ```python, ```toml ...)")
        elif b.language in ("sh", "shell", "console", "py"):
            problems.append(f"{where}: write ```bash or ```python so the block is run (or marked)")
        elif b.language == "bash" and b.mode not in MODES:
            problems.append(f"{where}: a ```bash block needs <!-- readme-test: MODE --> above it, MODE one of "
                            f"{MODES}; got {b.mode!r}")
        elif b.mode in ("skip", "ci") and not b.reason:
            problems.append(f"{where}: readme-test: {b.mode} needs a reason")
        elif b.language == "python" and b.mode not in (None, "skip"):
            problems.append(f"{where}: python blocks always run (or are marked skip with a reason)")
    assert not problems, "\n".join(problems)
    # the README has what this file runs: the quickstart, command-line examples and both emulators
    readme = "README.md"
    assert len(_commands("run", readme)) >= 5 and len(_commands("server", readme)) == 2
    assert len(_commands("ci", readme)) == 2 and len(_commands("run", "docs/guide/cli.md")) >= 5


def test_ci_runs_the_set_up_commands_verbatim():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    # each as a line of its own, as written, optionally followed by "|| exit 1" (set -e does not stop at a
    # failing command before the last "&&" of a list, so .ci/run stops explicitly)
    lines = {line.strip().removesuffix("|| exit 1").strip() for line in ci}
    missing = [c for _, c in _commands("ci") if c.strip() not in lines]
    assert not missing, f".ci/run does not run these README commands as written: {missing}"


# -- the quickstart and every other python block -----------------------------------------------------------


def test_the_quickstart_is_a_python_block_of_the_readme():
    text = README.read_text(encoding="utf-8")
    start = text.index("<!-- quickstart: start")
    end = text.index("<!-- quickstart: end -->")
    inside = [b for b in BLOCKS if b.page == "README.md" and start < b.offset < end]
    assert [b.language for b in inside] == ["python"] and inside[0].mode is None
    assert "connectomix.open(" in inside[0].code


PYTHON = [b for b in _blocks("python") if b.mode is None]


@pytest.mark.parametrize("block", PYTHON, ids=[f"{Path(b.page).stem}-line{b.line}" for b in PYTHON])
def test_python_block_runs_as_written(block, tmp_path):
    script = tmp_path / "readme_block.py"
    script.write_text(block.code, encoding="utf-8")
    run = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=_env(tmp_path), capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, f"{block.page} line {block.line}:\n{run.stderr[-3000:]}"


# -- the command-line examples ---------------------------------------------------------------------------


RUN = list({c: (where, c) for where, c in reversed(_commands("run"))}.values())[::-1]  # each command once


@pytest.mark.parametrize("where, command", RUN, ids=[c.split("#")[0].strip()[:60] for _, c in RUN])
def test_command_runs_as_written(where, command, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    run = subprocess.run(["bash", "-c", command], cwd=work, env=_env(tmp_path), capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, f"{where} (the block's fence): {command}\n{run.stdout[-2000:]}{run.stderr}"
    assert "Traceback" not in run.stderr
    assert run.stdout.strip() or "-o " in command  # it printed its answer, or wrote it to a file
    for output in re.findall(r"-o\s+(\S+)", command):  # what -o names was written, and is not empty
        assert (work / output).is_file() and (work / output).stat().st_size > 0, output


# -- the emulators ---------------------------------------------------------------------------------------

SERVERS = _commands("server")


@pytest.mark.parametrize("where, command", SERVERS, ids=[c.split()[2] for _, c in SERVERS])
def test_server_command_serves_until_stopped(where, command, tmp_path):
    # Ctrl-C as in a terminal: SIGINT's default action restored (a background test run may have it ignored,
    # and a process that starts with SIGINT ignored never sees KeyboardInterrupt)
    proc = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=ROOT, env=_env(tmp_path), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen = []
    try:
        deadline = time.monotonic() + 120
        url = None
        while url is None and time.monotonic() < deadline:
            out = proc.stdout.readline()
            if not out and proc.poll() is not None:
                break
            seen.append(out)
            found = re.search(r"https?://127\.0\.0\.1:\d+", out)
            url = found.group(0) if found else None
        assert url, f"{where}: {command} printed no 127.0.0.1 address:\n{''.join(seen)}"
        assert _http_status(url) > 0  # it answers HTTP(S) on the address it printed (any status: no token sent)
        assert proc.poll() is None, "the server stopped by itself"
        proc.send_signal(signal.SIGINT)  # Ctrl-C, as its output says
        assert proc.wait(timeout=90) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        proc.stdout.close()
