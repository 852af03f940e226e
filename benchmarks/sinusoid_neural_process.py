"""A Conditional or Attentive Neural Process on the MAML paper's sinusoids.

Trains `keras_meta.CNP` (`--model cnp`: encoder and decoder of 128-unit
ReLU layers, as Garnelo et al. 2018) or `keras_meta.ANP` (`--model anp`:
the same widths, 8-head cross-attention and a 128-d latent path, as Kim
et al. 2019) on sinusoid tasks as the papers train them: 30 points per
task, of which a random 3 to 20 (`--min-shots`, `--num-shots`) are the
context and all 30 are targets (`keras_meta.data.random_context`);
meta-batch 25 and Adam 1e-3 for `--meta-steps` steps (20,000, the budget
of `sinusoid_algorithms.py`). `--fixed-context` trains the older way
instead: K=`--num-shots` context points and 10 separate query points.
Then scores the same 600 fixed test tasks (100 query points each) as that
benchmark at K=5, 10 and 20: query MSE of the predictive mean, Gaussian
negative log-likelihood and the fraction of targets inside the predicted
95% interval, each with a 95% CI over tasks. Also draws the
predictive mean and 95% band for three test tasks. Prints a table and
writes JSON and a PNG. The work is `keras_meta.experiments.neural_process`
(also `keras-meta train --algorithm cnp|anp`).

    python benchmarks/sinusoid_neural_process.py
    python benchmarks/sinusoid_neural_process.py --model anp \
        --output benchmarks/results/sinusoid_attentive_neural_process.json
"""

import argparse
import json
import os
import shutil
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_meta.experiments import neural_process  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=neural_process.ALGORITHMS,
                        default="cnp")
    parser.add_argument("--meta-steps", type=int, default=20000)
    parser.add_argument("--meta-batch-size", type=int, default=25)
    parser.add_argument("--num-shots", type=int, default=20,
                        help="the largest context in training")
    parser.add_argument("--min-shots", type=int, default=3,
                        help="the smallest context in training")
    parser.add_argument("--fixed-context", action="store_true",
                        help="train at K=--num-shots, queries apart")
    parser.add_argument("--num-test-tasks", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=os.path.join(
        os.path.dirname(__file__), "results", "sinusoid_neural_process.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        results = neural_process.run(
            algorithm=args.model, output_dir=directory,
            meta_steps=args.meta_steps, meta_batch_size=args.meta_batch_size,
            num_shots=args.num_shots,
            min_shots=None if args.fixed_context else args.min_shots,
            num_test_tasks=args.num_test_tasks, seed=args.seed, verbose=2)
        png = os.path.splitext(args.output)[0] + ".png"
        os.makedirs(os.path.dirname(os.path.abspath(args.output)),
                    exist_ok=True)
        shutil.copy(os.path.join(directory, "sinusoid.png"), png)
    print()
    print(neural_process.format_table(results))
    with open(args.output, "w") as f:
        json.dump({"model": args.model.upper(), "args": vars(args),
                   "training_seconds": results["seconds"]["training"],
                   "rows": results["rows"], "config": results["config"]},
                  f, indent=2)
    print(f"wrote {args.output} and {png}")


if __name__ == "__main__":
    main()
