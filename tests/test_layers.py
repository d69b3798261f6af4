"""The package's layers: a module imports only from its own layer or the layers below it, so
the file tree reads bottom-up (data -> diffusion -> methods -> store -> scorers -> analysis ->
reports -> tools -> api -> cli) and a lower layer never needs a higher one. The toy world's lab
(world/) sits beside the library: bench never imports it, and it uses bench's public API only."""

import ast
from pathlib import Path

import bench
import bench.lab
import bench.plugin

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
LAB = ROOT / "world"

# Lowest first. A module belongs to the first entry that is it or a package above it.
LAYERS = [
    (
        "core",
        [
            "bench.errors",
            "bench.realness",
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
    # bench.plugin: what a method gets, so the built-in methods can import it as plugins do
    ("methods", ["bench.methods", "bench.plugin"]),
    ("store", ["bench.store"]),
    ("scorers", ["bench.scorers"]),
    ("analysis", ["bench.analysis"]),
    ("reports", ["bench.reports"]),
    ("study", ["bench.study"]),
    ("tools", ["bench.tools"]),
    ("api", ["bench.api", "bench.lab"]),
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
            found |= {a.name for a in node.names if a.name.split(".")[0] == "bench"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "bench":  # from bench import x: x may be a module
                found |= {f"bench.{a.name}" for a in node.names}
            elif node.module.startswith("bench."):
                found.add(node.module)
    return found


def test_every_module_has_a_layer():
    modules = [module_name(p) for p in BENCH.rglob("*.py")]
    assert [m for m in modules if m != "bench" and layer_of(m) is None] == []


# bench.plugin also offers plugin authors names of higher layers; it imports them on first use
# (bench.plugin._LOADED_ON_FIRST_USE), so that importing it pulls in nothing above the methods.
LOADED_ON_FIRST_USE = {"bench.plugin": set(bench.plugin._LOADED_ON_FIRST_USE.values())}


def test_imports_point_down_the_stack():
    upward = []
    for path in sorted(BENCH.rglob("*.py")):
        name = module_name(path)
        if name == "bench":  # the package facade re-exports the api lazily
            continue
        own = layer_of(name)
        targets = imported(ast.parse(path.read_text()), name)
        for target in targets - LOADED_ON_FIRST_USE.get(name, set()):
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
    higher one keeps its files. The lab keeps to its own folders too."""
    leaving = []
    for path in sorted([*BENCH.rglob("*.py"), *(LAB / "bench_world").rglob("*.py")]):
        name = module_name(path) if path.is_relative_to(BENCH) else str(path.relative_to(ROOT))
        for node in ast.walk(ast.parse(path.read_text())):
            steps = _steps_up(node)
            if steps is not None and steps > 1 and name not in LEAVES_ITS_FOLDER:
                leaving.append(f"{name}:{node.lineno} climbs {steps} folders from its file")
    assert leaving == []


# What the lab may use of bench: the API (`bench.X` for X in bench.__all__) and two facades.
PUBLIC = {"bench": set(bench.__all__), "bench.lab": set(bench.lab.__all__)}
PUBLIC["bench.plugin"] = set(bench.plugin.__all__)


def _uses_of_bench(tree: ast.AST) -> list[tuple[int, str, str]]:
    """(line, module, name) for every name the code takes from bench: `from M import name`,
    and `bench.name` after `import bench`."""
    uses = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] == "bench":
                uses += [(node.lineno, node.module, a.name) for a in node.names]
        elif isinstance(node, ast.Import):
            uses += [
                (node.lineno, a.name, "")
                for a in node.names
                if a.name.split(".")[0] == "bench" and a.name not in PUBLIC
            ]
        elif isinstance(node, ast.Attribute) and getattr(node.value, "id", None) == "bench":
            uses.append((node.lineno, "bench", node.attr))
    return uses


def test_bench_never_imports_the_lab():
    """The library runs without the lab installed: no module of bench imports bench_world."""
    found = []
    for path in sorted(BENCH.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                targets = [node.module or ""]
            else:
                continue
            found += [f"{module_name(path)} imports {t}" for t in targets if t.startswith("bench_")]
    assert found == []


def test_the_lab_uses_only_benchs_public_api():
    """Every name the lab (package and benchmarks) takes from bench is in `bench.__all__`,
    `bench.lab.__all__` or `bench.plugin.__all__`: no internal module, no private name."""
    outside = [
        f"{path.relative_to(ROOT)}:{line} uses {module}" + (f".{name}" if name else "")
        for path in sorted(LAB.rglob("*.py"))
        for line, module, name in _uses_of_bench(ast.parse(path.read_text()))
        if module not in PUBLIC or name not in PUBLIC[module]
    ]
    assert outside == []


BUILT_IN_METHODS = sorted(
    p for p in (BENCH / "methods").glob("*.py") if p.stem not in ("__init__", "protocol", "limits")
)


def test_built_in_methods_import_from_bench_plugin_only():
    """A built-in method is written as a plugin is (docs/PLUGINS.md): everything it takes from
    bench comes from `bench.plugin`, so a plugin author can copy one and it still works."""
    assert len(BUILT_IN_METHODS) == 4  # dreambooth_lora, textual_inversion, base, real
    outside = [
        f"{path.name}:{line} uses {module}.{name}"
        for path in BUILT_IN_METHODS
        for line, module, name in _uses_of_bench(ast.parse(path.read_text()))
        if module != "bench.plugin" or name not in PUBLIC["bench.plugin"]
    ]
    assert outside == []


def test_importing_a_method_loads_nothing_above_the_methods_layer():
    """bench.plugin's higher names (the conformance check, the scorer protocol) load on first
    use: a fresh interpreter that imports every built-in method holds no module above them."""
    import subprocess
    import sys

    names = [f"bench.methods.{p.stem}" for p in BUILT_IN_METHODS]
    code = f"import sys\nfor m in {names!r}: __import__(m)\nprint('\\n'.join(sys.modules))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    methods_rank = [name for name, _ in LAYERS].index("methods")
    above = [m for m in loaded if (layer_of(m) or 0) > methods_rank]
    assert above == []
    assert "bench.plugin" in loaded
