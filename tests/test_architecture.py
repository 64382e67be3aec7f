"""The layer contracts of pyproject.toml ([tool.importlinter]) hold: `lint-imports` passes.

Layers, highest first, are listed in `cockpit/__init__.py`; a module imports only from layers
below its own, so an upward import (and with it an import cycle between packages) fails here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_are_kept() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_package_has_an_init() -> None:
    missing = [
        str(d.relative_to(ROOT))
        for d in (ROOT / "cockpit").rglob("*")
        if d.is_dir() and d.name != "__pycache__" and any(d.glob("*.py")) and not (d / "__init__.py").exists()
    ]
    assert not missing, f"directories of modules without __init__.py: {missing}"
