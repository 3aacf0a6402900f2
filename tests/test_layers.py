"""The package's import structure, read from the source with `ast` (nothing is imported).

Layers, lowest first (docs/architecture.md, "Layers, and the one import rule"); a module
may import its own layer and the layers below, never above:

     0  errors
     1  config                       dataclasses, YAML, overrides
     2  layers losses cpu distributed runs ema diagnostics diagnostics_panel figures
                                     building blocks that know no data set or model
     3  data                         data sets; DataInfo
     4  metrics                      functions over features; feature networks
     5  models                       MODELS and the five models
     6  report                       the run's page
     7  trainer                      setup(cfg) -> Engine, the loop
     8  api                          train, resume, load_run, build_config
     9  evaluate compare bench translate theory
                                     tools built on the api
    10  cli __main__ gankit          the command and the package's re-exports

A subpackage's modules share its layer (gankit.data.text is layer 3). `from gankit import
build_config` counts as an import of the module the package re-exports it from (api).

The checks: (a) the module-level imports between gankit modules have no cycle; (b) no
import, module-level or inside a function, points up a layer; (c) every import inside a
function says why it is there, in a comment on its line or the line above (an optional
dependency, start-up time, ...): a bare one belongs at the top of the module.
"""
from __future__ import annotations

import ast
import inspect
import tokenize
from pathlib import Path

import gankit

ROOT = Path(gankit.__file__).parent

LAYERS = [
    ["errors"],
    ["config"],
    ["layers", "losses", "cpu", "distributed", "runs", "ema", "diagnostics", "diagnostics_panel", "figures"],
    ["data"],
    ["metrics"],
    ["models"],
    ["report"],
    ["trainer"],
    ["api"],
    ["evaluate", "compare", "bench", "translate", "theory"],
    ["cli", "__main__", ""],
]
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}


def _name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(p): p for p in sorted(ROOT.rglob("*.py"))}
TREES = {m: ast.parse(p.read_text(encoding="utf-8")) for m, p in MODULES.items()}


def _layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else ""
    assert top in LAYER, f"{module}: no layer in tests/test_layers.py; add it to LAYERS"
    return LAYER[top]


def _reexports(package: str) -> dict[str, str]:
    """Names a package's __init__ imports from its modules: {name: defining module}."""
    out = {}
    for node in TREES[package].body:
        if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module:
            for alias in node.names:
                out[alias.asname or alias.name] = f"{package}.{node.module}"
    return out


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The gankit modules an import statement in `module` loads."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names if a.name.split(".")[0] == "gankit"]
    if node.level == 0:
        base = node.module or ""
        if base.split(".")[0] != "gankit":
            return []
    else:
        package = module.split(".") if MODULES[module].name == "__init__.py" else module.split(".")[:-1]
        base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
    out = []
    for alias in node.names:
        if f"{base}.{alias.name}" in MODULES:            # `from . import data`
            out.append(f"{base}.{alias.name}")
        elif base in MODULES and MODULES[base].name == "__init__.py" and base != module:
            out.append(_reexports(base).get(alias.name, base))  # `from . import build_config`
        else:
            out.append(base)
    return [t for t in out if t != module]


def _imports(module: str, where: str):
    """(line, target) for each gankit import at module level ("top") or inside a function ("function")."""
    tree = TREES[module]
    if where == "top":
        nodes = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    else:
        nodes = [n for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                 for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))]
    return [(n.lineno, t) for n in nodes for t in _targets(module, n)]


def _graph() -> dict[str, set[str]]:
    """Module-level import edges; importing gankit.data.text also runs gankit/data/__init__.py."""
    graph = {m: set() for m in MODULES}
    for m in MODULES:
        for _, target in _imports(m, "top"):
            graph[m].add(target)
            parts = target.split(".")
            for i in range(2, len(parts)):
                parent = ".".join(parts[:i])
                if not m.startswith(parent + ".") and m != parent:
                    graph[m].add(parent)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` as a path [a, b, ..., a], or None (depth-first search)."""
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for t in sorted(graph.get(m, ())):
            if state.get(t) == "open":
                return stack[stack.index(t):] + [t]
            if t not in state and (found := visit(t)):
                return found
        stack.pop()
        state[m] = "done"
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_no_import_cycle():
    cycle = _cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_import_points_up_a_layer():
    up = [f"{MODULES[m].relative_to(ROOT.parent)}:{line} imports {t} (layer {_layer(t)} > {_layer(m)})"
          for m in MODULES for where in ("top", "function") for line, t in _imports(m, where)
          if _layer(t) > _layer(m)]
    assert not up, "imports that point up a layer:\n" + "\n".join(up)


def test_function_level_imports_say_why():
    bare = []
    for m, path in MODULES.items():
        with path.open("rb") as f:
            commented = {t.start[0] for t in tokenize.tokenize(f.readline) if t.type == tokenize.COMMENT}
        for f in ast.walk(TREES[m]):
            if not isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for n in ast.walk(f):
                if isinstance(n, (ast.Import, ast.ImportFrom)) and not (
                        commented & set(range(n.lineno - 1, n.end_lineno + 1))):
                    bare.append(f"{path.relative_to(ROOT.parent)}:{n.lineno}: {ast.unparse(n)}")
    assert not bare, "function-level imports with no reason (move them up, or say why):\n" + "\n".join(sorted(set(bare)))


def test_the_checks_see_what_they_look_for():
    """The parser resolves relative and re-exported imports, and the search finds a cycle."""
    assert "gankit.config" in {t for _, t in _imports("gankit.data.text", "top")}  # from ..config import
    assert "gankit.api" in {t for _, t in _imports("gankit", "top")}
    assert _layer("gankit.data.text") == LAYER["data"] and _layer("gankit") == LAYER["cli"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_submodule_shadows_a_package_export():
    """Importing a submodule sets it as an attribute of its package: a submodule named like a
    function the package exports (metrics/fid.py vs metrics.fid) would replace the function."""
    import importlib
    import pkgutil

    import gankit
    for info in pkgutil.walk_packages(gankit.__path__, "gankit."):
        if not info.name.endswith("__main__"):  # (that one runs the CLI)
            importlib.import_module(info.name)
    for pkg_name in ("gankit", "gankit.metrics", "gankit.data", "gankit.models", "gankit.theory"):
        pkg = importlib.import_module(pkg_name)
        for name in getattr(pkg, "__all__", []):
            assert not inspect.ismodule(getattr(pkg, name)), f"{pkg_name}.{name} is shadowed by a submodule"
