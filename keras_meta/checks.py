"""Checks of arguments shared by the learners, the episode pipelines and
`rl`, each raising a `ValueError` that names the argument and the value
received."""

import numbers


def check_count(name, value, minimum=1):
    """Raises a `ValueError` unless `value` is an int >= `minimum`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(
            f"`{name}` must be an integer >= {minimum}. Received: "
            f"{name}={value!r}."
        )


def positive_number(name, value):
    """`value` as a float, or a `ValueError` unless it is a number > 0."""
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not value > 0):
        raise ValueError(
            f"`{name}` must be a positive number. Received: {name}={value!r}."
        )
    return float(value)


def positive_integer(name, value, allow_none=False):
    """Raises a `ValueError` unless `value` is an integer >= 1 (NumPy
    integers included; `None` too when `allow_none`)."""
    if value is None and allow_none:
        return
    if (isinstance(value, bool) or not isinstance(value, numbers.Integral)
            or value < 1):
        raise ValueError(
            f"`{name}` must be a positive integer. Received: {name}={value!r}."
        )
