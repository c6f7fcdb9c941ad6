"""A page never imports another page (ARCHITECTURE.md): what two pages share lives in a
component module (frontend/components.py, forms.py, jobs.py), so each page stays
self-contained. Checked on the source with ``ast``, over every module under frontend/pages/
(a page split into a package, like new_job, may import its own modules)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PAGES = Path(__file__).resolve().parents[2] / "frontend" / "pages"
PACKAGE = "frontend.pages"


def page_names() -> set[str]:
    """The pages: every module and package directly under frontend/pages/."""
    names = {p.stem for p in PAGES.glob("*.py") if p.name != "__init__.py"}
    return names | {p.name for p in PAGES.iterdir() if (p / "__init__.py").is_file()}


def module_of(path: Path) -> str:
    parts = path.relative_to(PAGES).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join((PACKAGE, *parts))


def imported(source: str, module: str, is_package: bool = False) -> list[str]:
    """Every module the ``source`` of ``module`` imports, absolute; ``from P import n`` also
    counts as ``P.n`` (``n`` may be a module)."""
    package = module if is_package else module.rpartition(".")[0]
    names: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = ".".join(parts[: len(parts) - node.level + 1])
                base = f"{anchor}.{base}" if base else anchor
            names.append(base)
            names += [f"{base}.{alias.name}" for alias in node.names]
    return names


def imports_of(path: Path) -> list[str]:
    return imported(path.read_text(), module_of(path), path.name == "__init__.py")


def page_of(module: str) -> str | None:
    """The page a module belongs to (``frontend.pages.new_job.train`` -> "new_job")."""
    if not module.startswith(f"{PACKAGE}."):
        return None
    return module[len(PACKAGE) + 1 :].split(".")[0]


SOURCES = sorted(p for p in PAGES.rglob("*.py") if p != PAGES / "__init__.py")


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PAGES)))
def test_a_page_imports_no_other_page(path: Path) -> None:
    own, pages = page_of(module_of(path)), page_names()
    others = sorted({m for m in imports_of(path) if page_of(m) in pages and page_of(m) != own})
    assert others == [], f"{path.relative_to(PAGES.parents[1])} imports another page: {others}"


def test_the_pages_package_itself_imports_no_page() -> None:
    init = PAGES / "__init__.py"
    assert not [m for m in imports_of(init) if page_of(m) in page_names()]


def test_the_check_sees_every_form_of_a_page_import() -> None:
    source = (
        "from frontend.pages import prune\n"
        "from .. import overview\n"
        "import frontend.pages.upload\n"
        "from ..compare import parse_class\n"
        "from .common import PREFIX\n"
        "from frontend.components import notice\n"
    )
    found = imported(source, "frontend.pages.new_job.train")
    pages = {page_of(m) for m in found} - {None}
    assert pages == {"prune", "new_job", "overview", "upload", "compare"}
    # a page package's own modules are its own
    assert page_of("frontend.pages.new_job.common") == "new_job"
