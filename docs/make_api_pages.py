"""Writes the API reference pages (`docs/api/*.md`) from the package.

Every public name of every public module gets an entry rendered from its
docstring by mkdocstrings. A module's public names are its `__all__`, or
else the classes, functions and upper-case constants it defines without a
leading underscore. `tests/docs_test.py` checks that the committed pages
are what this script writes, so a new public name cannot go undocumented.

    python docs/make_api_pages.py          # rewrite docs/api/
    python docs/make_api_pages.py --check  # exit 1 if a page is stale
"""

import argparse
import importlib
import inspect
import os
import sys
import types

# The pages document the default backend's `keras_meta.backend`, whatever
# backend the caller runs.
os.environ["KERAS_BACKEND"] = "tensorflow"

# (page, module, heading, introduction)
PAGES = (
    ("learners", "keras_meta", "Learners",
     "Every learner is a `keras_meta.MetaModel`, a `keras.Model` used with "
     "`compile()`, `fit()`, `evaluate()`, `predict()` and `adapt()`; "
     "`keras_meta.export` writes a SavedModel that adapts in its graph."),
    ("data", "keras_meta.data", "keras_meta.data", None),
    ("benchmarks", "keras_meta.data.benchmarks",
     "keras_meta.data.benchmarks", None),
    ("models", "keras_meta.models", "keras_meta.models", None),
    ("losses", "keras_meta.losses", "keras_meta.losses", None),
    ("metrics", "keras_meta.metrics", "keras_meta.metrics", None),
    ("callbacks", "keras_meta.callbacks", "keras_meta.callbacks", None),
    ("cluster", "keras_meta.cluster", "keras_meta.cluster", None),
    ("episode", "keras_meta.episode", "keras_meta.episode", None),
    ("inner", "keras_meta.inner", "keras_meta.inner", None),
    ("rl", "keras_meta.rl", "keras_meta.rl", None),
    ("recommendation", "keras_meta.recommendation",
     "keras_meta.recommendation", None),
    ("backend", "keras_meta.backend", "keras_meta.backend", None),
    ("testing", "keras_meta.testing", "keras_meta.testing", None),
)
DOCS = os.path.dirname(os.path.abspath(__file__))


def public_names(module_name):
    """The public names of a module, documented names first."""
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None)
    if names is None:
        names = [
            name for name, value in vars(module).items()
            if not name.startswith("_") and (
                (isinstance(value, (type, types.FunctionType))
                 and value.__module__ == module_name)
                or (name.isupper() and not isinstance(
                    value, types.ModuleType)))]
    return [name for name in names if not name.startswith("_")
            and not isinstance(getattr(module, name), types.ModuleType)]


def _describe(name, value):
    """A constant, as its value when short and plain."""
    plain = (str, int, float, bool, type(None))
    if isinstance(value, plain) or (isinstance(value, tuple) and all(
            isinstance(item, plain) for item in value)):
        return f"`{name} = {value!r}`"
    if isinstance(value, dict):
        return f"`{name}`: a dict with keys `{sorted(value)}`."
    return f"`{name}`: a `{type(value).__name__}`."


def render(page, module_name, heading, introduction):
    module = importlib.import_module(module_name)
    lines = [f"# {heading}", ""]
    doc = introduction or inspect.getdoc(module)
    if doc:
        lines += [doc.split("\n\n")[0].replace("\n", " "), ""]
    for name in sorted(public_names(module_name), key=str.lower):
        value = getattr(module, name)
        lines += [f"## `{module_name}.{name}`", ""]
        if isinstance(value, (type, types.FunctionType)):
            # Rendered from where it is defined: the package's public
            # modules import their names (some lazily), which a static
            # reader does not follow.
            lines += [f"::: {value.__module__}.{value.__qualname__}",
                      "    options:",
                      "      show_root_heading: false", ""]
        else:
            lines += [_describe(name, value), ""]
    return "\n".join(lines).rstrip() + "\n"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    stale = []
    os.makedirs(os.path.join(DOCS, "api"), exist_ok=True)
    for page, module_name, heading, introduction in PAGES:
        path = os.path.join(DOCS, "api", f"{page}.md")
        text = render(page, module_name, heading, introduction)
        current = open(path).read() if os.path.exists(path) else None
        if current != text:
            stale.append(path)
            if not args.check:
                with open(path, "w") as f:
                    f.write(text)
    if args.check and stale:
        print("stale API pages (run python docs/make_api_pages.py): "
              + ", ".join(stale))
        sys.exit(1)


if __name__ == "__main__":
    main()
