"""The `keras-meta` command."""

import argparse
import os
import sys

ALGORITHMS = ("maml", "fomaml")


def _train_parser(subparsers):
    parser = subparsers.add_parser(
        "train",
        help="meta-train and evaluate (default: MAML on sinusoid regression)",
        description=(
            "Meta-trains an algorithm on sinusoid regression with the MAML "
            "paper's setup (MLP 1-40-40-1, K=10, inner step 0.01, meta-batch "
            "25, Adam), trains the 'pretrained' baseline, evaluates both on "
            "600 fixed test tasks after 0-10 inner steps for K=5 and K=10, "
            "and writes results.json, sinusoid.png and maml.keras."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--algorithm", choices=ALGORITHMS, default="maml",
        help="maml: second-order MAML; fomaml: first-order MAML",
    )
    parser.add_argument("--meta-steps", type=int, default=70000,
                        help="outer (meta) optimization steps (70000 as in the MAML paper)")
    parser.add_argument("--meta-batch-size", type=int, default=25)
    parser.add_argument("--num-shots", type=int, default=10,
                        help="support points per training task (K)")
    parser.add_argument("--inner-learning-rate", type=float, default=0.01)
    parser.add_argument("--num-inner-steps", type=int, default=1)
    parser.add_argument("--learning-rate", type=float, default=1e-3,
                        help="Adam's learning rate for the outer update")
    parser.add_argument("--num-test-tasks", type=int, default=600)
    parser.add_argument("--steps-per-execution", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", default="keras_meta_runs/sinusoid")
    parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1)
    return parser


def _check_positive(parser, args, names):
    for name in names:
        value = getattr(args, name)
        if value <= 0:
            parser.error(
                f"--{name.replace('_', '-')} must be positive, got {value}"
            )


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="keras-meta",
        description="keras_meta: meta-learning for Keras 3.",
    )
    subparsers = parser.add_subparsers(dest="command")
    train_parser = _train_parser(subparsers)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    _check_positive(
        train_parser, args,
        ["meta_steps", "meta_batch_size", "num_shots", "inner_learning_rate",
         "num_inner_steps", "learning_rate", "num_test_tasks",
         "steps_per_execution"],
    )
    if args.num_test_tasks < 2:
        train_parser.error("--num-test-tasks must be at least 2 for a CI")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from keras_meta.experiments import sinusoid

    results = sinusoid.run(
        output_dir=args.output_dir,
        meta_steps=args.meta_steps,
        meta_batch_size=args.meta_batch_size,
        num_shots=args.num_shots,
        inner_learning_rate=args.inner_learning_rate,
        learning_rate=args.learning_rate,
        num_inner_steps=args.num_inner_steps,
        first_order=args.algorithm == "fomaml",
        num_test_tasks=args.num_test_tasks,
        steps_per_execution=args.steps_per_execution,
        seed=args.seed,
        verbose=args.verbose,
    )
    print(sinusoid.format_table(results))
    print(f"wrote {os.path.join(args.output_dir, 'results.json')}, "
          f"{os.path.join(args.output_dir, 'sinusoid.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
