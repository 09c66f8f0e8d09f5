"""Every knob is documented: each server setting appears as its ``STRONGBOX_*`` variable in
the docs, and every doc the README lists exists."""

from __future__ import annotations

import re
from pathlib import Path

from strongbox.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def docs_text() -> str:
    return "\n".join(p.read_text() for p in sorted((ROOT / "docs").glob("*.md")))


def test_every_setting_is_documented() -> None:
    text = docs_text()
    missing = [f"STRONGBOX_{name.upper()}" for name in Settings.model_fields
               if f"STRONGBOX_{name.upper()}" not in text]
    assert missing == [], f"document these settings in docs/: {missing}"


def test_the_readme_links_only_to_docs_that_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\((docs/[^)#]+)", readme)
    assert links, "the README links to the docs"
    assert [link for link in links if not (ROOT / link).is_file()] == []
