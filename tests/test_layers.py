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
