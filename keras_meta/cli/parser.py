"""The `keras-meta` argument parser: no TensorFlow, so that `--help` and
argument errors answer at once."""

import argparse
import os

from keras_meta.experiments.choices import ALGORITHMS
from keras_meta.experiments.choices import DATASETS
from keras_meta.version import __version__


def _algorithm_help():
    return "; ".join(f"{name}: {text}"
                     for name, text in ALGORITHMS.items())


def _threads(value):
    if value == "auto":
        return value
    try:
        threads = int(value)
    except ValueError:
        threads = -1
    if threads < 0:
        raise argparse.ArgumentTypeError(
            f"expected auto or a number of threads >= 0 (0: TensorFlow's "
            f"default), got {value!r}")
    return threads


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
            "results.json, sinusoid.png and ALGORITHM.keras. On a folder "
            "of your own images (--data-dir my_images/, one sub-folder per "
            "class, any image format; --task images) it splits the classes "
            "into train, validation and test (splits.json), meta-trains "
            "--algorithm protonet (the default there) keeping the weights "
            "best on validation episodes, reports test accuracy with a 95% "
            "CI at 1 and 5 shots, and writes results.json, model.keras (for "
            "keras-meta predict), training_curve.png and test_episode.png. "
            "On omniglot "
            "(the default for metric learners and LEO) it trains on "
            "images_background_small1 and reports query accuracy with a "
            "95% CI on 600 fixed episodes of the alphabets of "
            "images_background_small2 that small1 lacks. On navigation2d "
            "(--task navigation2d; robot control, the MAML paper's 2D "
            "navigation) it meta-trains a 100-100 ReLU Gaussian policy "
            "with --algorithm promp (the default there) or maml, trains the "
            "multi-task 'pretrained' baseline, and reports the mean return "
            "on 40 fixed test goals after 0-3 policy-gradient steps, with "
            "results.json, navigation2d.png and ALGORITHM.keras; "
            "halfcheetah-vel and halfcheetah-dir (the rl extra) do the same "
            "on the MAML paper's HalfCheetah (rllab's: one physics step "
            "per action; rl.HalfCheetahVelocity(variant='rllab')); "
            "ant-vel and ant-dir on gymnasium's Ant-v5 with the MAML "
            "paper's Ant rewards (rl.AntVelocity, rl.AntDirection). "
            "On movielens "
            "(--task movielens; cold-start recommendation with MeLU's "
            "protocol, from --data-dir or the recbole wheel's "
            "MovieLens-100K) it trains --algorithm melu (the default there), "
            "maml or metasgd beside the global-mean and pretrained-then-"
            "fine-tuned baselines, and reports per-user MAE, RMSE and "
            "nDCG@5 on new users, new items and both."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--algorithm", choices=sorted(ALGORITHMS), default=None,
        metavar="NAME",
        help="maml, or promp on navigation2d; " + _algorithm_help(),
    )
    parser.add_argument(
        "--dataset", "--task", dest="dataset", choices=DATASETS,
        default=None,
        help="sinusoid for gradient-based algorithms, omniglot for metric "
             "ones, navigation2d for promp, movielens for melu; images when "
             "--data-dir is a folder of class sub-folders",
    )
    parser.add_argument(
        "--data-dir", default=None,
        help="a folder of class sub-folders of images (task images); "
             "omniglot: folder holding images_background_small1.zip and "
             "images_background_small2.zip (env KERAS_META_OMNIGLOT_DIR); "
             "movielens: folder of ml-100k or ml-1m files (default: the "
             "recbole package's MovieLens-100K)",
    )
    _add_training_arguments(parser)
    _add_run_arguments(parser)
    return parser


def _add_training_arguments(parser):
    """Budgets, episode shapes and learning rates of `train`."""
    parser.add_argument("--meta-steps", type=int, default=None,
                        help="outer steps (sinusoid 70000 as in the MAML "
                             "paper; omniglot 2000; navigation2d 300)")
    parser.add_argument("--meta-batch-size", type=int, default=None,
                        help="tasks per step (sinusoid 25; omniglot 8; "
                             "navigation2d 20)")
    parser.add_argument("--num-shots", type=int, default=None,
                        help="support examples per class (sinusoid K=10; "
                             "omniglot 1); navigation2d: trajectories per "
                             "task and adaptation step (20)")
    parser.add_argument("--num-ways", type=int, default=5,
                        help="omniglot: classes per episode")
    parser.add_argument(
        "--protocol", choices=("melu", "mamo", "recbole"), default="melu",
        help="movielens: MeLU's (new users and new items), MAMO's (first "
             "20 ratings, time-based states) or RecBole-MetaRec's (MeLU's "
             "without new items)")
    parser.add_argument("--filters", type=int, default=64,
                        help="omniglot, images: Conv-4 filters per layer")
    parser.add_argument("--backbone", choices=("conv4", "resnet12"),
                        default="conv4",
                        help="images: the network (ResNet-12 is about 50 "
                             "times the compute of Conv-4; for a GPU)")
    parser.add_argument("--image-size", type=int, default=32,
                        help="images: side in pixels images are resized to")
    parser.add_argument("--channels", choices=("auto", "1", "3"),
                        default="auto",
                        help="images: auto is RGB when any image has "
                             "colour, grayscale otherwise")
    parser.add_argument("--augment", action="store_true",
                        help="images: random horizontal flips and small "
                             "shifts of training episodes")
    parser.add_argument("--skip-bad-files", action="store_true",
                        help="images: leave out unreadable files and "
                             "classes too small for the episodes, with a "
                             "warning, instead of stopping")
    parser.add_argument(
        "--batch-norm", choices=("inductive", "transductive"),
        default="inductive",
        help="omniglot: queries normalized with the support set's "
             "statistics (inductive, the default) or their own batch's "
             "(transductive, as MAML's published numbers)")
    parser.add_argument("--inner-learning-rate", type=float, default=None,
                        help="sinusoid 0.01; omniglot 0.4; navigation2d 0.1")
    parser.add_argument("--num-inner-steps", type=int, default=None,
                        help="training inner steps (1; Reptile 5; MAML++ "
                             "5 on sinusoid, 3 on omniglot; iMAML 10 on "
                             "sinusoid, 16 on omniglot)")
    parser.add_argument("--learning-rate", type=float, default=1e-3,
                        help="Adam's learning rate for the outer update")
    parser.add_argument("--num-test-tasks", type=int, default=None,
                        help="fixed test tasks (sinusoid 600, navigation2d "
                             "40) or episodes (omniglot 600) scored after "
                             "training")
    parser.add_argument("--steps-per-execution", type=int, default=None,
                        help="sinusoid 50; omniglot 10")


def _add_run_arguments(parser):
    """How `train` runs: compilation, threads, seed and output."""
    parser.add_argument(
        "--xla", choices=("auto", "on", "off"), default="auto",
        help="sinusoid on TensorFlow: compile the meta-step with XLA. The "
             "command runs with TensorFlow's op determinism (a rerun repeats "
             "the run exactly), under which Keras compiles without XLA: auto "
             "and off train without it; on turns op determinism off for the "
             "run and compiles with XLA (faster; see "
             "benchmarks/sinusoid_step.py)")
    parser.add_argument(
        "--threads", type=_threads, default="auto",
        help="TensorFlow's intra-op threads (how many threads one operation "
             "may use). auto: 1 for the gradient-based sinusoid job, whose "
             "small matrix products run faster on one thread than split "
             "across cores (same results; see benchmarks/sinusoid_step.py), "
             "TensorFlow's default (one per core) otherwise; 0: TensorFlow's "
             "default")
    parser.add_argument(
        "--workers", type=int, default=1,
        help="meta-train with N worker processes started on this machine, "
             "under TensorFlow's MultiWorkerMirroredStrategy: each takes "
             "its share of every meta-batch (--meta-batch-size must divide "
             "by N), the chief (worker 0) scores the trained learner and "
             "writes the files. sinusoid, omniglot and images; one step "
             "per execution. With TF_CONFIG set (a cluster of machines), this "
             "process is one of the N workers it names; see "
             "docs/guide/cluster.md")
    parser.add_argument(
        "--simulator-processes", type=int, default=1,
        help="halfcheetah-* and ant-*: step the MuJoCo simulators in N "
             "worker processes (rl.HalfCheetahVelocity(num_processes=N) "
             "and kin), each a share of every batch of rollouts; the same "
             "results as one process")
    parser.add_argument("--seed", type=int, default=0,
                        help="seeds initialization, training episodes and "
                             "the test tasks")
    parser.add_argument("--output-dir", default=None,
                        help="default keras_meta_runs/DATASET")
    parser.add_argument("--verbose", type=int, choices=(0, 1, 2), default=1)


def _evaluate_parser(subparsers):
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate a saved learner: mean +- 95%% CI over fixed episodes",
        description=(
            "Loads a .keras meta-learner (saved after compile, as keras-meta "
            "train writes them) and evaluates every compiled metric on a "
            "fixed set of episodes, before adaptation (0 inner steps) and "
            "after it, printing mean +- 95% confidence-interval half-width."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("checkpoint", help="path of the .keras file")
    parser.add_argument(
        "--benchmark", default="sinusoid",
        help="sinusoid; navigation2d, halfcheetah-vel, halfcheetah-dir, "
             "ant-vel or ant-dir "
             "(a keras_meta.rl learner: returns on the 40 test goals of "
             "`keras-meta train --task` with the same name after 0-3 "
             "steps); omniglot-background (small2's alphabets that "
             "small1 lacks, from the zips in --data-dir); "
             "omniglot-one-shot (Lake et al.'s 20-way within-alphabet "
             "one-shot trials on the alphabets of the minimal set the "
             "learner did not train on: --train-subset says which it did); "
             "or a keras_meta.data.benchmarks name (omniglot, cifar_fs, "
             "fc100, cub, vgg_flower, mini_imagenet: its test split, via "
             "TFDS)")
    parser.add_argument("--data-dir", default=os.environ.get(
        "KERAS_META_OMNIGLOT_DIR"))
    parser.add_argument("--num-ways", type=int, default=5)
    parser.add_argument(
        "--train-subset", default="small1", choices=("small1", "small2"),
        help="omniglot-one-shot: the minimal set the learner trained on")
    parser.add_argument("--num-shots", type=int, default=None,
                        help="sinusoid K=10, otherwise 1")
    parser.add_argument("--num-queries", type=int, default=None,
                        help="sinusoid 100 points, otherwise 15 per class")
    parser.add_argument("--num-episodes", type=int, default=None,
                        help="600 (robot control: 40 test goals)")
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


def _predict_parser(subparsers):
    parser = subparsers.add_parser(
        "predict",
        help="classify images of new classes from a few examples of each",
        description=(
            "Loads a .keras learner written by `keras-meta train --data-dir "
            "my_images/`, adapts it to the classes of --support (one "
            "sub-folder of one or more images per new class) and prints "
            "each image's predicted class and probability. Images are "
            "prepared as in training (size and channels are read from the "
            "model)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("checkpoint", help="path of the .keras file")
    parser.add_argument("images", nargs="+", metavar="IMAGE_OR_FOLDER",
                        help="images to classify, or folders of them")
    parser.add_argument("--support", required=True,
                        help="folder with one sub-folder of example images "
                             "per class to recognize")
    parser.add_argument("--output", default=None,
                        help="also write the predictions to this CSV file")
    return parser


def build_parser():
    """The argument parser, and its `train`, `evaluate` and `predict`
    sub-parsers."""
    parser = argparse.ArgumentParser(
        prog="keras-meta",
        description="keras_meta: meta-learning for Keras 3.",
    )
    parser.add_argument("--version", action="version",
                        version=f"keras-meta {__version__}")
    subparsers = parser.add_subparsers(dest="command")
    return (parser, _train_parser(subparsers), _evaluate_parser(subparsers),
            _predict_parser(subparsers))
