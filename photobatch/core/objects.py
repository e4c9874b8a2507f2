"""The objects a caption can name: COCO's object classes and the words that name each.

Grounding bans the captioner's words for every object a photo does not support, drops hashtags
that name one, and checks every caption it writes against the same list; search reads a
multi-word name as one term, so 'hot dog' is not a dog. The classes are the 80 of COCO, which the
CHAIR hallucination metric counts (Rohrbach et al. 2018), less the dining table: references
rarely mention the table under a plate, so it is neither counted nor banned. The words are ours:
the nouns the captioner's vocabulary, its grounded captions and everyday searches use.

A class's first word is its name in hashtags and search (``sports ball`` is searched as
``ball``). Words are singular; plurals are derived (``puppies``, ``men``, ``hot dogs``).
"""

from __future__ import annotations

from functools import cache

from photobatch.core.text import tokenize

# fmt: off
OBJECT_WORDS: dict[str, tuple[str, ...]] = {
    "person": (
        "person", "man", "woman", "boy", "girl", "child", "kid", "baby", "toddler", "guy",
        "lady", "gentleman", "adult", "teenager", "teen", "player", "skier", "surfer",
        "skateboarder", "snowboarder", "skater", "biker", "cyclist", "bicyclist", "rider",
        "climber", "hiker", "swimmer", "runner", "dancer", "worker", "student", "tourist",
        "crowd", "couple", "family", "team", "bride", "groom", "mother", "father", "daughter",
        "son", "sister", "brother", "policeman", "officer", "cop", "cowboy", "spectator",
        "audience", "pitcher", "batter", "catcher", "chef", "soldier", "passenger", "driver",
        "wrestler", "athlete", "male", "female", "friend",
    ),
    "bicycle": ("bicycle", "bike", "unicycle", "tricycle"),
    "car": ("car", "automobile", "taxi", "cab", "van", "minivan", "jeep", "suv", "sedan", "limo",
            "limousine"),
    "motorcycle": ("motorcycle", "motorbike", "motor bike", "dirt bike", "scooter", "moped"),
    "airplane": ("airplane", "plane", "jet", "aircraft", "airliner", "jetliner"),
    "bus": ("bus", "minibus"),
    "train": ("train", "locomotive", "tram"),
    "truck": ("truck", "pickup truck", "fire truck", "firetruck", "lorry"),
    "boat": ("boat", "ship", "kayak", "canoe", "sailboat", "yacht", "ferry", "raft", "rowboat",
             "watercraft", "speedboat"),
    "traffic light": ("traffic light", "stoplight"),
    "fire hydrant": ("fire hydrant", "hydrant"),
    "stop sign": ("stop sign",),
    "parking meter": ("parking meter",),
    "bench": ("bench", "pew"),
    "bird": ("bird", "duck", "goose", "swan", "pigeon", "seagull", "gull", "parrot", "owl",
             "eagle", "hawk", "crow", "flamingo", "pelican", "penguin", "rooster", "heron"),
    "cat": ("cat", "kitten", "kitty"),
    "dog": ("dog", "puppy", "pup", "doggy", "hound", "retriever", "terrier", "poodle", "collie",
            "greyhound", "beagle", "bulldog", "dachshund", "labrador", "husky", "pug", "corgi",
            "rottweiler", "doberman", "pitbull", "schnauzer", "chihuahua", "spaniel",
            "sheepdog", "pit bull"),
    "horse": ("horse", "pony", "foal", "stallion", "mare"),
    "sheep": ("sheep", "lamb", "ram", "goat"),
    "cow": ("cow", "cattle", "bull", "calf", "ox", "buffalo", "bison"),
    "elephant": ("elephant",),
    "bear": ("bear", "panda"),
    "zebra": ("zebra",),
    "giraffe": ("giraffe",),
    "backpack": ("backpack", "knapsack", "rucksack"),
    "umbrella": ("umbrella", "parasol"),
    "handbag": ("handbag", "purse", "wallet", "briefcase"),
    "tie": ("tie", "necktie", "bow tie"),
    "suitcase": ("suitcase", "luggage"),
    "frisbee": ("frisbee",),
    "skis": ("ski",),
    "snowboard": ("snowboard",),
    "sports ball": ("ball", "soccer ball", "tennis ball", "golf ball"),
    "kite": ("kite",),
    "baseball bat": ("baseball bat",),
    "baseball glove": ("baseball glove", "mitt"),
    "skateboard": ("skateboard",),
    "surfboard": ("surfboard", "wakeboard", "boogie board"),
    "tennis racket": ("racket", "tennis racket", "racquet"),
    "bottle": ("bottle",),
    "wine glass": ("wine glass",),
    "cup": ("cup", "mug"),
    "fork": ("fork",),
    "knife": ("knife",),
    "spoon": ("spoon",),
    "bowl": ("bowl", "container"),
    "banana": ("banana",),
    "apple": ("apple",),
    "sandwich": ("sandwich", "burger", "hamburger", "cheeseburger"),
    "orange": ("orange",),
    "broccoli": ("broccoli",),
    "carrot": ("carrot",),
    "hot dog": ("hot dog", "hotdog"),
    "pizza": ("pizza",),
    "donut": ("donut", "doughnut", "bagel"),
    "cake": ("cake", "cupcake", "cheesecake"),
    "chair": ("chair", "stool", "seat", "armchair"),
    "couch": ("couch", "sofa", "loveseat"),
    "potted plant": ("potted plant", "houseplant"),
    "bed": ("bed",),
    "toilet": ("toilet",),
    "tv": ("tv", "television", "monitor", "computer monitor"),
    "laptop": ("laptop", "computer"),
    "mouse": ("mouse", "computer mouse"),
    "remote": ("remote", "remote control"),
    "keyboard": ("keyboard", "computer keyboard"),
    "cell phone": ("phone", "cell phone", "cellphone", "mobile phone", "smartphone",
                   "telephone"),
    "microwave": ("microwave",),
    "oven": ("oven", "stove"),
    "toaster": ("toaster",),
    "sink": ("sink",),
    "refrigerator": ("refrigerator", "fridge"),
    "book": ("book",),
    "clock": ("clock",),
    "vase": ("vase",),
    "scissors": ("scissors",),
    "teddy bear": ("teddy bear", "teddy"),
    "hair drier": ("hair dryer", "hairdryer", "hair drier"),
    "toothbrush": ("toothbrush",),
}
_IRREGULAR = {
    "man": "men", "woman": "women", "person": "people", "child": "children", "mouse": "mice",
    "goose": "geese", "knife": "knives", "calf": "calves", "ox": "oxen", "gentleman": "gentlemen",
    "policeman": "policemen",
}
_INVARIANT = frozenset({"sheep", "cattle", "scissors", "luggage", "bison", "aircraft",
                        "watercraft", "audience", "broccoli"})
# fmt: on
_LONGEST = max(len(w.split()) for words in OBJECT_WORDS.values() for w in words)


def plural(word: str) -> str:
    """``dog -> dogs``, ``puppy -> puppies``, ``bench -> benches``, ``man -> men``; a
    multi-word name pluralises its last word (``hot dogs``)."""
    *head, last = word.split()
    if last in _IRREGULAR:
        last = _IRREGULAR[last]
    elif last in _INVARIANT:
        pass
    elif last.endswith(("s", "x", "z", "ch", "sh")):
        last += "es"
    elif last.endswith("y") and last[-2:-1] not in ("a", "e", "i", "o", "u"):
        last = last[:-1] + "ies"
    else:
        last += "s"
    return " ".join([*head, last])


@cache
def _forms() -> dict[str, str]:
    """Every singular and plural form of every word -> its class."""
    forms: dict[str, str] = {}
    for name, words in OBJECT_WORDS.items():
        for word in words:
            forms.setdefault(word, name)
            forms.setdefault(plural(word), name)
    return forms


@cache
def _singulars() -> dict[str, str]:
    """Plural form -> singular, for the lexicon's words."""
    return {plural(w): w for words in OBJECT_WORDS.values() for w in words if plural(w) != w}


def object_words(name: str) -> frozenset[str]:
    """Every form (singular and plural, one or more words) that names class ``name``."""
    return frozenset(form for form, owner in _forms().items() if owner == name)


def term(name: str) -> str:
    """A class's name as one search or hashtag term: its first word, spaces dropped
    (``sports ball -> ball``, ``hot dog -> hotdog``)."""
    return OBJECT_WORDS[name][0].replace(" ", "")


def _spans(tokens: list[str]) -> list[tuple[int, int, str | None]]:
    """(start, end, class or None) over ``tokens``: the longest lexicon name at each position,
    so 'hot dog' is one hot dog and not a dog."""
    forms, out, i = _forms(), [], 0
    while i < len(tokens):
        for n in range(min(_LONGEST, len(tokens) - i), 0, -1):
            name = forms.get(" ".join(tokens[i : i + n]))
            if name is not None:
                out.append((i, i + n, name))
                i += n
                break
        else:
            out.append((i, i + 1, None))
            i += 1
    return out


def named_objects(text: str) -> set[str]:
    """The classes a text names (``"Two hot dogs on a plate."`` -> ``{"hot dog"}``)."""
    return {name for _, _, name in _spans(tokenize(text)) if name is not None}


@cache
def term_owners() -> dict[str, str]:
    """One-word term (a name's singular or plural with spaces dropped, as hashtags and search
    terms spell it: ``hotdog``, ``teddybears``, ``puppies``) -> the class it names."""
    return {form.replace(" ", ""): name for form, name in _forms().items()}


def canonical(word: str) -> str:
    """A word as search reads it: singular, so 'dogs' finds 'dog' and 'benches' 'bench' (a
    lexicon word by its own plural; another by rule, the same for a query as for the index)."""
    singular = _singulars().get(word)
    if singular is not None:
        return singular
    if len(word) > 4 and word.endswith(("sses", "xes", "zes", "ches", "shes")):
        return word[:-2]
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def search_terms(text: str, classes: bool = True) -> list[str]:
    """The text's words as search terms (``canonical``): a multi-word name becomes one term,
    without spaces, and (``classes``) a word naming a class adds the class's own term
    (``"two hot dogs and puppies"`` -> ``["two", "hotdog", "and", "puppy", "dog"]``); 'dog' is
    never read out of 'hot dog'."""
    tokens = tokenize(text)
    singulars = _singulars()
    terms = []
    for start, end, name in _spans(tokens):
        phrase = " ".join(tokens[start:end])
        said = canonical(phrase) if end - start == 1 else singulars.get(phrase, phrase)
        said = said.replace(" ", "")
        terms.append(said)
        if classes and name is not None and term(name) != said:
            terms.append(term(name))
    return terms
