"""iMAML's settings on Omniglot: when the implicit meta-gradient learns.

Short runs (300 meta-steps of 8 5-way 1-shot episodes, Conv-4-32, the
setup of `benchmarks/omniglot_algorithms.py`), scored on 200 fixed test
episodes of small2's unseen alphabets, one per variant:

- `5steps`: lambda 2, 5 monotone inner steps from 0.1, 5 conjugate-gradient
  steps, no damping (the catalog's images setup before 16 steps);
- `5steps_cg1`: the same with one conjugate-gradient step (close to a
  first-order meta-gradient: the query gradient, rescaled);
- `5steps_damping1`, `5steps_damping11`: damped systems
  `(1 + d) I + H / lambda`; d = 11 at lambda 2 is the reference code's
  `2 I + H / (lambda + 10)` up to a scale Adam ignores;
- `16steps`: the paper's 16 inner steps, exact system (the catalog now);
- `maml`: second-order MAML, one step of 0.4, for scale.

Each row logs the training accuracy and iMAML's `inner_residual` (the
proximal gradient's norm at the returned weights relative to theta) per
30 steps.

    python benchmarks/omniglot_imaml_settings.py --data-dir ../shared/data/omniglot
"""

import argparse
import json
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from keras_meta import algorithms  # noqa: E402
from keras_meta.experiments import catalog  # noqa: E402
from keras_meta.experiments import omniglot  # noqa: E402

VARIANTS = {
    "5steps": {"num_inner_steps": 5},
    "5steps_cg1": {"num_inner_steps": 5, "cg_steps": 1},
    "5steps_damping1": {"num_inner_steps": 5, "cg_damping": 1.0},
    "5steps_damping11": {"num_inner_steps": 5, "cg_damping": 11.0},
    "16steps": {"num_inner_steps": 16},
    "maml": {"algorithm": "maml"},
}


def run(variant, args):
    options = dict(VARIANTS[variant])
    algorithm = options.pop("algorithm", "imaml")
    steps = options.pop("num_inner_steps", None)
    original = algorithms.IMAML

    class Variant(original):
        def __init__(self, model, **kwargs):
            super().__init__(model, **{**kwargs, **options})

    catalog.algorithms.IMAML = Variant
    try:
        with tempfile.TemporaryDirectory() as directory:
            return omniglot.run(
                algorithm=algorithm, data_dir=args.data_dir,
                output_dir=directory, meta_steps=args.meta_steps,
                meta_batch_size=8, filters=32,
                num_test_episodes=args.num_test_episodes, seed=args.seed,
                num_inner_steps=steps,
                inner_learning_rate=0.4 if algorithm == "maml" else 0.1,
                verbose=2)
    finally:
        catalog.algorithms.IMAML = original


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=os.path.join(
        os.path.dirname(__file__), "..", "..", "shared", "data", "omniglot"))
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--meta-steps", type=int, default=300)
    parser.add_argument("--num-test-episodes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=os.path.join(
        os.path.dirname(__file__), "results", "omniglot_imaml_settings.json"))
    args = parser.parse_args()
    rows = []
    for variant in args.variants.split(","):
        result = run(variant, args)
        history = result["history"]
        rows.append({
            "variant": variant, "options": VARIANTS[variant],
            "accuracy": result["accuracy"],
            "accuracy_ci95": result["accuracy_ci95"],
            "final_train_accuracy": result["final_train_accuracy"],
            "train_seconds": result["seconds"]["training"],
            "train_accuracy": history.get("accuracy"),
            "inner_residual": history.get("inner_residual"),
        })
        print(f"{variant:18s} test {100 * result['accuracy']:6.2f} +- "
              f"{100 * result['accuracy_ci95']:.2f} %  training "
              f"{100 * result['final_train_accuracy']:.1f} %", flush=True)
        with open(args.output, "w") as f:
            json.dump({"args": vars(args), "rows": rows}, f, indent=2)


if __name__ == "__main__":
    main()
