"""What grounding knows, as data: ImageNet classes grouped into concepts and into COCO's object
classes, the captions it may write, and the words it bans.

A concept's probability is the sum of the ImageNet softmax probabilities of its classes (the
encoder computes the logits anyway). Each concept has a caption noun, a kind (animal, food, drink,
vehicle, room, object, street, scenery, screen), hashtag seeds best first, and the captions
written when it is the photo's grounded subject, best first: grounding writes the first whose
every named object the photo supports (none: never captioned from this concept). Every ImageNet
class belongs to at most one concept and at most one object class; ``membership()`` checks it.

The rules that use this data are in ``photobatch.models.grounding``; models/GROUNDING.md says how
the lists were chosen and measured.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from photobatch.core.objects import OBJECT_WORDS, object_words
from photobatch.core.text import word_list


def _span(first: int, last: int) -> list[int]:
    """ImageNet class indices ``first`` to ``last``, both included."""
    return list(range(first, last + 1))


@dataclass(frozen=True)
class Concept:
    name: str
    noun: str
    kind: str
    indices: tuple[int, ...]
    tags: tuple[str, ...]
    captions: tuple[str, ...]


def _concept(
    name: str, noun: str, kind: str, indices: list[int], tags: str, *captions: str
) -> Concept:
    return Concept(name, noun, kind, tuple(indices), tuple(tags.split()), captions)


FIELD = "standing in a grassy field."
KITCHEN = (
    "A kitchen with a stove and a refrigerator.",
    "A kitchen with a stove and a sink.",
    "A kitchen with a stove.",
    "A kitchen with a sink.",
    "A kitchen with a refrigerator.",
    "A view of a kitchen.",
)
# fmt: off
CONCEPTS: tuple[Concept, ...] = (
    # animals (dog: never captioned from ImageNet alone, the dog head decides)
    _concept("dog", "dog", "animal", _span(151, 268), "dog dogsofinstagram puppy pet"),
    _concept("cat", "cat", "animal", _span(281, 285), "cat catsofinstagram kitty pet",
             "A cat laying on top of a bed.", "A cat sitting on a couch.",
             "A close up of a cat."),
    _concept("bird", "bird", "animal", _span(7, 24) + _span(80, 100) + _span(127, 146),
             "bird animal nature", "A bird perched on a tree branch."),
    _concept("wild_cat", "wildcat", "animal", _span(286, 293), "animal wildlife nature",
             f"A wild animal {FIELD}"),
    _concept("bear", "bear", "animal", _span(294, 297), "bear animal wildlife", f"A bear {FIELD}"),
    _concept("elephant", "elephant", "animal", [101, 385, 386], "elephant animal wildlife",
             f"An elephant {FIELD}"),
    _concept("horse", "horse", "animal", [339, 603], "horse animal", f"A horse {FIELD}"),
    _concept("zebra", "zebra", "animal", [340], "zebra animal wildlife", f"A zebra {FIELD}"),
    _concept("cattle", "cow", "animal", [345, 346, 347], "cow animal farm", f"A cow {FIELD}"),
    _concept("sheep", "sheep", "animal", [348, 349, 350], "sheep animal farm", f"A sheep {FIELD}"),
    _concept("canid", "wolf", "animal", _span(269, 280), "wolf animal wildlife", f"A wolf {FIELD}"),
    _concept("wild_animal", "animal", "animal",
             _span(298, 299) + _span(330, 338) + _span(341, 344) + _span(351, 384)
             + [102, 103, 104, 105, 106, 387, 388],
             "animal wildlife nature", f"An animal {FIELD}"),
    _concept("reptile", "reptile", "animal", _span(25, 68), "animal nature",
             "A reptile on the ground."),
    _concept("fish", "fish", "animal", _span(0, 6) + _span(389, 397) + _span(147, 150),
             "fish sea underwater", "A fish swimming in the water."),
    _concept("insect", "insect", "animal", _span(300, 326) + _span(69, 79), "insect macro nature",
             "A close up of an insect on a plant."),
    _concept("sea_life", "sea creature", "animal", _span(107, 126) + _span(327, 329),
             "sea underwater", "A sea creature in the water."),
    # food and drink
    _concept("pizza", "pizza", "food", [963], "pizza food dinner",
             "A pizza sitting on top of a plate."),
    _concept("burger", "burger", "food", [933], "burger food lunch",
             "A burger and fries on a plate."),
    _concept("hot_dog", "hot dog", "food", [934], "hotdog food lunch",
             "A hot dog on a bun on a plate."),
    _concept("sandwich", "sandwich", "food", [965], "burrito food lunch",
             "A sandwich on a plate on a table."),
    _concept("bread", "bread", "food", [930, 931, 932, 961, 415], "bread food breakfast",
             "A plate of bread on a table."),
    _concept("dessert", "dessert", "food", [927, 928, 929, 960, 969], "dessert food sweet",
             "A plate with a dessert on a table."),
    _concept("fruit", "fruit", "food", _span(948, 957), "fruit food healthy",
             "A bunch of fruit sitting on a table."),
    _concept("vegetables", "vegetables", "food", [*_span(936, 947), 987],
             "vegetables food healthy", "A plate of food with vegetables."),
    _concept("dish", "food", "food", [924, 925, 926, 935, 959, 962, 964, 923, 809, 567, 909, 544],
             "food dinner foodporn", "A plate of food on a table."),
    _concept("coffee", "coffee", "drink", [967, 968, 504, 505, 550], "coffee cafe morning",
             "A cup of coffee on a table."),
    _concept("wine", "wine", "drink", [966, 907, 572], "wine drink dinner",
             "A glass of wine on a table."),
    _concept("beer", "beer", "drink", [440, 441], "beer drink bar", "A glass of beer on a table."),
    # vehicles
    _concept("car", "car", "vehicle",
             [407, 436, 468, 511, 609, 627, 656, 661, 717, 751, 817, 479, 475, 581, 573, 757,
              734, 408],
             "car road street", "A car parked on the side of a street."),
    _concept("bus", "bus", "vehicle", [779, 654, 874], "bus city street",
             "A bus driving down a city street."),
    _concept("truck", "truck", "vehicle", [555, 569, 675, 864, 867, 586, 595, 866],
             "truck car road", "A truck parked on the side of a road."),
    _concept("train", "train", "vehicle", [466, 547, 565, 705, 820, 829], "train travel city",
             "A train traveling down the train tracks."),
    _concept("motorcycle", "motorcycle", "vehicle", [665, 670], "motorcycle bike road",
             "A motorcycle parked on the side of a street."),
    _concept("bicycle", "bicycle", "vehicle", [444, 671, 870, 880], "bike bicycle street",
             "A bicycle parked on the side of a street."),
    _concept("boat", "boat", "vehicle",
             [403, 472, 484, 510, 554, 576, 625, 628, 724, 780, 814, 833, 871, 914, 693, 694],
             "boat sea water", "A boat in the water next to a dock."),
    _concept("airplane", "airplane", "vehicle", [404, 895, 908, 405], "airplane travel sky",
             "An airplane parked at an airport."),
    # rooms and indoor things
    _concept("bed", "bed", "room", [564, 431, 520, 721, 750, 516], "bedroom home bed",
             "A bedroom with a bed and a window.", "A view of a bedroom."),
    _concept("couch", "couch", "room", [831, 548, 598], "livingroom home interior",
             "A living room with a couch and a table.", "A view of a living room."),
    _concept("table", "table", "room", [532, 526, 765, 559, 423], "home interior",
             "A table and chairs in a room.", "A table in a room."),
    _concept("kitchen", "kitchen", "room",
             [760, 651, 827, 534, 859, 766, 891, 729, 618, 659, 813, 910],
             "kitchen home cooking", *KITCHEN),
    _concept("bathroom", "bathroom", "room", [861, 896, 435, 794, 804, 999, 876], "bathroom home",
             "A bathroom with a toilet and a sink.", "A bathroom with a toilet.",
             "A bathroom with a sink.", "A view of a bathroom."),
    _concept("books", "books", "room", [453, 454, 624, 921], "books library reading",
             "A room with shelves full of books.", "A room with shelves."),
    _concept("computer", "computer", "object",
             [620, 681, 527, 508, 673, 664, 782, 590, 713, 742], "computer work office",
             "A laptop computer sitting on top of a desk.", "A keyboard and a mouse on a desk.",
             "A desk with a computer keyboard.", "A view of a desk."),
    _concept("television", "television", "room", [851], "tv home",
             "A living room with a television.", "A view of a living room."),
    _concept("phone", "phone", "object", [487, 528, 707], "phone iphone",
             "A cell phone sitting on a table."),
    _concept("clock", "clock", "object", [409, 530, 892, 604], "clock time",
             "A clock on the side of a building."),
    _concept("vase", "vase", "object", [883, 738], "flower home decor",
             "A vase with flowers on a table."),
    _concept("teddy", "teddy bear", "object", [850], "teddybear toy cute",
             "A teddy bear sitting on a table."),
    _concept("umbrella", "umbrella", "object", [879], "umbrella rain", "An umbrella in the rain."),
    # sport and outdoor objects
    _concept("ball_sport", "ball", "object", [429, 430, 522, 574, 768, 805, 852, 890, 722, 746],
             "sport game", "A close up of a ball."),
    _concept("racket", "tennis racket", "object", [752], "tennis sport",
             "A close up of a tennis racket."),
    _concept("ski", "skis", "object", [795, 802], "ski snow winter", "A close up of skis.",
             "A view of a snowy slope."),
    _concept("street_sign", "street sign", "street", [919, 920, 704, 571, 637], "street city sign",
             "A street sign on the side of a road."),
    _concept("building", "building", "street",
             [497, 442, 483, 498, 538, 663, 668, 698, 437, 425, 580, 858, 853, 500, 832, 873,
              900, 727],
             "architecture building city", "A large building in a city."),
    _concept("bridge", "bridge", "street", [821, 839, 888, 718, 460, 525], "bridge city water",
             "A bridge over a body of water."),
    _concept("bench", "bench", "street", [703, 706], "park outdoor", "A park bench in a park."),
    # scenery
    _concept("mountain", "mountain", "scenery", [970, 979, 980, 972], "mountain landscape nature",
             "A view of a mountain under a blue sky."),
    _concept("beach", "beach", "scenery", [978, 977, 976, 975], "beach sea ocean",
             "A sandy beach next to the ocean."),
    _concept("reef", "coral reef", "scenery", [973, 983], "sea underwater ocean",
             "A coral reef under the water."),
    _concept("flower", "flower", "scenery", [984, 985, 986, 989], "flower nature garden",
             "A close up of a flower."),
    _concept("mushroom", "mushroom", "scenery", _span(991, 997), "nature forest",
             "A mushroom on the ground in a forest."),
    # screens and documents (web site, crossword, envelope, menu...): no caption at all
    _concept("screen", "screen", "screen", [916, 918, 917, 549, 922, 446, 878], "screenshot"),
)
# fmt: on

# The captions of each of the scene head's 25 classes (broad/scenes labels), best first, and the
# concept kinds a scene can show: a scene caption is written only when the photo's objects agree
# (no "art gallery" for a pastry, whose likeliest concept is food).
SCENE_CAPTIONS: dict[str, tuple[str, ...]] = {
    "airport": ("An airplane at an airport terminal.", "A view of an airport."),
    "art gallery": ("A room in an art gallery with paintings on the walls.",),
    "auditorium": ("An auditorium with rows of seats.", "A view of an auditorium."),
    "bamboo forest": ("A forest of tall bamboo trees.",),
    "baseball field": ("A view of a baseball field.",),
    "bedroom": ("A bedroom with a bed and a window.", "A view of a bedroom."),
    "campus": ("A building on a college campus.",),
    "computer room": ("A room with computers on desks.", "A room with desks."),
    "desert": ("A view of the sand dunes in a desert.",),
    "football field": ("A view of a football field.",),
    "football stadium": ("A view of a football stadium.",),
    "garden": ("A garden with flowers and trees.",),
    "highway": ("A highway with cars driving down the road.", "A view of a highway."),
    "ice skating": ("An ice skating rink.",),
    "kitchen": KITCHEN,
    "landscape": ("A view of a green field under a blue sky.",),
    "laundromat": ("A laundromat with washing machines.",),
    "library": ("A library with shelves full of books.", "A view of a library."),
    "mountain": ("A view of a mountain under a blue sky.",),
    "ocean": ("A view of the ocean with waves.",),
    "rainforest": ("A path through a green forest.",),
    "sky": ("A view of the sky with clouds.",),
    "tennis court": ("A view of a tennis court.",),
    "waterfall": ("A waterfall in a forest.",),
    "windmill": ("A windmill in a field.",),
}
_INDOORS = frozenset({"room", "object", "street"})  # "street" holds buildings, theatres
SCENE_KINDS: dict[str, frozenset[str]] = {
    scene: _INDOORS | {"food", "drink"} if scene == "kitchen" else _INDOORS
    for scene in ("art gallery", "auditorium", "bedroom", "computer room", "kitchen",
                  "laundromat", "library")
} | {
    scene: frozenset({"scenery", "animal", "street", "vehicle", "object"})
    for scene in ("airport", "bamboo forest", "baseball field", "campus", "desert",
                  "football field", "football stadium", "garden", "highway", "ice skating",
                  "landscape", "mountain", "ocean", "rainforest", "sky", "tennis court",
                  "waterfall", "windmill")
}  # fmt: skip

# What counts as naming a person or a dog in a caption: the word lists of the shared dev-check,
# used for the heads' training labels and the hallucination rate of `evaluate captioner`.
PERSON_NOUNS = word_list(
    """man men woman women boy boys girl girls person people child children kid kids baby babies
    toddler guy guys lady ladies player players crowd skier skiers surfer surfers skateboarder
    biker bikers rider riders climber hiker couple family team"""
)
DOG_NOUNS = word_list("dog dogs puppy puppies")

# Words the captioner may not write when the evidence does not support a person (the nouns above,
# every word of ``core.objects`` for a person, pronouns) or a dog.
PERSON_BAN = (
    PERSON_NOUNS
    | object_words("person")
    | word_list("he she his her him they their someone friends spectators runners wrestlers")
)
DOG_BAN = DOG_NOUNS | object_words("dog")
# Hashtags that name an animal beyond its own name (person tags: PERSON_BAN and
# hashtags.PERSON_WORDS): dropped with the animal when the photo does not support it. A pet tag
# needs a dog or a cat.
ANIMAL_TAGS: dict[str, frozenset[str]] = {
    "dog": word_list(
        """dog dogs puppy dogsofinstagram dogstagram instadog dogoftheday doggy puppylove
        doglover ilovemydog pup"""
    ),
    "cat": word_list("catsofinstagram catstagram instacat kitty"),
}
PET_TAGS = word_list("pet pets petstagram petsofinstagram")
DOG_TAGS = ANIMAL_TAGS["dog"]

# ImageNet classes that show one of COCO's objects: the ImageNet half of an object's evidence.
# Classes without a counterpart (person, giraffe, skateboard, surfboard...) rely on the heads.
OBJECT_IMAGENET: dict[str, tuple[int, ...]] = {
    name: tuple(indices)
    for name, indices in {
        "bicycle": [444, 671, 870, 880],
        "car": [407, 436, 468, 511, 609, 627, 656, 661, 751, 817, 479, 475, 581, 573, 757, 734,
                408],
        "motorcycle": [665, 670],
        "airplane": [404, 895, 908],
        "bus": [779, 654, 874],
        "train": [466, 547, 565, 705, 820, 829],
        "truck": [555, 569, 675, 717, 864, 867, 586],
        "boat": [403, 472, 484, 510, 554, 576, 625, 628, 724, 780, 814, 833, 871, 914, 693, 694],
        "traffic light": [920],
        "parking meter": [704],
        "bench": [703],
        "bird": _span(7, 24) + _span(80, 100) + _span(127, 146),
        "cat": _span(281, 285),
        "dog": _span(151, 268),
        "horse": [339, 603],
        "sheep": [348, 349],
        "cow": [345, 346, 347],
        "elephant": [101, 385, 386],
        "bear": [*_span(294, 297), 388],
        "zebra": [340],
        "backpack": [414],
        "umbrella": [879],
        "handbag": [748, 893, 636],
        "tie": [906, 457],
        "skis": [795],
        "sports ball": [429, 430, 522, 574, 768, 805, 852, 890, 722],
        "tennis racket": [752],
        "bottle": [440, 720, 737, 898, 907, 901],
        "wine glass": [572, 966],
        "cup": [968, 504, 967],
        "spoon": [910],
        "bowl": [659, 809],
        "banana": [954],
        "apple": [948],
        "sandwich": [933],
        "orange": [950],
        "broccoli": [937],
        "hot dog": [934],
        "pizza": [963],
        "donut": [931],
        "cake": [927],
        "chair": [423, 559, 765, 857],
        "couch": [831],
        "potted plant": [738],
        "bed": [564, 520, 431],
        "toilet": [861],
        "tv": [851, 664, 782],
        "laptop": [620, 681, 527],
        "mouse": [673],
        "remote": [761],
        "keyboard": [508],
        "cell phone": [487, 528, 707],
        "microwave": [651],
        "oven": [827],
        "toaster": [859],
        "sink": [896],
        "refrigerator": [760],
        "book": [921, 453],
        "clock": [409, 530, 892],
        "vase": [883],
        "teddy bear": [850],
        "hair drier": [589],
    }.items()
}  # fmt: skip
# The object classes with a head of their own in grounding.npz: every class but the person and
# the dog, which have the older heads (and ImageNet vetoes) of their own.
HEAD_OBJECTS = tuple(name for name in OBJECT_WORDS if name not in ("person", "dog"))

# Concepts that imply a person nearby (a rider, a player): they never veto the person head.
PERSON_OBJECTS = frozenset({"ball_sport", "racket", "ski", "bicycle", "motorcycle"})
# Animals ImageNet often sees in a dog photo: they never veto the dog head.
DOG_LOOKALIKES = frozenset({"dog", "canid"})
# Concepts that mean a screenshot or a document.
SCREEN = "screen"

NAMES = tuple(c.name for c in CONCEPTS)


def membership() -> np.ndarray:
    """``(1000, len(CONCEPTS))`` 0/1 matrix: concept probabilities = softmax(logits) @ it."""
    return _membership([c.indices for c in CONCEPTS], "concepts")


def object_membership(names: tuple[str, ...] = HEAD_OBJECTS) -> np.ndarray:
    """``(1000, len(names))`` 0/1 matrix: each object's ImageNet probability = softmax @ it."""
    return _membership([OBJECT_IMAGENET.get(n, ()) for n in names], "object classes")


def _membership(groups: list[tuple[int, ...]], what: str) -> np.ndarray:
    matrix = np.zeros((1000, len(groups)), np.float32)
    for j, indices in enumerate(groups):
        for i in indices:
            if matrix[i].any():
                raise ValueError(f"ImageNet class {i} is in two {what}")
            matrix[i, j] = 1.0
    return matrix
