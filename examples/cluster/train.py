"""One training script for one process or many: MAML on sinusoid tasks
under `tf.distribute.MultiWorkerMirroredStrategy`.

Every worker runs this same script. The strategy comes from the
environment:

- under Slurm (`SLURM_PROCID` set, e.g. `srun python train.py` from
  `slurm.sbatch`): TensorFlow's `SlurmClusterResolver`;
- with `TF_CONFIG` set (Kubernetes, `kubernetes.yaml`, or
  `python -m keras_meta.cluster --workers 2 -- python train.py` on one
  machine): `MultiWorkerMirroredStrategy` reads it;
- otherwise one process.

The meta-batch is global: each step's `--meta-batch` tasks are split
between the workers (keep it a multiple of the number of workers). Backups
go to `--backup-dir`, one folder per worker (keep it on storage that
outlives the job): after a worker is lost, start the job again and every
worker resumes from the last epoch. Only the chief (worker 0) writes the
final model.

    python train.py --tiny                     # one process, seconds
    python -m keras_meta.cluster --workers 2 -- python train.py --tiny
"""

import argparse
import json
import os

import keras
import tensorflow as tf

import keras_meta

parser = argparse.ArgumentParser()
parser.add_argument("--meta-batch", type=int, default=24)
parser.add_argument("--epochs", type=int, default=20)
parser.add_argument("--steps-per-epoch", type=int, default=500)
parser.add_argument("--backup-dir", default="backup")
parser.add_argument("--output", default="maml.keras")
parser.add_argument("--tiny", action="store_true",
                    help="2 epochs of 5 steps")
args = parser.parse_args()
if args.tiny:
    args.epochs, args.steps_per_epoch = 2, 5

if "SLURM_PROCID" in os.environ:
    strategy = tf.distribute.MultiWorkerMirroredStrategy(
        cluster_resolver=tf.distribute.cluster_resolver.SlurmClusterResolver())
elif "TF_CONFIG" in os.environ:
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
else:
    strategy = tf.distribute.get_strategy()
if args.meta_batch % strategy.num_replicas_in_sync:
    raise SystemExit(
        f"--meta-batch {args.meta_batch} does not divide between "
        f"{strategy.num_replicas_in_sync} replicas; use a multiple of it.")
index = int(os.environ.get("SLURM_PROCID", json.loads(os.environ.get(
    "TF_CONFIG", "{}")).get("task", {}).get("index", 0)))
is_chief = index == 0

# Every worker draws the same endless stream of tasks; DATA sharding gives
# each its share of every global meta-batch, so no task is trained twice.
train = keras_meta.data.sinusoid(num_shots=10, batch_size=args.meta_batch,
                                 seed=0)
options = tf.data.Options()
options.experimental_distribute.auto_shard_policy = (
    tf.data.experimental.AutoShardPolicy.DATA)
train = train.with_options(options)

with strategy.scope():
    maml = keras_meta.MAML(keras_meta.models.mlp(hidden_units=(40, 40)),
                           inner_learning_rate=0.01, num_inner_steps=1)
    maml.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
history = maml.fit(
    train, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch,
    verbose=2 if is_chief else 0,
    # Each worker backs up into a folder of its own (same weights, no two
    # writers of one file) and restores from it when the job restarts.
    callbacks=[keras_meta.callbacks.BackupAndRestore(
        os.path.join(args.backup_dir, f"worker{index}"))])
print(f"{strategy.num_replicas_in_sync} replica(s): final loss "
      f"{history.history['loss'][-1]:.4f}")
if is_chief:
    maml.save(args.output)
    print(f"wrote {args.output}")
