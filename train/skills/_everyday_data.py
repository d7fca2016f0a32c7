"""The word lists the everyday story skills draw from (containers, groups of people, movers
and their speed units, things done every day, holders and what they hold)."""

from __future__ import annotations

CONTAINERS = (
    ("bag", "bags"), ("box", "boxes"), ("pack", "packs"), ("jar", "jars"),
    ("basket", "baskets"), ("crate", "crates"), ("tray", "trays"), ("tin", "tins"),
)  # fmt: skip
PEOPLE = ("friends", "children", "classmates", "cousins", "teammates", "neighbors")
MOVERS = (
    ("car", "km/h", "kilometers"), ("bus", "km per hour", "kilometers"),
    ("train", "kilometers an hour", "kilometers"), ("cyclist", "miles per hour", "miles"),
    ("runner", "km/h", "kilometers"), ("truck", "miles per hour", "miles"),
)  # fmt: skip
PER_DAY = (  # (what is done per day, the unit, the question's verb)
    ("reads {p} pages", "pages", "read"), ("cycles {p} km", "kilometers", "cycle"),
    ("saves ${p}", "dollars", "save"), ("writes {p} lines of code", "lines", "write"),
    ("swims {p} laps", "laps", "swim"), ("bakes {p} cookies", "cookies", "bake"),
)  # fmt: skip
HOLDERS = (  # (what is packed, the holders, one holder, the verb for how many fit)
    ("eggs", "boxes", "box", "hold"), ("people", "taxis", "taxi", "seat"),
    ("books", "shelves", "shelf", "hold"), ("students", "tables", "table", "seat"),
    ("cupcakes", "trays", "tray", "hold"), ("photos", "pages", "page", "hold"),
    ("chairs", "rows", "row", "fit"), ("bottles", "crates", "crate", "hold"),
)  # fmt: skip
