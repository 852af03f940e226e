"""Worker processes on 127.0.0.1 under MultiWorkerMirroredStrategy, started
by `keras_meta.cluster.launch_local_workers` (the launcher the docs give
users), against one process training on the same global meta-batches."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from absl.testing import parameterized

from keras_meta import cluster
from keras_meta import testing

# Six tasks per global meta-batch: an even share for 1, 2 and 3 workers.
GLOBAL_BATCH = 6
NUM_EPISODES = 12

# Trains MAML (BatchNorm, second order) and ProtoNet for two epochs of two
# steps, evaluates both, and writes the weights, the scores, and the
# episode numbers this worker's replica drew at
# each step of one pass over the same pipeline as `fit()` distributes it.
# Without TF_CONFIG it runs as one process.
_WORKER = r"""
import json, os, sys
import numpy as np
import tensorflow as tf
import keras
import keras_meta
from keras_meta import testing

index = (json.loads(os.environ["TF_CONFIG"])["task"]["index"]
         if "TF_CONFIG" in os.environ else 0)
output = f"{sys.argv[1]}{index}.npz"
global_batch, num_episodes = int(sys.argv[2]), int(sys.argv[3])
strategy = (tf.distribute.MultiWorkerMirroredStrategy()
            if "TF_CONFIG" in os.environ else tf.distribute.get_strategy())
options = tf.data.Options()
options.experimental_distribute.auto_shard_policy = (
    tf.data.experimental.AutoShardPolicy.DATA)
inputs, labels = testing.toy_episodes(num_tasks=num_episodes, seed=3)


def pipeline(*elements):
    return (tf.data.Dataset.from_tensor_slices(elements)
            .batch(global_batch).with_options(options))


drawn = []
for batch in strategy.experimental_distribute_dataset(
        pipeline(inputs, labels, np.arange(num_episodes))):
    drawn.append([int(i) for r in strategy.experimental_local_results(batch[2])
                  for i in r.numpy()])
with strategy.scope():
    keras.utils.set_random_seed(0)
    maml = keras_meta.MAML(testing.tiny_classifier(), inner_learning_rate=0.3,
                           num_inner_steps=2)
    # SGD: Adam would turn the float rounding noise of gradients that are
    # zero in exact arithmetic (a convolution bias before BatchNorm) into
    # full-size steps of either sign.
    maml.compile(optimizer=keras.optimizers.SGD(0.1), loss=keras.losses
                 .SparseCategoricalCrossentropy(from_logits=True),
                 metrics=["accuracy"])
    encoder = keras.Sequential([
        keras.Input(inputs["support_inputs"].shape[2:]),
        keras.layers.Conv2D(4, 3), keras.layers.Flatten(),
        keras.layers.Dense(8)])
    protonet = keras_meta.ProtoNet(encoder, num_ways=3)
    protonet.compile(optimizer=keras.optimizers.SGD(0.1), loss=keras.losses
                     .SparseCategoricalCrossentropy(from_logits=True),
                     metrics=["accuracy"])
history = maml.fit(pipeline(inputs, labels), epochs=2, verbose=0)
assert np.isfinite(history.history["loss"][-1])
protonet_history = protonet.fit(pipeline(inputs, labels), epochs=2,
                                verbose=0)
# Evaluation reduced across workers: metrics, episode means and intervals.
scores = {name: {key: float(value) for key, value in learner.evaluate(
              pipeline(inputs, labels), verbose=0, return_dict=True).items()}
          for name, learner in (("maml", maml), ("protonet", protonet))}
np.savez(output, *[v.numpy() for v in maml.model.weights],
         *[v.numpy() for v in protonet.model.weights])
with open(output + ".json", "w") as f:
    json.dump({"drawn": drawn, "loss": history.history["loss"],
               "protonet_loss": protonet_history.history["loss"],
               "evaluate": scores}, f)
"""


def _script_and_env(directory, filename, source):
    """Writes a worker script; returns its path and the workers' base
    environment (TensorFlow, quiet, no cluster or kill settings of ours)."""
    script = os.path.join(directory, filename)
    with open(script, "w") as f:
        f.write(source)
    env = {key: value for key, value in os.environ.items()
           if key not in ("TF_CONFIG", "KILL_AT_STEP")}
    env.update(TF_CPP_MIN_LOG_LEVEL="3", KERAS_BACKEND="tensorflow")
    return script, env


def _run(directory, name, num_workers, global_batch=GLOBAL_BATCH,
         source=_WORKER):
    """Runs a worker script (`_WORKER` unless given) as `num_workers`
    processes (0: one process without a cluster); returns each process's
    weights and record."""
    script, env = _script_and_env(directory, "worker.py", source)
    prefix = os.path.join(directory, name)
    command = [sys.executable, script, prefix, str(global_batch),
               str(NUM_EPISODES)]
    if num_workers:
        cluster.launch_local_workers(command, num_workers, env=env,
                                     timeout=400, stream=False)
    else:
        result = subprocess.run(command, capture_output=True, text=True,
                                env=env, timeout=400)
        assert result.returncode == 0, result.stderr[-3000:]
    weights, records = [], []
    for index in range(max(num_workers, 1)):
        path = f"{prefix}{index}.npz"
        weights.append(np.load(path))
        with open(path + ".json") as f:
            records.append(json.load(f))
    return weights, records


# Meta-trains MAML-RL on 2D navigation (rollouts in the training step) for
# two epochs of two steps, and writes the policy's weights before and after
# and the logged returns. Without TF_CONFIG it runs as one process.
_RL_WORKER = r"""
import json, os, sys
import numpy as np
import tensorflow as tf
import keras
from keras_meta import rl

index = (json.loads(os.environ["TF_CONFIG"])["task"]["index"]
         if "TF_CONFIG" in os.environ else 0)
output = f"{sys.argv[1]}{index}.npz"
global_batch = int(sys.argv[2])
strategy = (tf.distribute.MultiWorkerMirroredStrategy()
            if "TF_CONFIG" in os.environ else tf.distribute.get_strategy())
options = tf.data.Options()
options.experimental_distribute.auto_shard_policy = (
    tf.data.experimental.AutoShardPolicy.DATA)
env = rl.Navigation2D(horizon=10)
with strategy.scope():
    policy = rl.gaussian_mlp_policy(2, 2, hidden_units=(8,), seed=1)
    learner = rl.MAMLRL(policy, env, num_trajectories=2, seed=0)
    learner.compile(optimizer=keras.optimizers.SGD(0.1))
initial = [v.numpy() for v in policy.weights]
history = learner.fit(env.task_dataset(global_batch, seed=0)
                      .with_options(options), steps_per_epoch=2, epochs=2,
                      verbose=0)
np.savez(output, *[v.numpy() for v in policy.weights])
np.savez(f"{sys.argv[1]}initial{index}.npz", *initial)
with open(output + ".json", "w") as f:
    json.dump(history.history, f)
"""


@pytest.mark.tensorflow_only
class MultiWorkerTest(testing.TestCase, parameterized.TestCase):
    @parameterized.named_parameters(("two", 2), ("three", 3))
    @pytest.mark.slow  # several processes
    def test_workers_match_one_process(self, num_workers):
        directory = self.get_temp_dir()
        workers, records = _run(directory, "worker", num_workers)
        (single,), (single_record,) = _run(directory, "single", 0)

        # Every episode is drawn once per pass, and each global meta-batch
        # is the one a single process trains on.
        steps = NUM_EPISODES // GLOBAL_BATCH
        for step in range(steps):
            drawn = sorted(i for record in records
                           for i in record["drawn"][step])
            self.assertEqual(drawn, list(range(step * GLOBAL_BATCH,
                                               (step + 1) * GLOBAL_BATCH)))
            self.assertEqual(sorted(single_record["drawn"][step]), drawn)
        for record in records:
            self.assertLen(record["drawn"], steps)
            self.assertLen(record["drawn"][0], GLOBAL_BATCH // num_workers)

        for name in workers[0].files:
            for other in workers[1:]:
                np.testing.assert_array_equal(workers[0][name], other[name])
            # Float32 sums of the replicas' gradients in another order than
            # one process's: rounding-level differences, amplified by two
            # inner steps and four SGD steps.
            np.testing.assert_allclose(workers[0][name], single[name],
                                       atol=2e-6, rtol=1e-5)
        # The logged losses are the global meta-batch's on every worker,
        # and evaluate() gives every worker one process's numbers,
        # confidence intervals included.
        for record in records:
            for key in ("loss", "protonet_loss"):
                np.testing.assert_allclose(record[key], single_record[key],
                                           rtol=1e-5, err_msg=key)
            for learner, scores in single_record["evaluate"].items():
                self.assertIn("loss_ci95", scores)
                for key, value in scores.items():
                    np.testing.assert_allclose(
                        record["evaluate"][learner][key], value, rtol=1e-5,
                        atol=1e-7, err_msg=f"{learner} {key}")

    @parameterized.named_parameters(("two", 2), ("three", 3))
    @pytest.mark.slow  # several processes
    def test_meta_rl_workers_match_one_process(self, num_workers):
        directory = self.get_temp_dir()
        workers, records = _run(directory, "rl", num_workers,
                                source=_RL_WORKER)
        (single,), (single_record,) = _run(directory, "rl_single", 0,
                                           source=_RL_WORKER)
        initial = np.load(os.path.join(directory, "rl_singleinitial0.npz"))
        # Each worker rolls out its share of every global batch of tasks
        # with that share of the global batch's noise: the logged returns
        # (every worker's are the global batch's) are one process's.
        for record in records:
            for key in ("return_before", "return_after"):
                np.testing.assert_allclose(record[key], single_record[key],
                                           rtol=1e-5, err_msg=key)
        # The weights moved, and equally on every worker and in one
        # process, up to float32 rounding of the summed gradients.
        moved = max(np.abs(single[n] - initial[n]).max()
                    for n in single.files)
        self.assertGreater(moved, 1e-2)
        for name in single.files:
            for other in workers[1:]:
                np.testing.assert_array_equal(workers[0][name], other[name])
            np.testing.assert_allclose(workers[0][name], single[name],
                                       atol=1e-6)

    @pytest.mark.slow  # three processes of the command
    def test_command_workers_match_one_process(self):
        # `keras-meta train --workers 2` (the command starts its workers)
        # against one process: the same meta-training, so the same scores.
        directory = self.get_temp_dir()
        _, env = _script_and_env(directory, "unused.py", "")
        runs = {}
        for workers in (1, 2):
            output = os.path.join(directory, f"workers{workers}")
            result = subprocess.run(
                [sys.executable, "-m", "keras_meta", "train", "--task",
                 "sinusoid", "--meta-steps", "6", "--meta-batch-size", "4",
                 "--num-test-tasks", "3", "--seed", "1", "--verbose", "0",
                 "--workers", str(workers), "--output-dir", output],
                capture_output=True, text=True, env=env, timeout=600)
            self.assertEqual(result.returncode, 0, result.stderr[-3000:])
            with open(os.path.join(output, "results.json")) as f:
                runs[workers] = json.load(f)
            runs[workers]["stdout"] = result.stdout
        self.assert_same_command_runs(runs)

    def assert_same_command_runs(self, runs):
        one, two = runs[1], runs[2]
        self.assertIn("[worker 0]", two["stdout"])
        # Only the chief prints the results (and writes the files).
        self.assertEqual(two["stdout"].count("every evaluated MSE"), 1)
        self.assertFalse([line for line in two["stdout"].splitlines()
                          if line.startswith("[worker 1]")
                          and ("wrote" in line or "maml" in line)])
        # Meta-training moved the weights: the loss differs from the first
        # step's, and both runs agree on it and on every score.
        self.assertAllClose(two["final_meta_train_loss"],
                            one["final_meta_train_loss"], rtol=1e-5)
        for method in ("maml", "pretrained"):
            for shots in ("K=10", "K=5"):
                self.assertAllClose(
                    [row["mse"] for row in two["curves"][method][shots]],
                    [row["mse"] for row in one["curves"][method][shots]],
                    rtol=1e-4)

    @pytest.mark.slow  # three processes of the command
    def test_command_workers_on_an_image_folder(self):
        # The image task validates under the strategy (choosing the best
        # epoch) and tests a local copy: the same numbers as one process.
        directory = self.get_temp_dir()
        _, env = _script_and_env(directory, "unused.py", "")
        images = testing.make_image_folder(
            os.path.join(directory, "images"), num_classes=12,
            images_per_class=7, sizes=(20, 44))
        runs = {}
        for workers in (1, 2):
            output = os.path.join(directory, f"workers{workers}")
            result = subprocess.run(
                [sys.executable, "-m", "keras_meta", "train", "--data-dir",
                 images, "--meta-steps", "8", "--meta-batch-size", "4",
                 "--num-test-tasks", "8", "--image-size", "16", "--filters",
                 "8", "--verbose", "0", "--workers", str(workers),
                 "--output-dir", output],
                capture_output=True, text=True, env=env, timeout=600)
            self.assertEqual(result.returncode, 0, result.stderr[-3000:])
            with open(os.path.join(output, "results.json")) as f:
                runs[workers] = json.load(f)
            runs[workers]["stdout"] = result.stdout
        one, two = runs[1], runs[2]
        self.assertIn("[worker 0]", two["stdout"])
        self.assertEqual(two["stdout"].count("2-way 1-shot"), 1)
        self.assertEqual(two["best_epoch"], one["best_epoch"])
        for key in ("loss", "val_accuracy", "val_loss"):
            self.assertAllClose(two["history"][key], one["history"][key],
                                rtol=1e-5)
        for name, row in one["test"].items():
            self.assertAllClose(two["test"][name]["accuracy"],
                                row["accuracy"], rtol=1e-5)
            self.assertAllClose(two["test"][name]["loss"], row["loss"],
                                rtol=1e-4)

    @pytest.mark.slow  # several processes
    def test_uneven_meta_batch_is_refused(self):
        # 4 tasks on 3 workers would be split 2, 2 and 0 and weighted
        # unequally; the first step stops with the fix.
        with self.assertRaisesRegex(RuntimeError, "multiple of the number "
                                    "of replicas"):
            _run(self.get_temp_dir(), "uneven", 3, global_batch=4)


# Trains MAML on an endless seeded episode stream, 4 epochs of 3 steps of a
# global meta-batch of 4, each worker backing up into its own folder; with
# KILL_AT_STEP set, worker 1 kills itself (SIGKILL) after that step, in the
# middle of an epoch; with KILL_IN_BACKUP set, in the middle of writing its
# backup of that epoch (its weights written, its epoch and the pointer to
# it not). Writes each worker's final weights and the steps it trained.
_RESUMABLE = r"""
import json, os, signal, sys
import numpy as np
import tensorflow as tf
tf.config.experimental.enable_op_determinism()
import keras
import keras_meta
from keras_meta import testing

prefix, backup_dir = sys.argv[1], sys.argv[2]
index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
kill_at = int(os.environ.get("KILL_AT_STEP", "0"))
kill_in_backup = int(os.environ.get("KILL_IN_BACKUP", "0"))
strategy = tf.distribute.MultiWorkerMirroredStrategy()
options = tf.data.Options()
options.experimental_distribute.auto_shard_policy = (
    tf.data.experimental.AutoShardPolicy.DATA)
inputs, labels = testing.toy_episodes(num_tasks=64, seed=3)
stream = (tf.data.Dataset.from_tensor_slices((inputs, labels))
          .repeat().batch(4).with_options(options))
with strategy.scope():
    keras.utils.set_random_seed(0)
    maml = keras_meta.MAML(testing.tiny_classifier(), inner_learning_rate=0.3,
                           num_inner_steps=2)
    maml.compile(optimizer=keras.optimizers.SGD(0.1), loss=keras.losses
                 .SparseCategoricalCrossentropy(from_logits=True))
steps = []
save_weights = maml.save_weights


def save_weights_then_die(path, *args, **kwargs):
    save_weights(path, *args, **kwargs)
    if (index == 1 and kill_in_backup
            and f"epoch-{kill_in_backup:06d}.partial" in path):
        os.kill(os.getpid(), signal.SIGKILL)


maml.save_weights = save_weights_then_die


class Report(keras.callbacks.Callback):
    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        steps.append(step)
        if index == 1 and step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)


maml.fit(stream, epochs=4, steps_per_epoch=3, verbose=0, callbacks=[
    keras_meta.callbacks.BackupAndRestore(
        os.path.join(backup_dir, f"worker{index}")), Report()])
np.savez(f"{prefix}{index}.npz", *[v.numpy() for v in maml.model.weights])
with open(f"{prefix}{index}.json", "w") as f:
    json.dump(steps, f)
"""


@pytest.mark.tensorflow_only
class MultiWorkerResumeTest(testing.TestCase):
    @pytest.mark.slow  # killed and restarted worker processes
    def test_killed_worker_resumes_to_the_uninterrupted_weights(self):
        directory = self.get_temp_dir()
        script, env = _script_and_env(directory, "resumable.py", _RESUMABLE)

        def run(name, backups, **extra):
            prefix = os.path.join(directory, name)
            cluster.launch_local_workers(
                [sys.executable, script, prefix,
                 os.path.join(directory, backups)], 2,
                env={**env, **extra}, timeout=400, stream=False)
            weights, steps = [], []
            for index in range(2):
                weights.append(np.load(f"{prefix}{index}.npz"))
                with open(f"{prefix}{index}.json") as f:
                    steps.append(json.load(f))
            return weights, steps

        reference, reference_steps = run("reference", "reference_backup")
        self.assertEqual(reference_steps, [list(range(1, 13))] * 2)
        # Step 8 is the second of epoch 3: worker 1 dies, the launcher stops
        # worker 0, and the restarted cluster resumes from epoch 3.
        with self.assertRaisesRegex(RuntimeError, "Worker 1 of 2 exited "
                                    "with code -9"):
            run("killed", "backup", KILL_AT_STEP="8")
        resumed, resumed_steps = run("resumed", "backup")
        self.assertEqual(resumed_steps, [list(range(7, 13))] * 2)
        for name in reference[0].files:
            for index in range(2):
                np.testing.assert_array_equal(resumed[index][name],
                                              reference[index][name])

    @pytest.mark.slow  # killed and restarted worker processes
    def test_worker_killed_while_writing_its_backup(self):
        directory = self.get_temp_dir()
        script, env = _script_and_env(directory, "resumable.py", _RESUMABLE)

        def run(name, **extra):
            prefix = os.path.join(directory, name)
            cluster.launch_local_workers(
                [sys.executable, script, prefix,
                 os.path.join(directory, "backup" if extra or name ==
                              "resumed" else name + "_backup")], 2,
                env={**env, **extra}, timeout=400, stream=False)
            weights = [np.load(f"{prefix}{index}.npz") for index in range(2)]
            steps = []
            for index in range(2):
                with open(f"{prefix}{index}.json") as f:
                    steps.append(json.load(f))
            return weights, steps

        reference, _ = run("reference")
        # Worker 1 dies writing its backup of epoch 3 (after step 9), while
        # worker 0's backup of epoch 3 is whole or being written.
        with self.assertRaisesRegex(RuntimeError, "Worker 1 of 2 exited "
                                    "with code -9"):
            run("killed", KILL_IN_BACKUP="3")
        backups = os.path.join(directory, "backup")
        self.assertNotIn("epoch-000003",
                         os.listdir(os.path.join(backups, "worker1")))
        # Both workers resume from epoch 2, the newest both hold whole.
        resumed, resumed_steps = run("resumed")
        self.assertEqual(resumed_steps, [list(range(7, 13))] * 2)
        for name in reference[0].files:
            for index in range(2):
                np.testing.assert_array_equal(resumed[index][name],
                                              reference[index][name])
