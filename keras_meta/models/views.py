"""Fixed affine views of images: test-time augmentation that a deployed
model carries."""

import math

import keras
import numpy as np
from keras import ops

# Identity, rotations of 10 degrees either way, scales 0.9 and 1.1, and
# shifts of 5% of the image along each axis: `(degrees, scale, shift_x,
# shift_y)`, shifts as fractions of the width and height.
DEFAULT_VIEWS = (
    (0.0, 1.0, 0.0, 0.0),
    (-10.0, 1.0, 0.0, 0.0), (10.0, 1.0, 0.0, 0.0),
    (0.0, 0.9, 0.0, 0.0), (0.0, 1.1, 0.0, 0.0),
    (0.0, 1.0, -0.05, 0.0), (0.0, 1.0, 0.05, 0.0),
    (0.0, 1.0, 0.0, -0.05), (0.0, 1.0, 0.0, 0.05),
)


def check_views(views, name="views"):
    """`views` as a tuple of `(degrees, scale, shift_x, shift_y)` float
    tuples (`"default"` gives `DEFAULT_VIEWS`), or `None`."""
    if views is None:
        return None
    if isinstance(views, str):
        if views != "default":
            raise ValueError(
                f"`{name}` must be 'default', None or a list of (degrees, "
                f"scale, shift_x, shift_y) tuples. Received: {views!r}.")
        return DEFAULT_VIEWS
    try:
        checked = tuple(tuple(float(v) for v in view) for view in views)
    except (TypeError, ValueError):
        checked = ()
    if not checked or any(len(view) != 4 for view in checked):
        raise ValueError(
            f"`{name}` must be a non-empty list of (degrees, scale, "
            "shift_x, shift_y) tuples (shifts as fractions of the image), "
            f"e.g. [(0, 1, 0, 0), (10, 1, 0, 0)]. Received: {views!r}.")
    for degrees, scale, shift_x, shift_y in checked:
        if not (scale > 0 and abs(degrees) < 180 and abs(shift_x) < 1
                and abs(shift_y) < 1):
            raise ValueError(
                f"Each view of `{name}` needs |degrees| < 180, scale > 0 "
                "and shifts "
                "within (-1, 1) of the image. Received the view "
                f"{(degrees, scale, shift_x, shift_y)}.")
    return checked


def view_transform(view, height, width):
    """The 8 numbers of `keras.ops.image.affine_transform` drawing an image
    rotated by `degrees` (counter-clockwise) and scaled by `scale` about
    its centre, then shifted by `shift_x * width` and `shift_y * height`
    pixels."""
    degrees, scale, shift_x, shift_y = view
    # Positive degrees turn the image counter-clockwise as shown (rows
    # downwards), as `keras.layers.RandomRotation` does.
    angle = -math.radians(degrees)
    cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
    centre_x, centre_y = (width - 1) / 2.0, (height - 1) / 2.0
    # An output pixel p comes from the input point A (p - c - t) + c,
    # A the inverse of the rotation and scaling.
    moved_x = centre_x + shift_x * width
    moved_y = centre_y + shift_y * height
    return [cos, sin, centre_x - (cos * moved_x + sin * moved_y),
            -sin, cos, centre_y - (-sin * moved_x + cos * moved_y),
            0.0, 0.0]


def apply_views(images, views, fill_mode="nearest"):
    """`[views * batch, ...]`: the fixed affine `views` (checked by
    `check_views`) of `images` `[batch, height, width, channels]`, view by
    view; the identity view is the images themselves."""
    if len(images.shape) != 4 or None in images.shape[1:3]:
        raise ValueError(
            "Affine views take images [batch, height, width, channels] of "
            f"known size. Received shape {tuple(images.shape)}.")
    height, width = int(images.shape[1]), int(images.shape[2])
    outputs = []
    for view in views:
        if view == (0.0, 1.0, 0.0, 0.0):
            outputs.append(images)
            continue
        transform = ops.convert_to_tensor(
            np.array(view_transform(view, height, width)), dtype=images.dtype)
        # One transform per image (JAX's implementation wants the batch),
        # in memory of its own (torch's writes to it).
        transform = ops.tile(transform[None], [ops.shape(images)[0], 1])
        outputs.append(keras.ops.image.affine_transform(
            images, transform, interpolation="bilinear",
            fill_mode=fill_mode))
    return ops.concatenate(outputs, axis=0)


def mean_over_views(inputs, num_views):
    """`[batch, ...]`: the mean of `[views * batch, ...]` over its views."""
    # Static sizes where known; the rest read at run time.
    sizes = [size if size is not None else ops.shape(inputs)[axis]
             for axis, size in enumerate(inputs.shape) if axis > 0]
    grouped = ops.reshape(inputs, [num_views, -1] + sizes)
    return ops.mean(grouped, axis=0)


@keras.saving.register_keras_serializable(package="keras_meta")
class AffineViews(keras.layers.Layer):
    """Maps images `[batch, height, width, channels]` to fixed affine views
    of each, `[views * batch, height, width, channels]`, view by view.

    Each view is `(degrees, scale, shift_x, shift_y)`: a rotation
    (counter-clockwise, as `keras.layers.RandomRotation`) and a scaling
    about the image's centre, then a shift by fractions of its
    width and height; the identity view `(0, 1, 0, 0)` returns the images
    unchanged. Pixels moved in from outside repeat the border
    (`fill_mode="nearest"`). The same views at every call: deterministic,
    so an adapted model predicts exactly as it was evaluated.

    Args:
        views: List of `(degrees, scale, shift_x, shift_y)`, or
            `"default"` (`keras_meta.models.views.DEFAULT_VIEWS`: the
            identity, rotations of 10 degrees, scales 0.9 and 1.1 and shifts
            of 5% either way).
    """

    def __init__(self, views="default", fill_mode="nearest", **kwargs):
        super().__init__(**kwargs)
        self.views = check_views(views)
        self.fill_mode = fill_mode

    @property
    def num_views(self):
        return len(self.views)

    def call(self, images):
        return apply_views(images, self.views, self.fill_mode)

    def compute_output_shape(self, input_shape):
        batch = input_shape[0]
        return ((None if batch is None else batch * self.num_views),
                *input_shape[1:])

    def get_config(self):
        return {**super().get_config(),
                "views": [list(view) for view in self.views],
                "fill_mode": self.fill_mode}


@keras.saving.register_keras_serializable(package="keras_meta")
class ViewMean(keras.layers.Layer):
    """The mean over views: `[views * batch, ...]` (view by view, as
    `AffineViews` lays them out) to `[batch, ...]`."""

    def __init__(self, num_views, **kwargs):
        super().__init__(**kwargs)
        self.num_views = int(num_views)

    def call(self, inputs):
        return mean_over_views(inputs, self.num_views)

    def compute_output_shape(self, input_shape):
        batch = input_shape[0]
        return ((None if batch is None else batch // self.num_views),
                *input_shape[1:])

    def get_config(self):
        return {**super().get_config(), "num_views": self.num_views}
