"""Where the files that ship beside the code (migrations, JSON Schemas) are found.

A wheel carries them inside the package (`cockpit/_shipped/...`, see pyproject.toml); a source
checkout or an editable install keeps them at the top of the repository.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def shipped_dir(name: str) -> Path:
    """Return the directory `name` (``migrations`` or ``schemas``), installed or in the checkout."""
    inside = _PACKAGE_DIR / "_shipped" / name
    if inside.is_dir():
        return inside
    return _PACKAGE_DIR.parent / name
