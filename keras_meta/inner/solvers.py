"""Conjugate gradient on Hessian-vector products."""

from keras import ops


def _dot(a, b):
    return sum(ops.sum(x * y) for x, y in zip(a, b))


def conjugate_gradient(matvec, b, num_steps, tolerance=1e-24,
                       min_curvature=0.0):
    """Approximately solves `A x = b` for a symmetric `A`.

    Runs a fixed number of conjugate-gradient iterations from `x = 0` (a
    fixed count keeps the traced graph static). `A` is given only through
    its product with a vector, such as a Hessian-vector product; for a
    positive-definite `A`, in exact arithmetic, `num_steps` equal to the
    dimension gives the exact solution.

    `A` need not be positive definite: at the first search direction of
    too little curvature (`d^T A d <= min_curvature * d^T d`; at 0, where
    the quadratic model has no minimum along `d`) the iterations stop and
    keep the current `x`, as truncated Newton methods do. If that happens
    at the very first direction, `b` itself is returned (`A` treated as the
    identity).

    Args:
        matvec: Callable taking a list of tensors shaped like `b` and
            returning `A` times it, in the same structure.
        b: List of tensors, the right-hand side.
        num_steps: Python int, the number of iterations.
        tolerance: Float; once the squared residual norm falls below
            `tolerance` times that of `b`, the remaining iterations leave
            `x` unchanged (no division by zero). The default, a relative
            residual of 1e-12, stops only at float64 rounding.
        min_curvature: Float, the smallest Rayleigh quotient
            `d^T A d / d^T d` a direction may have. A positive floor keeps
            a nearly singular `A` from sending `x` far away. Defaults to
            `0.0`.

    Returns:
        The list of tensors `x`.
    """
    b = [ops.convert_to_tensor(v) for v in b]
    x = [ops.zeros_like(v) for v in b]
    residual = list(b)
    direction = list(b)
    residual_norm = _dot(residual, residual)
    threshold = ops.cast(tolerance, residual_norm.dtype) * residual_norm
    alive = ops.ones_like(residual_norm)
    first_stop = ops.zeros_like(residual_norm)
    for iteration in range(num_steps):
        product = matvec(direction)
        curvature = _dot(direction, product)
        floor = ops.cast(min_curvature, curvature.dtype) * _dot(
            direction, direction)
        positive = ops.cast(curvature > floor, curvature.dtype)
        if iteration == 0:
            first_stop = 1.0 - positive
        alive = alive * positive
        active = alive * ops.cast(residual_norm > threshold,
                                  residual_norm.dtype)
        step = active * residual_norm / ops.where(
            active > 0, curvature, ops.ones_like(curvature))
        x = [xi + step * di for xi, di in zip(x, direction)]
        residual = [ri - step * pi for ri, pi in zip(residual, product)]
        new_norm = _dot(residual, residual)
        beta = active * new_norm / ops.where(
            active > 0, residual_norm, ops.ones_like(residual_norm))
        direction = [ri + beta * di for ri, di in zip(residual, direction)]
        residual_norm = ops.where(active > 0, new_norm, residual_norm)
    return [xi + first_stop * bi for xi, bi in zip(x, b)]
