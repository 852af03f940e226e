"""The documentation: the site builds strictly, the API reference lists
every public name, dotted names resolve, docstrings state true defaults."""

import ast
import glob
import importlib
import importlib.util
import inspect
import os
import pkgutil
import re
import subprocess
import sys
import types

import keras_meta
from keras_meta import testing

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "docs"))
import make_api_pages  # noqa: E402


def _documented_objects():
    for _, module_name, _, _ in make_api_pages.PAGES:
        module = importlib.import_module(module_name)
        for name in make_api_pages.public_names(module_name):
            yield f"{module_name}.{name}", getattr(module, name)


def _resolve(dotted):
    """The object a dotted name names, importing modules as needed."""
    parts = dotted.split(".")
    value = importlib.import_module(parts[0])
    for i, part in enumerate(parts[1:], start=1):
        if hasattr(value, part):
            value = getattr(value, part)
        else:
            value = importlib.import_module(".".join(parts[:i + 1]))
    return value


class ReferenceTest(testing.TestCase):
    def test_api_pages_are_current(self):
        # The committed pages list every public name of every module.
        result = subprocess.run(
            [sys.executable, os.path.join(ROOT, "docs", "make_api_pages.py"),
             "--check"], capture_output=True, text=True, cwd=ROOT)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_site_builds_strictly(self):
        # Broken links, unknown names and unparsable docstrings fail it.
        site = self.get_temp_dir()
        result = subprocess.run(
            [sys.executable, "-m", "mkdocs", "build", "--strict", "-q",
             "-d", site], capture_output=True, text=True, cwd=ROOT,
            env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        self.assertTrue(os.path.exists(os.path.join(
            site, "api", "learners", "index.html")))

    def test_dotted_names_in_the_docs_resolve(self):
        texts = [os.path.join(ROOT, "README.md")] + glob.glob(
            os.path.join(ROOT, "docs", "**", "*.md"), recursive=True)
        names = set()
        for path in texts:
            with open(path) as f:
                text = f.read()
            names |= set(re.findall(
                r"`(keras_meta(?:\.[A-Za-z_][A-Za-z0-9_]*)+)", text))
        self.assertGreater(len(names), 30)
        for name in sorted(names):
            with self.subTest(name=name):
                _resolve(name)

    def test_no_module_is_shadowed(self):
        # `keras_meta.data.episodes` is the function; no module hides
        # behind a public name.
        for info in pkgutil.walk_packages(keras_meta.__path__,
                                          "keras_meta."):
            if not info.ispkg:
                continue
            framework = _backend_framework(info.name)
            if framework and importlib.util.find_spec(framework) is None:
                continue  # e.g. keras_meta.backend.torch without torch
            package = importlib.import_module(info.name)
            for sub in pkgutil.iter_modules(package.__path__):
                value = getattr(package, sub.name, None)
                self.assertTrue(
                    value is None or isinstance(value, types.ModuleType),
                    f"{info.name}.{sub.name} is a {type(value).__name__} "
                    "and a module")


def _backend_framework(module_name):
    """The framework a `keras_meta.backend.<name>` package imports, if any."""
    parts = module_name.split(".")
    if len(parts) >= 3 and parts[1] == "backend" and parts[2] in (
            "jax", "tensorflow", "torch"):
        return parts[2]
    return None


def _stated_defaults(docstring):
    """`{argument: stated default}` from a Google-style Args section."""
    lines = docstring.splitlines()
    try:
        start = next(i for i, line in enumerate(lines)
                     if line.strip() == "Args:")
    except StopIteration:
        return {}
    block = []
    for line in lines[start + 1:]:
        if line.strip() and not line.startswith(" "):
            break  # The next section.
        block.append(line)
    indents = [len(line) - len(line.lstrip()) for line in block
               if line.strip()]
    if not indents:
        return {}
    entries, current = [], None
    for line in block:
        indent = len(line) - len(line.lstrip())
        found = re.match(r"\s*\*{0,2}(\w+)( \(.*?\))?:(.*)", line)
        if line.strip() and indent == min(indents) and found:
            current = [found.group(1), found.group(3)]
            entries.append(current)
        elif current is not None:
            current[1] += " " + line.strip()
    stated = {}
    for argument, text in entries:
        default = re.search(r"Defaults\s+to\s+`([^`]+)`", text)
        if default:
            stated[argument] = default.group(1)
    return stated


def _default(value, parameters, argument):
    """A parameter's default, also when a class takes it through `**kwargs`
    for a base class (MAML's `batch_norm` is `MetaModel`'s)."""
    if argument in parameters:
        return parameters[argument].default
    if not isinstance(value, type):
        return inspect.Parameter.empty
    for base in value.__mro__[1:]:
        init = vars(base).get("__init__")
        if init is None:
            continue
        try:
            found = inspect.signature(init).parameters
        except (TypeError, ValueError):
            continue
        if argument in found:
            return found[argument].default
    return inspect.Parameter.empty


class DocstringDefaultsTest(testing.TestCase):
    def test_stated_defaults_match_signatures(self):
        checked = 0
        for name, value in _documented_objects():
            if not isinstance(value, (type, types.FunctionType)):
                continue
            function = value.__init__ if isinstance(value, type) else value
            docstring = inspect.getdoc(value) or ""
            try:
                parameters = inspect.signature(function).parameters
            except (TypeError, ValueError):
                continue
            for argument, text in _stated_defaults(docstring).items():
                default = _default(value, parameters, argument)
                if default is inspect.Parameter.empty:
                    continue
                try:
                    stated = ast.literal_eval(text)
                except (ValueError, SyntaxError):
                    continue  # An expression in words, such as `seed + 1`.
                checked += 1
                with self.subTest(name=name, argument=argument):
                    self.assertEqual(
                        stated, default,
                        f"{name}: the docstring says {argument} defaults "
                        f"to {text}, the signature to {default!r}")
        self.assertGreater(checked, 40)
