"""TensorFlow's stateless random numbers for many seeds at once.

`tf.random.stateless_uniform` and `tf.random.experimental.stateless_split`
take one seed per call, so a pipeline that draws each task from a seed of
its own runs a few dozen small ops per task. The functions here compute the
same numbers, bit for bit, for a whole vector of seeds in one set of ops:
they implement the Philox-4x32-10 counter-based generator (Salmon et al.,
2011, "Parallel random numbers: as easy as 1, 2, 3") with TensorFlow's seed
scrambling and its conversion of 32 random bits to a float in [0, 1), as
TensorFlow's CPU kernels use them. `tests/data/philox_test.py` checks them
against TensorFlow's own ops.
"""

import tensorflow as tf

# Philox-4x32 multipliers and Weyl key increments (Salmon et al., 2011).
_MULTIPLIERS = (0xD2511F53, 0xCD9E8D57)
_KEY_INCREMENTS = (0x9E3779B9, 0xBB67AE85)
_ROUNDS = 10
# The fixed key with which TensorFlow scrambles a seed pair into a key and
# a counter (`StatelessRandomGetKeyCounter` on CPU).
_SCRAMBLE_KEY = (0x3EC8F720, 0x02461E29)


def _mul_high_low(value, multiplier):
    product = tf.cast(value, tf.uint64) * tf.constant(multiplier, tf.uint64)
    high = tf.bitwise.right_shift(product, tf.constant(32, tf.uint64))
    return tf.cast(high, tf.uint32), tf.cast(product, tf.uint32)


def _block(counter, key):
    """One Philox-4x32-10 block: four uint32 words from four counter words
    and two key words (each a uint32 tensor; all broadcast together)."""
    c0, c1, c2, c3 = counter
    k0, k1 = key
    for _ in range(_ROUNDS):
        high0, low0 = _mul_high_low(c0, _MULTIPLIERS[0])
        high1, low1 = _mul_high_low(c2, _MULTIPLIERS[1])
        c0, c1, c2, c3 = (high1 ^ c1 ^ k0, low1, high0 ^ c3 ^ k1, low0)
        k0 = k0 + tf.constant(_KEY_INCREMENTS[0], tf.uint32)
        k1 = k1 + tf.constant(_KEY_INCREMENTS[1], tf.uint32)
    return c0, c1, c2, c3


def _words(value):
    """An int64 tensor's two's-complement bits as (low, high) uint32."""
    bits = tf.bitcast(tf.cast(value, tf.int64), tf.uint64)
    high = tf.bitwise.right_shift(bits, tf.constant(32, tf.uint64))
    return tf.cast(bits, tf.uint32), tf.cast(high, tf.uint32)


def _int64(low, high):
    bits = tf.bitwise.bitwise_or(
        tf.cast(low, tf.uint64),
        tf.bitwise.left_shift(tf.cast(high, tf.uint64),
                              tf.constant(32, tf.uint64)))
    return tf.bitcast(bits, tf.int64)


def _key_counter(seeds):
    """TensorFlow's scrambling of seed pairs `[..., 2]` into Philox keys and
    counters."""
    low0, high0 = _words(seeds[..., 0])
    low1, high1 = _words(seeds[..., 1])
    zero = tf.zeros_like(low0)
    mixed = _block((low0, high0, low1, high1),
                   (zero + _SCRAMBLE_KEY[0], zero + _SCRAMBLE_KEY[1]))
    return (mixed[0], mixed[1]), (zero, zero, mixed[2], mixed[3])


def _blocks(seeds, num_blocks):
    """The first `num_blocks` Philox blocks of each seed: four uint32
    tensors of shape `seeds.shape[:-1] + [num_blocks]`."""
    key, counter = _key_counter(seeds)
    key = tuple(word[..., None] for word in key)
    # The counter's lowest word counts blocks: it starts at 0, so no carry.
    steps = tf.cast(tf.range(num_blocks), tf.uint32)
    counter = (counter[0][..., None] + steps,) + tuple(
        word[..., None] for word in counter[1:])
    return _block(counter, key)


def split(seeds, num):
    """`tf.random.experimental.stateless_split(seed, num)` for each seed
    pair of the int64 tensor `seeds`, shape `[..., 2]`: `[..., num, 2]`."""
    words = _blocks(seeds, num)
    # Each block gives two int64 values: one new seed pair.
    return tf.stack([_int64(words[0], words[1]),
                     _int64(words[2], words[3])], axis=-1)


def bits(seeds, num):
    """The first `num` random uint32 words of each seed pair of the int64
    tensor `seeds`, shape `[..., 2]`: `[..., num]`, in the order TensorFlow's
    stateless ops consume them."""
    num_blocks = -(-num // 4)
    words = tf.stack(_blocks(seeds, num_blocks), axis=-1)
    return tf.reshape(words, tf.concat(
        [tf.shape(words)[:-2], [4 * num_blocks]], 0))[..., :num]


def to_uniform(words, low, high):
    """uint32 words as `tf.random.stateless_uniform` turns them into
    float32 values in `[low, high)`."""
    # 23 random mantissa bits under the exponent of 1.0: [1, 2), less 1.
    mantissa = tf.bitwise.bitwise_or(
        tf.bitwise.bitwise_and(words, tf.constant(0x7FFFFF, tf.uint32)),
        tf.constant(0x3F800000, tf.uint32))
    unit = tf.bitcast(mantissa, tf.float32) - 1.0
    low = tf.constant(low, tf.float32)
    high = tf.constant(high, tf.float32)
    return unit * (high - low) + low


def uniform(seeds, num, low, high):
    """`tf.random.stateless_uniform([num], seed, low, high)` (float32) for
    each seed pair of the int64 tensor `seeds`, shape `[..., 2]`:
    `[..., num]`."""
    return to_uniform(bits(seeds, num), low, high)
