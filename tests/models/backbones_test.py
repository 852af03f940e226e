"""Backbones: shapes, any input size, and training inside a learner."""

import keras
import numpy as np
import pytest

from keras_meta import ProtoNet
from keras_meta import models
from keras_meta import testing


class ResNet12Test(testing.TestCase):
    def test_structure_and_shapes(self):
        network = models.resnet12(num_outputs=None, input_shape=(32, 32, 3),
                                  filters=(4, 6, 8, 10), seed=0)
        self.assertEqual(network.output_shape, (None, 10))
        convolutions = [layer for layer in network.layers
                        if isinstance(layer, keras.layers.Conv2D)]
        # Four blocks of three 3x3 convolutions and a 1x1 shortcut.
        self.assertEqual(len(convolutions), 16)
        self.assertEqual(sorted({c.kernel_size for c in convolutions}),
                         [(1, 1), (3, 3)])
        pools = [layer for layer in network.layers
                 if isinstance(layer, keras.layers.MaxPooling2D)]
        self.assertEqual(len(pools), 4)
        adds = [layer for layer in network.layers
                if isinstance(layer, keras.layers.Add)]
        self.assertEqual(len(adds), 4)  # One residual sum per block.
        head = models.resnet12(num_outputs=5, input_shape=(20, 24, 1),
                               filters=(4, 4, 4, 4))
        self.assertEqual(head.output_shape, (None, 5))

        # Weights, counted by hand: per block of width w on c inputs,
        # 3x3 convolutions c*w*9 + 2*w*w*9 (no biases), a 1x1 shortcut c*w,
        # and 4 BatchNormalizations of 4*w values.
        def count(widths, channels):
            total = 0
            for w in widths:
                total += 9 * w * (channels + 2 * w) + channels * w + 16 * w
                channels = w
            return total

        self.assertEqual(network.count_params(), count((4, 6, 8, 10), 3))
        # The standard widths (64, 160, 320, 640): 12.4 million.
        self.assertAllClose(count((64, 160, 320, 640), 3) / 1e6, 12.4,
                            atol=0.05)

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "widths of the 4 blocks"):
            models.resnet12(num_outputs=None, filters=(4, 4))
        with self.assertRaisesRegex(ValueError, "positive integer or None"):
            models.resnet12(num_outputs=0)

    @pytest.mark.slow_on_jax  # convolutions mapped over tasks by lax.map
    def test_trains_in_a_protonet(self):
        inputs, labels = testing.toy_episodes(num_tasks=2,
                                              image_shape=(16, 16, 1))
        learner = ProtoNet(models.resnet12(
            num_outputs=None, input_shape=(16, 16, 1), filters=(4, 4, 4, 4),
            seed=0), num_ways=3)
        learner.compile(optimizer=keras.optimizers.Adam(1e-2),
                        loss=keras.losses.SparseCategoricalCrossentropy(
                            from_logits=True))
        history = learner.fit(inputs, labels, epochs=3, batch_size=2,
                              verbose=0)
        losses = history.history["loss"]
        self.assertTrue(np.all(np.isfinite(losses)))
        self.assertLess(losses[-1], losses[0])
