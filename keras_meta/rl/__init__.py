"""Meta-reinforcement learning: policies that adapt to a new task from a
few rollouts.

- Task families: `Navigation2D` (the MAML paper's 2D navigation, pure
  `keras.ops`, rolled out inside the training step); `HalfCheetahVelocity`
  and `HalfCheetahDirection`, `AntVelocity` and `AntDirection` (gymnasium
  MuJoCo, the `rl` extra, stepped in Python by `fit`'s own loop).
- Policies: `gaussian_mlp_policy`, `GaussianPolicyHead` (ordinary Keras
  models and layers).
- Learners: `MAMLRL` (vanilla policy-gradient inner step, second order) and
  `ProMP` (low-variance curvature inner step, clipped outer objective),
  both `MetaPolicyGradient`s trained with `compile()` and `fit()`.
- Evaluation: `MetaPolicyGradient.adaptation_returns`, the
  `AdaptationReturns` callback; `navigation_paths` and
  `plot_navigation_paths` (where a navigation policy goes before and
  after adaptation).
- Estimators: `keras_meta.rl.advantages` (returns, linear feature baseline,
  GAE).
"""

from keras_meta.gaussian import gaussian_kl
from keras_meta.gaussian import gaussian_log_prob
from keras_meta.gaussian import split_gaussian
from keras_meta.rl import advantages
from keras_meta.rl.callbacks import AdaptationReturns
from keras_meta.rl.callbacks import summarize_returns
from keras_meta.rl.environments import AntDirection
from keras_meta.rl.environments import AntVelocity
from keras_meta.rl.environments import HalfCheetahDirection
from keras_meta.rl.environments import HalfCheetahVelocity
from keras_meta.rl.environments import Navigation2D
from keras_meta.rl.environments import PureFunctionEnvironment
from keras_meta.rl.environments import SimulatorEnvironment
from keras_meta.rl.environments import TaskFamily
from keras_meta.rl.meta_policy_gradient import MAMLRL
from keras_meta.rl.meta_policy_gradient import MetaPolicyGradient
from keras_meta.rl.meta_policy_gradient import ProMP
from keras_meta.rl.policies import GaussianPolicyHead
from keras_meta.rl.policies import gaussian_mlp_policy
from keras_meta.rl.trajectories import navigation_paths
from keras_meta.rl.trajectories import plot_navigation_paths

__all__ = [
    "AdaptationReturns",
    "AntDirection",
    "AntVelocity",
    "GaussianPolicyHead",
    "HalfCheetahDirection",
    "HalfCheetahVelocity",
    "MAMLRL",
    "MetaPolicyGradient",
    "Navigation2D",
    "ProMP",
    "PureFunctionEnvironment",
    "SimulatorEnvironment",
    "TaskFamily",
    "advantages",
    "gaussian_kl",
    "gaussian_log_prob",
    "gaussian_mlp_policy",
    "navigation_paths",
    "plot_navigation_paths",
    "split_gaussian",
    "summarize_returns",
]
