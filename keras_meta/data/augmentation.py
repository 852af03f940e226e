"""Random affine distortions of training images, for `episodes(augment=)`."""


def affine_distortions(*, rotation=10.0, shear=0.3, scale=(0.8, 1.2),
                       translation=0.02, fill_mode="nearest", seed=None):
    """Keras preprocessing layers that distort each image by a random affine
    transformation: a rotation, a shear, a scaling and a translation.

    The defaults are the ranges of Koch et al.'s siamese networks for
    one-shot Omniglot (rotation within 10 degrees, shear within 0.3, scale
    within 0.8-1.2 and a shift of up to 2 of 105 pixels), each drawn anew
    for every image. Pass the result as `augment=` to
    `keras_meta.data.episodes` or `episodes_from_index`: support and query
    images of every training episode are distorted independently, in the
    `tf.data` pipeline (on every backend).

    Args:
        rotation: Float, the largest rotation in degrees (either way).
        shear: Float, the largest shear, a fraction of the image's width
            and height (either way, on both axes).
        scale: `(smallest, largest)` zoom factors; `(1, 1)` leaves the
            size alone.
        translation: Float, the largest shift, a fraction of the image's
            height and width (either way).
        fill_mode: How pixels moved in from outside the image are filled
            (`"nearest"` repeats the border, right for images whose border
            is background; see `keras.layers.RandomRotation`).
        seed: Int or `None`, seeds the layers' random draws.

    Returns:
        A list of Keras layers (empty when every range is zero).

    Example:

    ```python
    train = keras_meta.data.episodes_from_index(
        index, num_ways=20, num_shots=1, num_queries=5, batch_size=8,
        augment=keras_meta.data.affine_distortions())
    ```

    Reference:
        - [Koch, Zemel and Salakhutdinov, 2015](
          https://www.cs.cmu.edu/~rsalakhu/papers/oneshot1.pdf)
    """
    import keras

    low, high = _check_scale(scale)
    for name, value in (("rotation", rotation), ("shear", shear),
                        ("translation", translation)):
        if not isinstance(value, (int, float)) or value < 0:
            raise ValueError(
                f"`{name}` must be a number >= 0 (the largest distortion "
                f"either way). Received: {name}={value!r}.")
    if rotation >= 180:
        raise ValueError(f"`rotation` is in degrees and must be below 180. "
                         f"Received: rotation={rotation!r}.")
    if translation >= 1 or shear >= 1:
        raise ValueError(
            "`shear` and `translation` are fractions of the image and must "
            f"be below 1. Received: shear={shear!r}, "
            f"translation={translation!r}.")

    def next_seed(offset):
        return None if seed is None else seed + offset

    layers = []
    if rotation:
        layers.append(keras.layers.RandomRotation(
            rotation / 360.0, fill_mode=fill_mode, seed=next_seed(0)))
    if shear:
        # RandomShear draws magnitudes in [0, shear] and a random sign.
        layers.append(keras.layers.RandomShear(
            x_factor=shear, y_factor=shear,
            fill_mode=fill_mode, seed=next_seed(1)))
    if (low, high) != (1.0, 1.0):
        # RandomZoom's factor f draws the image at 1 / (1 + f) of its
        # size (f < 0 zooms in), so a scale s is the factor 1 / s - 1.
        layers.append(keras.layers.RandomZoom(
            (1.0 / high - 1.0, 1.0 / low - 1.0), fill_mode=fill_mode,
            seed=next_seed(2)))
    if translation:
        layers.append(keras.layers.RandomTranslation(
            (-translation, translation), (-translation, translation),
            fill_mode=fill_mode, seed=next_seed(3)))
    return layers


def _check_scale(scale):
    try:
        low, high = (float(s) for s in scale)
    except (TypeError, ValueError):
        raise ValueError(
            "`scale` must be `(smallest, largest)` zoom factors, e.g. "
            f"(0.8, 1.2). Received: scale={scale!r}.") from None
    if not 0 < low <= high:
        raise ValueError(
            "`scale` must be `(smallest, largest)` with 0 < smallest <= "
            f"largest. Received: scale={scale!r}.")
    return low, high
