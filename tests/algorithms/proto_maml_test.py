import keras
from absl.testing import parameterized

from keras_meta import ProtoMAML
from keras_meta import ProtoNet
from keras_meta import testing


def _encoder(dtype=None, batch_norm=False):
    layers = [keras.Input((6, 6, 1)), keras.layers.Flatten(dtype=dtype),
              keras.layers.Dense(6, activation="tanh", dtype=dtype,
                                 kernel_initializer=keras.initializers
                                 .GlorotUniform(seed=4))]
    if batch_norm:
        layers.append(keras.layers.BatchNormalization(dtype=dtype))
    return keras.Sequential(layers)


def _loss():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


class ProtoMAMLTest(testing.TestCase):
    def test_head_starts_as_protonet(self):
        # With zero steps the head is the prototype head: logits differ from
        # ProtoNet's by -|x|^2 per example, so the softmax is identical.
        encoder = _encoder()
        proto_maml = ProtoMAML(encoder, num_ways=3, eval_inner_steps=0)
        proto_maml.compile(loss=_loss())
        protonet = ProtoNet(encoder, num_ways=3)
        protonet.compile(loss=_loss())
        inputs, _ = testing.toy_episodes(num_tasks=2, num_shots=3)
        self.assertAllClose(
            keras.ops.softmax(proto_maml.predict(inputs, verbose=0)),
            keras.ops.softmax(protonet.predict(inputs, verbose=0)),
            atol=1e-5, rtol=1e-4)

    @parameterized.named_parameters(("one_step", 1), ("two_steps", 2))
    def test_meta_gradient_finite_differences(self, steps):
        keras.config.set_floatx("float64")
        loss = _loss()
        inputs, labels = testing.toy_episodes(num_tasks=2, num_shots=2,
                                              dtype="float64")
        proto_maml = ProtoMAML(_encoder("float64", batch_norm=True),
                               num_ways=3, inner_learning_rate=0.3,
                               num_inner_steps=steps)
        proto_maml.compile(loss=loss)
        self.assertLess(
            testing.meta_gradient_error(proto_maml, loss, inputs, labels), 1e-6)

    def test_basics(self):
        self.run_meta_model_test(
            cls=ProtoMAML,
            init_kwargs={"model": _encoder(), "num_ways": 3,
                         "inner_learning_rate": 0.2},
            episodes=testing.toy_episodes(),
            loss=_loss(),
            metrics=["accuracy"],
        )

    def test_adapted_model_matches(self):
        proto_maml = ProtoMAML(_encoder(), num_ways=3, num_inner_steps=2,
                               inner_learning_rate=0.2)
        proto_maml.compile(loss=_loss())
        inputs, _ = testing.toy_episodes(num_tasks=1)
        learner = proto_maml.adapt(inputs["support_inputs"][0],
                                   inputs["support_labels"][0])
        self.assertAllClose(
            learner.predict(inputs["query_inputs"][0], verbose=0),
            proto_maml.predict(inputs, verbose=0)[0], atol=1e-5, rtol=1e-4)

    def test_errors(self):
        with self.assertRaisesRegex(ValueError, "num_ways"):
            ProtoMAML(_encoder(), num_ways=0)
        for option, value in (("learn_inner_learning_rates", True),
                              ("multi_step_loss_epochs", 2),
                              ("first_order_epochs", 3)):
            with self.assertRaisesRegex(ValueError, f"does not take `{option}"):
                ProtoMAML(_encoder(), num_ways=3, **{option: value})
