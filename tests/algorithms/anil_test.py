import keras
import numpy as np
from absl.testing import parameterized

from keras_meta import ANIL
from keras_meta import BOIL
from keras_meta import testing

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


class ANILBOILTest(testing.TestCase):
    @parameterized.named_parameters(("anil", ANIL), ("boil", BOIL))
    def test_finite_differences(self, cls):
        error = testing.classifier_meta_gradient_error(
            cls, inner_learning_rate=0.5, num_inner_steps=2)
        self.assertLess(error, 1e-6)

    @parameterized.named_parameters(("anil", ANIL, True), ("boil", BOIL, False))
    def test_only_the_chosen_part_adapts(self, cls, head_adapts):
        model = testing.tiny_classifier(normalization=None)
        head = model.layers[-1].name
        meta_model = cls(model, inner_learning_rate=0.5, head=head)
        meta_model.compile(loss=LOSS)
        inputs, _ = testing.toy_episodes(num_tasks=1)
        learner = meta_model.adapt(inputs["support_inputs"][0],
                                   inputs["support_labels"][0])
        for original, adapted in zip(model.layers, learner.layers):
            if not original.weights:
                continue
            same = all(np.array_equal(a.numpy(), b.numpy())
                       for a, b in zip(original.weights, adapted.weights))
            self.assertEqual(same, (original.name == head) != head_adapts,
                             original.name)

    def test_head_by_index_equals_head_by_name(self):
        inputs, labels = testing.toy_episodes(num_tasks=2)
        predictions = []
        for head in (-1, "last", ["last"]):
            model = testing.tiny_classifier()
            name = model.layers[-1].name
            head = head if head == -1 else (
                [name] if isinstance(head, list) else name)
            meta_model = ANIL(model, head=head, inner_learning_rate=0.5)
            meta_model.compile(loss=LOSS)
            predictions.append(meta_model.predict(inputs, verbose=0))
        self.assertAllClose(predictions[0], predictions[1])
        self.assertAllClose(predictions[0], predictions[2])

    @parameterized.named_parameters(("anil", ANIL), ("boil", BOIL))
    def test_basics(self, cls):
        self.run_meta_model_test(
            cls=cls,
            init_kwargs={"model": testing.tiny_classifier(), "head": -1,
                         "inner_learning_rate": 0.3},
            episodes=testing.toy_episodes(),
            loss=LOSS,
            metrics=["accuracy"],
        )

    def test_errors(self):
        model = testing.tiny_classifier()
        with self.assertRaisesRegex(ValueError, "not a layer.*Its layers"):
            ANIL(model, head="classifier")
        with self.assertRaisesRegex(ValueError, "out of range"):
            ANIL(model, head=10)
        with self.assertRaisesRegex(ValueError, "no trainable weights"):
            ANIL(model, head=-2)
        everything = [i for i, layer in enumerate(model.layers)
                      if layer.weights]
        with self.assertRaisesRegex(ValueError, "leaving no body"):
            BOIL(model, head=everything)
