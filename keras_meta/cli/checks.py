"""Checks and defaults of `keras-meta train` arguments, before TensorFlow
loads: a wrong combination is refused at once."""

import os

from keras_meta.experiments.choices import CLASSIFICATION_ONLY
from keras_meta.experiments.choices import CONTROL_TASKS
from keras_meta.experiments.choices import DEFAULTS
from keras_meta.experiments.choices import NUM_TEST_TASKS
from keras_meta.experiments.choices import RECOMMENDATION
from keras_meta.experiments.choices import REGRESSION_ONLY

# Arguments that must be positive once defaults are filled in.
_POSITIVE = ("meta_steps", "meta_batch_size", "num_shots", "num_ways",
             "filters", "inner_learning_rate", "learning_rate",
             "num_test_tasks", "steps_per_execution")


def resolve_train_arguments(parser, args):
    """Completes parsed `train` arguments in place, or exits through
    `parser.error` with what is wrong and how to fix it."""
    _choose_task_and_algorithm(args)
    _check_combination(parser, args)
    _fill_defaults(args)
    _check_values(parser, args)


def folder_kind(data_dir):
    """What a `--data-dir` folder holds: `"omniglot"` (the background
    subsets' zips or folders), `"movielens"` (ratings files) or
    `"images"` (anything else: class sub-folders of images)."""
    if not data_dir or not os.path.isdir(data_dir):
        return None
    names = set(os.listdir(data_dir))
    if names & {"images_background_small1.zip", "images_background_small1"}:
        return "omniglot"
    if names & {"u.data", "ratings.dat", "ml-100k", "ml-1m"}:
        return "movielens"
    return "images"


def _choose_task_and_algorithm(args):
    if args.dataset is None and folder_kind(args.data_dir) == "images":
        args.dataset = "images"
    if args.dataset is None:
        args.dataset = (
            "omniglot" if args.algorithm in CLASSIFICATION_ONLY
            else "movielens" if args.algorithm == "melu"
            else "navigation2d" if args.algorithm == "promp"
            else "sinusoid")
    if args.algorithm is None:
        args.algorithm = ("promp" if args.dataset in CONTROL_TASKS
                          else "melu" if args.dataset == "movielens"
                          else "protonet" if args.dataset == "images"
                          else "maml")
    if args.dataset == "omniglot" and not args.data_dir:
        args.data_dir = os.environ.get("KERAS_META_OMNIGLOT_DIR")


def _check_combination(parser, args):
    task, algorithm = args.dataset, args.algorithm
    if task == "movielens" and algorithm not in RECOMMENDATION:
        parser.error(
            f"--task movielens trains --algorithm {', '.join(RECOMMENDATION)}"
            f"; --algorithm {algorithm} does not apply to it")
    if algorithm == "melu" and task != "movielens":
        parser.error("--algorithm melu recommends; use --task movielens")
    if task in CONTROL_TASKS and algorithm not in ("promp", "maml"):
        parser.error(
            f"--task {task} trains a policy with --algorithm promp or "
            f"maml; --algorithm {algorithm} learns from labelled "
            "episodes (use --dataset sinusoid or omniglot)")
    if algorithm == "promp" and task not in CONTROL_TASKS:
        parser.error(
            f"--algorithm {algorithm} is a reinforcement learner; use "
            "--task navigation2d, halfcheetah-vel, halfcheetah-dir, ant-vel "
            "or ant-dir")
    if algorithm in REGRESSION_ONLY and task != "sinusoid":
        parser.error(
            f"--algorithm {algorithm} is a neural process for "
            f"regression; use --dataset sinusoid, not {task}")
    if task == "images" and (algorithm in REGRESSION_ONLY
                             or algorithm in ("melu", "promp")):
        parser.error(
            f"--algorithm {algorithm} does not classify images; on a folder "
            "of images use protonet (the default) or another classifier")
    if task == "sinusoid" and algorithm in CLASSIFICATION_ONLY:
        parser.error(
            f"--algorithm {algorithm} classifies and cannot run on "
            "sinusoid regression; use --dataset omniglot")


def _fill_defaults(args):
    if args.algorithm in REGRESSION_ONLY:
        # The budget of the published neural-process rows, and contexts of
        # 3 to 20 points (`keras_meta.experiments.neural_process`).
        if args.meta_steps is None:
            args.meta_steps = 20000
        if args.num_shots is None:
            args.num_shots = 20
    if args.num_test_tasks is None:
        args.num_test_tasks = NUM_TEST_TASKS[args.dataset]
    for name, value in DEFAULTS[args.dataset].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.steps_per_execution is None:
        args.steps_per_execution = 50 if args.dataset == "sinusoid" else 10
    if args.output_dir is None:
        args.output_dir = os.path.join("keras_meta_runs", args.dataset)


def _check_values(parser, args):
    for name in _POSITIVE:
        value = getattr(args, name)
        if value <= 0:
            parser.error(
                f"--{name.replace('_', '-')} must be positive, got {value}")
    if args.num_inner_steps is not None and args.num_inner_steps <= 0:
        parser.error("--num-inner-steps must be positive, got "
                     f"{args.num_inner_steps}")
    if args.num_test_tasks < 2:
        parser.error("--num-test-tasks must be at least 2 for a CI")
    if args.dataset == "images":
        _check_image_folder(parser, args)
    if args.dataset == "omniglot" and not args.data_dir:
        parser.error(
            "--dataset omniglot needs --data-dir: the folder holding "
            "images_background_small1.zip and images_background_small2.zip "
            "(github.com/brendenlake/omniglot, folder python/)")


def _check_image_folder(parser, args):
    if not args.data_dir:
        parser.error("--task images needs --data-dir: a folder with one "
                     "sub-folder of images per class")
    if not os.path.isdir(args.data_dir):
        parser.error(f"--data-dir {args.data_dir}: no such folder")
    if args.image_size < 8:
        parser.error(f"--image-size must be at least 8, got "
                     f"{args.image_size}")
