"""Named sections of docs/benchmarks.md that each benchmark script owns and rewrites alone."""

from __future__ import annotations

import re
from pathlib import Path

from bench.env import DOC_PATH


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- begin {name} -->", f"<!-- end {name} -->"


def write_section(name: str, text: str, path: Path = DOC_PATH) -> None:
    """Replace section ``name`` (or append it) in the benchmarks document."""
    begin, end = _markers(name)
    block = f"{begin}\n{text.rstrip()}\n{end}"
    doc = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    doc = (
        pattern.sub(lambda _: block, doc) if pattern.search(doc) else doc.rstrip() + "\n\n" + block
    )
    path.write_text(doc.rstrip() + "\n")


def keep_sections(new_doc: str, path: Path = DOC_PATH) -> str:
    """``new_doc`` with the named sections of the current document carried over."""
    if not path.exists():
        return new_doc
    found = re.findall(r"<!-- begin [\w-]+ -->.*?<!-- end [\w-]+ -->", path.read_text(), re.S)
    return new_doc.rstrip() + ("\n\n" + "\n\n".join(found) if found else "") + "\n"
