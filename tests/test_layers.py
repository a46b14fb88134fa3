"""The one design rule: imports only go down the layers (docs/architecture.md), never up."""

from __future__ import annotations

import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Lower number = higher layer. A module may import from its own layer or any layer below.
LAYERS = [
    (1, ("vidgan.cli", "vidgan.__main__", "gui")),
    (2, ("vidgan.batch", "vidgan.pipeline", "vidgan.demo", "vidgan.translate", "vidgan.distributed")),
    (3, ("vidgan.ops", "vidgan.hooks", "vidgan.vault", "vidgan.audit", "vidgan.deepfake", "vidgan.gan")),
    (4, ("vidgan.media", "vidgan.faces", "vidgan.temporal")),
    (5, ("vidgan.types", "vidgan.errors", "vidgan.keys", "vidgan")),
]


def layer_of(module: str) -> int | None:
    best = None
    for level, prefixes in LAYERS:
        for p in prefixes:
            if module == p or module.startswith(p + "."):
                if best is None or len(p) > best[1]:
                    best = (level, len(p))
    return best[0] if best else None


def modules():
    for top in ("vidgan", "gui"):
        for root, _dirs, files in os.walk(os.path.join(ROOT, top)):
            for f in files:
                if f.endswith(".py"):
                    path = os.path.join(root, f)
                    rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                    if rel.endswith(".__init__"):
                        rel = rel[: -len(".__init__")]
                    yield rel, path


def imported(module: str, path: str):
    tree = ast.parse(open(path, encoding="utf-8").read())
    is_pkg = path.endswith("__init__.py")
    package = module if is_pkg else module.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
                if node.module is None:
                    for a in node.names:
                        yield f"{target}.{a.name}"
                    continue
                yield target
            elif node.module:
                yield node.module


def test_imports_only_go_down():
    violations = []
    for module, path in modules():
        mine = layer_of(module)
        assert mine is not None, f"{module} has no layer in tests/test_layers.py"
        for target in imported(module, path):
            theirs = layer_of(target)
            if theirs is not None and theirs < mine:
                violations.append(f"{module} (layer {mine}) imports {target} (layer {theirs})")
    assert not violations, "\n".join(violations)
