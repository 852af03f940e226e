"""Every learner reachable from `keras-meta train`, set up as in its paper.

`build_regressor` makes a learner for sinusoid regression around the MAML
paper's 1-40-40-1 network; `build_classifier` one for N-way image
classification around the Conv-4 backbone. Settings that the papers fix
(CAVIA's context size, steps and FiLM placement, Reptile's inner Adam and
annealed outer step, iMAML's proximal strength) are the defaults here; the
command line can override the shared ones.
"""

import keras

from keras_meta import algorithms
from keras_meta import models
from keras_meta.experiments.choices import CLASSIFICATION_ONLY
from keras_meta.experiments.choices import GRADIENT_BASED

# The learners of labelled episodes (the reinforcement learners of
# `keras-meta train --task navigation2d` are built by
# `keras_meta.experiments.navigation`).
ALGORITHMS = {**GRADIENT_BASED, **CLASSIFICATION_ONLY}

# Inner steps in training when the command line gives none (1 otherwise).
# On Conv-4 the CPU budget keeps MAML++ to fewer steps. iMAML takes the
# paper's 16 for images: its implicit meta-gradient assumes the proximal
# problem solved, and with 5 steps (residual 0.25 rising to 0.6) Omniglot
# training collapsed to 35% where 16 steps (residual 0.03) reached 73%
# after 300 meta-steps.
_TRAIN_STEPS = {
    "regression": {"reptile": 5, "imaml": 10, "maml++": 5},
    "classification": {"reptile": 5, "imaml": 16, "maml++": 3, "cavia": 2},
}
# CAVIA's context, as in the paper: 4 values appended to the inputs for
# regression; 100 values conditioning the third convolutional block's
# normalized features by FiLM for images.
_CONTEXT = {"regression": 4, "classification": 100}
# iMAML's lambda (measured: at 1 on sinusoid and at 10 on Omniglot it does
# not learn).
_PROXIMAL_STRENGTH = {"regression": 10.0, "classification": 2.0}


def default_inner_steps(name, task="regression"):
    """Inner steps in training for `name` (1 unless its method needs more)
    on `"regression"` or `"classification"`."""
    return _TRAIN_STEPS[task].get(name, 1)


def _check(name, task):
    if name not in ALGORITHMS:
        raise ValueError(
            f"Unknown algorithm {name!r}. Choose one of {sorted(ALGORITHMS)}."
        )
    if task == "regression" and name in CLASSIFICATION_ONLY:
        raise ValueError(
            f"{name!r} classifies by comparing examples of each class and "
            "cannot regress; use it on a classification benchmark "
            "(`--dataset omniglot`)."
        )


def _gradient_based(name, model, *, inner_learning_rate, num_inner_steps,
                    epochs, head, task):
    common = {"inner_learning_rate": inner_learning_rate,
              "num_inner_steps": num_inner_steps}
    if name in ("maml", "fomaml"):
        return algorithms.MAML(model, first_order=name == "fomaml", **common)
    if name == "maml++":
        return algorithms.MAML(
            model, learn_inner_learning_rates=True,
            multi_step_loss_epochs=(
                max(1, (3 * epochs) // 10) if num_inner_steps > 1 else None),
            first_order_epochs=epochs // 5, **common)
    if name == "metasgd":
        return algorithms.MetaSGD(model, **common)
    if name == "anil":
        return algorithms.ANIL(model, head=head, **common)
    if name == "boil":
        return algorithms.BOIL(model, head=head, **common)
    if name == "reptile":
        return algorithms.Reptile(model, **common)
    if name == "imaml":
        # The proximal strength matched to the loss's scale: sinusoid's
        # squared errors have gradients far larger than cross-entropy's.
        return algorithms.IMAML(
            model, l2_regularizer=_PROXIMAL_STRENGTH[task], cg_steps=5,
            **common)
    raise AssertionError(name)


def build_regressor(name, *, inner_learning_rate=0.01, num_inner_steps=None,
                    epochs=10, seed=None):
    """A learner for sinusoid regression on the 1-40-40-1 ReLU network."""
    _check(name, "regression")
    steps = num_inner_steps or default_inner_steps(name)
    if name == "cavia":
        context = _CONTEXT["regression"]
        return algorithms.CAVIA(
            models.mlp(input_shape=(1 + context,), seed=seed),
            num_context_params=context, inner_learning_rate=1.0,
            num_inner_steps=steps)
    return _gradient_based(
        name, models.mlp(seed=seed), inner_learning_rate=inner_learning_rate,
        num_inner_steps=steps, epochs=epochs, head=-1, task="regression")


BACKBONES = ("conv4", "resnet12")


def build_classifier(name, *, num_ways, image_shape=(28, 28, 1), filters=64,
                     inner_learning_rate=0.4, num_inner_steps=None, epochs=10,
                     seed=None, batch_norm="inductive", num_shots=1,
                     backbone="conv4"):
    """A learner for `num_ways`-way image classification on Conv-4 (or
    ResNet-12 with `backbone="resnet12"`; `filters` sets Conv-4's width)
    (`num_shots`, the most support examples per class, sizes SNAIL's
    sequences)."""
    _check(name, "classification")
    if backbone not in BACKBONES:
        raise ValueError(f"Unknown backbone {backbone!r}; choose one of "
                         f"{BACKBONES}.")
    if backbone != "conv4" and name == "cavia":
        raise ValueError("CAVIA's context conditions Conv-4's third "
                         "BatchNormalization layer; use backbone='conv4'.")
    learner = _build_classifier(
        name, num_ways=num_ways, image_shape=image_shape, filters=filters,
        inner_learning_rate=inner_learning_rate,
        num_inner_steps=num_inner_steps, epochs=epochs, seed=seed,
        num_shots=num_shots, backbone=backbone)
    if batch_norm == learner.batch_norm:
        return learner
    # Rebuilt from its config with the other mode, from the same weights.
    rebuilt = type(learner).from_config(
        {**learner.get_config(), "batch_norm": batch_norm})
    rebuilt.set_weights(learner.get_weights())
    return rebuilt


def _backbone(backbone, num_outputs, image_shape, filters, seed):
    if backbone == "resnet12":
        return models.resnet12(num_outputs=num_outputs,
                               input_shape=image_shape, seed=seed)
    return models.conv4(num_outputs=num_outputs, input_shape=image_shape,
                        filters=filters, seed=seed)


def _build_classifier(name, *, num_ways, image_shape, filters,
                      inner_learning_rate, num_inner_steps, epochs, seed,
                      num_shots, backbone):
    steps = num_inner_steps or default_inner_steps(name, "classification")
    if name in CLASSIFICATION_ONLY:
        encoder = _backbone(backbone, None, image_shape, filters, seed)
        if name == "protonet":
            return algorithms.ProtoNet(encoder, num_ways=num_ways)
        if name == "matchingnet":
            return algorithms.MatchingNet(encoder, num_ways=num_ways)
        if name == "relationnet":
            return algorithms.RelationNet(encoder, num_ways=num_ways)
        if name == "r2d2":
            return algorithms.R2D2(encoder, num_ways=num_ways)
        if name == "protomaml":
            return algorithms.ProtoMAML(
                encoder, num_ways=num_ways,
                inner_learning_rate=inner_learning_rate, num_inner_steps=steps)
        if name == "snail":
            # The paper's Omniglot sequence network after the Conv-4
            # embedding.
            return algorithms.SNAIL(encoder, num_ways=num_ways,
                                    num_shots=num_shots, seed=seed)
        if name == "mann":
            # The paper's Omniglot controller and memory after the Conv-4
            # embedding.
            return algorithms.MANN(encoder, num_ways=num_ways, seed=seed)
        if name == "leo":
            return algorithms.LEO(encoder, num_ways=num_ways, latent_dim=16,
                                  num_latent_steps=5, num_finetune_steps=5,
                                  seed=seed)
        raise AssertionError(name)
    if name == "cavia":
        return algorithms.CAVIA(
            models.conv4(num_outputs=num_ways, input_shape=image_shape,
                         filters=filters, seed=seed),
            num_context_params=_CONTEXT["classification"],
            film_layer="batch_norm_2", inner_learning_rate=1.0,
            num_inner_steps=steps)
    if name == "reptile":
        # The paper's Omniglot setup: inner Adam (beta_1 = 0) at 0.001 on
        # all of each task's training examples, 5 steps in training and 50
        # when evaluating; the outer step is SGD annealed from 1 to 0 (see
        # `outer_optimizer`).
        return algorithms.Reptile(
            _backbone(backbone, num_ways, image_shape, filters, seed),
            inner_optimizer="adam", inner_learning_rate=0.001,
            num_inner_steps=steps, eval_inner_steps=50,
            adapt_on_queries=True)
    if name == "imaml" and num_inner_steps is None:
        # Several steps of the one-step rate overshoot on Conv-4.
        inner_learning_rate = min(inner_learning_rate, 0.1)
    return _gradient_based(
        name, _backbone(backbone, num_ways, image_shape, filters, seed),
        inner_learning_rate=inner_learning_rate, num_inner_steps=steps,
        epochs=epochs, head=-1, task="classification")


def compile_classifier(learner, name, learning_rate, total_steps,
                       steps_per_execution):
    """Compiles a classifier built by `build_classifier` as the image
    experiments train it: `outer_optimizer`, cross-entropy on logits,
    accuracy."""
    learner.compile(
        optimizer=outer_optimizer(name, learning_rate, total_steps,
                                  task="classification"),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"], steps_per_execution=steps_per_execution)
    return learner


def outer_optimizer(name, learning_rate, total_steps, task="regression"):
    """Adam, with MAML++'s cosine-annealed rate for `maml++`; for Reptile
    on images, the paper's SGD interpolation step annealed linearly from 1
    to 0 over `total_steps` (`learning_rate` is then not used)."""
    if name == "reptile" and task == "classification":
        return keras.optimizers.SGD(
            keras.optimizers.schedules.PolynomialDecay(
                1.0, max(1, total_steps), end_learning_rate=0.0))
    if name == "maml++":
        learning_rate = keras.optimizers.schedules.CosineDecay(
            learning_rate, max(1, total_steps), alpha=0.01)
    return keras.optimizers.Adam(learning_rate)
