"""Every document and every line of code cites only what the repository holds.

- No tracked ``.py``/``.md``/``.toml`` file names a document kept outside the repository (the
  agent protocol notes and API references the project was first built from): readers of the
  repository cannot open them.
- The Agent API is described in ``docs/agent-api.md``; every section cited as
  ``docs/agent-api.md §N`` (or ``§N.M``), and every bare ``§N`` in a file that cites that
  document, must be a numbered heading there (``## N. ...``, ``### N.M ...``)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AGENT_DOC = "docs/agent-api.md"
SUFFIXES = (".py", ".md", ".toml")

# Spelled in pieces so that this file does not name them itself.
FORBIDDEN = (
    "ftagent-" + "protocol",
    "../" + "shared/",
    "/work/" + "shared",
    "seed-" + "api-reference",
    "rest-" + "api-facts",
)

_HEADING = re.compile(r"^#{2,4} (\d+(?:\.\d+)*)\.? ", re.MULTILINE)
_SECTION = re.compile(r"§(\d+(?:\.\d+)*)")


def _tracked() -> list[str]:
    """Tracked files with one of ``SUFFIXES`` (every such file outside ``.venv`` when this is
    not a git checkout)."""
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=30
        ).stdout.decode()
        names = [n for n in out.split("\0") if n]
    except (OSError, subprocess.SubprocessError):
        names = [
            p.relative_to(ROOT).as_posix()
            for p in ROOT.rglob("*")
            if p.is_file() and not {".venv", ".git"} & set(p.relative_to(ROOT).parts)
        ]
    return sorted(
        n
        for n in names
        if n.endswith(SUFFIXES) and not n.startswith(".venv/") and (ROOT / n).is_file()
    )


def _text(name: str) -> str:
    return (ROOT / name).read_text(encoding="utf-8", errors="replace")


def _sections() -> set[str]:
    return set(_HEADING.findall(_text(AGENT_DOC)))


def _lines(pattern: re.Pattern[str], text: str) -> list[tuple[int, str]]:
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in pattern.finditer(text)]


def test_no_file_points_outside_the_repository() -> None:
    found = []
    for name in _tracked():
        for number, line in enumerate(_text(name).splitlines(), 1):
            found += [f"{name}:{number}: {bad}" for bad in FORBIDDEN if bad in line]
    assert not found, "references to documents outside the repository:\n" + "\n".join(found)


def test_the_agent_api_document_has_numbered_sections() -> None:
    sections = _sections()
    assert {"1", "2", "3"} <= sections
    assert len(sections) >= 20


def test_every_cited_agent_api_section_exists() -> None:
    sections = _sections()
    missing = []
    for name in sorted({*_tracked(), AGENT_DOC}):
        text = _text(name)
        if name != AGENT_DOC and "agent-api.md" not in text:
            continue  # its § numbers, if any, are flagged by the next test
        # a file that cites the document: every § number in it is one of its sections
        missing += [
            f"{name}:{line}: §{section}"
            for line, section in _lines(_SECTION, text)
            if section not in sections
        ]
    assert not missing, f"sections cited but not in {AGENT_DOC}:\n" + "\n".join(missing)


def test_section_numbers_in_files_that_do_not_cite_the_document_are_flagged() -> None:
    """A bare ``§N`` in a file that never names ``docs/agent-api.md`` points at nothing a
    reader can find."""
    orphans = []
    for name in _tracked():
        text = _text(name)
        if "agent-api.md" in text:
            continue
        orphans += [f"{name}:{line}: §{section}" for line, section in _lines(_SECTION, text)]
    assert not orphans, "section numbers without their document:\n" + "\n".join(orphans)
