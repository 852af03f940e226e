"""Every learner, built small, for checks that must cover all of them."""

import keras

import keras_meta
from keras_meta.testing.test_utils import tiny_classifier


def every_learner(num_ways=3, dropout=0.5, model_fn=None):
    """`(name, factory, modes)` for each of keras_meta's learners.

    `factory(batch_norm)` builds the learner around a Conv -> BatchNorm ->
    ReLU -> MaxPool -> Dropout -> Dense network (`tiny_classifier`) for
    `num_ways`-way 6x6x1 episodes, or around `model_fn()` where given;
    `modes` lists the `batch_norm` modes it accepts.
    """
    def encoder(**kwargs):
        if model_fn is not None:
            return model_fn()
        return tiny_classifier(num_ways=num_ways, dropout=dropout, **kwargs)

    ways = {"num_ways": num_ways}
    factories = [
        ("maml", lambda bn: keras_meta.MAML(
            encoder(), inner_learning_rate=0.3, num_inner_steps=2,
            batch_norm=bn)),
        ("fomaml", lambda bn: keras_meta.MAML(
            encoder(), inner_learning_rate=0.3, first_order=True,
            batch_norm=bn)),
        ("maml++", lambda bn: keras_meta.MAML(
            encoder(), inner_learning_rate=0.3, num_inner_steps=2,
            learn_inner_learning_rates=True, multi_step_loss_epochs=2,
            batch_norm=bn)),
        ("metasgd", lambda bn: keras_meta.MetaSGD(
            encoder(), inner_learning_rate=0.3, batch_norm=bn)),
        ("anil", lambda bn: keras_meta.ANIL(
            encoder(), inner_learning_rate=0.3, batch_norm=bn)),
        ("boil", lambda bn: keras_meta.BOIL(
            encoder(), inner_learning_rate=0.3, batch_norm=bn)),
        ("cavia", lambda bn: keras_meta.CAVIA(
            encoder(), num_context_params=8,
            inner_learning_rate=1.0, batch_norm=bn)),
        ("reptile", lambda bn: keras_meta.Reptile(
            encoder(), inner_learning_rate=0.3, num_inner_steps=2,
            batch_norm=bn)),
        ("imaml", lambda bn: keras_meta.IMAML(
            encoder(), inner_learning_rate=0.3, num_inner_steps=8,
            batch_norm=bn)),
        ("protonet", lambda bn: keras_meta.ProtoNet(
            encoder(), batch_norm=bn, **ways)),
        ("matchingnet", lambda bn: keras_meta.MatchingNet(
            encoder(), batch_norm=bn, **ways)),
        ("relationnet", lambda bn: keras_meta.RelationNet(
            encoder(), relation_module=_relation_module(num_ways),
            batch_norm=bn, **ways)),
        ("r2d2", lambda bn: keras_meta.R2D2(
            encoder(), batch_norm=bn, **ways)),
        ("protomaml", lambda bn: keras_meta.ProtoMAML(
            encoder(), inner_learning_rate=0.3, batch_norm=bn, **ways)),
        ("leo", lambda bn: keras_meta.LEO(
            encoder(), latent_dim=2, num_latent_steps=1,
            num_finetune_steps=1, batch_norm=bn, **ways)),
        ("snail", lambda bn: keras_meta.SNAIL(
            encoder(), num_shots=2, seed=0, batch_norm=bn, **ways)),
        ("mann", lambda bn: keras_meta.MANN(
            encoder(), units=32, memory_size=8, memory_width=16, num_reads=2,
            seed=0, batch_norm=bn, **ways)),
    ]
    return [(name, factory,
             ("inductive", "transductive", "per_step") if name == "maml++"
             else ("inductive", "transductive"))
            for name, factory in factories]


def _relation_module(num_ways):
    # The paper's relation module normalizes too.
    return keras.Sequential([
        keras.Input((2 * num_ways,)),
        keras.layers.Dense(4, kernel_initializer=keras.initializers
                           .GlorotUniform(11)),
        keras.layers.BatchNormalization(
            gamma_initializer=keras.initializers.RandomUniform(
                0.5, 1.5, seed=12)),
        keras.layers.ReLU(),
        keras.layers.Dense(1, kernel_initializer=keras.initializers
                           .GlorotUniform(13)),
    ])
