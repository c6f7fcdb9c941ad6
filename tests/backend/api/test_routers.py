"""Routers stay thin and independent: no router module imports another (what two share lives
in backend/jobs/submit.py or a non-router module of backend/api)."""

from __future__ import annotations

import ast
from pathlib import Path

import backend.api.routes as routes_package

ROUTES = Path(routes_package.__file__).parent
PACKAGE = "backend.api.routes"


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in a router module, relative ones
    resolved against the routes package; ``from backend.api.routes import jobs`` counts as
    ``backend.api.routes.jobs``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = PACKAGE.rsplit(".", node.level - 1)[0] if node.level > 1 else PACKAGE
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            if module == PACKAGE:
                found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, module))
    return found


def test_no_router_imports_another_router():
    routers = sorted(p for p in ROUTES.glob("*.py") if p.name != "__init__.py")
    assert len(routers) >= 10  # the walk sees the real modules
    offences = [
        f"{path.name}:{line} imports {module}"
        for path in routers
        for line, module in imported_modules(path)
        if module.startswith(f"{PACKAGE}.") or module == PACKAGE
    ]
    assert offences == []


def test_the_walk_finds_every_form_of_router_import(tmp_path: Path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import backend.api.routes.jobs\n"
        "from backend.api.routes.models import model_public\n"
        "from backend.api.routes import datasets\n"
        "from .analyses import analysis_public\n"
        "from . import uploads\n"
        "def f():\n"
        "    from backend.api.routes.jobs import x\n"
        "from backend.api.public import model_public\n"
    )
    modules = [m for _, m in imported_modules(sample)]
    assert [m for m in modules if m.startswith(f"{PACKAGE}.")] == [
        "backend.api.routes.jobs",
        "backend.api.routes.models",
        "backend.api.routes.datasets",
        "backend.api.routes.analyses",
        "backend.api.routes.uploads",
        "backend.api.routes.jobs",
    ]
    assert "backend.api.public" in modules
