"""What grounding knows, as data: ImageNet classes grouped into concepts, and the words it bans.

A concept's probability is the sum of the ImageNet softmax probabilities of its classes (the
encoder computes the logits anyway). Each concept has a caption noun, a kind (animal, food, drink,
vehicle, room, object, street, scenery, screen), hashtag seeds best first, and the caption written
when it is the photo's grounded subject (``None``: never captioned from this concept). Every
ImageNet class belongs to at most one concept; ``membership()`` checks it.

The rules that use this data are in ``photobatch.models.grounding``; models/GROUNDING.md says how
the lists were chosen and measured.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
    caption: str | None


def _concept(name: str, noun: str, kind: str, indices: list[int], tags: str, caption: str | None):
    return Concept(name, noun, kind, tuple(indices), tuple(tags.split()), caption)


FIELD = "standing in a grassy field."
# fmt: off
CONCEPTS: tuple[Concept, ...] = (
    # animals (dog: never captioned from ImageNet alone, the dog head decides)
    _concept("dog", "dog", "animal", _span(151, 268), "dog dogsofinstagram puppy pet", None),
    _concept("cat", "cat", "animal", _span(281, 285), "cat catsofinstagram kitty pet",
             "A cat sitting on top of a bed."),
    _concept("bird", "bird", "animal", _span(7, 24) + _span(80, 100) + _span(127, 146),
             "bird animal nature", "A bird perched on a tree branch."),
    _concept("wild_cat", "big cat", "animal", _span(286, 293), "animal wildlife nature",
             f"A big cat {FIELD}"),
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
             "A bedroom with a bed and a window."),
    _concept("couch", "couch", "room", [831, 548, 598], "livingroom home interior",
             "A living room with a couch and a table."),
    _concept("table", "table", "room", [532, 526, 765, 559, 423], "home interior",
             "A table and chairs in a room."),
    _concept("kitchen", "kitchen", "room",
             [760, 651, 827, 534, 859, 766, 891, 729, 618, 659, 813, 910],
             "kitchen home cooking", "A kitchen with a stove and a refrigerator."),
    _concept("bathroom", "bathroom", "room", [861, 896, 435, 794, 804, 999, 876], "bathroom home",
             "A bathroom with a toilet and a sink."),
    _concept("books", "books", "room", [453, 454, 624, 921], "books library reading",
             "A room with shelves full of books."),
    _concept("computer", "computer", "object",
             [620, 681, 527, 508, 673, 664, 782, 590, 713, 742], "computer work office",
             "A laptop computer sitting on top of a desk."),
    _concept("television", "television", "room", [851], "tv home",
             "A living room with a television."),
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
    _concept("ski", "skis", "object", [795, 802], "ski snow winter", "A close up of skis."),
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
    _concept("screen", "screen", "screen", [916, 918, 917, 549, 922, 446, 878], "screenshot",
             None),
)
# fmt: on

# The caption of each of the scene head's 25 classes (broad/scenes labels).
SCENE_CAPTIONS: dict[str, str] = {
    "airport": "An airplane at an airport terminal.",
    "art gallery": "A room in an art gallery with paintings on the walls.",
    "auditorium": "An auditorium with rows of seats.",
    "bamboo forest": "A forest of tall bamboo trees.",
    "baseball field": "A view of a baseball field.",
    "bedroom": "A bedroom with a bed and a window.",
    "campus": "A building on a college campus.",
    "computer room": "A room with computers on desks.",
    "desert": "A view of the sand dunes in a desert.",
    "football field": "A view of a football field.",
    "football stadium": "A view of a football stadium.",
    "garden": "A garden with flowers and trees.",
    "highway": "A highway with cars driving down the road.",
    "ice skating": "An ice skating rink.",
    "kitchen": "A kitchen with a stove and a refrigerator.",
    "landscape": "A view of a green field under a blue sky.",
    "laundromat": "A laundromat with washing machines.",
    "library": "A library with shelves full of books.",
    "mountain": "A view of a mountain under a blue sky.",
    "ocean": "A view of the ocean with waves.",
    "rainforest": "A path through a green forest.",
    "sky": "A view of the sky with clouds.",
    "tennis court": "A view of a tennis court.",
    "waterfall": "A waterfall in a forest.",
    "windmill": "A windmill in a field.",
}

# What counts as naming a person or a dog in a caption: the word lists of the shared dev-check,
# used for the heads' training labels and the hallucination rate of `evaluate captioner`.
PERSON_NOUNS = word_list(
    """man men woman women boy boys girl girls person people child children kid kids baby babies
    toddler guy guys lady ladies player players crowd skier skiers surfer surfers skateboarder
    biker bikers rider riders climber hiker couple family team"""
)
DOG_NOUNS = word_list("dog dogs puppy puppies")

# Words the captioner may not write when the evidence does not support a person (the nouns above
# plus pronouns and role nouns of its vocabulary) or a dog.
PERSON_BAN = PERSON_NOUNS | word_list(
    """he she his her him they their someone adult adults teenager teen teenagers friends mother
    father daughter son students spectators audience gentleman bride groom policeman runner
    runners cyclist snowboarder wrestlers swimmer worker dancer cowboy skater skaters tourist"""
)
DOG_BAN = DOG_NOUNS
# Hashtags dropped when no dog is supported (person tags: PERSON_BAN and hashtags.PERSON_WORDS).
DOG_TAGS = word_list(
    """dog dogs puppy dogsofinstagram dogstagram instadog dogoftheday doggy puppylove
    petstagram"""
)

# Concepts that imply a person nearby (a rider, a player): they never veto the person head.
PERSON_OBJECTS = frozenset({"ball_sport", "racket", "ski", "bicycle", "motorcycle"})
# Animals ImageNet often sees in a dog photo: they never veto the dog head.
DOG_LOOKALIKES = frozenset({"dog", "canid"})
# Concepts that mean a screenshot or a document.
SCREEN = "screen"

NAMES = tuple(c.name for c in CONCEPTS)


def membership() -> np.ndarray:
    """``(1000, len(CONCEPTS))`` 0/1 matrix: concept probabilities = softmax(logits) @ it."""
    matrix = np.zeros((1000, len(CONCEPTS)), np.float32)
    for j, concept in enumerate(CONCEPTS):
        for i in concept.indices:
            if matrix[i].any():
                raise ValueError(f"ImageNet class {i} is in two concepts")
            matrix[i, j] = 1.0
    return matrix
