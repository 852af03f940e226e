"""Meta-reinforcement learning: a navigation policy that adapts to a new
goal from 20 rollouts, with the keras_meta.rl Python API.

The MAML paper's 2D navigation (section 5.3): a point must reach a goal it
cannot see; the reward is minus its distance to the goal. The policy is an
ordinary Keras model; ProMP meta-learns its initialization so that one
policy-gradient step on 20 rollouts of a new goal steers it there.

    python examples/meta_rl_navigation.py                  # about 5 minutes
    python examples/meta_rl_navigation.py --iterations 50  # a quick look
"""

import argparse

import keras
import numpy as np

from keras_meta import rl

parser = argparse.ArgumentParser()
parser.add_argument("--iterations", type=int, default=300)
parser.add_argument("--plot", default="meta_rl_navigation.png")
args = parser.parse_args()
keras.utils.set_random_seed(0)

env = rl.Navigation2D()  # goals uniform in [-0.5, 0.5]^2, horizon 100
policy = rl.gaussian_mlp_policy(
    env.observation_dim, env.action_dim, hidden_units=(100, 100), seed=0)

# Every training step rolls out 20 trajectories for each of 20 goals with
# the current weights (inside the compiled step, so never stale), adapts a
# copy per goal by one policy-gradient step, rolls out the adapted copies
# and updates the initialization through the adaptation.
learner = rl.ProMP(policy, env, inner_learning_rate=0.1, num_trajectories=20)
learner.compile(optimizer=keras.optimizers.Adam(1e-3))
test_goals = env.sample_tasks(40, seed=10_000)
learner.fit(
    env.task_dataset(20, seed=0),  # yields goals only
    steps_per_epoch=max(1, args.iterations // 6), epochs=6,
    callbacks=[rl.AdaptationReturns(test_goals, num_steps=3, every=2)],
    verbose=2)

# The paper's protocol: mean return over the 40 test goals after 0-3 steps,
# each step on fresh rollouts, each score from new rollouts.
returns = learner.adaptation_returns(test_goals, num_steps=3)
summary = rl.summarize_returns(returns)
for step, (mean, ci) in enumerate(zip(summary["mean"], summary["ci95"])):
    print(f"after {step} steps: return {mean:7.2f} +- {ci:.2f}")

# Adapt to one new goal: an ordinary Keras policy, ready to act or save.
goal = test_goals[0]
adapted = learner.adapt(goal, num_steps=1)


def path(model):
    state, states = np.zeros((1, 2)), [np.zeros(2)]
    for _ in range(env.horizon):
        mean = model.predict(state, verbose=0)[:, :2]  # act with the mean
        state = state + env.max_step * np.clip(mean, -1, 1)
        states.append(state[0])
    return np.array(states)


import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

fig, ax = plt.subplots(figsize=(4.5, 4.5))
for model, label in ((learner.policy, "before adaptation"),
                     (adapted, "after one step")):
    xy = path(model)
    ax.plot(xy[:, 0], xy[:, 1], marker=".", markersize=3, label=label)
ax.scatter(*goal, marker="*", s=200, color="k", label="goal")
ax.set_xlim(-0.6, 0.6)
ax.set_ylim(-0.6, 0.6)
ax.legend()
fig.savefig(args.plot, dpi=110)
print(f"wrote {args.plot}")
