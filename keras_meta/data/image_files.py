"""Reading a folder of class sub-folders of image files, whatever their
formats and modes.

Images are decoded with Pillow, in parallel threads, to one channel mode:
`channels="auto"` (the default) gives 3 channels (RGB) when any image shows
colour and 1 (grayscale) when none does (an RGB file of grey pixels counts
as grey). Every mode Pillow reads is
accepted: bilevel, grayscale (8 and 16 bits), palette, RGB, CMYK, and
those with transparency, which is composited over a white background. GIFs
contribute their first frame. Images of other sizes than `image_size` are
resized with TensorFlow's antialiased bilinear resize, in batches of equal
sizes.
"""

import concurrent.futures
import os
import warnings

import numpy as np

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp",
                    ".tif", ".tiff")
CHANNELS = ("auto", 1, 3)
ON_ERROR = ("raise", "skip")
# Pillow modes without colour.
_GRAY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L",
               "I;16N", "F")


def scan(directory):
    """The classes of a folder: each leaf sub-folder holding images.

    Returns:
        `(paths, labels, names)`: file paths sorted by class and name,
        their int class labels, and each class's path relative to
        `directory` (with `/`), in sorted order.
    """
    if not os.path.isdir(directory):
        raise ValueError(
            f"The folder '{directory}' does not exist. Pass a folder whose "
            "leaf sub-folders each hold one class's images "
            f"({', '.join(IMAGE_EXTENSIONS)}).")
    paths, labels, names = [], [], []
    loose = []
    for root, dirs, files in sorted(os.walk(directory)):
        dirs.sort()
        images = sorted(f for f in files
                        if f.lower().endswith(IMAGE_EXTENSIONS))
        if images and dirs:
            loose.append(root)
        if images and not dirs:
            names.append(
                os.path.relpath(root, directory).replace(os.sep, "/"))
            paths += [os.path.join(root, f) for f in images]
            labels += [len(names) - 1] * len(images)
    if not paths:
        raise ValueError(
            f"The folder '{directory}' holds no images "
            f"({', '.join(IMAGE_EXTENSIONS)}) in leaf sub-folders. Expected "
            "one sub-folder per class, e.g. my_images/cat/1.jpg, "
            "my_images/dog/1.png (nested folders allowed, as in "
            "Omniglot's Alphabet/character/).")
    if names == ["."]:
        raise ValueError(
            f"The images of '{directory}' lie in the folder itself, not in "
            "class sub-folders. Put each class's images in a sub-folder "
            "named after the class (my_images/cat/1.jpg, my_images/dog/"
            "1.png).")
    if loose:
        warnings.warn(
            f"{len(loose)} folders hold images beside class sub-folders "
            f"(first: '{loose[0]}'); those images are not used. Move them "
            "into a class sub-folder.", stacklevel=3)
    return paths, np.array(labels, dtype=np.int64), names


def _has_colour(image):
    if image.mode in _GRAY_MODES:
        return False
    if image.mode in ("P", "PA"):
        palette = np.array(image.getpalette() or [0, 0, 0]).reshape(-1, 3)
        return bool(np.any(palette != palette[:, :1]))
    return True


def _has_alpha(image):
    return image.mode in ("LA", "La", "RGBA", "RGBa", "PA") or (
        image.mode in ("P", "L", "RGB") and "transparency" in image.info)


def _pixels(image, channels):
    """One opened Pillow image as an array `[height, width, channels]`:
    `uint8`, or float32 in [0, 1] for 16-bit and floating-point images."""
    from PIL import Image

    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        # 16-bit (or wider) grayscale: Pillow's 8-bit conversion clips
        # rather than scales, so scale here.
        scale = 65535.0 if image.mode != "F" else 1.0
        gray = np.asarray(image, dtype=np.float32) / scale
        gray = np.clip(gray, 0.0, 1.0)[..., None]
        return np.repeat(gray, 3, axis=-1) if channels == 3 else gray
    if _has_alpha(image):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    array = np.asarray(image.convert("L" if channels == 1 else "RGB"))
    return array[..., None] if channels == 1 else array


def _inspect(path):
    """`(has_colour, mode)` of a file from its header, or the error."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return _has_colour(image), image.mode
    except Exception as error:  # Pillow raises many types; report any.
        return error, None


def _decode(path, channels):
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.seek(0)  # The first frame of animations.
            return _pixels(image, channels)
    except Exception as error:
        return error


def _workers():
    return min(32, (os.cpu_count() or 1) + 4)


def decode_file(path, channels):
    """One image file as float32 `[height, width, channels]` in [0, 1]
    (for streamed folders)."""
    pixels = _decode(path, channels)
    if isinstance(pixels, Exception):
        raise ValueError(f"Cannot read the image '{path}': {pixels}")
    if pixels.dtype == np.uint8:
        return pixels.astype(np.float32) / 255.0
    return pixels


def _check_channels(channels):
    if channels is None:
        return "auto"
    if channels not in CHANNELS:
        raise ValueError(
            f"`channels` must be 'auto', 1 or 3. Received: "
            f"channels={channels!r}. 'auto' decodes to 3 channels when any "
            "image has colour and to 1 otherwise.")
    return channels


def _report_unreadable(failures, on_error):
    if not failures:
        return
    listed = "; ".join(f"{path} ({type(error).__name__}: {error})"
                       for path, error in failures[:5])
    more = f" and {len(failures) - 5} more" if len(failures) > 5 else ""
    if on_error == "raise":
        raise ValueError(
            f"{len(failures)} files could not be read as images: {listed}"
            f"{more}. Remove or replace them, or pass on_error='skip' to "
            "leave them out with a warning.")
    warnings.warn(f"Skipped {len(failures)} unreadable image files: "
                  f"{listed}{more}.", stacklevel=4)


def _shows_colour(path):
    """Whether a file of a colour mode has pixels that are not grey (up to
    2/255, JPEG's chroma rounding), transparency composited over white."""
    pixels = _decode(path, 3)
    if isinstance(pixels, Exception):
        return False  # Reported when the file is read.
    pixels = pixels.astype(np.int16) if pixels.dtype == np.uint8 else (
        np.round(pixels * 255).astype(np.int16))
    return bool(np.abs(pixels[..., :1] - pixels[..., 1:]).max() > 2)


def _any_colour(paths):
    """Whether any of `paths` shows colour, decoding in parallel chunks and
    stopping at the first chunk that does."""
    with concurrent.futures.ThreadPoolExecutor(_workers()) as pool:
        for start in range(0, len(paths), 64):
            if any(pool.map(_shows_colour, paths[start:start + 64])):
                return True
    return False


def inspect_files(paths, channels="auto", on_error="raise"):
    """Resolves `channels` from the files: `"auto"` gives 3 when any image
    shows colour (judged by its pixels, not its mode: an RGB scan of a
    grey drawing is grey) and 1 otherwise.

    Returns:
        `(channels, readable, summary)`: 1 or 3; a bool array, the files
        that opened; and a dict counting the files by Pillow mode.
    """
    channels = _check_channels(channels)
    if on_error not in ON_ERROR:
        raise ValueError(
            f"`on_error` must be 'raise' or 'skip'. Received: "
            f"on_error={on_error!r}.")
    with concurrent.futures.ThreadPoolExecutor(_workers()) as pool:
        headers = list(pool.map(_inspect, paths))
    failures = [(path, colour) for path, (colour, mode)
                in zip(paths, headers) if mode is None]
    _report_unreadable(failures, on_error)
    readable = np.array([mode is not None for _, mode in headers], bool)
    modes = {}
    for _, mode in headers:
        if mode is not None:
            modes[mode] = modes.get(mode, 0) + 1
    if channels == "auto":
        candidates = [path for path, (colour, mode) in zip(paths, headers)
                      if mode is not None and colour is True]
        channels = 3 if _any_colour(candidates) else 1
    return channels, readable, modes


def read_images(paths, *, channels, image_size=None, on_error="raise",
                keep_uint8=True):
    """Decodes image files in parallel to arrays of one shape.

    Args:
        paths: File paths.
        channels: 1 or 3 (resolve `"auto"` with `inspect_files`).
        image_size: Optional `(height, width)`; images of another size are
            resized to it (TensorFlow's antialiased bilinear resize).
        on_error: `"raise"` or `"skip"` for files that fail to decode.
        keep_uint8: Whether 8-bit images that need no resizing stay
            `uint8` (exact; episodes divide by 255) when all images are.

    Returns:
        `(images, readable)`: an array `[num_read, height, width,
        channels]` (`uint8`, or float32 in [0, 1]) and a bool array
        marking the files read.
    """
    with concurrent.futures.ThreadPoolExecutor(_workers()) as pool:
        decoded = list(pool.map(lambda p: _decode(p, channels), paths))
    failures = [(path, pixels) for path, pixels in zip(paths, decoded)
                if isinstance(pixels, Exception)]
    _report_unreadable(failures, on_error)
    readable = np.array([not isinstance(p, Exception) for p in decoded])
    images = [p for p in decoded if not isinstance(p, Exception)]
    if not images:
        raise ValueError("None of the image files could be read.")
    kept = [path for path, ok in zip(paths, readable) if ok]
    if image_size is None:
        shapes = {image.shape[:2] for image in images}
        if len(shapes) > 1:
            first = images[0].shape[:2]
            odd = next(i for i, image in enumerate(images)
                       if image.shape[:2] != first)
            raise ValueError(
                f"Images have different sizes ({kept[0]}: {first}, "
                f"{kept[odd]}: {images[odd].shape[:2]}) and no "
                "`image_size` was given. Pass image_size=(height, width) "
                "to resize them all.")
    return _uniform(images, image_size, keep_uint8), readable


def _uniform(images, image_size, keep_uint8):
    """Stacks images, resizing those of another size in equal-size
    batches; float32 unless every image is 8-bit and kept as it is."""
    target = tuple(image_size) if image_size is not None else (
        images[0].shape[:2])
    untouched = all(image.dtype == np.uint8 and image.shape[:2] == target
                    for image in images)
    if untouched and keep_uint8:
        return np.stack(images)
    import tensorflow as tf

    result = np.empty((len(images),) + target + images[0].shape[2:],
                      np.float32)
    groups = {}
    for position, image in enumerate(images):
        groups.setdefault((image.shape, image.dtype.str), []).append(
            position)
    for (shape, _), positions in groups.items():
        for start in range(0, len(positions), 256):
            chunk = positions[start:start + 256]
            batch = tf.image.convert_image_dtype(
                np.stack([images[i] for i in chunk]), tf.float32)
            if shape[:2] != target:
                batch = tf.image.resize(batch, target, antialias=True)
            result[chunk] = batch.numpy()
    return result


# Words for Pillow's mode names in `describe`.
_MODE_WORDS = {"1": "bilevel", "L": "grayscale", "LA": "grayscale+alpha",
               "P": "palette", "PA": "palette+alpha", "RGB": "RGB",
               "RGBA": "RGBA", "CMYK": "CMYK", "YCbCr": "YCbCr",
               "I;16": "16-bit grayscale", "I": "32-bit grayscale",
               "F": "float grayscale"}


def describe(num_files, num_classes, modes, channels, image_size,
             skipped=0):
    """A sentence saying what a folder's loading did."""
    listing = ", ".join(
        f"{count} {_MODE_WORDS.get(mode, mode)}" for mode, count in sorted(
            modes.items(), key=lambda item: -item[1]))
    size = (f"resized to {image_size[0]}x{image_size[1]}" if image_size
            else "at their stored size")
    text = (f"Read {num_files} images of {num_classes} classes ({listing}) "
            f"as {channels}-channel "
            f"{'RGB' if channels == 3 else 'grayscale'}, {size}")
    if any(mode in modes for mode in ("LA", "La", "RGBA", "RGBa", "PA")):
        text += "; transparency composited over white"
    if skipped:
        text += f"; skipped {skipped} unreadable files"
    return text + "."


def _preparation(preprocessing, image_size, channels):
    if preprocessing is not None:
        if preprocessing.get("kind") != "image":
            raise ValueError(
                "The learner's `preprocessing` does not describe images "
                f"({preprocessing!r}); pass image_size= and channels=.")
        image_size = tuple(preprocessing["image_size"])
        channels = preprocessing["channels"]
    if image_size is None or channels not in (1, 3):
        raise ValueError(
            "Pass the learner's `preprocessing` (a learner trained by "
            "`keras-meta train` on images carries it), or image_size="
            "(height, width) and channels=1 or 3.")
    return tuple(image_size), channels


def _as_float(images):
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 255.0
    return images.astype(np.float32)


def load_support(directory, *, preprocessing=None, image_size=None,
                 channels=None):
    """A support set from a folder with one sub-folder per class.

    Args:
        directory: Folder of class sub-folders, one or more images each.
        preprocessing: A learner's `preprocessing` dict (image size and
            channels), or `None` to pass them here.
        image_size: `(height, width)`, when `preprocessing` is `None`.
        channels: 1 or 3, when `preprocessing` is `None`.

    Returns:
        `(images, labels, class_names)`: float32 `[num_images, height,
        width, channels]` in [0, 1], int32 labels `0..num_classes - 1`,
        and the sub-folder names in label order. Pass the first two to
        `learner.adapt()`.
    """
    image_size, channels = _preparation(preprocessing, image_size, channels)
    paths, labels, names = scan(directory)
    if len(names) < 2:
        raise ValueError(
            f"The support folder '{directory}' has {len(names)} class "
            "sub-folder; a prediction chooses among at least 2 classes. "
            "Add a sub-folder of example images per class.")
    images, _ = read_images(paths, channels=channels, image_size=image_size)
    return _as_float(images), labels.astype(np.int32), names


def load_images(paths, *, preprocessing=None, image_size=None,
                channels=None):
    """Images to predict, prepared as a learner was trained.

    Args:
        paths: Image files, or folders whose images (searched recursively,
            in sorted order) are taken.
        preprocessing, image_size, channels: As for `load_support`.

    Returns:
        `(images, files)`: float32 `[num_images, height, width, channels]`
        and the file of each.
    """
    image_size, channels = _preparation(preprocessing, image_size, channels)
    files = []
    for path in paths:
        if os.path.isdir(path):
            for root, dirs, names in sorted(os.walk(path)):
                dirs.sort()
                files += [os.path.join(root, name) for name in sorted(names)
                          if name.lower().endswith(IMAGE_EXTENSIONS)]
        elif os.path.isfile(path):
            files.append(path)
        else:
            raise ValueError(f"'{path}' is neither an image file nor a "
                             "folder.")
    if not files:
        raise ValueError(f"No images ({', '.join(IMAGE_EXTENSIONS)}) in "
                         f"{list(paths)}.")
    images, _ = read_images(files, channels=channels, image_size=image_size)
    return _as_float(images), files
