"""Checks and defaults of `keras-meta train` arguments, before TensorFlow
loads: a wrong combination is refused at once."""

import json
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
    _check_workers(parser, args)


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
    if getattr(args, "simulator_processes", 1) != 1 and (
            task not in CONTROL_TASKS or task == "navigation2d"):
        parser.error(
            "--simulator-processes steps MuJoCo simulators: use it with "
            "--task halfcheetah-vel, halfcheetah-dir, ant-vel or ant-dir "
            f"(--task {task} has none)")
    if getattr(args, "simulator_processes", 1) < 1:
        parser.error("--simulator-processes must be a positive number of "
                     "worker processes (1: none)")
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
        args.steps_per_execution = (
            1 if args.workers > 1
            else 50 if args.dataset == "sinusoid" else 10)
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


# The tasks `--workers` trains: their learners are MetaModels fitted on
# episode pipelines.
WORKER_TASKS = ("sinusoid", "omniglot", "images")


def configured_backend():
    """The Keras backend a new process will load (`KERAS_BACKEND`, else
    `~/.keras/keras.json`, else TensorFlow), without importing Keras."""
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    home = os.environ.get("KERAS_HOME", os.path.join(
        os.path.expanduser("~"), ".keras"))
    try:
        with open(os.path.join(home, "keras.json")) as f:
            return json.load(f).get("backend", "tensorflow")
    except (OSError, ValueError):
        return "tensorflow"


def cluster_size():
    """The number of workers `TF_CONFIG` names, or `None` without it."""
    if "TF_CONFIG" not in os.environ:
        return None
    cluster = json.loads(os.environ["TF_CONFIG"]).get("cluster", {})
    return sum(len(cluster.get(kind, ())) for kind in ("chief", "worker"))


def _check_workers(parser, args):
    workers = args.workers
    if workers < 1:
        parser.error(f"--workers must be at least 1, got {workers}")
    if workers == 1:
        return
    if args.dataset not in WORKER_TASKS or args.algorithm in REGRESSION_ONLY:
        parser.error(
            f"--workers trains the meta-learners of --task "
            f"{', '.join(WORKER_TASKS)} (not the neural processes); "
            f"--task {args.dataset} --algorithm {args.algorithm} trains in "
            "one process: leave --workers out")
    backend = configured_backend()
    if backend != "tensorflow":
        parser.error(
            f"--workers runs TensorFlow's MultiWorkerMirroredStrategy, but "
            f"the Keras backend is {backend}: set KERAS_BACKEND=tensorflow "
            "(on JAX, see docs/guide/cluster.md for keras.distribution)")
    if args.meta_batch_size % workers:
        example = workers * max(1, args.meta_batch_size // workers)
        parser.error(
            f"--meta-batch-size {args.meta_batch_size} does not split "
            f"evenly between {workers} workers; pass a multiple of "
            f"{workers}, e.g. {example}")
    if args.steps_per_execution != 1:
        parser.error(
            "--workers trains one step per execution: Keras's loop of "
            "several steps fails under MultiWorkerMirroredStrategy "
            "(keras-team/keras#19246); leave --steps-per-execution out")
    if args.xla == "on":
        parser.error("--workers trains without XLA; leave --xla out")
    size = cluster_size()
    if size is not None and size != workers:
        parser.error(
            f"TF_CONFIG names a cluster of {size} workers, but --workers is "
            f"{workers}: pass --workers {size}")


def _check_image_folder(parser, args):
    if not args.data_dir:
        parser.error("--task images needs --data-dir: a folder with one "
                     "sub-folder of images per class")
    if not os.path.isdir(args.data_dir):
        parser.error(f"--data-dir {args.data_dir}: no such folder")
    if args.image_size < 8:
        parser.error(f"--image-size must be at least 8, got "
                     f"{args.image_size}")
