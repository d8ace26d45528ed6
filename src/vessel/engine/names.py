"""Docker-style random container names: adjective_surname."""

import random

__all__ = ["random_name"]

ADJECTIVES = (
    "admiring", "agitated", "amazing", "bold", "brave", "busy", "calm", "clever", "compassionate",
    "cool", "dazzling", "determined", "eager", "ecstatic", "elegant", "epic", "festive", "focused",
    "friendly", "gallant", "gifted", "happy", "hopeful", "jolly", "keen", "kind", "laughing", "lucid",
    "modest", "nifty", "nostalgic", "optimistic", "peaceful", "pensive", "quirky", "relaxed", "serene",
    "sharp", "stoic", "sweet", "tender", "trusting", "upbeat", "vibrant", "wizardly", "youthful", "zen",
)

SURNAMES = (
    "agnesi", "archimedes", "babbage", "bardeen", "bell", "bohr", "boole", "cerf", "curie", "darwin",
    "dijkstra", "einstein", "euclid", "euler", "faraday", "fermat", "feynman", "franklin", "galileo",
    "gauss", "goldberg", "hamilton", "hopper", "hypatia", "johnson", "kepler", "knuth", "lamarr",
    "lovelace", "maxwell", "meitner", "mendel", "newton", "noether", "pascal", "planck", "ritchie",
    "shannon", "thompson", "torvalds", "turing", "wilson", "wozniak", "yalow",
)


def random_name(taken, rng=random):
    """A name not in `taken` (a container of names); a digit suffix after many collisions."""
    for attempt in range(100):
        name = f"{rng.choice(ADJECTIVES)}_{rng.choice(SURNAMES)}"
        if attempt > 10:
            name += str(rng.randint(0, 99))
        if name not in taken:
            return name
    raise RuntimeError("could not pick a free container name")
