"""Folders of image files in mixed formats and modes, for tests, examples
and the own-images benchmark."""

import os

import numpy as np

# (extension, Pillow mode, save options) cycled through a class's images:
# grayscale, grayscale with alpha, palette, RGB, RGBA, 16-bit, in PNG,
# JPEG, BMP, GIF and WebP.
FORMATS = (
    ("png", "L", {}),
    ("jpg", "RGB", {"quality": 92}),
    ("png", "RGBA", {}),
    ("bmp", "RGB", {}),
    ("gif", "P", {}),
    ("webp", "RGB", {"quality": 90}),
    ("png", "LA", {}),
    ("png", "I;16", {}),
)


def _class_pattern(rng, colour):
    """A smooth random 16x16 pattern per class: what its images share."""
    pattern = rng.uniform(0.0, 1.0, (4, 4, 3 if colour else 1))
    pattern = np.kron(pattern, np.ones((4, 4, 1)))
    if not colour:
        pattern = np.repeat(pattern, 3, axis=-1)
    return pattern


def _save(pixels, path, mode, options):
    """Saves float RGB pixels in [0, 1] as `mode` (see `FORMATS`)."""
    from PIL import Image

    rgb = Image.fromarray(np.round(pixels * 255).astype(np.uint8), "RGB")
    if mode == "L":
        image = rgb.convert("L")
    elif mode == "LA":
        image = rgb.convert("LA")
    elif mode == "RGBA":
        image = rgb.convert("RGBA")
        image.putalpha(230)
    elif mode == "P":
        image = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    elif mode == "I;16":
        gray = np.asarray(rgb.convert("L"), np.uint16) * 257
        image = Image.fromarray(gray.astype("<u2"))
    else:
        image = rgb
    image.save(path, **options)


def make_image_folder(directory, *, num_classes=10, images_per_class=6,
                      groups=None, sizes=(24, 40), seed=0):
    """Writes a folder of class sub-folders of mixed-format images.

    Each class has a random 16x16 pattern (in colour for every other
    class, grey for the rest); its images are that pattern at a random
    size in `sizes`, shifted and noised, saved in the formats and modes of
    `FORMATS` in turn. A learner that tells patterns apart classifies them.

    Args:
        directory: Folder to create (it may exist).
        num_classes: Int, number of classes.
        images_per_class: Int, images in each class.
        groups: Optional int; classes then lie in that many top folders
            (`group0/class003/`), as Omniglot's alphabets.
        sizes: `(low, high)` side lengths in pixels.
        seed: Int, seeds every pattern and image.

    Returns:
        `directory`.
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    for c in range(num_classes):
        folder = os.path.join(directory, f"class{c:03d}")
        if groups:
            folder = os.path.join(directory, f"group{c % groups}",
                                  f"class{c:03d}")
        os.makedirs(folder, exist_ok=True)
        pattern = _class_pattern(rng, colour=c % 2 == 0)
        for k in range(images_per_class):
            extension, mode, options = FORMATS[(c + k) % len(FORMATS)]
            size = int(rng.integers(sizes[0], sizes[1] + 1))
            shifted = np.roll(pattern, rng.integers(-2, 3, 2), axis=(0, 1))
            image = Image.fromarray(
                np.round(shifted * 255).astype(np.uint8), "RGB").resize(
                    (size, size), Image.Resampling.BILINEAR)
            pixels = np.asarray(image, np.float32) / 255.0
            pixels = np.clip(
                pixels + rng.normal(0.0, 0.05, pixels.shape), 0.0, 1.0)
            _save(pixels, os.path.join(folder, f"{k:03d}.{extension}"),
                  mode, options)
    return directory
