"""Published class splits of the standard few-shot benchmarks, as data.

Each split is stored the way its source defines it (class names, label
indices or a rule), with the source cited beside it.
"""

# CIFAR-100 fine and coarse class names in the data set's own label order
# (alphabetical), as in TFDS `cifar100` `label` and `coarse_label`.
CIFAR100_CLASSES = (
    "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl "
    "boy bridge bus butterfly camel can castle caterpillar cattle chair "
    "chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur "
    "dolphin elephant flatfish forest fox girl hamster house kangaroo "
    "keyboard lamp lawn_mower leopard lion lizard lobster man maple_tree "
    "motorcycle mountain mouse mushroom oak_tree orange orchid otter "
    "palm_tree pear pickup_truck pine_tree plain plate poppy porcupine possum "
    "rabbit raccoon ray road rocket rose sea seal shark shrew skunk "
    "skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper "
    "table tank telephone television tiger tractor train trout tulip turtle "
    "wardrobe whale willow_tree wolf woman worm"
).split()
CIFAR100_SUPERCLASSES = (
    "aquatic_mammals fish flowers food_containers fruit_and_vegetables "
    "household_electrical_devices household_furniture insects "
    "large_carnivores large_man-made_outdoor_things "
    "large_natural_outdoor_scenes large_omnivores_and_herbivores "
    "medium_mammals non-insect_invertebrates people reptiles small_mammals "
    "trees vehicles_1 vehicles_2"
).split()

# CIFAR-FS: Bertinetto et al., "Meta-learning with differentiable closed-form
# solvers", ICLR 2019. 64 / 16 / 20 classes; training is the rest.
CIFAR_FS_VALIDATION = (
    "otter motorcycle television lamp crocodile shark butterfly beaver beetle "
    "tractor flatfish maple_tree camel crab sea cattle"
).split()
CIFAR_FS_TEST = (
    "baby bed bicycle chimpanzee fox leopard man pickup_truck plain poppy "
    "rocket rose snail sweet_pepper table telephone wardrobe whale woman worm"
).split()

# FC100: Oreshkin et al., "TADAM: Task dependent adaptive metric for improved
# few-shot learning", NeurIPS 2018. Split by CIFAR-100 superclass index:
# 12 / 4 / 4 superclasses (60 / 20 / 20 classes).
FC100_SUPERCLASSES = {
    "train": (1, 2, 3, 4, 5, 6, 9, 10, 15, 17, 18, 19),
    "validation": (8, 11, 13, 16),
    "test": (0, 7, 12, 14),
}

# CUB-200-2011 as split by Chen et al., "A Closer Look at Few-shot
# Classification", ICLR 2019: with classes indexed 0..199 in their official
# order (TFDS `caltech_birds2011` labels), training takes even indices,
# validation indices 1 mod 4, test indices 3 mod 4 (100 / 50 / 50).


def cub_split(label):
    if label % 2 == 0:
        return "train"
    return "validation" if label % 4 == 1 else "test"


# VGG Flower (Oxford Flowers 102) as split by Triantafillou et al.,
# "Meta-Dataset", ICLR 2020: official class ids 1..102 (TFDS
# `oxford_flowers102` label + 1); 71 / 15 / 16 classes, training is the rest.
VGG_FLOWER_VALIDATION = (10, 16, 17, 23, 26, 47, 53, 56, 57, 62, 82, 83, 86,
                         97, 102)
VGG_FLOWER_TEST = (5, 9, 15, 19, 35, 40, 41, 42, 45, 46, 65, 85, 89, 94, 96,
                   98)

# mini-ImageNet: Ravi and Larochelle, "Optimization as a model for few-shot
# learning", ICLR 2017. ImageNet synsets, 64 / 16 / 20.
MINI_IMAGENET = {
    "train": (
        "n01532829 n01558993 n01704323 n01749939 n01770081 n01843383 "
        "n01910747 n02074367 n02089867 n02091831 n02101006 n02105505 "
        "n02108089 n02108551 n02108915 n02111277 n02113712 n02120079 "
        "n02165456 n02457408 n02606052 n02687172 n02747177 n02795169 "
        "n02823428 n02966193 n03017168 n03047690 n03062245 n03207743 "
        "n03220513 n03337140 n03347037 n03400231 n03476684 n03527444 "
        "n03676483 n03838899 n03854065 n03888605 n03908618 n03924679 "
        "n03998194 n04067472 n04243546 n04251144 n04258138 n04275548 "
        "n04296562 n04389033 n04435653 n04443257 n04509417 n04515003 "
        "n04596742 n04604644 n04612504 n06794110 n07584110 n07697537 "
        "n07747607 n09246464 n13054560 n13133613"
    ).split(),
    "validation": (
        "n01855672 n02091244 n02114548 n02138441 n02174001 n02950826 "
        "n02971356 n02981792 n03075370 n03417042 n03535780 n03584254 "
        "n03770439 n03773504 n03980874 n09256479"
    ).split(),
    "test": (
        "n01930112 n01981276 n02099601 n02110063 n02110341 n02116738 "
        "n02129165 n02219486 n02443484 n02871525 n03127925 n03146219 "
        "n03272010 n03544143 n03775546 n04146614 n04149813 n04418357 "
        "n04522168 n07613480"
    ).split(),
}

# Omniglot (Lake et al., 2015): the 30 background and 20 evaluation alphabets.
OMNIGLOT_BACKGROUND = (
    "Alphabet_of_the_Magi Anglo-Saxon_Futhorc Arcadian Armenian "
    "Asomtavruli_(Georgian) Balinese Bengali "
    "Blackfoot_(Canadian_Aboriginal_Syllabics) Braille Burmese_(Myanmar) "
    "Cyrillic Early_Aramaic Futurama Grantha Greek Gujarati Hebrew "
    "Inuktitut_(Canadian_Aboriginal_Syllabics) Japanese_(hiragana) "
    "Japanese_(katakana) Korean Latin Malay_(Jawi_-_Arabic) "
    "Mkhedruli_(Georgian) N_Ko Ojibwe_(Canadian_Aboriginal_Syllabics) "
    "Sanskrit Syriac_(Estrangelo) Tagalog Tifinagh"
).split()
OMNIGLOT_EVALUATION = (
    "Angelic Atemayar_Qelisayer Atlantean Aurek-Besh Avesta Ge_ez Glagolitic "
    "Gurmukhi Kannada Keble Malayalam Manipuri Mongolian "
    "Old_Church_Slavonic_(Cyrillic) Oriya Sylheti Syriac_(Serto) Tengwar "
    "Tibetan ULOG"
).split()

# The Omniglot split of Vinyals et al., "Matching networks for one shot
# learning", NeurIPS 2016, as published with Snell et al.'s Prototypical
# Networks (1028 / 172 / 423 characters): validation is five background
# alphabets; test is twelve evaluation alphabets and Gurmukhi characters
# 42-45; training is every other character.
OMNIGLOT_VINYALS_VALIDATION = (
    "Armenian", "Bengali", "Early_Aramaic", "Hebrew", "Mkhedruli_(Georgian)",
)
OMNIGLOT_VINYALS_TEST = (
    "Kannada", "Keble", "Malayalam", "Manipuri", "Mongolian",
    "Old_Church_Slavonic_(Cyrillic)", "Oriya", "Sylheti", "Syriac_(Serto)",
    "Tengwar", "Tibetan", "ULOG",
)


def omniglot_vinyals_split(alphabet, character):
    """The Vinyals split of one character (`character` counts from 1)."""
    if alphabet in OMNIGLOT_VINYALS_TEST or (
        alphabet == "Gurmukhi" and character >= 42
    ):
        return "test"
    if alphabet in OMNIGLOT_VINYALS_VALIDATION:
        return "validation"
    return "train"
