"""The layers of DESIGN.md, checked on the source: every import under landmarkjax/ points downward.

Each module is parsed with `ast` (nothing is imported), and every import counts: top-level ones, the lazy
ones inside functions, and `importlib.import_module("landmarkjax....")` calls. A module's layer is the
first name after `landmarkjax.` (`landmarkjax.ops.heatmaps` is in `ops`, `landmarkjax.metrics` in
`metrics`).
"""

from __future__ import annotations

import ast
import pathlib

import pytest

_ROOT = pathlib.Path(__file__).resolve().parents[1]
_PACKAGE = "landmarkjax"

# Top-level modules that depend on numpy alone, so that every layer may import them.
_LIGHT = {"face_layout"}

# Layer -> the other layers it may import (DESIGN.md, "Layers": imports only point downward).
_FUNCTIONAL = {"ops", "body", "losses", "metrics"}
_ALLOWED: dict[str, set[str]] = {
    "": set(),  # landmarkjax/__init__.py
    "face_layout": set(),
    "ops": _LIGHT,
    "body": {"ops"} | _LIGHT,
    "losses": {"ops"} | _LIGHT,
    "metrics": {"ops"} | _LIGHT,
    "models": {"ops"} | _LIGHT,
    "data": {"ops", "body"} | _LIGHT,  # not models, losses, metrics, training, methods, configs
    "training": _FUNCTIONAL | {"models", "data"} | _LIGHT,  # not methods, configs
    "methods": _FUNCTIONAL | {"models", "data", "training"} | _LIGHT,  # not configs
    # The resolved config of a run (configs/saved.py) is read by the training layer's provenance module.
    "configs": {"training"} | _LIGHT,
    # Above the methods: compose a config, the registry and the loop (runs), or a trained face method
    # with the data layer's crops (inference).
    "runs": {"methods", "training", "configs"} | _LIGHT,
    "inference": {"data", "ops"} | _LIGHT,
}

# Modules that a layer must not import even where it may import their layer. The loop stays independent
# of how datasets are built (tfds_source imports the builders to register them, so it counts as them).
_FORBIDDEN_MODULES: dict[str, tuple[str, ...]] = {
    "training": ("landmarkjax.data.builders", "landmarkjax.data.tfds_source"),
}

def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_package(path: pathlib.Path) -> bool:
    return path.name == "__init__.py"


def _imported_names(tree: ast.AST, module: str, is_package: bool) -> list[tuple[str, int]]:
    """(dotted name, line) of every landmarkjax import anywhere in `tree`, lazy ones included.

    `from a.b import c` gives `a.b.c` (c may be a module or a name in a.b; either way it lies in a.b's
    layer). Relative imports are resolved against `module`.
    """
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join(package + ([base] if base else []))
            found += [(f"{base}.{alias.name}", node.lineno) for alias in node.names]
        elif isinstance(node, ast.Call) and _is_import_module(node.func) and node.args:
            target = node.args[0]
            if isinstance(target, ast.JoinedStr) and target.values:
                target = target.values[0]  # f"landmarkjax.methods.{name}": the constant prefix
            if isinstance(target, ast.Constant) and isinstance(target.value, str):
                found.append((target.value.rstrip("."), node.lineno))
    return [(name, line) for name, line in found if name == _PACKAGE or name.startswith(_PACKAGE + ".")]


def _is_import_module(func: ast.expr) -> bool:
    return (isinstance(func, ast.Attribute) and func.attr == "import_module") or (
        isinstance(func, ast.Name) and func.id in ("import_module", "__import__")
    )


def _layer(dotted: str) -> str:
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else ""


def _collect() -> list[tuple[str, str, int]]:
    """(importing module, imported dotted name, line) for every landmarkjax import in the package."""
    imports = []
    for path in sorted((_ROOT / _PACKAGE).rglob("*.py")):
        module = _module_name(path)
        tree = ast.parse(path.read_text(), filename=str(path))
        for name, line in _imported_names(tree, module, _is_package(path)):
            imports.append((module, name, line))
    return imports


_IMPORTS = _collect()


def _layer_edges() -> dict[tuple[str, str], list[str]]:
    """(importing layer, imported layer) -> the 'module:line -> name' places that make that edge."""
    edges: dict[tuple[str, str], list[str]] = {}
    for module, name, line in _IMPORTS:
        source, target = _layer(module), _layer(name)
        if source != target:
            edges.setdefault((source, target), []).append(f"{module}:{line} -> {name}")
    return edges


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of `graph` as a node list (first == last), or None when the graph is acyclic."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for successor in sorted(graph.get(node, ())):
            if state.get(successor) == 1:
                return path[path.index(successor) :] + [successor]
            if successor not in state:
                cycle = visit(successor)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_collector_sees_lazy_relative_and_importlib_imports():
    source = (
        "import landmarkjax.ops\n"
        "def f():\n"
        "    from landmarkjax import metrics\n"
        "    from . import sibling\n"
        "    import importlib\n"
        "    return importlib.import_module(f'landmarkjax.methods.{name}')\n"
    )
    names = [name for name, _ in _imported_names(ast.parse(source), "landmarkjax.data.sources", False)]
    expected = ["landmarkjax.ops", "landmarkjax.metrics", "landmarkjax.data.sibling", "landmarkjax.methods"]
    assert names == expected


def test_the_package_is_parsed():
    modules = {module for module, _, _ in _IMPORTS}
    for expected in ("landmarkjax.methods.supervised", "landmarkjax.data.tfds_source", "landmarkjax.metrics"):
        assert expected in modules


def test_every_module_belongs_to_a_known_layer():
    unknown = sorted(
        _module_name(path)
        for path in (_ROOT / _PACKAGE).rglob("*.py")
        if _layer(_module_name(path)) not in _ALLOWED
    )
    assert not unknown, f"modules outside every layer of _ALLOWED (add the layer to this test): {unknown}"


@pytest.mark.parametrize("layer", sorted(_ALLOWED))
def test_imports_point_downward(layer):
    upward = [
        place
        for (source, target), places in sorted(_layer_edges().items())
        if source == layer and target not in _ALLOWED[layer]
        for place in places
    ]
    allowed = sorted(_ALLOWED[layer]) or "nothing else of landmarkjax"
    assert not upward, f"{layer or 'landmarkjax'} may import {allowed}; these imports point elsewhere:\n" + (
        "\n".join(upward)
    )


@pytest.mark.parametrize("layer", sorted(_FORBIDDEN_MODULES))
def test_forbidden_modules_are_not_imported(layer):
    forbidden = _FORBIDDEN_MODULES[layer]
    places = [
        f"{module}:{line} -> {name}"
        for module, name, line in _IMPORTS
        if _layer(module) == layer and any(name == f or name.startswith(f + ".") for f in forbidden)
    ]
    assert not places, f"{layer} must not import {forbidden}:\n" + "\n".join(places)


def test_the_layer_graph_is_acyclic():
    graph: dict[str, set[str]] = {}
    for source, target in _layer_edges():
        graph.setdefault(source, set()).add(target)
    cycle = _find_cycle(graph)
    assert cycle is None, "import cycle between layers: " + " -> ".join(cycle)


def _data_node(dotted: str) -> str | None:
    """`landmarkjax.data.<module or subpackage>` of a name in the data layer (a subpackage is one node)."""
    parts = dotted.split(".")
    if parts[:2] != [_PACKAGE, "data"] or len(parts) < 3:
        return None
    return ".".join(parts[:3])


def test_the_data_modules_import_one_way():
    graph: dict[str, set[str]] = {}
    for module, name, _ in _IMPORTS:
        source, target = _data_node(module), _data_node(name)
        if source and target and source != target:
            graph.setdefault(source, set()).add(target)
    cycle = _find_cycle(graph)
    assert cycle is None, "import cycle inside landmarkjax.data: " + " -> ".join(cycle)
    # In particular sources (the procedural records the builders write) knows nothing of the builders.
    assert "landmarkjax.data.builders" not in graph.get("landmarkjax.data.sources", set())
    assert "landmarkjax.data.sources" in graph.get("landmarkjax.data.builders", set())
