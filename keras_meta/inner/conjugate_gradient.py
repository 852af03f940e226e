"""Conjugate gradient on lists of tensors, for implicit meta-gradients."""

from keras import ops


def _dot(a, b):
    return sum(ops.sum(x * y) for x, y in zip(a, b))


def conjugate_gradient(matvec, b, num_steps, tolerance=1e-10):
    """Approximately solves `A x = b` for a symmetric positive-definite `A`.

    Runs a fixed number of conjugate-gradient iterations from `x = 0` (a
    fixed count keeps the traced graph static). `A` is given only through
    its product with a vector, such as a Hessian-vector product; in exact
    arithmetic `num_steps` equal to the dimension gives the exact solution.

    Args:
        matvec: Callable taking a list of tensors shaped like `b` and
            returning `A` times it, in the same structure.
        b: List of tensors, the right-hand side.
        num_steps: Python int, the number of iterations.
        tolerance: Float; once the squared residual norm falls below it, the
            remaining iterations leave `x` unchanged (no division by zero).

    Returns:
        The list of tensors `x`.
    """
    x = [ops.zeros_like(v) for v in b]
    residual = list(b)
    direction = list(b)
    residual_norm = _dot(residual, residual)
    for _ in range(num_steps):
        product = matvec(direction)
        curvature = _dot(direction, product)
        active = ops.cast(residual_norm > tolerance, residual_norm.dtype)
        step = active * residual_norm / ops.where(
            active > 0, curvature, ops.ones_like(curvature))
        x = [xi + step * di for xi, di in zip(x, direction)]
        residual = [ri - step * pi for ri, pi in zip(residual, product)]
        new_norm = _dot(residual, residual)
        beta = active * new_norm / ops.where(
            active > 0, residual_norm, ops.ones_like(residual_norm))
        direction = [ri + beta * di for ri, di in zip(residual, direction)]
        residual_norm = new_norm
    return x
