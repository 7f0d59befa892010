"""The documentation site stays consistent: the CLI reference matches the code, every page is in the
mkdocs nav (and every nav entry exists), and `mkdocs build --strict` passes (slow, when mkdocs is there)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _nav_pages(mkdocs_yml: str) -> list[str]:
    """The .md files named in the `nav:` block (plain text parsing: no YAML library needed)."""
    lines = mkdocs_yml.splitlines()
    start = next(i for i, line in enumerate(lines) if line.rstrip() == "nav:")
    pages = []
    for line in lines[start + 1 :]:
        if line and not line[0].isspace() and not line.startswith(("-", "#")):
            break  # the next top-level key
        pages += re.findall(r"([\w./-]+\.md)\s*$", line)
    return pages


def test_cli_reference_is_up_to_date(tmp_path):
    out = tmp_path / "cli.md"
    cmd = [sys.executable, str(ROOT / "scripts" / "gen_cli_docs.py"), "--output", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    expected = out.read_text(encoding="utf-8")
    assert "## `fsv2v synth`" in expected  # the generator really walked the app
    current = (DOCS / "cli.md").read_text(encoding="utf-8")
    assert current == expected, "docs/cli.md is out of date: run `python scripts/gen_cli_docs.py`"


def test_every_page_is_in_the_nav_and_every_nav_entry_exists():
    nav = _nav_pages((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    assert "index.md" in nav and "cli.md" in nav
    assert len(nav) == len(set(nav)), f"pages listed twice in the nav: {sorted(nav)}"
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    missing_from_nav = sorted(pages - set(nav))
    assert not missing_from_nav, f"add these pages to the nav in mkdocs.yml: {missing_from_nav}"
    missing_files = sorted(set(nav) - pages)
    assert not missing_files, f"mkdocs.yml's nav names pages that do not exist in docs/: {missing_files}"


def test_nav_parser_reads_nested_entries():
    text = (
        "site_name: x\nnav:\n  - Home: index.md\n  - Guide:\n      - Sub: guide/sub.md\nplugins:\n  - a.md\n"
    )
    assert _nav_pages(text) == ["index.md", "guide/sub.md"]


@pytest.mark.slow
@pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("mkdocs", "material", "mkdocstrings_handlers")),
    reason="needs the [docs] extra (mkdocs, mkdocs-material, mkdocstrings[python])",
)
def test_mkdocs_build_strict(tmp_path):
    cmd = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")]
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    assert done.returncode == 0, done.stderr[-4000:]
    assert (tmp_path / "site" / "api" / "index.html").is_file()
