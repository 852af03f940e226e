"""What `keras-meta` offers, by name: the learners with a line each, the
tasks, and each task's defaults.

Plain Python with no TensorFlow, so that the command line's parser and
argument checks (`keras_meta.cli`) answer before TensorFlow loads; the
experiments that build and train these learners read the same tables.
"""

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


DATASETS = ("sinusoid", "omniglot", "images", "navigation2d",
            "halfcheetah-vel", "halfcheetah-dir", "ant-vel", "ant-dir",
            "movielens")
# Tasks trained by `keras_meta.rl` (HalfCheetah and Ant need the `rl`
# extra).
CONTROL_TASKS = ("navigation2d", "halfcheetah-vel", "halfcheetah-dir",
                 "ant-vel", "ant-dir")
DEFAULTS = {
    "sinusoid": {"meta_steps": 70000, "meta_batch_size": 25,
                 "inner_learning_rate": 0.01, "num_shots": 10},
    "omniglot": {"meta_steps": 2000, "meta_batch_size": 8,
                 "inner_learning_rate": 0.4, "num_shots": 1},
    # A folder of the user's images (`--data-dir my_images/`): about ten
    # minutes on 2 CPU cores for 100 classes of 20 images.
    "images": {"meta_steps": 1000, "meta_batch_size": 4,
               "inner_learning_rate": 0.4, "num_shots": 1},
    # The MAML paper's 2D navigation: 20 tasks of 20 trajectories per step.
    "navigation2d": {"meta_steps": 300, "meta_batch_size": 20,
                     "inner_learning_rate": 0.1, "num_shots": 20},
    # The MAML paper's HalfCheetah run: 40 tasks of 10 trajectories per
    # step, its evaluated checkpoint at iteration 475; a multi-hour budget.
    "halfcheetah-vel": {"meta_steps": 500, "meta_batch_size": 40,
                        "inner_learning_rate": 0.1, "num_shots": 10},
    "halfcheetah-dir": {"meta_steps": 500, "meta_batch_size": 40,
                        "inner_learning_rate": 0.1, "num_shots": 10},
    # Ant (gymnasium's Ant-v5) with HalfCheetah's settings.
    "ant-vel": {"meta_steps": 500, "meta_batch_size": 40,
                "inner_learning_rate": 0.1, "num_shots": 10},
    "ant-dir": {"meta_steps": 500, "meta_batch_size": 40,
                "inner_learning_rate": 0.1, "num_shots": 10},
    # MeLU's protocol on MovieLens: 30 epochs of 50 steps at most (the epoch
    # with the best validation MAE is kept), 32 users per step.
    "movielens": {"meta_steps": 1500, "meta_batch_size": 32,
                  "inner_learning_rate": 0.1, "num_shots": 10},
}
NUM_TEST_TASKS = {"sinusoid": 600, "omniglot": 600, "images": 600, "navigation2d": 40,
                  "halfcheetah-vel": 40, "halfcheetah-dir": 40,
                  "ant-vel": 40, "ant-dir": 40,
                  "movielens": 600}
# `--algorithm` on `--task movielens`: MeLU is ANIL on the decision layers.
RECOMMENDATION = ("melu", "maml", "metasgd")
