"""Checks of constructor arguments shared by the learners and `rl`."""


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
