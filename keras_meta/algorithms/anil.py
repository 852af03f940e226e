"""ANIL and BOIL: MAML adapting only the head, or only the body."""

import keras

from keras_meta.algorithms.maml import MAML
from keras_meta.models.surgery import layer_weight_mask


class _HeadBodyMAML(MAML):
    def __init__(self, model, *, head=-1, **kwargs):
        super().__init__(model, **kwargs)
        self.head = list(head) if isinstance(head, (list, tuple)) else head
        self._head_mask = layer_weight_mask(
            model, self.head, type(self).__name__)

    def get_config(self):
        return {**super().get_config(), "head": self.head}


@keras.saving.register_keras_serializable(package="keras_meta")
class ANIL(_HeadBodyMAML):
    """Almost No Inner Loop: MAML whose inner loop adapts the head alone.

    The body (every layer but the head) is shared across tasks and learned
    only in the outer loop; the inner steps update the head's weights, so
    adaptation is far cheaper than MAML's while accuracy is about the same
    (Raghu et al.). The meta-gradient still flows through the inner steps
    into the body (second order unless `first_order=True`).

    Args:
        model: A built `keras.Model`.
        head: The layer(s) that adapt: a layer name, an index into
            `model.layers` (`-1`, the default, is the last layer), or a list
            of them.
        **kwargs: Everything `keras_meta.MAML` takes (`inner_learning_rate`,
            `num_inner_steps`, `first_order`, the MAML++ options...).

    Reference:
        - [Raghu et al., 2020](https://arxiv.org/abs/1909.09157)
    """

    def inner_mask(self):
        return self._head_mask


@keras.saving.register_keras_serializable(package="keras_meta")
class BOIL(_HeadBodyMAML):
    """Body Only update in Inner Loop: MAML with the head frozen inside.

    The inner steps update every layer but the head; the head is learned in
    the outer loop only, which forces adaptation into the representation
    (Oh et al.).

    Args:
        model: A built `keras.Model`.
        head: The layer(s) that stay fixed in the inner loop: a layer name,
            an index into `model.layers` (`-1`, the default, is the last
            layer), or a list of them.
        **kwargs: Everything `keras_meta.MAML` takes.

    Reference:
        - [Oh et al., 2021](https://arxiv.org/abs/2008.08882)
    """

    def inner_mask(self):
        return [not m for m in self._head_mask]
