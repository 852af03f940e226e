"""The `keras-meta` command."""

import argparse
import os
import sys

from keras_meta.experiments import catalog

DATASETS = ("sinusoid", "omniglot")
_DEFAULTS = {
    "sinusoid": {"meta_steps": 70000, "meta_batch_size": 25,
                 "inner_learning_rate": 0.01, "num_shots": 10},
    "omniglot": {"meta_steps": 2000, "meta_batch_size": 8,
                 "inner_learning_rate": 0.4, "num_shots": 1},
}


def _algorithm_help():
    return "; ".join(f"{name}: {text}"
                     for name, text in catalog.ALGORITHMS.items())


def _train_parser(subparsers):
    parser = subparsers.add_parser(
        "train",
        help="meta-train and evaluate (default: MAML on sinusoid regression)",
        description=(
            "Meta-trains an algorithm and evaluates it. On sinusoid (the "
            "default for gradient-based learners) it follows the MAML "
            "paper's setup (MLP 1-40-40-1, K=10, meta-batch 25, Adam), "
            "trains the 'pretrained' baseline, evaluates both on 600 fixed "
            "test tasks after 0-10 inner steps for K=5 and K=10, and writes "
            "results.json, sinusoid.png and ALGORITHM.keras. On omniglot "
            "(the default for metric learners and LEO) it trains on "
            "images_background_small1 and reports query accuracy with a "
            "95%% CI on 600 fixed episodes of images_background_small2."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--algorithm", choices=sorted(catalog.ALGORITHMS), default="maml",
        metavar="NAME", help=_algorithm_help(),
    )
    parser.add_argument(
        "--dataset", choices=DATASETS, default=None,
        help="sinusoid for gradient-based algorithms, omniglot otherwise",
    )
    parser.add_argument(
        "--data-dir", default=os.environ.get("KERAS_META_OMNIGLOT_DIR"),
        help="omniglot: folder holding images_background_small1.zip and "
             "images_background_small2.zip (env KERAS_META_OMNIGLOT_DIR)",
    )
    parser.add_argument("--meta-steps", type=int, default=None,
                        help="outer steps (sinusoid 70000 as in the MAML "
                             "paper; omniglot 2000)")
    parser.add_argument("--meta-batch-size", type=int, default=None,
                        help="tasks per step (sinusoid 25; omniglot 8)")
    parser.add_argument("--num-shots", type=int, default=None,
                        help="support examples per class (sinusoid K=10; "
                             "omniglot 1)")
    parser.add_argument("--num-ways", type=int, default=5,
                        help="omniglot: classes per episode")
    parser.add_argument("--filters", type=int, default=64,
                        help="omniglot: Conv-4 filters per layer")
    parser.add_argument(
        "--batch-norm", choices=("inductive", "transductive"),
        default="inductive",
        help="omniglot: queries normalized with the support set's "
             "statistics (inductive, the default) or their own batch's "
             "(transductive, as MAML's published numbers)")
    parser.add_argument("--inner-learning-rate", type=float, default=None,
                        help="sinusoid 0.01; omniglot 0.4")
    parser.add_argument("--num-inner-steps", type=int, default=None,
                        help="training inner steps (1; Reptile 5; MAML++ "
                             "5 on sinusoid, 3 on omniglot; iMAML 10 on "
                             "sinusoid, 5 on omniglot)")
    parser.add_argument("--learning-rate", type=float, default=1e-3,
                        help="Adam's learning rate for the outer update")
    parser.add_argument("--num-test-tasks", type=int, default=600)
    parser.add_argument("--steps-per-execution", type=int, default=None,
                        help="sinusoid 50; omniglot 10")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", default=None,
                        help="default keras_meta_runs/DATASET")
    parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1)
    return parser


def _evaluate_parser(subparsers):
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate a saved learner: mean +- 95%% CI over fixed episodes",
        description=(
            "Loads a .keras meta-learner (saved after compile, as keras-meta "
            "train writes them) and evaluates every compiled metric on a "
            "fixed set of episodes, before adaptation (0 inner steps) and "
            "after it, printing mean +- 95%% confidence-interval half-width."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("checkpoint", help="path of the .keras file")
    parser.add_argument(
        "--benchmark", default="sinusoid",
        help="sinusoid; omniglot-background (small2's alphabets that "
             "small1 lacks, from the zips in --data-dir); "
             "or a keras_meta.data.benchmarks name (omniglot, cifar_fs, "
             "fc100, cub, vgg_flower, mini_imagenet: its test split, via "
             "TFDS)")
    parser.add_argument("--data-dir", default=os.environ.get(
        "KERAS_META_OMNIGLOT_DIR"))
    parser.add_argument("--num-ways", type=int, default=5)
    parser.add_argument("--num-shots", type=int, default=None,
                        help="sinusoid K=10, otherwise 1")
    parser.add_argument("--num-queries", type=int, default=None,
                        help="sinusoid 100 points, otherwise 15 per class")
    parser.add_argument("--num-episodes", type=int, default=600)
    parser.add_argument("--inner-steps", default=None,
                        help="comma-separated step counts (default: 0, 1 "
                             "and 10 on sinusoid, as `keras-meta train` "
                             "reports; otherwise 0 and the learner's "
                             "eval_inner_steps)")
    parser.add_argument(
        "--seed", type=int, default=0,
        help="the --seed the learner was trained with: the test tasks are "
             "those `keras-meta train` scored with it")
    return parser


def _evaluation_episodes(args):
    from keras_meta import data

    if args.benchmark == "sinusoid":
        from keras_meta.experiments import sinusoid

        shots = args.num_shots or 10
        return data.sinusoid(
            num_shots=shots, num_queries=args.num_queries or 100,
            num_tasks=args.num_episodes, batch_size=100,
            seed=sinusoid.test_seed(args.seed, shots))
    shots = args.num_shots or 1
    queries = args.num_queries or 15
    if args.benchmark == "omniglot-background":
        from keras_meta.experiments import omniglot

        train_folder, folder = omniglot.find_subsets(args.data_dir)
        index = data.load_class_index(folder, image_size=(28, 28),
                                      channels=1)
        # The characters `keras-meta train` tests on: small2's alphabets
        # that are not training classes of small1.
        index, _ = data.remove_shared_classes(index, data.load_class_index(
            train_folder, image_size=(28, 28), channels=1))
        return data.episodes_from_index(
            index, num_ways=args.num_ways, num_shots=shots,
            num_queries=queries, batch_size=50,
            num_episodes=args.num_episodes,
            seed=omniglot.test_seed(args.seed))
    _, _, test = data.benchmarks.get(
        args.benchmark, num_ways=args.num_ways, num_shots=shots,
        num_queries=queries, num_test_episodes=args.num_episodes,
        seed=args.seed)
    return test


def _run_evaluate(parser, args):
    from keras_meta.experiments import evaluation

    if args.num_episodes < 2:
        parser.error("--num-episodes must be at least 2 for a CI")
    steps = None
    if args.inner_steps:
        try:
            steps = [int(s) for s in args.inner_steps.split(",")]
        except ValueError:
            parser.error("--inner-steps takes integers, e.g. 0,1,10")
        if any(s < 0 for s in steps):
            parser.error("--inner-steps must be >= 0")
    learner = evaluation.load(args.checkpoint)
    if (steps is None and args.benchmark == "sinusoid"
            and hasattr(learner, "eval_inner_steps")):
        steps = [0, 1, 10]
    rows = evaluation.evaluate_steps(learner, _evaluation_episodes(args),
                                     steps)
    print(evaluation.format_rows(
        rows, title=f"{type(learner).__name__} on {args.benchmark}, "
                    f"{args.num_episodes} episodes (mean +- 95% CI)"))
    return 0


def _resolve(parser, args):
    if args.dataset is None:
        args.dataset = ("omniglot" if args.algorithm
                        in catalog.CLASSIFICATION_ONLY else "sinusoid")
    if (args.dataset == "sinusoid"
            and args.algorithm in catalog.CLASSIFICATION_ONLY):
        parser.error(
            f"--algorithm {args.algorithm} classifies and cannot run on "
            "sinusoid regression; use --dataset omniglot")
    for name, value in _DEFAULTS[args.dataset].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.steps_per_execution is None:
        args.steps_per_execution = 50 if args.dataset == "sinusoid" else 10
    if args.output_dir is None:
        args.output_dir = os.path.join("keras_meta_runs", args.dataset)
    for name in ("meta_steps", "meta_batch_size", "num_shots", "num_ways",
                 "filters", "inner_learning_rate", "learning_rate",
                 "num_test_tasks", "steps_per_execution"):
        value = getattr(args, name)
        if value <= 0:
            parser.error(
                f"--{name.replace('_', '-')} must be positive, got {value}")
    if args.num_inner_steps is not None and args.num_inner_steps <= 0:
        parser.error("--num-inner-steps must be positive, got "
                     f"{args.num_inner_steps}")
    if args.num_test_tasks < 2:
        parser.error("--num-test-tasks must be at least 2 for a CI")
    if args.dataset == "omniglot" and not args.data_dir:
        parser.error(
            "--dataset omniglot needs --data-dir: the folder holding "
            "images_background_small1.zip and images_background_small2.zip "
            "(github.com/brendenlake/omniglot, folder python/)")


def _deterministic():
    """Makes a run repeat itself exactly on the same machine and build.

    Every random draw is seeded by `--seed`; TensorFlow's op determinism
    fixes the order of its parallel reductions. Across machines the numbers
    may still differ in the last digits (CPU instruction sets pick
    different kernels), which a long meta-training run can amplify.
    """
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="keras-meta",
        description="keras_meta: meta-learning for Keras 3.",
    )
    subparsers = parser.add_subparsers(dest="command")
    train_parser = _train_parser(subparsers)
    evaluate_parser = _evaluate_parser(subparsers)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if args.command == "evaluate":
        try:
            return _run_evaluate(evaluate_parser, args)
        except ValueError as error:
            evaluate_parser.error(str(error))
    _resolve(train_parser, args)
    if argv is None:
        # The command itself (a process of its own); callers of `main`
        # with arguments keep their process's settings.
        _deterministic()
    if args.dataset == "omniglot":
        from keras_meta.experiments import omniglot

        results = omniglot.run(
            algorithm=args.algorithm, data_dir=args.data_dir,
            output_dir=args.output_dir, num_ways=args.num_ways,
            num_shots=args.num_shots, meta_steps=args.meta_steps,
            meta_batch_size=args.meta_batch_size, filters=args.filters,
            inner_learning_rate=args.inner_learning_rate,
            num_inner_steps=args.num_inner_steps,
            learning_rate=args.learning_rate,
            num_test_episodes=args.num_test_tasks,
            steps_per_execution=args.steps_per_execution, seed=args.seed,
            batch_norm=args.batch_norm, verbose=args.verbose,
        )
        print(omniglot.format_row(results))
        print(f"wrote {args.output_dir}")
        return 0
    from keras_meta.experiments import sinusoid

    results = sinusoid.run(
        algorithm=args.algorithm,
        output_dir=args.output_dir,
        meta_steps=args.meta_steps,
        meta_batch_size=args.meta_batch_size,
        num_shots=args.num_shots,
        inner_learning_rate=args.inner_learning_rate,
        learning_rate=args.learning_rate,
        num_inner_steps=args.num_inner_steps,
        num_test_tasks=args.num_test_tasks,
        steps_per_execution=args.steps_per_execution,
        seed=args.seed,
        verbose=args.verbose,
    )
    print(sinusoid.format_table(results))
    print(f"wrote {os.path.join(args.output_dir, 'results.json')}, "
          f"{os.path.join(args.output_dir, 'sinusoid.png')}")
    if results["non_finite"]:
        print(f"keras-meta train: {len(results['non_finite'])} evaluated "
              "MSE values are not finite (the adaptation diverged; see the "
              "FAIL lines). Try a smaller --inner-learning-rate or fewer "
              "evaluation steps.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
