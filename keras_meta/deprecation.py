"""Names that moved, kept working for one release with a warning."""

import importlib
import warnings

# The release that drops the old names.
REMOVED_IN = "0.3"


def moved_names(module, moves):
    """A module-level `__getattr__` for `module` (its dotted name) that
    resolves each moved name of `moves` (`{name: new module}`) in its new
    home with a `DeprecationWarning`.

    The new home is imported by name when the old name is first used, so
    that the old module does not import the (higher) new one.
    """

    def __getattr__(name):
        if name not in moves:
            raise AttributeError(
                f"module {module!r} has no attribute {name!r}")
        new = moves[name]
        warnings.warn(
            f"`{module}.{name}` moved to `{new}.{name}`; the old name is "
            f"removed in keras_meta {REMOVED_IN}.",
            DeprecationWarning, stacklevel=2)
        return getattr(importlib.import_module(new), name)

    return __getattr__
