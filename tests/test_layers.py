"""The package's layers: a module imports only from its own layer or the layers below it, so
the file tree reads bottom-up (data -> diffusion -> methods -> store -> scorers -> analysis ->
reports -> tools -> world -> api -> cli) and a lower layer never needs a higher one."""

import ast
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"

# Lowest first. A module belongs to the first entry that is it or a package above it.
LAYERS = [
    (
        "core",
        [
            "bench.errors",
            "bench.paths",
            "bench.progress",
            "bench.registry",
            "bench.config",
            "bench.toml_files",
            "bench.atomic",
            "bench.images",
            "bench.assets",
        ],
    ),
    ("data", ["bench.data"]),
    ("diffusion", ["bench.diffusion"]),
    ("methods", ["bench.methods"]),
    ("store", ["bench.store"]),
    ("scorers", ["bench.scorers"]),
    ("analysis", ["bench.analysis"]),
    ("reports", ["bench.reports"]),
    ("tools", ["bench.tools"]),
    ("world", ["bench.world"]),
    ("api", ["bench.api", "bench.plugin"]),
    ("cli", ["bench.cli", "bench.__main__"]),
]


def layer_of(module: str) -> int | None:
    for rank, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    return None


def module_name(path: Path) -> str:
    parts = path.relative_to(BENCH.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(tree: ast.AST, package: str) -> set[str]:
    """Every bench module a file imports, at any depth (lazy imports count)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("bench")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "bench":  # from bench import x: x may be a module
                found |= {f"bench.{a.name}" for a in node.names}
            elif node.module.startswith("bench."):
                found.add(node.module)
    return found


def test_every_module_has_a_layer():
    modules = [module_name(p) for p in BENCH.rglob("*.py")]
    assert [m for m in modules if m != "bench" and layer_of(m) is None] == []


def test_imports_point_down_the_stack():
    upward = []
    for path in sorted(BENCH.rglob("*.py")):
        name = module_name(path)
        if name == "bench":  # the package facade re-exports the api lazily
            continue
        own = layer_of(name)
        for target in imported(ast.parse(path.read_text()), name):
            rank = layer_of(target)
            if rank is not None and rank > own:
                upward.append(f"{name} ({LAYERS[own][0]}) imports {target} ({LAYERS[rank][0]})")
    assert upward == []


def _package_of(module: str) -> str:
    """bench.scorers.clip -> bench.scorers; bench.paths -> bench."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 or (BENCH / parts[-1]).is_dir() else parts[0]


def test_no_private_name_is_imported_from_another_package():
    """A name with a leading underscore is its package's own: another package that needs it
    asks for a public one."""
    crossing = []
    for path in sorted(BENCH.rglob("*.py")):
        name = module_name(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if not node.module.startswith("bench.") or node.module.startswith("__"):
                    continue
                if _package_of(node.module) == _package_of(name):
                    continue
                crossing += [f"{name} imports {node.module}.{a.name}" for a in node.names
                             if a.name.startswith("_")]  # fmt: skip
    assert crossing == []


# Modules allowed to build a path above their own folder, and why.
LEAVES_ITS_FOLDER = {
    "bench.store.layout": "the checkout's git commit, for provenance",
}


def _steps_up(node: ast.AST) -> int | None:
    """How many folders up from the module's own file a `Path(__file__)...` expression climbs
    (`.parent`: 1, `.parents[i]`: i + 1), or None when it does not start at `__file__`."""
    if isinstance(node, ast.Name):
        return 0 if node.id == "__file__" else None
    if isinstance(node, ast.Call):  # Path(__file__), .resolve()
        if node.args:
            return _steps_up(node.args[0])
        return _steps_up(node.func.value) if isinstance(node.func, ast.Attribute) else None
    if isinstance(node, ast.Attribute):
        below = _steps_up(node.value)
        return None if below is None else below + (node.attr == "parent")
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute):
        below = _steps_up(node.value.value)
        index = node.slice.value if isinstance(node.slice, ast.Constant) else None
        if below is not None and node.value.attr == "parents" and isinstance(index, int):
            return below + index + 1
    return None


def test_no_module_reaches_into_another_packages_folder():
    """A module finds files in its own folder only (`Path(__file__).parent`); the shipped
    model files are read through `bench.assets`, so that no lower layer depends on where a
    higher one keeps its files."""
    leaving = []
    for path in sorted(BENCH.rglob("*.py")):
        name = module_name(path)
        for node in ast.walk(ast.parse(path.read_text())):
            steps = _steps_up(node)
            if steps is not None and steps > 1 and name not in LEAVES_ITS_FOLDER:
                leaving.append(f"{name}:{node.lineno} climbs {steps} folders from its file")
    assert leaving == []
