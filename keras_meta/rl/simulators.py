"""MuJoCo simulators for the robot task families, one per task and
trajectory, stepped in this process or split over worker processes.

`keras_meta.rl.HalfCheetahVelocity` and kin hold a pool of simulators:
`LocalPool` steps them one after the other in this process,
`ProcessPool(num_processes=N)` splits them into N contiguous shares, each
stepped by a worker process, all shares at once. Both give the same
numbers: every simulator is made, seeded and stepped by the same code
(`HalfCheetahSimulator`, `AntSimulator`) whichever process holds it.

This module imports neither Keras nor the rest of keras_meta, and workers
run it as a script, so a worker loads NumPy, MuJoCo and gymnasium only (no
TensorFlow), starts in about a second and stays small.
"""

import os
import pickle
import subprocess
import sys

import numpy as np


class HalfCheetahSimulator:
    """Makes, resets and steps one HalfCheetah: gymnasium's
    `HalfCheetah-v5` (`variant="v5"`), or the MAML paper's rllab model
    (`variant="rllab"`: one physics step per action, the torso subtree's
    centre-of-mass velocity, 20 observations, rllab's reset noise).
    `step` returns the observation and `{"velocity": ...}`."""

    def __init__(self, variant):
        self.variant = variant
        self.model = None
        self.torso = None

    def make(self):
        if self.variant == "v5":
            import gymnasium

            return gymnasium.make("HalfCheetah-v5")
        import mujoco

        if self.model is None:
            self.model = rllab_half_cheetah_model()
            self.torso = mujoco.mj_name2id(
                self.model, mujoco.mjtObj.mjOBJ_BODY, "torso")
        return mujoco.MjData(self.model)

    def reset(self, sim, seed):
        if self.variant == "v5":
            return sim.reset(seed=seed)[0]
        import mujoco

        # rllab's reset: Gaussian noise of scale 0.01 on the positions and
        # 0.1 on the velocities.
        rng = np.random.default_rng(seed)
        mujoco.mj_resetData(self.model, sim)
        sim.qpos[:] = self.model.qpos0 + 0.01 * rng.standard_normal(
            self.model.nq)
        sim.qvel[:] = 0.1 * rng.standard_normal(self.model.nv)
        mujoco.mj_forward(self.model, sim)
        return self.observation(sim)

    def step(self, sim, action):
        if self.variant == "v5":
            observation, _, _, _, info = sim.step(action)
            return observation, {"velocity": info["x_velocity"]}
        observation = rllab_step(self.model, sim, action, self.torso)
        return observation, {
            "velocity": float(sim.subtree_linvel[self.torso, 0])}

    def observation(self, sim):
        return np.concatenate([sim.qpos[1:], sim.qvel,
                               sim.subtree_com[self.torso]])


class AntSimulator:
    """Makes, resets and steps one gymnasium `Ant-v5` (without its
    checker). `step` returns the observation and `{"velocity",
    "contact", "terminated"}`: gymnasium's x velocity, its (negative)
    contact-cost reward, and whether the Ant became unhealthy."""

    def make(self):
        import gymnasium

        return gymnasium.make("Ant-v5", disable_env_checker=True)

    def reset(self, sim, seed):
        return sim.reset(seed=seed)[0]

    def step(self, sim, action):
        observation, _, terminated, _, info = sim.step(action)
        return observation, {"velocity": info["x_velocity"],
                             "contact": info["reward_contact"],
                             "terminated": bool(terminated)}


SIMULATORS = {"half_cheetah": HalfCheetahSimulator, "ant": AntSimulator}


def rllab_half_cheetah_model():
    """The MuJoCo model of rllab's HalfCheetah: gymnasium's
    `half_cheetah.xml`, whose bodies, joints, geoms, actuators and options
    (a 0.01 s timestep) are rllab's, with one physics step per action."""
    import gymnasium
    import mujoco

    path = os.path.join(os.path.dirname(gymnasium.__file__), "envs",
                        "mujoco", "assets", "half_cheetah.xml")
    return mujoco.MjModel.from_xml_path(path)


def rllab_step(model, data, action, torso):
    """One action of rllab's HalfCheetah: the controls, one physics step,
    then the quantities of the new state (`mj_forward`) and the subtrees'
    centre-of-mass velocities (`mj_subtreeVel`, rllab's `body_comvels`).
    Returns the 20-number observation."""
    import mujoco

    data.ctrl[:] = action
    mujoco.mj_step(model, data)
    mujoco.mj_forward(model, data)
    mujoco.mj_subtreeVel(model, data)
    return np.concatenate([data.qpos[1:], data.qvel,
                           data.subtree_com[torso]])


class LocalPool:
    """Simulators of one kind (`SIMULATORS`), stepped in this process.

    `reset(seeds)` resets one simulator per seed (making more as needed)
    and returns their observations `[n, obs_dim]`; `step(actions, active)`
    steps the active ones and returns the observations (the last one for
    inactive simulators) and each output `[n]` (zero where inactive).
    """

    def __init__(self, kind, options):
        self.simulator = SIMULATORS[kind](**options)
        self.sims = []
        self.observations = None

    def reset(self, seeds):
        seeds = list(seeds)
        while len(self.sims) < len(seeds):
            self.sims.append(self.simulator.make())
        self.observations = np.array(
            [self.simulator.reset(sim, int(seed))
             for sim, seed in zip(self.sims, seeds)], "float64")
        return self.observations.copy()

    def step(self, actions, active=None):
        count = len(self.observations)
        if active is None:
            active = np.ones(count, bool)
        outputs = {}
        for k in np.flatnonzero(active):
            observation, values = self.simulator.step(self.sims[k],
                                                      actions[k])
            self.observations[k] = observation
            for name, value in values.items():
                outputs.setdefault(name, np.zeros(count))[k] = value
        return self.observations.copy(), outputs

    def close(self):
        self.sims = []


def shares(count, parts):
    """`parts` contiguous `(start, stop)` ranges splitting `range(count)`
    as evenly as possible."""
    bounds = np.linspace(0, count, parts + 1).round().astype(int)
    return list(zip(bounds[:-1], bounds[1:]))


class ProcessPool:
    """`LocalPool`'s interface over `num_processes` worker processes, each
    holding a contiguous share of the simulators; every call goes to all
    workers before any answer is read, so the shares step at once.

    Workers start at the first `reset` (this file run as a script, without
    Keras) and stop at `close()`, when the pool is collected, or when this
    process exits (their input closes). An error in a worker is raised
    here with the worker's traceback.
    """

    def __init__(self, kind, options, num_processes):
        self.kind, self.options = kind, dict(options)
        self.num_processes = int(num_processes)
        self.workers = []
        self.ranges = None

    def _start(self):
        environment = dict(os.environ)
        for _ in range(self.num_processes):
            worker = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                env=environment)
            self.workers.append(worker)
        self._broadcast([("make", self.kind, self.options)]
                        * self.num_processes)

    def _broadcast(self, messages):
        for worker, message in zip(self.workers, messages):
            if message is not None:
                pickle.dump(message, worker.stdin)
                worker.stdin.flush()
        answers = []
        for index, (worker, message) in enumerate(
                zip(self.workers, messages)):
            if message is None:
                answers.append(None)
                continue
            try:
                status, value = pickle.load(worker.stdout)
            except EOFError:
                code = worker.wait()
                self.close()
                raise RuntimeError(
                    f"Simulator worker {index} exited with code {code} "
                    "(its error, if any, is printed above).") from None
            if status == "error":
                self.close()
                raise RuntimeError(
                    f"Simulator worker {index} failed:\n{value}")
            answers.append(value)
        return answers

    def reset(self, seeds):
        seeds = np.asarray(list(seeds))
        if not self.workers:
            self._start()
        self.ranges = shares(len(seeds), self.num_processes)
        answers = self._broadcast(
            [("reset", seeds[a:b]) if b > a else None
             for a, b in self.ranges])
        return np.concatenate([o for o in answers if o is not None])

    def step(self, actions, active=None):
        count = self.ranges[-1][1]
        if active is None:
            active = np.ones(count, bool)
        answers = self._broadcast(
            [("step", actions[a:b], active[a:b]) if b > a else None
             for a, b in self.ranges])
        observations = np.concatenate(
            [o for o, _ in filter(None, answers)])
        outputs = {}
        for (a, b), answer in zip(self.ranges, answers):
            if answer is None:
                continue
            for name, values in answer[1].items():
                outputs.setdefault(name, np.zeros(count))[a:b] = values
        return observations, outputs

    def close(self):
        workers, self.workers = self.workers, []
        for worker in workers:
            try:
                worker.stdin.close()
            except OSError:
                pass
        for worker in workers:
            try:
                worker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
            worker.stdout.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass


def _serve(messages, answers):
    """A worker's loop: answers `make`, `reset` and `step` messages from
    `messages` on `answers` until its input closes."""
    import traceback

    pool = None
    while True:
        try:
            message = pickle.load(messages)
        except EOFError:
            return
        try:
            if message[0] == "make":
                pool = LocalPool(message[1], message[2])
                answer = None
            elif message[0] == "reset":
                answer = pool.reset(message[1])
            else:
                answer = pool.step(message[1], message[2])
            pickle.dump(("ok", answer), answers)
        except Exception:  # noqa: BLE001 - sent to the parent
            pickle.dump(("error", traceback.format_exc()), answers)
        answers.flush()


if __name__ == "__main__":
    import signal

    # Run as a script: this file's folder would shadow other modules.
    sys.path.pop(0)
    # Ctrl-C interrupts the training process, which closes the workers'
    # input: they end then, without a traceback of their own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Answers go on the original standard output; anything the simulators
    # print goes to standard error instead.
    channel = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    _serve(sys.stdin.buffer, channel)
