"""The `keras-meta` command's entry point.

Parses the command line before anything imports TensorFlow, so that
`keras-meta --help` and argument errors answer at once and print no
TensorFlow start-up logs; the work itself is `keras_meta.cli`.
"""

import argparse
import os
import sys

# The learners `keras-meta train --algorithm` knows, with a line each
# (`keras_meta.experiments.catalog` builds them).
GRADIENT_BASED = {
    "maml": "second-order MAML (Finn et al., 2017)",
    "fomaml": "first-order MAML",
    "maml++": "MAML with learned per-step rates, multi-step loss, "
              "first-order warm-up and cosine outer schedule "
              "(Antoniou et al., 2019)",
    "metasgd": "Meta-SGD: learned per-parameter inner rates (Li et al., "
               "2017)",
    "anil": "ANIL: only the head adapts (Raghu et al., 2020)",
    "boil": "BOIL: only the body adapts (Oh et al., 2021)",
    "cavia": "CAVIA: context parameters adapt (Zintgraf et al., 2019)",
    "reptile": "Reptile (Nichol et al., 2018)",
    "imaml": "iMAML: implicit meta-gradients (Rajeswaran et al., 2019)",
}
CLASSIFICATION_ONLY = {
    "protonet": "Prototypical Networks (Snell et al., 2017)",
    "matchingnet": "Matching Networks (Vinyals et al., 2016)",
    "relationnet": "Relation Networks (Sung et al., 2018)",
    "r2d2": "R2-D2 ridge-regression head (Bertinetto et al., 2019)",
    "protomaml": "Proto-MAML (Triantafillou et al., 2020)",
    "leo": "LEO: latent embedding optimization (Rusu et al., 2019)",
    "snail": "SNAIL: causal convolutions and attention over the labelled "
             "support sequence (Mishra et al., 2018)",
    "mann": "MANN: an LSTM with least-recently-used-access memory written "
            "by the support set (Santoro et al., 2016)",
}
# Black-box regressors (`--task sinusoid` only; built by
# `keras_meta.experiments.neural_process`).
REGRESSION_ONLY = {
    "cnp": "Conditional Neural Process: mean-pooled support encoding, "
           "Gaussian predictions (Garnelo et al., 2018); sinusoid only",
    "anp": "Attentive Neural Process: cross-attention to the support set "
           "and a latent path (Kim et al., 2019); sinusoid only",
}
# Learners of the other uses: meta-reinforcement learning (`--task
# navigation2d`, where `maml` is `keras_meta.rl.MAMLRL`) and cold-start
# recommendation (`--task movielens`).
OTHER_USES = {
    "promp": "ProMP: low-variance curvature inner step, clipped outer "
             "objective (Rothfuss et al., 2019); reinforcement learning "
             "only",
    "melu": "MeLU: ANIL adapting a field recommender's decision layers "
            "(Lee et al., 2019); --task movielens only",
}
ALGORITHMS = {**GRADIENT_BASED, **CLASSIFICATION_ONLY, **REGRESSION_ONLY,
              **OTHER_USES}


DATASETS = ("sinusoid", "omniglot", "navigation2d", "halfcheetah-vel",
            "halfcheetah-dir", "movielens")
# Tasks trained by `keras_meta.rl` (HalfCheetah needs the `rl` extra).
CONTROL_TASKS = ("navigation2d", "halfcheetah-vel", "halfcheetah-dir")
DEFAULTS = {
    "sinusoid": {"meta_steps": 70000, "meta_batch_size": 25,
                 "inner_learning_rate": 0.01, "num_shots": 10},
    "omniglot": {"meta_steps": 2000, "meta_batch_size": 8,
                 "inner_learning_rate": 0.4, "num_shots": 1},
    # The MAML paper's 2D navigation: 20 tasks of 20 trajectories per step.
    "navigation2d": {"meta_steps": 300, "meta_batch_size": 20,
                     "inner_learning_rate": 0.1, "num_shots": 20},
    # The MAML paper's HalfCheetah runs: 40 tasks of 20 trajectories per
    # step; about 1,000 steps is a multi-hour (GPU-cluster) budget.
    "halfcheetah-vel": {"meta_steps": 1000, "meta_batch_size": 40,
                        "inner_learning_rate": 0.1, "num_shots": 20},
    "halfcheetah-dir": {"meta_steps": 1000, "meta_batch_size": 40,
                        "inner_learning_rate": 0.1, "num_shots": 20},
    # MeLU's protocol on MovieLens: 30 epochs of 50 steps at most (the epoch
    # with the best validation MAE is kept), 32 users per step.
    "movielens": {"meta_steps": 1500, "meta_batch_size": 32,
                  "inner_learning_rate": 0.1, "num_shots": 10},
}
NUM_TEST_TASKS = {"sinusoid": 600, "omniglot": 600, "navigation2d": 40,
                  "halfcheetah-vel": 40, "halfcheetah-dir": 40,
                  "movielens": 600}
# `--algorithm` on `--task movielens`: MeLU is ANIL on the decision layers.
RECOMMENDATION = ("melu", "maml", "metasgd")


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
            "results.json, sinusoid.png and ALGORITHM.keras. On omniglot "
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
            "on gymnasium's HalfCheetah. On movielens "
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
             "ones, navigation2d for promp, movielens for melu",
    )
    parser.add_argument(
        "--data-dir", default=None,
        help="omniglot: folder holding images_background_small1.zip and "
             "images_background_small2.zip (env KERAS_META_OMNIGLOT_DIR); "
             "movielens: folder of ml-100k or ml-1m files (default: the "
             "recbole package's MovieLens-100K)",
    )
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
                        help="omniglot: Conv-4 filters per layer")
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
    parser.add_argument("--seed", type=int, default=0,
                        help="seeds initialization, training episodes and "
                             "the test tasks")
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
            "after it, printing mean +- 95% confidence-interval half-width."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("checkpoint", help="path of the .keras file")
    parser.add_argument(
        "--benchmark", default="sinusoid",
        help="sinusoid; navigation2d (a keras_meta.rl learner: returns on "
             "the 40 test goals of `keras-meta train --task navigation2d` "
             "after 0-3 steps); omniglot-background (small2's alphabets that "
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
    parser.add_argument("--num-episodes", type=int, default=None,
                        help="600 (navigation2d: 40 test goals)")
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


def build_parser():
    """The argument parser, and its `train` and `evaluate` sub-parsers."""
    parser = argparse.ArgumentParser(
        prog="keras-meta",
        description="keras_meta: meta-learning for Keras 3.",
    )
    subparsers = parser.add_subparsers(dest="command")
    return parser, _train_parser(subparsers), _evaluate_parser(subparsers)


def main(argv=None):
    """`keras-meta`: parses `argv` (default: the command line), then runs."""
    parsers = build_parser()
    args = parsers[0].parse_args(argv)
    # Read by TensorFlow when first imported, below: silences its start-up
    # and CUDA-probe logs unless the user asked for them.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from keras_meta import cli

    return cli.run(parsers, args, command=argv is None)


if __name__ == "__main__":
    sys.exit(main())
