"""What `keras-meta` runs once its arguments are parsed and checked:
`train` dispatched by task to an experiment, and `evaluate`."""

import os
import sys

# In the command's own process `keras_meta` defers its public names until
# the arguments are checked (see `keras_meta/__init__.py`). Importing these
# rooms here registers every learner, layer, loss and metric for
# `keras.models.load_model`, which `evaluate` calls first.
from keras_meta import algorithms  # noqa: F401
from keras_meta import losses  # noqa: F401
from keras_meta import metrics  # noqa: F401
from keras_meta import models  # noqa: F401
from keras_meta import recommendation  # noqa: F401
from keras_meta import rl  # noqa: F401
from keras_meta.experiments.choices import CONTROL_TASKS
from keras_meta.experiments.choices import REGRESSION_ONLY


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


# The task family each control benchmark's learners were trained on.
_CONTROL_ENVIRONMENTS = {"navigation2d": "Navigation2D",
                         "halfcheetah-vel": "HalfCheetahVelocity",
                         "halfcheetah-dir": "HalfCheetahDirection",
                         "ant-vel": "AntVelocity", "ant-dir": "AntDirection"}


def _evaluate_navigation(args):
    import keras

    from keras_meta.experiments import navigation

    task = args.benchmark
    learner = keras.models.load_model(args.checkpoint)
    if not isinstance(learner, rl.MetaPolicyGradient):
        raise ValueError(
            f"{args.checkpoint} holds a {type(learner).__name__}, not a "
            f"keras_meta.rl learner; --benchmark {task} evaluates "
            f"the .keras files of `keras-meta train --task {task}`.")
    expected = _CONTROL_ENVIRONMENTS[task]
    found = type(learner.environment).__name__
    if found != expected:
        raise ValueError(
            f"{args.checkpoint} was trained on {found} tasks, but "
            f"--benchmark {task} scores {expected} tasks. Pass the "
            "benchmark its `keras-meta train --task` was: "
            + ", ".join(f"{name} for {env}" for name, env in
                        _CONTROL_ENVIRONMENTS.items()) + ".")
    steps = 3
    if args.inner_steps:
        steps = max(int(s) for s in args.inner_steps.split(","))
    tasks = navigation.test_tasks(
        learner.environment, args.num_episodes, args.seed)
    summary = rl.summarize_returns(learner.adaptation_returns(
        tasks, num_steps=steps, seed=args.seed + 2))
    print(f"{type(learner).__name__} on {task}, {len(tasks)} test "
          "goals: mean return (+- 95% CI)")
    for step, (mean, ci) in enumerate(zip(summary["mean"], summary["ci95"])):
        print(f"  after {step} steps: {mean:8.2f} +- {ci:.2f}")
    return 0


def _evaluate_one_shot(args):
    from keras_meta.experiments import evaluation
    from keras_meta.experiments import one_shot

    learner = evaluation.load(args.checkpoint)
    # The image side the learner was built for (Omniglot's 28 px if its
    # wrapped model does not say).
    inputs = getattr(learner.model, "inputs", None)
    image_size = inputs[0].shape[1] if inputs else 28
    tests = one_shot.load(args.data_dir, train_subset=args.train_subset,
                          image_size=image_size,
                          validation_alphabet=None)["tests"]
    episodes = args.num_episodes or 100
    results = one_shot.evaluate(learner, tests, num_ways=20,
                                num_episodes=episodes)
    print(f"{type(learner).__name__} on Lake et al.'s one-shot task: "
          f"20-way within-alphabet, the alphabets {args.train_subset} "
          f"lacks, {episodes} episodes each (error, mean +- 95% CI)")
    print(one_shot.format_results(results))
    return 0


def _run_evaluate(parser, args):
    from keras_meta.experiments import evaluation

    if args.benchmark == "omniglot-one-shot":
        if args.num_episodes is not None and args.num_episodes < 2:
            parser.error("--num-episodes must be at least 2 for a CI")
        return _evaluate_one_shot(args)

    if args.num_episodes is None:
        args.num_episodes = (40 if args.benchmark in _CONTROL_ENVIRONMENTS
                             else 600)
    if args.benchmark in _CONTROL_ENVIRONMENTS:
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


def _worker_strategy(args):
    """The strategy of one worker of `keras-meta train --workers N`, run
    with the `TF_CONFIG` of its cluster (`keras_meta.cluster` writes it).

    Every worker trains; the others than the chief write their files to a
    temporary folder, removed at exit, and print nothing but errors.
    """
    if "TF_CONFIG" not in os.environ:
        raise ValueError(
            "--workers N runs as a worker of a cluster only with TF_CONFIG "
            "set; `keras-meta train --workers N` on the command line starts "
            "the N workers itself (keras_meta.cluster.launch_local_workers).")
    import atexit
    import shutil
    import tempfile

    import tensorflow as tf

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    resolver = strategy.cluster_resolver
    cluster = resolver.cluster_spec().as_dict()
    chief = resolver.task_type == "chief" or (
        resolver.task_type == "worker" and resolver.task_id == 0
        and "chief" not in cluster)
    args.chief_output_dir = args.output_dir
    if not chief:
        args.output_dir = tempfile.mkdtemp(
            prefix=f"keras_meta_{resolver.task_type}{resolver.task_id}_")
        atexit.register(shutil.rmtree, args.output_dir, ignore_errors=True)
        args.verbose = 0
        sys.stdout = open(os.devnull, "w")
    return strategy


def _command_line(command):
    """The command line recorded in results.json, or `None` when called
    from Python."""
    return "keras-meta " + " ".join(sys.argv[1:]) if command else None


def _train_control(args, parsers, command):
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
        num_processes=args.simulator_processes,
        plot_path=os.path.join(args.output_dir, f"{args.dataset}.png"),
        paths_plot_path=(os.path.join(args.output_dir, "navigation2d_paths.png")
                         if args.dataset == "navigation2d" else None),
        command=_command_line(command))
    print(navigation.format_table(results, navigation.PAPERS[args.dataset]))
    written = [os.path.join(args.output_dir, name) for name in (
        "results.json", f"{args.dataset}.png")
        + (("navigation2d_paths.png",) if args.dataset == "navigation2d"
           else ())]
    print(f"wrote {', '.join(written)}")
    return 0


def _train_recommender(args, parsers, command):
    from keras_meta.experiments import movielens

    output = os.path.join(args.output_dir, "results.json")
    try:
        results = movielens.run(
            source=args.data_dir,
            learners=("global_mean", "pretrained", args.algorithm),
            output=output, protocol=args.protocol,
            meta_epochs=max(1, args.meta_steps // 50),
            steps_per_epoch=min(50, args.meta_steps),
            meta_batch_size=args.meta_batch_size,
            inner_learning_rates=(args.inner_learning_rate,),
            inner_steps=(args.num_inner_steps or 1,),
            learning_rate=args.learning_rate, seed=args.seed,
            verbose=args.verbose, command=_command_line(command))
    except ValueError as error:
        parsers[1].error(str(error))
    print(movielens.format_table(results))
    print(f"wrote {output}")
    return 0


def _train_omniglot(args, parsers, command):
    from keras_meta.experiments import omniglot

    results = omniglot.run(
        strategy=args.strategy,
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


def _augmentation(args):
    if not args.augment:
        return None
    import keras

    return [keras.layers.RandomFlip("horizontal"),
            keras.layers.RandomTranslation(0.1, 0.1, fill_mode="nearest")]


def _splits_path(args):
    """Where a worker reads or writes the class split: the chief's
    `splits.json` when it is already there (a run in the same folder
    before, on this machine or a shared file system), else its own."""
    chief = os.path.join(getattr(args, "chief_output_dir", args.output_dir),
                         "splits.json")
    if os.path.exists(chief):
        return chief
    return os.path.join(args.output_dir, "splits.json")


def _train_images(args, parsers, command):
    from keras_meta.experiments import image_folder

    try:
        results = image_folder.run(
            strategy=args.strategy, splits_path=_splits_path(args),
            data_dir=args.data_dir, output_dir=args.output_dir,
            algorithm=args.algorithm, backbone=args.backbone,
            image_size=args.image_size,
            channels=(args.channels if args.channels == "auto"
                      else int(args.channels)),
            num_ways=args.num_ways, num_shots=args.num_shots,
            meta_steps=args.meta_steps,
            meta_batch_size=args.meta_batch_size, filters=args.filters,
            inner_learning_rate=args.inner_learning_rate,
            num_inner_steps=args.num_inner_steps,
            learning_rate=args.learning_rate,
            num_test_episodes=args.num_test_tasks,
            steps_per_execution=args.steps_per_execution,
            augment=_augmentation(args),
            on_error="skip" if args.skip_bad_files else "raise",
            seed=args.seed, verbose=args.verbose)
    except ValueError as error:
        # The library's advice, in the command's words.
        parsers[1].error(str(error).replace("pass on_error='skip'",
                                            "pass --skip-bad-files"))
    print(image_folder.format_table(results))
    print(f"wrote {args.output_dir}: results.json, model.keras, "
          "splits.json, training_curve.png, test_episode.png")
    print(f"classify new classes: keras-meta predict "
          f"{os.path.join(args.output_dir, 'model.keras')} --support "
          "NEW_CLASSES_FOLDER IMAGE_OR_FOLDER...")
    return 0


def _run_predict(parser, args):
    import csv

    import keras
    import numpy as np

    from keras_meta import data

    learner = keras.models.load_model(args.checkpoint)
    preprocessing = getattr(learner, "preprocessing", None)
    if not preprocessing:
        parser.error(
            f"{args.checkpoint} carries no image preprocessing; `keras-meta "
            "predict` takes learners written by `keras-meta train "
            "--data-dir my_images/` (or given `preprocessing=`)")
    support, labels, names = data.load_support(
        args.support, preprocessing=preprocessing)
    most = getattr(learner, "num_ways", None)
    if most is not None and len(names) > most:
        parser.error(f"the learner tells apart at most {most} classes; "
                     f"--support has {len(names)}")
    queries, files = data.load_images(args.images,
                                      preprocessing=preprocessing)
    adapted = learner.adapt(support, labels)
    logits = np.asarray(adapted.predict(queries, verbose=0))
    logits = logits[:, :len(names)]
    probabilities = np.exp(logits - logits.max(-1, keepdims=True))
    probabilities /= probabilities.sum(-1, keepdims=True)
    rows = [(path, names[int(np.argmax(p))], float(np.max(p)))
            for path, p in zip(files, probabilities)]
    width = max(len(path) for path, _, _ in rows)
    print(f"{len(rows)} images, {len(names)} classes from {args.support} "
          f"({len(support)} examples)")
    for path, name, probability in rows:
        print(f"{path:<{width}}  {name}  {probability:.3f}")
    if args.output:
        with open(args.output, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["image", "class", "probability"])
            writer.writerows(rows)
        print(f"wrote {args.output}")
    return 0


def _train_neural_process(args):
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


def _train_sinusoid(args, parsers, command):
    if args.algorithm in REGRESSION_ONLY:
        return _train_neural_process(args)
    from keras_meta.experiments import sinusoid

    results = sinusoid.run(
        strategy=args.strategy,
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


# `keras-meta train --task T` runs TRAINERS[T](args, parsers, command).
TRAINERS = {
    "sinusoid": _train_sinusoid,
    "omniglot": _train_omniglot,
    "images": _train_images,
    "movielens": _train_recommender,
    **{task: _train_control for task in CONTROL_TASKS},
}


def run(parsers, args, command=False):
    """Runs parsed `keras-meta` arguments.

    Args:
        parsers: `(parser, train_parser, evaluate_parser,
            predict_parser)` from
            `keras_meta.cli.parser.build_parser()`.
        args: The parsed arguments, `train`'s completed by
            `keras_meta.cli.checks.resolve_train_arguments`.
        command: Whether this is the `keras-meta` process itself, which
            then runs deterministically (see `_deterministic`).
    """
    parser, _, evaluate_parser, predict_parser = parsers
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "predict":
        try:
            return _run_predict(predict_parser, args)
        except ValueError as error:
            predict_parser.error(str(error))
    if args.command == "evaluate":
        try:
            return _run_evaluate(evaluate_parser, args)
        except ValueError as error:
            evaluate_parser.error(str(error))
    if command:
        # A process-wide setting, so only for the command's own process.
        _set_intra_op_threads(args)
    args.strategy = (_worker_strategy(args)
                     if getattr(args, "workers", 1) > 1 else None)
    if command and getattr(args, "xla", "auto") != "on":
        # The command itself (a process of its own); callers of `main`
        # with arguments keep their process's settings. Keras compiles
        # without XLA under op determinism, so `--xla on` goes without it.
        _deterministic()
    status = TRAINERS[args.dataset](args, parsers, command)
    if args.strategy is not None:
        _barrier(args.strategy)
    return status


def _barrier(strategy):
    """Returns once every worker has reached it: the workers exit together,
    so that none sees another leave the cluster while it still runs."""
    import tensorflow as tf

    @tf.function
    def all_reduce():
        return strategy.reduce("SUM", strategy.run(lambda: tf.constant(1.0)),
                               axis=None)

    all_reduce()
