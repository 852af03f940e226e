"""Meta-policy-gradient learners: MAML for reinforcement learning and ProMP."""

import keras
import numpy as np
from keras import ops

from keras_meta import backend
from keras_meta.callbacks import skip_trained_batches
from keras_meta.checks import check_count
from keras_meta.checks import positive_number
from keras_meta.gaussian import gaussian_kl
from keras_meta.gaussian import gaussian_log_prob
from keras_meta.gaussian import split_gaussian
from keras_meta.models.seed_state import SavesSeedGenerator
from keras_meta.rl import advantages as adv
from keras_meta.rl.environments import PureFunctionEnvironment
from keras_meta.rl.environments import SimulatorEnvironment
from keras_meta.rl.simulator_training import SimulatorTraining

INNER_ESTIMATORS = ("vanilla", "lvc")
# TRPO's line search: the step shrinks by this factor at most this many
# times (the MAML paper's code, rllab's conjugate-gradient optimizer).
TRPO_BACKTRACK = 0.8
TRPO_MAX_BACKTRACKS = 15


@keras.saving.register_keras_serializable(package="keras_meta")
class MetaPolicyGradient(SimulatorTraining, SavesSeedGenerator, keras.Model):
    """Meta-learns a policy's initialization by policy gradients.

    Every training step, for a batch of tasks from the dataset given to
    `fit()`: roll out `num_trajectories` trajectories per task with the
    current policy, adapt a copy of the policy's weights to each task by
    `num_inner_steps` policy-gradient steps (fresh rollouts with the
    adapted policy before each further step), roll out the adapted
    policies, and update the initialization to improve the adapted
    policies' objective, differentiating through the inner steps (second
    order unless `first_order=True`). `num_outer_steps` optimizer updates
    reuse one batch of rollouts, with importance ratios against the
    sampling policy (clipped when `clip_ratio` is set).

    **On-policy by construction.** The environment's dynamics are
    `keras.ops` functions, so rollouts run inside the compiled training
    step, with the variables as they are at that step; the dataset yields
    only task parameters (`environment.task_dataset(...)`), which do not
    depend on the policy, so Keras's prefetching cannot make a rollout
    stale.

    Advantages: discounted returns (`discount`), a linear feature baseline
    refit per task on that task's trajectories (as in the MAML and ProMP
    code), generalized advantage estimation (`gae_lambda`), and, when
    `normalize_advantages`, centring and scaling per task.

    The policy is any Keras model mapping observations to `[mean,
    log_std]` of a diagonal Gaussian (see
    `keras_meta.rl.gaussian_mlp_policy`); all its trainable weights are
    adapted. Training runs on the TensorFlow backend.

    Args:
        policy: A built `keras.Model` from observations `[..., obs_dim]` to
            `[..., 2 * action_dim]`.
        environment: A `keras_meta.rl.PureFunctionEnvironment` (such as
            `keras_meta.rl.Navigation2D`).
        inner_learning_rate: Float, the inner policy-gradient step size.
        num_inner_steps: Int, inner steps in training; `0` trains the
            policy itself on all tasks (the multi-task "pretrained"
            baseline). Defaults to `1`.
        num_trajectories: Int, trajectories per task and adaptation step.
            Defaults to `20`.
        discount: Float. Defaults to `0.99`.
        gae_lambda: Float. Defaults to `1.0` (returns minus the baseline).
        normalize_advantages: Bool. Defaults to `True`.
        inner_estimator: `"vanilla"`: the inner loss is the log-likelihood
            surrogate `-mean(log pi(a|s) * A)` (MAML); `"lvc"`: ProMP's
            low-variance curvature surrogate `-mean(pi(a|s) /
            stop_gradient(pi_old(a|s)) * A)`, whose Hessian adds the
            score's outer product to the vanilla one.
        clip_ratio: Optional float: the outer objective is PPO's clipped
            surrogate with this epsilon (ProMP). Defaults to `None` (the
            plain importance-weighted surrogate).
        kl_penalty: Float, weight of the mean KL divergence between the
            sampling and the current pre-update policy in the outer loss
            (ProMP's inner-policy trust region). Defaults to `0.0`.
        num_outer_steps: Int, optimizer updates per batch of rollouts.
            Defaults to `1`.
        first_order: Bool, drop second derivatives through the inner
            steps. Defaults to `False`.
        trust_region: Optional float: the outer step is TRPO's, as in the
            MAML paper's reinforcement-learning experiments (which used
            0.01) instead of the compiled optimizer's: a natural-gradient
            direction from `cg_iterations` conjugate-gradient iterations on
            the Fisher matrix of the mean KL divergence between the
            post-adaptation policies that sampled the last rollouts and
            those of the new weights (its products taken by automatic
            differentiation through the inner steps, damped by
            `cg_damping`), scaled so that its quadratic model of that KL
            equals `trust_region`, then halved by factors of 0.8 (at most
            15 times) until the outer loss decreases and the KL is at most
            `trust_region`; if no step qualifies, the weights stay.
            `num_outer_steps` such steps are taken per batch. Runs on one
            replica (refused under a multi-replica strategy, where the
            compiled optimizer's step is exact). Defaults to `None` (the
            compiled optimizer).
        cg_iterations: Int, conjugate-gradient iterations of the TRPO step.
            Defaults to `10`.
        cg_damping: Float, added times the identity to the Fisher matrix.
            Defaults to `1e-5`.
        eval_learning_rates: Optional list of step sizes for the steps of
            `adaptation_returns()` and `adapt()`; the last one repeats.
            Defaults to `[inner_learning_rate, inner_learning_rate / 2]`,
            the MAML code's test-time schedule.
        seed: Optional int seeding the training rollouts' noise.
        **kwargs: Passed to `keras.Model`.

    Example:

    ```python
    env = keras_meta.rl.Navigation2D()
    learner = keras_meta.rl.ProMP(
        keras_meta.rl.gaussian_mlp_policy(2, 2), env, inner_learning_rate=0.1)
    learner.compile(optimizer=keras.optimizers.Adam(1e-3))
    learner.fit(env.task_dataset(20), steps_per_epoch=50, epochs=6)
    returns = learner.adaptation_returns(env.sample_tasks(40, seed=1))
    ```

    References:
        - [Finn et al., 2017](https://arxiv.org/abs/1703.03400), section 3.3
        - [Rothfuss et al., 2019](https://arxiv.org/abs/1810.06784) (ProMP)
        - [Schulman et al., 2016](https://arxiv.org/abs/1506.02438) (GAE)
    """

    def __init__(
        self,
        policy,
        environment,
        *,
        inner_learning_rate=0.1,
        num_inner_steps=1,
        num_trajectories=20,
        discount=0.99,
        gae_lambda=1.0,
        normalize_advantages=True,
        inner_estimator="vanilla",
        clip_ratio=None,
        kl_penalty=0.0,
        num_outer_steps=1,
        first_order=False,
        trust_region=None,
        cg_iterations=10,
        cg_damping=1e-5,
        eval_learning_rates=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        owner = type(self).__name__
        if keras.backend.backend() != "tensorflow":
            raise ValueError(
                f"`{owner}` trains on the TensorFlow backend (its training "
                "step runs in-graph rollouts and several optimizer updates, "
                "which the JAX and torch trainers do not support yet). The "
                f"active backend is '{keras.backend.backend()}': set "
                "`KERAS_BACKEND=tensorflow`; policies it trains load on "
                "every backend.")
        if not isinstance(policy, keras.Model) or not policy.built:
            raise ValueError(
                f"`{owner}` needs a built `keras.Model` policy, for instance "
                "`keras_meta.rl.gaussian_mlp_policy(obs_dim, action_dim)`. "
                f"Received: {policy!r}.")
        if not isinstance(environment, (PureFunctionEnvironment,
                                        SimulatorEnvironment)):
            raise ValueError(
                f"`{owner}` needs a task family of environments: a "
                "`keras_meta.rl.PureFunctionEnvironment` (such as "
                "`keras_meta.rl.Navigation2D()`, rolled out inside the "
                "training step) or a `keras_meta.rl.SimulatorEnvironment` "
                "(such as `keras_meta.rl.HalfCheetahVelocity()`). Received: "
                f"{type(environment).__name__}.")
        try:
            shape = policy.compute_output_shape(
                (None, environment.observation_dim))
        except Exception:  # noqa: BLE001 - report the expected contract.
            shape = None
        if shape is None or shape[-1] != 2 * environment.action_dim:
            raise ValueError(
                f"The policy '{policy.name}' must map observations of size "
                f"{environment.observation_dim} to {2 * environment.action_dim}"
                f" outputs (an action mean of size {environment.action_dim} "
                "and its log standard deviation), the way "
                "`keras_meta.rl.gaussian_mlp_policy` does. Its output shape "
                f"is {shape}.")
        positive_number("inner_learning_rate", inner_learning_rate)
        check_count("num_inner_steps", num_inner_steps, 0)
        check_count("num_trajectories", num_trajectories, 1)
        check_count("num_outer_steps", num_outer_steps, 1)
        if not 0 < discount <= 1 or not 0 <= gae_lambda <= 1:
            raise ValueError(
                "`discount` must be in (0, 1] and `gae_lambda` in [0, 1]. "
                f"Received: discount={discount!r}, gae_lambda={gae_lambda!r}.")
        if inner_estimator not in INNER_ESTIMATORS:
            raise ValueError(
                f"`inner_estimator` must be one of {list(INNER_ESTIMATORS)}. "
                f"Received: inner_estimator={inner_estimator!r}.")
        if clip_ratio is not None:
            positive_number("clip_ratio", clip_ratio)
        if kl_penalty < 0:
            raise ValueError(
                "`kl_penalty` must be >= 0. Received: "
                f"kl_penalty={kl_penalty!r}.")
        if trust_region is not None:
            positive_number("trust_region", trust_region)
        check_count("cg_iterations", cg_iterations, 1)
        if cg_damping < 0:
            raise ValueError("`cg_damping` must be >= 0. Received: "
                             f"cg_damping={cg_damping!r}.")
        if eval_learning_rates is None:
            eval_learning_rates = [inner_learning_rate,
                                   inner_learning_rate / 2.0]
        eval_learning_rates = [float(r) for r in eval_learning_rates]
        for rate in eval_learning_rates:
            positive_number("eval_learning_rates", rate)
        self.policy = policy
        self.environment = environment
        self.inner_learning_rate = float(inner_learning_rate)
        self.num_inner_steps = num_inner_steps
        self.num_trajectories = num_trajectories
        self.discount = float(discount)
        self.gae_lambda = float(gae_lambda)
        self.normalize_advantages = bool(normalize_advantages)
        self.inner_estimator = inner_estimator
        self.clip_ratio = None if clip_ratio is None else float(clip_ratio)
        self.kl_penalty = float(kl_penalty)
        self.num_outer_steps = num_outer_steps
        self.first_order = bool(first_order)
        self.trust_region = (None if trust_region is None
                             else float(trust_region))
        self.cg_iterations = cg_iterations
        self.cg_damping = float(cg_damping)
        self.eval_learning_rates = eval_learning_rates
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.return_before_tracker = keras.metrics.Mean(name="return_before")
        self.return_after_tracker = keras.metrics.Mean(name="return_after")
        self._evaluators = {}
        self._simulator_functions = None
        self.built = True

    @property
    def metrics(self):
        trackers = [self.loss_tracker, self.return_before_tracker]
        if self.num_inner_steps:
            trackers.append(self.return_after_tracker)
        return trackers

    def call(self, observations, training=False):
        """The policy's outputs `[mean, log_std]` for `observations`."""
        return self.policy(observations, training=training)

    # ------------------------------------------------------------------
    # Rollouts and advantages.
    # ------------------------------------------------------------------

    def _weights(self):
        return [backend.read_value(v) for v in self.policy.trainable_variables]

    def _policy_outputs(self, weights, observations):
        state = [backend.read_value(v)
                 for v in self.policy.non_trainable_variables]
        # Functional models check the input rank: flatten the leading axes.
        leading = ops.shape(observations)[:-1]
        flat = ops.reshape(observations, (-1, observations.shape[-1]))
        outputs, _ = self.policy.stateless_call(
            weights, state, flat, training=False)
        outputs = ops.reshape(outputs, tuple(leading) + (outputs.shape[-1],))
        return split_gaussian(outputs)

    def _per_task_outputs(self, weights, observations, per_task):
        """Policy outputs for `observations [tasks, ..., obs_dim]`, with one
        set of weights per task (`per_task`) or shared ones."""
        if not per_task:
            return self._policy_outputs(weights, observations)
        return ops.vectorized_map(
            lambda x: self._policy_outputs(x[0], x[1]),
            (list(weights), observations))

    def rollout(self, tasks, weights, noise, per_task=False):
        """Rolls out `noise.shape[2]` trajectories per task.

        Args:
            tasks: Task parameters `[tasks, task_dim]`.
            weights: The policy's trainable weights (each with a leading
                task axis when `per_task`).
            noise: Standard normal noise `[horizon, tasks, trajectories,
                action_dim]`; the action is `mean + exp(log_std) * noise`.

        Returns:
            A dict of `observations`, `actions`, `means`, `log_stds`
            (`[tasks, trajectories, horizon, dim]`), `rewards` and `mask`
            (`[tasks, trajectories, horizon]`), all without gradient.
        """
        env = self.environment
        weights = [ops.stop_gradient(w) for w in weights]
        horizon = env.horizon
        num_tasks, num_trajectories = noise.shape[1], noise.shape[2]
        dtype = noise.dtype
        state, observation = env.reset(tasks, num_trajectories)
        obs_dim, act_dim = env.observation_dim, env.action_dim

        def buffer(dim):
            shape = (horizon, num_tasks, num_trajectories)
            return ops.zeros(shape + ((dim,) if dim else ()), dtype=dtype)

        carry = (state, observation,
                 ops.ones((num_tasks, num_trajectories), dtype=dtype),
                 buffer(obs_dim), buffer(act_dim), buffer(act_dim),
                 buffer(act_dim), buffer(0), buffer(0))

        def body(t, carry):
            (state, observation, alive, observations, actions, means,
             log_stds, rewards, masks) = carry
            mean, log_std = self._per_task_outputs(
                weights, observation, per_task)
            action = mean + ops.exp(log_std) * noise[t]
            state, next_observation, reward, done = env.step(
                state, action, tasks)
            start = [t, 0, 0]
            observations = ops.slice_update(
                observations, start + [0], observation[None])
            actions = ops.slice_update(actions, start + [0], action[None])
            means = ops.slice_update(means, start + [0], mean[None])
            log_stds = ops.slice_update(
                log_stds, start + [0], log_std[None])
            rewards = ops.slice_update(
                rewards, start, (ops.cast(reward, dtype) * alive)[None])
            masks = ops.slice_update(masks, start, alive[None])
            alive = alive * (1.0 - ops.cast(done, dtype))
            return (state, next_observation, alive, observations, actions,
                    means, log_stds, rewards, masks)

        carry = ops.fori_loop(0, horizon, body, carry)
        names = ("observations", "actions", "means", "log_stds", "rewards",
                 "mask")
        samples = {}
        for name, value in zip(names, carry[3:]):
            perm = (1, 2, 0) + tuple(range(3, len(value.shape)))
            samples[name] = ops.stop_gradient(ops.transpose(value, perm))
        return self.process(samples)

    def process(self, samples):
        """Adds `returns` (undiscounted, per trajectory), `log_probs` of the
        sampling policy and `advantages` to a rollout's samples."""
        mask = samples["mask"]
        rewards = samples["rewards"]
        discounted = adv.discounted_cumsum(rewards, self.discount) * mask
        values = adv.fit_linear_baseline(
            samples["observations"], discounted, mask)
        advantages = adv.generalized_advantages(
            rewards, values, mask, self.discount, self.gae_lambda)
        if self.normalize_advantages:
            advantages = adv.normalize_per_task(advantages, mask)
        samples = dict(samples)
        samples["advantages"] = ops.stop_gradient(advantages)
        samples["log_probs"] = gaussian_log_prob(
            samples["actions"], samples["means"], samples["log_stds"])
        samples["returns"] = ops.sum(rewards, axis=-1)
        return samples

    def _noise(self, num_tasks, num_trajectories):
        # Under a strategy every replica draws the whole global batch's
        # noise (same generator state) and keeps its own tasks' share, so
        # each task's rollouts are those of one device.
        env = self.environment
        replicas = backend.num_replicas()
        shape = (env.horizon, num_tasks, num_trajectories, env.action_dim)
        noise = keras.random.normal(
            (env.horizon, replicas * num_tasks) + shape[2:],
            seed=self.seed_generator)
        if replicas == 1:
            return noise
        start = backend.replica_index() * num_tasks
        return ops.slice(noise, (0, start, 0, 0), shape)

    # ------------------------------------------------------------------
    # Objectives of one task (no task axis).
    # ------------------------------------------------------------------

    def inner_loss(self, weights, samples):
        """The inner policy-gradient surrogate of one task's samples."""
        mean, log_std = self._policy_outputs(
            weights, samples["observations"])
        log_probs = gaussian_log_prob(samples["actions"], mean, log_std)
        if self.inner_estimator == "lvc":
            objective = ops.exp(log_probs - samples["log_probs"])
        else:
            objective = log_probs
        mask = samples["mask"]
        total = ops.sum(objective * samples["advantages"] * mask)
        return -total / ops.maximum(ops.sum(mask), 1.0)

    def outer_loss(self, weights, samples):
        """The outer surrogate of one task's post-adaptation samples."""
        mean, log_std = self._policy_outputs(
            weights, samples["observations"])
        log_probs = gaussian_log_prob(samples["actions"], mean, log_std)
        ratio = ops.exp(log_probs - samples["log_probs"])
        advantages = samples["advantages"]
        objective = ratio * advantages
        if self.clip_ratio is not None:
            clipped = ops.clip(
                ratio, 1.0 - self.clip_ratio, 1.0 + self.clip_ratio)
            objective = ops.minimum(objective, clipped * advantages)
        mask = samples["mask"]
        return -ops.sum(objective * mask) / ops.maximum(ops.sum(mask), 1.0)

    def _kl(self, weights, samples):
        mean, log_std = self._policy_outputs(
            weights, samples["observations"])
        kl = gaussian_kl(samples["means"], samples["log_stds"], mean, log_std)
        mask = samples["mask"]
        return ops.sum(kl * mask) / ops.maximum(ops.sum(mask), 1.0)

    def inner_update(self, weights, samples, learning_rate, create_graph):
        """One policy-gradient step on one task's samples."""
        (_, _), gradients = backend.value_and_grad(
            lambda w: (self.inner_loss(w, samples), ()), weights)
        if not create_graph:
            gradients = [ops.stop_gradient(g) for g in gradients]
        return [w - learning_rate * g for w, g in zip(weights, gradients)]

    # ------------------------------------------------------------------
    # Training.
    # ------------------------------------------------------------------

    def collect(self, tasks, noise_fn, learning_rates):
        """Samples for each adaptation step: `len(learning_rates) + 1`
        rollouts, the first with the current weights, each next one with
        the policy adapted on all earlier ones. Nothing is differentiated.

        Returns:
            The list of sample dicts and the final (per-task) weights.
        """
        weights = self._weights()
        num_tasks = ops.shape(tasks)[0]
        batches = [self.rollout(tasks, weights, noise_fn(), per_task=False)]
        if not learning_rates:
            return batches, weights
        per_task = [ops.broadcast_to(w, (num_tasks,) + tuple(w.shape))
                    for w in weights]
        for rate in learning_rates:
            samples = batches[-1]

            def adapt_one(task, rate=rate):
                task_weights, task_samples = task
                return self.inner_update(
                    task_weights, task_samples, rate, create_graph=False)

            per_task = backend.map_tasks(
                adapt_one, (per_task, samples),
                [w.dtype for w in weights])
            per_task = [ops.stop_gradient(w) for w in per_task]
            batches.append(self.rollout(
                tasks, per_task, noise_fn(), per_task=True))
        return batches, per_task

    def _task_outer_loss(self, weights, task_batches):
        """One task's weights adapted by the inner steps on its batches but
        the last, and the outer loss on the last: `(adapted, loss)`."""
        adapted = weights
        for samples in task_batches[:-1]:
            adapted = self.inner_update(adapted, samples,
                                        self.inner_learning_rate,
                                        create_graph=not self.first_order)
        loss = self.outer_loss(adapted, task_batches[-1])
        if self.kl_penalty and self.num_inner_steps:
            loss = loss + self.kl_penalty * self._kl(weights,
                                                     task_batches[0])
        return adapted, loss

    def meta_terms(self, weights, batches):
        """The outer loss and the mean KL divergence from the policies that
        sampled the last rollouts to those of `weights` (each adapted to its
        task through the inner steps), as functions of `weights`: the two
        terms of the TRPO step. Returns `(loss, kl)`."""
        def task_terms(task_batches):
            adapted, loss = self._task_outer_loss(weights, task_batches)
            return ops.stack([loss, self._kl(adapted, task_batches[-1])])

        terms = ops.mean(backend.map_tasks(
            task_terms, list(batches[:self.num_inner_steps + 1]),
            weights[0].dtype), axis=0)
        return terms[0], terms[1]

    def meta_loss(self, batches):
        """The outer loss of a training step's samples, differentiable
        w.r.t. the policy's variables through every inner step."""
        weights = self._weights()
        losses = backend.map_tasks(
            lambda task_batches: self._task_outer_loss(
                weights, task_batches)[1],
            list(batches[:self.num_inner_steps + 1]), weights[0].dtype)
        return ops.mean(losses)

    def train_step(self, data):
        tasks = data[0] if isinstance(data, (tuple, list)) else data
        backend.check_even_split(tasks)
        tasks = ops.cast(tasks, "float32")
        num_tasks = tasks.shape[0]
        if num_tasks is None:
            num_tasks = ops.shape(tasks)[0]
        batches, _ = self.collect(
            tasks,
            lambda: self._noise(num_tasks, self.num_trajectories),
            [self.inner_learning_rate] * self.num_inner_steps)
        self._track(self.update(batches), batches)
        return backend.per_replica_logs(
            {m.name: m.result() for m in self.metrics})

    def update(self, batches):
        """`num_outer_steps` optimizer updates on one batch of samples
        (from `collect`); returns the last meta-loss."""
        variables = self.trainable_variables
        # Under a strategy the optimizer sums the replicas' gradients: each
        # replica differentiates its share of the mean over the global batch.
        replicas = backend.num_replicas()
        if self.trust_region is not None and replicas > 1:
            raise ValueError(
                "The TRPO outer step (`trust_region`) runs on one replica: "
                "its conjugate-gradient solve and line search are not "
                f"reduced across the {replicas} replicas of the current "
                "distribution strategy. Train without a multi-replica "
                "strategy, or use the Adam outer step "
                "(`trust_region=None`), which does.")
        loss = None
        for _ in range(self.num_outer_steps):
            if self.trust_region is not None:
                loss = self.trust_region_step(batches)
                continue
            (loss, _), gradients = backend.loss_and_gradients(
                lambda: (self.meta_loss(batches) / replicas, ()), variables)
            loss = loss * replicas
            self.optimizer.apply(gradients, variables)
        return loss

    def fisher_vector_product(self, weights, batches, vector):
        """The damped Fisher matrix of `meta_terms`'s KL at `weights` times
        `vector`: the Hessian-vector product of the KL (second derivatives
        through the inner steps included), plus `cg_damping * vector`."""
        def directional(point):
            (_, _), gradients = backend.value_and_grad(
                lambda w: (self.meta_terms(w, batches)[1], ()), point)
            return sum(ops.sum(g * v) for g, v in zip(gradients, vector)), ()

        (_, _), product = backend.value_and_grad(directional, weights)
        return [p + self.cg_damping * v for p, v in zip(product, vector)]

    def trust_region_step(self, batches):
        """One TRPO step on the policy's variables (see `trust_region`);
        returns the outer loss before it."""
        variables = self.trainable_variables
        weights = [ops.convert_to_tensor(backend.read_value(v))
                   for v in variables]
        (loss, _), gradients = backend.value_and_grad(
            lambda w: (self.meta_terms(w, batches)[0], ()), weights)
        gradients = [ops.stop_gradient(g) for g in gradients]
        direction = _looped_conjugate_gradient(
            lambda v: self.fisher_vector_product(weights, batches, v),
            [-g for g in gradients], self.cg_iterations)
        curvature = sum(ops.sum(d * f) for d, f in zip(
            direction,
            self.fisher_vector_product(weights, batches, direction)))
        scale = ops.sqrt(2.0 * self.trust_region / ops.maximum(
            curvature, 1e-30))
        step = [scale * d for d in direction]
        dtype = weights[0].dtype

        def candidate(k):
            fraction = ops.power(ops.cast(TRPO_BACKTRACK, dtype),
                                 ops.cast(k, dtype))
            return [w + fraction * s for w, s in zip(weights, step)]

        def accepted(k):
            new_loss, kl = self.meta_terms(candidate(k), batches)
            return ops.logical_and(ops.less(new_loss, loss),
                                   ops.less_equal(kl, self.trust_region))

        def cond(k, found):
            return ops.logical_and(ops.logical_not(found),
                                   ops.less(k, TRPO_MAX_BACKTRACKS))

        def body(k, found):
            found = accepted(k)
            return ops.where(found, k, k + 1), found

        k, found = ops.while_loop(
            cond, body, (ops.convert_to_tensor(0, "int32"),
                         ops.convert_to_tensor(False)))
        chosen = candidate(k)
        for variable, old, new in zip(variables, weights, chosen):
            variable.assign(ops.where(found, new, old))
        return loss

    def _track(self, loss, batches):
        self.loss_tracker.update_state(loss)
        self.return_before_tracker.update_state(
            ops.mean(batches[0]["returns"]))
        if self.num_inner_steps:
            self.return_after_tracker.update_state(
                ops.mean(batches[-1]["returns"]))

    def fit(self, x=None, *args, **kwargs):
        """Meta-trains on a dataset of task batches; see `keras.Model.fit`.

        `x` yields task parameters `[meta_batch, task_dim]`, usually
        `environment.task_dataset(meta_batch_size)`, which is endless: give
        `steps_per_epoch`. Each step rolls out, adapts and updates.

        With a `SimulatorEnvironment` (gymnasium), rollouts cannot run in
        the graph: `fit` then runs its own loop, which samples with the
        current weights, adapts (compiled), samples with the adapted
        weights and applies the outer update (compiled), step after step,
        so no rollout is stale. It takes `x`, `steps_per_epoch`, `epochs`,
        `initial_epoch`, `callbacks` and `verbose`, and drives the
        callbacks (`History`, the progress bar, `ModelCheckpoint`,
        `CSVLogger`, `EarlyStopping`, ...) as Keras does.
        """
        # Resuming is exact: the task batches a resumed run trained on are
        # skipped, and the rollouts' noise generator is restored with the
        # weights.
        x = skip_trained_batches(x, kwargs.get("callbacks"),
                                 kwargs.get("steps_per_epoch"),
                                 getattr(self, "distribute_strategy", None))
        if isinstance(self.environment, SimulatorEnvironment):
            return self._fit_simulator(x, *args, **kwargs)
        kwargs.setdefault("shuffle", False)
        return super().fit(x, *args, **kwargs)

    def test_step(self, data):
        raise NotImplementedError(
            f"`{type(self).__name__}` is evaluated by "
            "`adaptation_returns(tasks)` (returns after 0, 1, 2, ... "
            "adaptation steps on fixed test tasks), or during `fit()` by the "
            "`keras_meta.rl.AdaptationReturns` callback; `evaluate()` does "
            "not apply.")

    # ------------------------------------------------------------------
    # Evaluation and deployment.
    # ------------------------------------------------------------------

    def _step_rates(self, num_steps):
        rates = self.eval_learning_rates
        return [rates[min(i, len(rates) - 1)] for i in range(num_steps)]

    def _evaluator(self, num_steps, shape=None):
        # Keyed by the step sizes (assigning `eval_learning_rates` between
        # evaluations takes effect) and the noise's shape (rollouts need
        # static task and trajectory counts; a relaxed retrace has none).
        rates = self._step_rates(num_steps)
        key = (num_steps, tuple(rates), shape)
        if key not in self._evaluators:

            def evaluate(tasks, noise):
                index = [0]

                def next_noise():
                    value = noise[index[0]]
                    index[0] += 1
                    return value

                batches, weights = self.collect(tasks, next_noise, rates)
                returns = ops.stack(
                    [ops.mean(b["returns"], axis=1) for b in batches], axis=1)
                return returns, weights

            self._evaluators[key] = backend.compiled(evaluate)
        return self._evaluators[key]

    def _check_tasks(self, tasks):
        tasks = np.asarray(tasks, dtype="float32")
        dim = self.environment.task_dim
        if tasks.ndim == 1 and tasks.shape[0] == dim:
            tasks = tasks[None]
        if tasks.ndim != 2 or tasks.shape[1] != dim or not len(tasks):
            raise ValueError(
                "Expected task parameters of shape [num_tasks, "
                f"{dim}] (from `environment.sample_tasks(...)`). Received "
                f"shape {tasks.shape}.")
        return tasks

    def adaptation_returns(self, tasks, *, num_steps=3,
                           num_trajectories=None, seed=0):
        """Mean return per task after 0, 1, ..., `num_steps` adaptation
        steps.

        Each step adapts on fresh rollouts of the policy adapted so far
        (step sizes `eval_learning_rates`), and the return "after k steps"
        is that of new rollouts of the k-times adapted policy, never of the
        rollouts it adapted on. The policy's variables are not changed.

        Args:
            tasks: Task parameters `[num_tasks, task_dim]`.
            num_steps: Int, adaptation steps. Defaults to `3`.
            num_trajectories: Trajectories per task and step. Defaults to
                the training value.
            seed: Int seeding the rollouts' noise (the same seed gives the
                same numbers).

        Returns:
            A NumPy array `[num_tasks, num_steps + 1]` of mean undiscounted
            returns.
        """
        returns, _ = self._adapt(tasks, num_steps, num_trajectories, seed)
        return returns

    def _adapt(self, tasks, num_steps, num_trajectories, seed):
        check_count("num_steps", num_steps, 0)
        tasks = self._check_tasks(tasks)
        num_trajectories = num_trajectories or self.num_trajectories
        env = self.environment
        if isinstance(env, SimulatorEnvironment):
            batches, weights = self._collect_simulated(
                tasks, num_trajectories, self._step_rates(num_steps),
                np.random.default_rng(seed))
            returns = np.stack([ops.convert_to_numpy(ops.mean(
                b["returns"], axis=1)) for b in batches], axis=1)
            return returns, weights
        noise = np.random.default_rng(seed).standard_normal(
            (num_steps + 1, env.horizon, len(tasks), num_trajectories,
             env.action_dim)).astype("float32")
        returns, weights = self._evaluator(num_steps, noise.shape)(
            ops.convert_to_tensor(tasks), ops.convert_to_tensor(noise))
        return ops.convert_to_numpy(returns), weights

    def adapt(self, task, *, num_steps=1, num_trajectories=None, seed=0):
        """Adapts the policy to one task from its own rollouts.

        Returns an ordinary `keras.Model`, a copy of the policy holding the
        adapted weights (the original is not changed), ready to act,
        save or export. `adaptation_returns` evaluates exactly this
        procedure.
        """
        tasks = self._check_tasks(task)
        if len(tasks) != 1:
            raise ValueError(
                "`adapt()` takes one task's parameters, shape "
                f"[{self.environment.task_dim}]. Received {len(tasks)} tasks;"
                " adapt to each separately.")
        _, weights = self._adapt(tasks, num_steps, num_trajectories, seed)
        adapted = keras.models.clone_model(self.policy)
        adapted.set_weights([v.numpy() for v in self.policy.weights])
        for variable, value in zip(adapted.trainable_variables, weights):
            value = ops.convert_to_numpy(value)
            variable.assign(value[0] if num_steps else value)
        return adapted

    def get_config(self):
        config = super().get_config()
        config.update(
            policy=keras.saving.serialize_keras_object(self.policy),
            environment=keras.saving.serialize_keras_object(self.environment),
            inner_learning_rate=self.inner_learning_rate,
            num_inner_steps=self.num_inner_steps,
            num_trajectories=self.num_trajectories,
            discount=self.discount,
            gae_lambda=self.gae_lambda,
            normalize_advantages=self.normalize_advantages,
            inner_estimator=self.inner_estimator,
            clip_ratio=self.clip_ratio,
            kl_penalty=self.kl_penalty,
            num_outer_steps=self.num_outer_steps,
            first_order=self.first_order,
            trust_region=self.trust_region,
            cg_iterations=self.cg_iterations,
            cg_damping=self.cg_damping,
            eval_learning_rates=self.eval_learning_rates,
            seed=self.seed,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["policy"] = keras.saving.deserialize_keras_object(
            config["policy"])
        config["environment"] = keras.saving.deserialize_keras_object(
            config["environment"])
        return cls(**config)


def _looped_conjugate_gradient(matvec, b, num_steps):
    """Conjugate gradient from `x = 0` for `A x = b`, `A` symmetric positive
    definite, in a loop whose body (one product `matvec`) is traced once:
    a Fisher-vector product through the inner steps is a large graph.
    Stops after `num_steps` iterations or once the squared residual falls
    below 1e-20 of `b`'s."""
    def dot(u, v):
        return sum(ops.sum(a * c) for a, c in zip(u, v))

    b = [ops.convert_to_tensor(v) for v in b]
    start = dot(b, b)
    tiny = ops.cast(1e-30, start.dtype)

    def cond(i, x, r, d, rr):
        return ops.logical_and(ops.less(i, num_steps),
                               ops.greater(rr, 1e-20 * start))

    def body(i, x, r, d, rr):
        product = matvec(d)
        alpha = rr / ops.maximum(dot(d, product), tiny)
        x = [a + alpha * c for a, c in zip(x, d)]
        r = [a - alpha * c for a, c in zip(r, product)]
        new_rr = dot(r, r)
        beta = new_rr / ops.maximum(rr, tiny)
        d = [a + beta * c for a, c in zip(r, d)]
        return i + 1, x, r, d, new_rr

    _, x, _, _, _ = ops.while_loop(
        cond, body, (ops.convert_to_tensor(0, "int32"),
                     [ops.zeros_like(v) for v in b], b, b, start))
    return x


@keras.saving.register_keras_serializable(package="keras_meta")
class MAMLRL(MetaPolicyGradient):
    """MAML for reinforcement learning with a vanilla policy-gradient inner
    step, second order through it (Finn et al., 2017).

    `MetaPolicyGradient` with `inner_estimator="vanilla"`, no clipping and
    one outer update per batch of rollouts; the outer step is the compiled
    optimizer's, or the paper's TRPO step with `trust_region=0.01` (see
    `MetaPolicyGradient`). The inner step size
    defaults to 0.1, the paper's value for its reinforcement-learning
    experiments; see `MetaPolicyGradient` for every other argument.
    """

    def __init__(self, policy, environment, *, inner_learning_rate=0.1,
                 **kwargs):
        kwargs.setdefault("inner_estimator", "vanilla")
        super().__init__(policy, environment,
                         inner_learning_rate=inner_learning_rate, **kwargs)


@keras.saving.register_keras_serializable(package="keras_meta")
class ProMP(MetaPolicyGradient):
    """Proximal Meta-Policy Search (Rothfuss et al., 2019).

    `MetaPolicyGradient` with the low-variance curvature inner surrogate
    (`inner_estimator="lvc"`), PPO's clipped outer objective
    (`clip_ratio=0.3`), a KL penalty between the sampling and the current
    pre-update policy (`kl_penalty=5e-4`) and `num_outer_steps=5`
    optimizer updates per batch of rollouts: the defaults of the ProMP
    code. Any of them can be overridden.
    """

    def __init__(self, policy, environment, *, inner_learning_rate=0.1,
                 **kwargs):
        kwargs.setdefault("inner_estimator", "lvc")
        kwargs.setdefault("clip_ratio", 0.3)
        kwargs.setdefault("kl_penalty", 5e-4)
        kwargs.setdefault("num_outer_steps", 5)
        super().__init__(policy, environment,
                         inner_learning_rate=inner_learning_rate, **kwargs)
