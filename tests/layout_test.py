"""Guards of the package's layout: imports run one way, no private name
crosses a module, and no function grows past 100 lines of code.

Read from the source (no imports), so these run in a second.
"""

import ast
import os
import unittest

ROOT = os.path.join(os.path.dirname(os.path.dirname(__file__)), "keras_meta")

# The package's floors, lowest first: a module imports only from its own
# floor or below. `keras_meta/__init__.py` and `__main__.py` stand above
# them all (the public names and the command).
# A room is a top-level module or package, or a module named in full when
# it stands on another floor than its package (the backends' trainers build
# on the model inspection of `models`).
LAYERS = (
    ("version", "episode", "checks", "gaussian", "deprecation", "backend",
     "cluster"),
    ("inner", "losses", "metrics", "per_episode", "episode_checks",
     "models", "data", "callbacks", "backend.trainer",
     "backend.tensorflow.trainer", "backend.jax.trainer"),
    ("algorithms", "exporting"),
    ("rl", "recommendation"),
    ("experiments",),
    ("cli", "testing"),
)
FLOOR = {room: level for level, rooms in enumerate(LAYERS) for room in rooms}
# `keras_meta` itself (every public name) stands on the top floor.
FLOOR[""] = len(LAYERS) - 1

MAX_CODE_LINES = 100


def _module_name(path):
    relative = os.path.relpath(path, os.path.dirname(ROOT))
    name = relative[:-len(".py")].replace(os.sep, ".")
    return name[:-len(".__init__")] if name.endswith(".__init__") else name


def _modules():
    for directory, _, files in os.walk(ROOT):
        for file in sorted(files):
            if file.endswith(".py"):
                path = os.path.join(directory, file)
                with open(path) as f:
                    source = f.read()
                tree = ast.parse(source)
                tree.source_lines = source.splitlines()
                yield _module_name(path), path, tree


def _imports(name, path, tree):
    """`(imported module, imported name or None, line)` for every import
    of keras_meta, at module level or inside functions."""
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("keras_meta"):
                    yield alias.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (
                    node.level - 1)]
                module = ".".join(base + ([module] if module else []))
            if not module.startswith("keras_meta"):
                continue
            for alias in node.names:
                yield module, alias.name, node.lineno


def _room(module):
    """The longest name in `FLOOR` that `module` is or lies in."""
    name = module[len("keras_meta."):] if "." in module else ""
    while name not in FLOOR:
        if "." not in name:
            return name
        name = name.rpartition(".")[0]
    return name


def _resolve(module, name, known):
    """The module an import reaches: `from a import b` reaches `a.b` when
    that is a module."""
    if name is not None and f"{module}.{name}" in known:
        return f"{module}.{name}"
    return module


class LayoutTest(unittest.TestCase):
    def setUp(self):
        self.modules = {name: (path, tree)
                        for name, path, tree in _modules()}

    def test_every_room_has_a_floor(self):
        rooms = {_room(name) for name in self.modules} - {"__main__"}
        self.assertEqual(sorted(rooms - set(FLOOR)), [],
                         "new top-level module: give it a floor in LAYERS")

    def test_imports_run_down(self):
        upward = []
        for name, (path, tree) in self.modules.items():
            room = _room(name)
            if room in ("", "__main__"):
                continue
            for module, imported, line in _imports(name, path, tree):
                target = _room(_resolve(module, imported, self.modules))
                if FLOOR[target] > FLOOR[room]:
                    upward.append(f"{name}:{line} imports {module} (floor "
                                  f"{FLOOR[target]} above {FLOOR[room]})")
        self.assertEqual(upward, [])

    def test_no_import_circle(self):
        graph = {name: set() for name in self.modules}
        for name, (path, tree) in self.modules.items():
            for module, imported, _ in _imports(name, path, tree):
                target = _resolve(module, imported, self.modules)
                # A package's __init__ gathering its own modules is not a
                # circle: its modules never import their package's names.
                if target in graph and target != name and not (
                        name.startswith(target + ".")):
                    graph[name].add(target)
        circles = []
        state = {}

        def visit(node, path):
            state[node] = "open"
            for child in sorted(graph[node]):
                if state.get(child) == "open":
                    circles.append(path[path.index(child):] + [child])
                elif child not in state:
                    visit(child, path + [child])
            state[node] = "done"

        for node in sorted(graph):
            if node not in state:
                visit(node, [node])
        self.assertEqual(circles, [])

    def test_no_private_name_crosses_a_module(self):
        crossing = []
        for name, (path, tree) in self.modules.items():
            for module, imported, line in _imports(name, path, tree):
                if imported and imported.startswith("_") and not (
                        imported.startswith("__")) and module != name:
                    crossing.append(f"{name}:{line} imports "
                                    f"{module}.{imported}")
        self.assertEqual(crossing, [])

    def test_functions_are_short(self):
        long = []
        for name, (path, tree) in self.modules.items():
            for node in ast.walk(tree):
                if not isinstance(node, (ast.FunctionDef,
                                         ast.AsyncFunctionDef)):
                    continue
                lines = _code_lines(node, tree.source_lines)
                if lines > MAX_CODE_LINES:
                    long.append(f"{name}.{node.name}: {lines} lines")
        self.assertEqual(long, [])


def _code_lines(function, source_lines):
    """Lines holding code in `function`: its docstring, comments and blank
    lines left out."""
    body = function.body
    if (body and isinstance(body[0], ast.Expr)
            and isinstance(getattr(body[0], "value", None), ast.Constant)
            and isinstance(body[0].value.value, str)):
        docstring = set(range(body[0].lineno, body[0].end_lineno + 1))
    else:
        docstring = set()
    lines = set()
    for node in ast.walk(function):
        if isinstance(node, ast.stmt) and node is not function:
            lines.update(range(node.lineno, node.end_lineno + 1))
    lines.add(function.lineno)
    lines -= docstring
    return sum(1 for line in lines
               if source_lines[line - 1].strip()
               and not source_lines[line - 1].strip().startswith("#"))


if __name__ == "__main__":
    unittest.main()
