"""The phrasing tables of the everyday_facts skill (train/skills/everyday_facts.py): how people
type powers, roots, digit facts, prime facts, gcd/lcm, shape areas and perimeters, one-step
equations, tips and tax, and time facts. Each entry is a `str.format` template; the fields are
filled by the kind that draws it."""

from __future__ import annotations

POWER = (
    "What is {a} to the power of {b}?", "{a}^{b}", "what's {a}**{b}", "{a} raised to {b}",
    "Calculate {a} to the power {b}.", "{a} to the {bo} power?", "What is {a}^{b}?",
    "{a} raised to the power of {b} is what?", "evaluate {a}**{b}",
)  # fmt: skip
SQUARED = ("What is {a} squared?", "{a} squared", "What's the square of {a}?", "square {a}")
CUBED = ("What is {a} cubed?", "{a} cubed", "What is the cube of {a}?", "cube of {a}?")

SQRT = (
    "What is the square root of {n}?", "√{n}", "sqrt({n})", "What's the sqrt of {n}?",
    "square root of {n}", "What is √{n}?", "Which number times itself makes {n}?",
    "Find the square root of {n}.",
)  # fmt: skip
CBRT = (
    "What is the cube root of {n}?", "∛{n}", "cube root of {n}", "What number cubed is {n}?",
    "Find the cube root of {n}.",
)  # fmt: skip

DIGIT_SUM = (
    "What is the sum of the digits of {n}?", "Add up the digits of {n}.", "digit sum of {n}",
    "What do the digits of {n} add up to?", "sum of digits in {n}?",
)  # fmt: skip
DIGIT_COUNT = (
    "How many digits does {n} have?", "how many digits are in {n}", "How many digits long is {n}?",
    "{n} has how many digits?", "Count the digits in {n}.",
)  # fmt: skip

PRIME_BELOW = (
    "What is the largest prime less than {n}?", "biggest prime number below {n}",
    "What's the closest prime under {n}?", "Which prime comes just before {n}?",
    "Find the greatest prime number smaller than {n}.",
)  # fmt: skip
PRIME_FACTOR = (
    "What is the smallest prime factor of {n}?", "smallest prime that divides {n}",
    "What's the lowest prime factor of {n}", "Which is the first prime that goes into {n}?",
    "Find the least prime divisor of {n}.",
)  # fmt: skip

LCM = (
    "What's the smallest number both {a} and {b} divide into?", "lcm({a}, {b})",
    "smallest number that {a} and {b} both go into", "lcm of {a} and {b}?",
    "What is the first number that is a multiple of both {a} and {b}?",
)  # fmt: skip
LCM3 = ("lcm({a}, {b}, {c})", "lcm of {a}, {b} and {c}", "What is the LCM of {a}, {b}, and {c}?")
GCD = (
    "What is the largest number that divides both {a} and {b}?", "gcd({a}, {b})",
    "gcf of {a} and {b}", "What's the biggest number that goes into both {a} and {b}?",
    "greatest common factor of {a} and {b}?",
)  # fmt: skip
GCD3 = ("gcd({a}, {b}, {c})", "gcf of {a}, {b} and {c}", "What is the GCD of {a}, {b}, and {c}?")

# (shape, measure) -> phrasings; {u} is the unit ("cm", "m"), {uu} its long plural
SHAPES = {
    ("rect", "area"): (
        "A rectangle is {a} {u} long and {b} {u} wide. What is its area in square {uu}?",
        "area of a {a} {u} by {b} {u} rectangle?", "What's the area of a {a}{u} x {b}{u} room?",
        "How many square {uu} of carpet cover a floor {a} {u} by {b} {u}?",
    ),
    ("rect", "perimeter"): (
        "What is the perimeter of a rectangle {a} {u} by {b} {u}?",
        "perimeter of a {a}{u} x {b}{u} rectangle",
        "How much fence goes around a garden {a} {u} long and {b} {u} wide, in {uu}?",
        "A rectangle has sides {a} {u} and {b} {u}. How long is its perimeter?",
    ),
    ("square", "area"): (
        "A square has sides of {a} {u}. What is its area?", "area of a square with side {a} {u}?",
        "What's the area of a {a} {u} by {a} {u} square, in square {uu}?",
    ),
    ("square", "perimeter"): (
        "What is the perimeter of a square with {a} {u} sides?", "perimeter of a {a}{u} square",
        "A square tile is {a} {u} on each side. How far is it all the way around?",
    ),
    ("tri", "area"): (
        "A right triangle has legs of {a} {u} and {b} {u}. What is its area?",
        "area of a right triangle with legs {a} {u} and {b} {u}",
        "What's the area of a right-angled triangle whose two short sides are {a} {u} and {b} {u}?",
    ),
}  # fmt: skip
UNITS = (("cm", "centimeters"), ("m", "meters"))

# one-step equations, by operation; {a}, {b} the numbers, x the unknown
EQ_ADD = (
    "What number plus {a} equals {b}?", "{a} plus what is {b}?", "{a} + x = {b}, what is x?",
    "x + {a} = {b}. Find x.", "what do I add to {a} to get {b}?",
)  # fmt: skip
EQ_SUB = (
    "What number minus {a} equals {b}?", "x - {a} = {b}, find x", "Solve n - {a} = {b}.",
    "I take {a} away from a number and get {b}. What was the number?",
)  # fmt: skip
EQ_MUL = (
    "{a} times a number is {b}. What is the number?", "Solve for y: {a}y = {b}", "{a}x = {b}",
    "What number times {a} makes {b}?", "{a} * n = {b}. What is n?",
)  # fmt: skip
EQ_DIV = (
    "x/{a} = {b}, find x", "A number divided by {a} is {b}. What is it?", "Solve n / {a} = {b}.",
    "What number divided by {a} gives {b}?",
)  # fmt: skip

# percent rates by level
TIP_RATES = {1: (10, 20), 2: (15, 18, 20, 25), 3: (12, 15, 18, 22)}
TAX_RATES = {1: (5, 10), 2: (5, 6, 8, 10), 3: (6, 7, 8, 9, 12)}
TIP = (
    "What is a {p}% tip on a {bill} bill?", "how much is a {p}% tip on {bill}",
    "{p} percent tip on {bill}?", "The meal costs {bill}. How much is a {p}% tip?",
)  # fmt: skip
TIP_TOTAL = (
    "The bill is {bill}. With a {p}% tip, what is the total?",
    "{bill} plus a {p}% tip comes to how much?",
    "What do I pay in all for a {bill} meal if I add {p}% for the tip?",
)  # fmt: skip
TAX_TOTAL = (
    "{bill} plus {p}% tax?", "Something costs {bill} before a {p}% sales tax. What is the price with tax?",
    "What is {bill} with {p}% tax added?",
)  # fmt: skip

# (small unit, big unit, how many small in one big, the word for one big)
TIME_UNITS = (
    ("minutes", "day", 1440, "a day"), ("seconds", "hour", 3600, "an hour"),
    ("minutes", "week", 10080, "a week"), ("hours", "week", 168, "a week"),
    ("seconds", "day", 86400, "a day"), ("hours", "year", 8760, "a year (365 days)"),
)  # fmt: skip
TIME_ONE = ("How many {s} are in {one}?", "how many {s} in {one}", "{one} is how many {s}?")
TIME_K = (
    "How many {s} are there in {k} {big}s?",
    "{k} {big}s is how many {s}?",
    "{s} in {k} {big}s",
)
CLOCK = (
    "How many minutes from {t1} to {t2}?", "It's {t1}. How many minutes until {t2}?",
    "How long is it from {t1} to {t2}, in minutes?", "minutes between {t1} and {t2}",
    "I started at {t1} and finished at {t2}. How many minutes was that?",
)  # fmt: skip
