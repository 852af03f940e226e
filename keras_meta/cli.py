"""The `keras-meta` command."""

import os
import sys

from keras_meta.experiments import catalog
from keras_meta_cli import CONTROL_TASKS
from keras_meta_cli import DEFAULTS
from keras_meta_cli import NUM_TEST_TASKS
from keras_meta_cli import RECOMMENDATION
from keras_meta_cli import REGRESSION_ONLY
from keras_meta_cli import build_parser

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


def _evaluate_navigation(args):
    import keras

    from keras_meta import rl
    from keras_meta.experiments import navigation

    learner = keras.models.load_model(args.checkpoint)
    if not isinstance(learner, rl.MetaPolicyGradient):
        raise ValueError(
            f"{args.checkpoint} holds a {type(learner).__name__}, not a "
            "keras_meta.rl learner; --benchmark navigation2d evaluates "
            "the .keras files of `keras-meta train --task navigation2d`.")
    steps = 3
    if args.inner_steps:
        steps = max(int(s) for s in args.inner_steps.split(","))
    tasks = navigation.test_tasks(
        learner.environment, args.num_episodes, args.seed)
    summary = rl.summarize_returns(learner.adaptation_returns(
        tasks, num_steps=steps, seed=args.seed + 2))
    print(f"{type(learner).__name__} on navigation2d, {len(tasks)} test "
          "goals: mean return (+- 95% CI)")
    for step, (mean, ci) in enumerate(zip(summary["mean"], summary["ci95"])):
        print(f"  after {step} steps: {mean:8.2f} +- {ci:.2f}")
    return 0


def _run_evaluate(parser, args):
    from keras_meta.experiments import evaluation

    if args.num_episodes is None:
        args.num_episodes = 40 if args.benchmark == "navigation2d" else 600
    if args.benchmark == "navigation2d":
        if args.num_episodes < 2:
            parser.error("--num-episodes must be at least 2 for a CI")
        return _evaluate_navigation(args)
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
        args.dataset = (
            "omniglot" if args.algorithm in catalog.CLASSIFICATION_ONLY
            else "movielens" if args.algorithm == "melu"
            else "navigation2d" if args.algorithm == "promp"
            else "sinusoid")
    if args.algorithm is None:
        args.algorithm = ("promp" if args.dataset in CONTROL_TASKS
                          else "melu" if args.dataset == "movielens"
                          else "maml")
    if args.dataset == "omniglot" and not args.data_dir:
        args.data_dir = os.environ.get("KERAS_META_OMNIGLOT_DIR")
    if args.dataset == "movielens" and args.algorithm not in RECOMMENDATION:
        parser.error(
            f"--task movielens trains --algorithm {', '.join(RECOMMENDATION)}"
            f"; --algorithm {args.algorithm} does not apply to it")
    if args.algorithm == "melu" and args.dataset != "movielens":
        parser.error("--algorithm melu recommends; use --task movielens")
    if args.dataset in CONTROL_TASKS and args.algorithm not in (
            "promp", "maml"):
        parser.error(
            f"--task {args.dataset} trains a policy with --algorithm promp or "
            f"maml; --algorithm {args.algorithm} learns from labelled "
            "episodes (use --dataset sinusoid or omniglot)")
    if args.algorithm == "promp" and args.dataset not in CONTROL_TASKS:
        parser.error(
            f"--algorithm {args.algorithm} is a reinforcement learner; use "
            "--task navigation2d, halfcheetah-vel or halfcheetah-dir")
    if args.algorithm in REGRESSION_ONLY and args.dataset != "sinusoid":
        parser.error(
            f"--algorithm {args.algorithm} is a neural process for "
            f"regression; use --dataset sinusoid, not {args.dataset}")
    if args.algorithm in REGRESSION_ONLY and args.meta_steps is None:
        # The budget of the README's neural-process rows.
        args.meta_steps = 20000
    if args.num_test_tasks is None:
        args.num_test_tasks = NUM_TEST_TASKS[args.dataset]
    if (args.dataset == "sinusoid"
            and args.algorithm in catalog.CLASSIFICATION_ONLY):
        parser.error(
            f"--algorithm {args.algorithm} classifies and cannot run on "
            "sinusoid regression; use --dataset omniglot")
    for name, value in DEFAULTS[args.dataset].items():
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


def intra_op_threads(args):
    """TensorFlow's intra-op threads for a resolved `train` command: a
    number, or `None` for TensorFlow's default (one per core).

    `--threads auto` is 1 for the gradient-based sinusoid job: its largest
    operation multiplies 250 x 40 by 40 x 40, and splitting such products
    across cores costs more than it saves (0.64 against 1.17 ms per
    meta-step on 2 cores, the same losses; `benchmarks/sinusoid_step.py`).
    Convolutional and larger models keep TensorFlow's default.
    """
    if args.threads != "auto":
        return args.threads or None
    if (args.dataset == "sinusoid"
            and args.algorithm not in REGRESSION_ONLY):
        return 1
    return None


def _set_intra_op_threads(args):
    import keras

    threads = intra_op_threads(args)
    if threads is None or keras.backend.backend() != "tensorflow":
        return
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    if args.verbose:
        why = ("--threads auto: small matrix products run faster on one "
               "thread; --threads 0 for TensorFlow's default"
               if args.threads == "auto" else f"--threads {args.threads}")
        print(f"TensorFlow intra-op threads: {threads} ({why})", flush=True)


def main(argv=None):
    """Runs `keras-meta` with `argv` (default: the command line)."""
    parsers = build_parser()
    return run(parsers, parsers[0].parse_args(argv), command=argv is None)


def run(parsers, args, command=False):
    """Runs parsed `keras-meta` arguments.

    Args:
        parsers: `(parser, train_parser, evaluate_parser)` from
            `keras_meta_cli.build_parser()`.
        args: The parsed arguments.
        command: Whether this is the `keras-meta` process itself, which
            then runs deterministically (see `_deterministic`).
    """
    parser, train_parser, evaluate_parser = parsers
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "evaluate":
        try:
            return _run_evaluate(evaluate_parser, args)
        except ValueError as error:
            evaluate_parser.error(str(error))
    _resolve(train_parser, args)
    if command:
        # A process-wide setting, so only for the command's own process.
        _set_intra_op_threads(args)
    if command and getattr(args, "xla", "auto") != "on":
        # The command itself (a process of its own); callers of `main`
        # with arguments keep their process's settings. Keras compiles
        # without XLA under op determinism, so `--xla on` goes without it.
        _deterministic()
    if args.dataset in CONTROL_TASKS:
        from keras_meta.experiments import navigation

        results = navigation.run(
            task=args.dataset,
            learners=(args.algorithm, "pretrained", "random"),
            output=os.path.join(args.output_dir, "results.json"),
            iterations=args.meta_steps,
            meta_batch_size=args.meta_batch_size,
            num_trajectories=args.num_shots,
            inner_learning_rate=args.inner_learning_rate,
            learning_rate=args.learning_rate,
            eval_every=max(1, min(25, args.meta_steps)),
            num_test_tasks=args.num_test_tasks, seed=args.seed,
            verbose=args.verbose, save_dir=args.output_dir,
            plot_path=os.path.join(args.output_dir, f"{args.dataset}.png"),
            command="keras-meta " + " ".join(sys.argv[1:]) if command
            else None)
        print(navigation.format_table(results,
                                      navigation.PAPERS[args.dataset]))
        print(f"wrote {os.path.join(args.output_dir, 'results.json')}, "
              f"{os.path.join(args.output_dir, args.dataset + '.png')}")
        return 0
    if args.dataset == "movielens":
        from keras_meta.experiments import movielens

        epochs = max(1, args.meta_steps // 50)
        output = os.path.join(args.output_dir, "results.json")
        try:
            results = movielens.run(
                source=args.data_dir,
                learners=("global_mean", "pretrained", args.algorithm),
                output=output, protocol=args.protocol, meta_epochs=epochs,
                steps_per_epoch=min(50, args.meta_steps),
                meta_batch_size=args.meta_batch_size,
                inner_learning_rates=(args.inner_learning_rate,),
                inner_steps=(args.num_inner_steps or 1,),
                learning_rate=args.learning_rate, seed=args.seed,
                verbose=args.verbose,
                command="keras-meta " + " ".join(sys.argv[1:]) if command
                else None)
        except ValueError as error:
            train_parser.error(str(error))
        print(movielens.format_table(results))
        print(f"wrote {output}")
        return 0
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
    if args.algorithm in REGRESSION_ONLY:
        from keras_meta.experiments import neural_process

        results = neural_process.run(
            algorithm=args.algorithm, output_dir=args.output_dir,
            meta_steps=args.meta_steps,
            meta_batch_size=args.meta_batch_size, num_shots=args.num_shots,
            learning_rate=args.learning_rate,
            num_test_tasks=args.num_test_tasks,
            steps_per_execution=args.steps_per_execution, seed=args.seed,
            verbose=args.verbose)
        print(neural_process.format_table(results))
        print(f"wrote {os.path.join(args.output_dir, 'results.json')}, "
              f"{os.path.join(args.output_dir, 'sinusoid.png')}")
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
        jit_compile={"auto": "auto", "on": True, "off": False}[args.xla],
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
