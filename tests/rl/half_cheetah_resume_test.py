"""`benchmarks/meta_rl_half_cheetah.py --state-dir`: resumable runs."""

import importlib.util
import json
import os
import sys
from unittest import mock

import keras
import numpy as np
import pytest

from keras_meta import testing
from tests.rl.half_cheetah_seeds_test import _script


def _config(**changes):
    config = {"task": "velocity", "learner": "maml", "variant": "rllab",
              "meta_batch_size": 2, "trajectories": 1,
              "eval_trajectories": 1, "inner_learning_rate": 0.1,
              "outer_learning_rate": 1e-3, "outer": "trpo", "eval_every": 1,
              "validation_trajectories": 1, "num_test_tasks": 2, "seed": 3,
              "num_processes": 1, "minutes": 60.0, "iterations": 3}
    config.update(changes)
    return config


class RunStateTest(testing.TestCase):
    def _write(self, directory, epoch, config=None):
        module = _script()
        state = {
            "config": {k: (config or _config())[k]
                       for k in module.RESUME_KEYS},
            "epoch": epoch,
            "random": {"mean": [-300.0] * 4},
            "evaluation_seconds": 3.0,
            "validation": [{"epoch": e + 1, "mean": [-200.0, -190.0 + e,
                                                     -180.0 + e, -170.0]}
                           for e in range(epoch)],
            "curve": [{"loss": float(e)} for e in range(epoch)],
            "epoch_train_seconds": [10.0 * (e + 1) for e in range(epoch)],
            "sessions": [{"from_epoch": 0, "epochs_to": epoch}],
        }
        with open(os.path.join(directory, "state.json"), "w") as f:
            json.dump(state, f)
        return module

    def test_a_state_ahead_of_the_backup_is_cut_back_to_it(self):
        directory = self.get_temp_dir()
        module = self._write(directory, 3)
        state = module.RunState.load(directory, _config(), 2)
        self.assertEqual(state["epoch"], 2)
        self.assertEqual([h["epoch"] for h in state["validation"]], [1, 2])
        self.assertEqual(state["curve"], [{"loss": 0.0}, {"loss": 1.0}])
        self.assertEqual(state["train_seconds"], 20.0)
        self.assertEqual(state["epoch_train_seconds"], [10.0, 20.0])

    def test_restore_sets_the_best_evaluation_and_its_weights(self):
        directory = self.get_temp_dir()
        module = self._write(directory, 3)
        weights = [np.arange(4.0).reshape(2, 2), np.ones(3)]
        np.savez(os.path.join(directory, "best_at_epoch_2.npz"),
                 w0=weights[0], w1=weights[1])
        validation = keras.callbacks.Callback()
        run_state = module.RunState(directory, _config(), validation)
        # Epoch 3 scored best, but the backup is of epoch 2: of the
        # evaluations kept, epoch 2's is the best.
        run_state.restore(module.RunState.load(directory, _config(), 2))
        self.assertEqual(validation.best_epoch, 2)
        self.assertAllClose(validation.best_score,
                            np.mean([-189.0, -179.0, -170.0]))
        self.assertLen(validation.history, 2)
        for got, want in zip(validation.best_weights, weights):
            self.assertAllClose(got, want)

    def test_another_configuration_is_refused_by_name(self):
        directory = self.get_temp_dir()
        module = self._write(directory, 2)
        with self.assertRaisesRegex(ValueError, r"\['seed'\] differ"):
            module.RunState.load(directory, _config(seed=4), 2)

    def test_a_state_behind_the_backup_is_refused(self):
        directory = self.get_temp_dir()
        module = self._write(directory, 1)
        with self.assertRaisesRegex(ValueError, "behind the backup"):
            module.RunState.load(directory, _config(), 2)

    def test_a_backup_without_a_state_is_refused(self):
        directory = self.get_temp_dir()
        with self.assertRaisesRegex(ValueError, "no state.json"):
            _script().RunState.load(directory, _config(), 2)
        self.assertIsNone(_script().RunState.load(directory, _config(), 0))

    def test_iterations_must_fill_whole_epochs(self):
        argv = ["meta_rl_half_cheetah.py", "--iterations", "3",
                "--eval-every", "2", "--state-dir", self.get_temp_dir()]
        with mock.patch.object(sys, "argv", argv):
            with self.assertRaisesRegex(ValueError,
                                        "multiple of --eval-every"):
                _script().main()


@pytest.mark.slow  # three short HalfCheetah runs (about 2 minutes)
@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="keras_meta.rl trains on the TensorFlow backend")
@pytest.mark.skipif(importlib.util.find_spec("mujoco") is None,
                    reason="needs the rl extra (gymnasium[mujoco])")
class ResumedRunTest(testing.TestCase):
    def _run(self, *extra):
        argv = ["meta_rl_half_cheetah.py", "--task", "velocity",
                "--learner", "maml", "--outer", "trpo", "--variant", "rllab",
                "--meta-batch-size", "2", "--trajectories", "1",
                "--eval-trajectories", "1", "--validation-trajectories", "1",
                "--num-test-tasks", "2", "--eval-every", "1", "--seed", "3",
                *extra]
        with mock.patch.object(sys, "argv", argv):
            _script().main()

    def test_a_run_resumed_twice_equals_the_uninterrupted_run(self):
        directory = self.get_temp_dir()
        state_dir = os.path.join(directory, "state")
        paths = [os.path.join(directory, f"{name}.json")
                 for name in ("whole", "first", "resumed")]
        self._run("--iterations", "2", "--output", paths[0])
        self._run("--iterations", "1", "--state-dir", state_dir,
                  "--output", paths[1])
        self._run("--iterations", "2", "--state-dir", state_dir,
                  "--output", paths[2])
        records = []
        for path in paths:
            with open(path) as f:
                records.append(json.load(f))
        whole, first, resumed = records
        self.assertEqual(first["iterations_completed"], 1)
        self.assertEqual(resumed["iterations_completed"], 2)
        self.assertEqual(
            [(s["from_epoch"], s["epochs_to"]) for s in resumed["sessions"]],
            [(0, 1), (1, 2)])
        self.assertEqual(resumed["checkpoint"], whole["checkpoint"])
        for key in whole["training_curve"]:
            self.assertAllClose(resumed["training_curve"][key],
                                whole["training_curve"][key], atol=1e-3)
        for name in whole["results"]:
            self.assertAllClose(resumed["results"][name]["per_goal"],
                                whole["results"][name]["per_goal"],
                                atol=1e-3)
        # The first session's record is of its one iteration.
        self.assertLen(first["checkpoint"]["validation_curve"], 1)
        self.assertLen(resumed["checkpoint"]["validation_curve"], 2)
