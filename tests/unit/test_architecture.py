"""The folders import only downwards, as docs/architecture.md draws them."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "exporter"
# Foundation first; a module may import from its own room and the rooms before it.
ROOMS = (
    "core", "catalog", "exposition", "director", "tickets", "ha", "config", "service", "web", "cli",
)
TOP = {"cli": "cli", "demo": "cli", "__main__": "cli", "config": "config"}


def room(module: str) -> str:
    """Return the room of a dotted module name under exporter."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] == "__init__":
        return "core"  # exporter itself holds only __version__
    return TOP.get(parts[1], parts[1])


def imports(path: Path) -> list[str]:
    """Return the exporter modules a file imports, lazily or not."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("exporter"):
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.startswith("exporter")]
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_lives_in_a_known_room() -> None:
    """A new folder must be placed in the order before code lands in it."""
    for path in MODULES:
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        assert room(module) in ROOMS, f"{module}: add its folder to ROOMS and the docs"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path: Path) -> None:
    """No room imports a room above it, so the data path reads top to bottom."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    mine = ROOMS.index(room(module))
    upward = [m for m in imports(path) if ROOMS.index(room(m)) > mine]
    assert not upward, f"{module} ({room(module)}) imports {upward}"


def test_the_check_can_fail() -> None:
    """An upward import is caught (the rule above is not vacuous)."""
    assert ROOMS.index(room("exporter.web.app")) > ROOMS.index(room("exporter.catalog.reader"))
    assert room("exporter.service.poller") == "service" and room("exporter.cli") == "cli"


def test_no_module_is_over_400_lines() -> None:
    """Small modules a newcomer can read in one go."""
    long = {str(p.relative_to(PACKAGE)): n for p in MODULES
            if (n := len(p.read_text().splitlines())) > 400}
    assert not long
