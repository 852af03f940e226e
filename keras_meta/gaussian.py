"""Diagonal Gaussians as the learners output them: one tensor whose last
axis holds the means and then the scales. Used by the Gaussian losses,
the neural processes and the policies of `keras_meta.rl`."""

import math

from keras import ops


def split_gaussian(outputs):
    """The two halves of the last axis of `outputs` (`[..., 2 * d]`): a
    Gaussian's `(mean, log_std)` for a policy, `(mean, std)` for a neural
    process's predictions."""
    dim = outputs.shape[-1] // 2
    return outputs[..., :dim], outputs[..., dim:]


def gaussian_log_prob(actions, mean, log_std):
    """Log-density of `actions` under a diagonal Gaussian, summed over the
    last axis."""
    z = (actions - mean) * ops.exp(-log_std)
    return ops.sum(
        -0.5 * ops.square(z) - log_std - 0.5 * math.log(2.0 * math.pi),
        axis=-1)


def gaussian_kl(mean_p, log_std_p, mean_q, log_std_q):
    """KL(p || q) between diagonal Gaussians, summed over the last axis."""
    var_p = ops.exp(2.0 * log_std_p)
    var_q = ops.exp(2.0 * log_std_q)
    return ops.sum(
        log_std_q - log_std_p
        + (var_p + ops.square(mean_p - mean_q)) / (2.0 * var_q) - 0.5,
        axis=-1)
