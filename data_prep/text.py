"""Built-in English sentence generator for the synthetic corpus.

A small phrase-structure grammar (statements, questions, requests, reported speech, numbers
spelled out, contractions) over a vocabulary of several hundred words. Each speaker gets its
own ``random.Random`` stream, so speakers read different sentences. :func:`to_transcript`
turns the spoken text into a LibriSpeech-style transcript (upper case letters, apostrophes
and single spaces).
"""

import random
import re

PEOPLE = ("farmer", "teacher", "doctor", "sailor", "baker", "driver", "painter", "student", "soldier",
          "captain", "writer", "singer", "nurse", "miner", "hunter", "fisherman", "stranger", "neighbour",
          "merchant", "judge", "pilot", "gardener", "carpenter", "shepherd", "traveller", "lawyer", "priest",
          "waiter", "clerk", "king", "queen", "prince", "princess", "girl", "boy", "woman", "man", "child",
          "uncle", "aunt", "cousin", "brother", "sister", "mother", "father", "grandmother", "grandfather",
          "friend", "guest", "old fox", "young wolf", "little bird")
NAMES = ("mary", "john", "peter", "anna", "thomas", "margaret", "henry", "alice", "george", "helen",
         "william", "susan", "edward", "lucy", "james", "clara", "robert", "emily", "arthur", "martha",
         "walter", "rose", "frank", "grace", "charles", "ellen", "samuel", "julia", "david", "laura")
THINGS = ("book", "letter", "basket", "hat", "coat", "lamp", "chair", "table", "window", "door", "key",
          "bottle", "cup", "plate", "knife", "rope", "boat", "wagon", "horse", "cow", "dog", "cat",
          "apple", "bread", "cake", "candle", "clock", "coin", "map", "picture", "ring", "shoe", "stone",
          "sword", "bag", "box", "blanket", "bucket", "ladder", "hammer", "flower", "tree", "ship",
          "bell", "drum", "garden", "fence", "bridge", "wheel", "feather", "pencil", "newspaper",
          "umbrella", "mirror", "carpet", "jacket", "violin", "kettle", "pillow", "engine", "lantern")
PLACES = ("kitchen", "garden", "market", "church", "village", "forest", "river", "harbour", "station",
          "library", "school", "castle", "field", "mountain", "valley", "hospital", "office", "shop",
          "farm", "cottage", "hall", "barn", "street", "square", "museum", "theatre", "island", "lake",
          "hill", "meadow", "city", "town", "inn", "cellar", "attic", "bakery", "factory", "palace")
ADJECTIVES = ("old", "young", "little", "big", "tall", "short", "heavy", "light", "dark", "bright",
              "quiet", "noisy", "happy", "sad", "angry", "gentle", "clever", "foolish", "brave", "tired",
              "hungry", "strange", "beautiful", "ugly", "famous", "poor", "rich", "careful", "lazy",
              "busy", "cold", "warm", "wet", "dry", "clean", "dirty", "broken", "new", "empty", "full",
              "red", "green", "blue", "yellow", "white", "black", "brown", "golden", "silver", "wooden",
              "small", "large", "narrow", "wide", "soft", "hard", "sweet", "bitter", "fresh", "ancient",
              "curious", "proud", "honest", "patient", "silent", "lonely", "friendly", "polite", "cheerful")
ADVERBS = ("slowly", "quickly", "quietly", "loudly", "carefully", "suddenly", "gently", "happily",
           "sadly", "softly", "bravely", "eagerly", "calmly", "politely", "nervously", "proudly",
           "finally", "certainly", "often", "rarely", "always", "never", "seldom", "usually")
NEUTRAL_TIMES = ("on monday", "on tuesday", "on wednesday", "on thursday", "on friday", "on saturday",
                 "on sunday", "in the spring", "in the summer", "in the autumn", "in the winter",
                 "after dinner", "before breakfast", "at midnight", "at dawn", "at noon", "at sunset",
                 "in the evening", "in january", "in march", "in july", "in october")
PAST_TIMES = NEUTRAL_TIMES + ("yesterday", "last night", "this morning", "last week", "long ago",
                              "during the storm", "three days ago", "last summer")
FUTURE_TIMES = NEUTRAL_TIMES + ("tomorrow", "tonight", "next week", "next year", "soon", "later today")
DEADLINES = ("noon", "midnight", "dinner", "breakfast", "sunset", "tomorrow", "the evening", "the storm")
# (base, past, third person singular) of transitive verbs
TRANSITIVE = (("carry", "carried", "carries"), ("find", "found", "finds"), ("take", "took", "takes"),
              ("bring", "brought", "brings"), ("open", "opened", "opens"), ("close", "closed", "closes"),
              ("paint", "painted", "paints"), ("sell", "sold", "sells"), ("buy", "bought", "buys"),
              ("hide", "hid", "hides"), ("lose", "lost", "loses"), ("wash", "washed", "washes"),
              ("mend", "mended", "mends"), ("build", "built", "builds"), ("break", "broke", "breaks"),
              ("clean", "cleaned", "cleans"), ("keep", "kept", "keeps"), ("send", "sent", "sends"),
              ("lift", "lifted", "lifts"), ("push", "pushed", "pushes"), ("pull", "pulled", "pulls"),
              ("watch", "watched", "watches"), ("follow", "followed", "follows"), ("need", "needed", "needs"),
              ("borrow", "borrowed", "borrows"), ("steal", "stole", "steals"), ("drop", "dropped", "drops"),
              ("throw", "threw", "throws"), ("catch", "caught", "catches"), ("cover", "covered", "covers"),
              ("fill", "filled", "fills"), ("move", "moved", "moves"), ("sketch", "sketched", "sketches"),
              ("describe", "described", "describes"), ("remember", "remembered", "remembers"),
              ("forget", "forgot", "forgets"), ("admire", "admired", "admires"), ("want", "wanted", "wants"),
              ("notice", "noticed", "notices"), ("guard", "guarded", "guards"))
# (base, past, third person singular) of intransitive verbs
INTRANSITIVE = (("sing", "sang", "sings"), ("laugh", "laughed", "laughs"), ("wait", "waited", "waits"),
                ("sleep", "slept", "sleeps"), ("walk", "walked", "walks"), ("run", "ran", "runs"),
                ("work", "worked", "works"), ("dance", "danced", "dances"), ("cry", "cried", "cries"),
                ("rest", "rested", "rests"), ("travel", "travelled", "travels"), ("swim", "swam", "swims"),
                ("pray", "prayed", "prays"), ("shout", "shouted", "shouts"), ("whisper", "whispered", "whispers"),
                ("arrive", "arrived", "arrives"), ("listen", "listened", "listens"), ("smile", "smiled", "smiles"),
                ("study", "studied", "studies"), ("play", "played", "plays"))
PREPOSITIONS = ("in", "near", "behind", "beside", "outside", "inside", "across", "under", "above",
                "beyond", "towards", "around")
REPORTING = ("said", "thought", "believed", "explained", "remembered", "promised", "complained",
             "admitted", "noticed", "heard")
QUESTION_WORDS = ("where", "why", "when", "how")
NUMBER_NOUNS = ("sheep", "apples", "letters", "candles", "coins", "birds", "boats", "books", "horses",
                "stones", "chairs", "windows", "children", "soldiers", "ships", "miles", "years", "days",
                "pages", "keys")
MODALS = ("will", "can", "must", "should", "might", "could", "would")
NEGATED = ("didn't", "couldn't", "wouldn't", "won't", "can't", "shouldn't", "mustn't")
CONNECTIVES = ("because", "although", "while", "so", "and", "but")
# words the templates themselves write
FUNCTION_WORDS = ("a", "an", "the", "my", "our", "his", "her", "their", "that", "did", "how", "many", "there",
                  "were", "was", "it", "very", "too", "rather", "quite", "please", "before", "we", "they", "i",
                  "you", "she", "he", "hundred", "and")

_UNITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
          "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
          "nineteen")
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")


def number_words(n):
    """Spell out an integer in [0, 999] in English (``342 -> "three hundred and forty two"``)."""
    if not isinstance(n, int) or not 0 <= n <= 999:
        raise ValueError(f"number_words takes an int in [0, 999], got {n!r}")
    if n < 20:
        return _UNITS[n]
    if n < 100:
        tens, unit = divmod(n, 10)
        return _TENS[tens] + ("" if unit == 0 else " " + _UNITS[unit])
    hundreds, rest = divmod(n, 100)
    return _UNITS[hundreds] + " hundred" + ("" if rest == 0 else " and " + number_words(rest))


def to_transcript(text):
    """LibriSpeech-style transcript: upper case, letters and apostrophes, single spaces."""
    words = re.sub(r"[^A-Z' ]+", " ", text.upper()).split()
    transcript = " ".join(word.strip("'") for word in words if word.strip("'"))
    if not transcript:
        raise ValueError(f"text {text!r} has no words")
    return transcript


class _Grammar:
    """Random phrase builders over one ``random.Random`` stream."""

    def __init__(self, rng):
        self.rng = rng

    def pick(self, options):
        return self.rng.choice(options)

    def person(self):
        roll = self.rng.random()
        if roll < 0.3:
            return self.pick(NAMES)
        if roll < 0.6:
            return "the " + self.pick(PEOPLE)
        if roll < 0.8:
            return "the " + self.pick(ADJECTIVES) + " " + self.pick(PEOPLE)
        return self.pick(("my", "our", "his", "her", "their")) + " " + self.pick(PEOPLE)

    def article(self, word):
        return "an" if word[0] in "aeiou" or word.startswith("honest") else "a"

    def thing(self):
        roll = self.rng.random()
        if roll < 0.45:
            return "the " + self.pick(THINGS)
        if roll < 0.8:
            return "the " + self.pick(ADJECTIVES) + " " + self.pick(THINGS)
        adjective = self.pick(ADJECTIVES)
        determiner = self.pick((self.article(adjective), "her", "his", "that"))
        return determiner + " " + adjective + " " + self.pick(THINGS)

    def place(self):
        return self.pick(PREPOSITIONS) + " the " + self.pick(PLACES)

    def count(self):
        roll = self.rng.random()
        n = self.rng.randint(2, 19) if roll < 0.5 else self.rng.randint(20, 99) if roll < 0.85 \
            else self.rng.randint(100, 999)
        return number_words(n)

    # --- sentence templates: each returns spoken text with final punctuation ---
    def statement(self):
        verb = self.pick(TRANSITIVE)
        parts = [self.person(), verb[1], self.thing()]
        if self.rng.random() < 0.6:
            parts.append(self.place())
        if self.rng.random() < 0.5:
            parts.append(self.pick(PAST_TIMES))
        return " ".join(parts) + "."

    def intransitive(self):
        verb = self.pick(INTRANSITIVE)
        parts = [self.person(), self.pick(ADVERBS), verb[1], self.place()]
        if self.rng.random() < 0.4:
            parts.append(self.pick(PAST_TIMES))
        return " ".join(parts) + "."

    def question(self):
        verb = self.pick(TRANSITIVE)
        return f"{self.pick(QUESTION_WORDS)} did {self.person()} {verb[0]} {self.thing()}?"

    def yes_no_question(self):
        verb = self.pick(TRANSITIVE + INTRANSITIVE)
        tail = f" {self.thing()}" if verb in TRANSITIVE else f" {self.place()}"
        return f"did {self.person()} {verb[0]}{tail} {self.pick(PAST_TIMES)}?"

    def how_many(self):
        return (f"how many {self.pick(NUMBER_NOUNS)} did {self.person()} "
                f"{self.pick(TRANSITIVE)[0]} {self.pick(PAST_TIMES)}?")

    def counting(self):
        return f"there were {self.count()} {self.pick(NUMBER_NOUNS)} {self.place()} {self.pick(PAST_TIMES)}."

    def reported(self):
        return (f"{self.person()} {self.pick(REPORTING)} that {self.thing()} was "
                f"{self.pick(('very', 'too', 'rather', 'quite'))} {self.pick(ADJECTIVES)}.")

    def modal(self):
        verb = self.pick(TRANSITIVE)
        return (f"{self.person()} {self.pick(MODALS)} {self.pick(ADVERBS)} {verb[0]} {self.thing()} "
                f"{self.pick(FUTURE_TIMES)}.")

    def negated(self):
        verb = self.pick(TRANSITIVE)
        return (f"{self.pick(('we', 'they', 'i', 'you', 'she', 'he'))} {self.pick(NEGATED)} {verb[0]} "
                f"{self.thing()} {self.pick(CONNECTIVES)} it was {self.pick(ADJECTIVES)}.")

    def request(self):
        verb = self.pick(TRANSITIVE)
        return f"please {verb[0]} {self.thing()} {self.place()} before {self.pick(DEADLINES)}."

    def habitual(self):
        verb = self.pick(TRANSITIVE)
        return f"{self.pick(NAMES)} {self.pick(ADVERBS)} {verb[2]} {self.thing()} {self.place()}."

    def weather(self):
        return (f"it was {self.pick(ADJECTIVES)} {self.place()} {self.pick(PAST_TIMES)} "
                f"{self.pick(CONNECTIVES)} {self.person()} {self.pick(INTRANSITIVE)[1]}.")


_TEMPLATES = ("statement", "statement", "intransitive", "question", "yes_no_question", "how_many",
              "counting", "reported", "modal", "negated", "request", "habitual", "weather")


def vocabulary():
    """All words the generator can produce (lower case)."""
    words = set()
    for group in (PEOPLE, NAMES, THINGS, PLACES, ADJECTIVES, ADVERBS, PAST_TIMES, FUTURE_TIMES, DEADLINES,
                  PREPOSITIONS, REPORTING, QUESTION_WORDS, NUMBER_NOUNS, MODALS, NEGATED, CONNECTIVES,
                  FUNCTION_WORDS, _UNITS, _TENS):
        for entry in group:
            words.update(entry.split())
    for verb in TRANSITIVE + INTRANSITIVE:
        words.update(verb)
    return words


def generate_sentences(rng, n, min_words=5, max_words=14):
    """Draw ``n`` distinct sentences of ``min_words``..``max_words`` words.

    Parameters
    ----------
    rng : random.Random
        The stream to draw from (one per speaker, so speakers read different sentences).
    n : int
    min_words, max_words : int

    Returns
    -------
    list of str
        Spoken text (lower case with punctuation); see :func:`to_transcript`.
    """
    if not isinstance(rng, random.Random):
        raise TypeError(f"rng must be a random.Random, got {type(rng).__name__}")
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    if not 1 <= min_words <= max_words:
        raise ValueError(f"need 1 <= min_words <= max_words, got {min_words}, {max_words}")
    grammar = _Grammar(rng)
    sentences, seen = [], set()
    attempts = 0
    while len(sentences) < n:
        attempts += 1
        if attempts > 1000 * (n + 1):
            raise ValueError(f"could not draw {n} distinct sentences of {min_words}-{max_words} words")
        text = getattr(grammar, rng.choice(_TEMPLATES))()
        n_words = len(to_transcript(text).split())
        if min_words <= n_words <= max_words and text not in seen:
            seen.add(text)
            sentences.append(text)
    return sentences
