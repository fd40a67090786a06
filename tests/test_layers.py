"""The package's layers import downward only, and no module imports itself back (README, "How the code is laid out")."""

from __future__ import annotations

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "mmtok"

# Lower rank = lower layer. A module may import from its own layer or any layer of lower rank.
# Layers of equal rank are independent of each other and may not import one another.
LAYERS = {
    "base": 0,
    "tokenize": 1,
    "order": 1,
    "remote": 1,  # object storage (fsspec): fetch and cache store files
    "inputs": 2,
    "store": 3,
    "formats": 4,  # other stacks' token formats (Megatron, HF, nanoGPT, ...)
    "cache": 5,
    "views": 6,
    "cli": 7,
    "torch": 7,  # training integrations, each importing its framework lazily
    "ray": 7,
}
TOP = {"mmtok", "mmtok.__main__"}  # the package facade re-exports every layer


def module_name(path: pathlib.Path, root: pathlib.Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, module: str, is_package: bool) -> set[str]:
    """Every mmtok module ``module`` imports, at module level or inside functions, as absolute names."""
    package = module if is_package else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "mmtok")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.split(".")[0] == "mmtok":
                target = node.module
            else:
                continue
            found.add(target)
            # `from . import x` / `from .pkg import mod` may name submodules
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def load_package(root: pathlib.Path) -> dict[str, set[str]]:
    """{module: imported mmtok modules (only those that exist)} for every module under ``root``."""
    sources = {}
    for path in sorted(root.rglob("*.py")):
        sources[module_name(path, root)] = (path.read_text(encoding="utf-8"), path.name == "__init__.py")
    graph = {}
    for name, (source, is_package) in sources.items():
        graph[name] = {m for m in imported_modules(source, name, is_package) if m in sources and m != name}
    return graph


def layer_of(module: str) -> str | None:
    if module in TOP:
        return None
    return module.split(".")[1]


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    problems = []
    for module, targets in graph.items():
        layer = layer_of(module)
        if layer is None:
            continue
        if layer not in LAYERS:
            problems.append(f"{module}: layer {layer!r} is not in LAYERS (add it with its rank)")
            continue
        for target in sorted(targets):
            other = layer_of(target)
            if other is None:
                problems.append(f"{module} imports the package facade {target}")
            elif other != layer and LAYERS.get(other, 99) >= LAYERS[layer]:
                problems.append(f"{module} ({layer}) imports {target} ({other}): not a lower layer")
    return problems


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def package_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Cycles among modules, ignoring the edge from a package's __init__ to its own submodules
    (a package re-exporting its modules is not a cycle unless a submodule imports the package back)."""
    trimmed = {m: {t for t in targets if not t.startswith(m + ".")} for m, targets in graph.items()}
    return cycles(trimmed)


@pytest.fixture(scope="module")
def graph():
    return load_package(PACKAGE)


def test_every_layer_imports_only_lower_layers(graph):
    assert upward_imports(graph) == []


def test_no_import_cycles(graph):
    assert package_cycles(graph) == []


def test_the_package_folder_shows_the_layers():
    entries = {p.name for p in PACKAGE.iterdir() if p.name != "__pycache__"}
    entries -= {"__init__.py", "__main__.py", "FORMAT.md", "data"}
    assert entries <= set(LAYERS), f"top-level entries outside the layers: {sorted(entries - set(LAYERS))}"


def test_layer_inits_only_re_export():
    for layer in LAYERS:
        if not (PACKAGE / layer).is_dir():
            continue  # a layer that is one module (mmtok/torch.py) or not written yet
        tree = ast.parse((PACKAGE / layer / "__init__.py").read_text(encoding="utf-8"))
        assert ast.get_docstring(tree), f"mmtok/{layer}/__init__.py needs a docstring saying what the layer owns"
        for node in tree.body:
            assert isinstance(node, (ast.Expr, ast.ImportFrom, ast.Import, ast.Assign)), (
                f"mmtok/{layer}/__init__.py: only imports and __all__, found {type(node).__name__}")


def test_modules_stay_small():
    big = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
           if (n := len(p.read_text(encoding="utf-8").splitlines())) > 330}
    assert big == {}


# The checks themselves must be able to fail: an upward import and a cycle added by hand are caught.

def test_an_upward_import_is_caught(tmp_path):
    root = tmp_path / "mmtok"
    for layer, body in (("store", "from ..views.dataset import TokenDataset\n"), ("views", "from ..store import x\n")):
        (root / layer).mkdir(parents=True)
        (root / layer / "__init__.py").write_text("")
    (root / "__init__.py").write_text("")
    (root / "store" / "x.py").write_text("from ..views.dataset import TokenDataset\n")
    (root / "views" / "dataset.py").write_text("from ..store import x\n")
    problems = upward_imports(load_package(root))
    assert problems == ["mmtok.store.x (store) imports mmtok.views.dataset (views): not a lower layer"]


def test_a_cycle_is_caught(tmp_path):
    root = tmp_path / "mmtok"
    (root / "views").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "views" / "__init__.py").write_text("from .a import f\n")
    (root / "views" / "a.py").write_text("def f():\n    from .b import g\n")
    (root / "views" / "b.py").write_text("from .a import f\n")
    assert package_cycles(load_package(root)) == [["mmtok.views.a", "mmtok.views.b"]]
