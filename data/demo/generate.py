#!/usr/bin/env python3
"""Generate edgetune's demo dataset: smart-home voice commands with three tasks: the intent and
the urgency of each command (sentence-level) and BIO slot tags (token-level).

Deterministic (seeded), Python 3 standard library only. Writes train.jsonl, valid.jsonl and
test.jsonl next to this script, one {"words": [...], "tags": [...], "intent": "...",
"urgency": "..."} per line.

Template syntax:
    {slot}        a value drawn from VOCAB[slot]; tagged B-slot I-slot ... (the slot name is the
                  part before a colon: {value:pct} draws from VOCAB["value:pct"], tags "value")
    (a|b c|d)     one of the alternatives (plain words, may be empty: (a|))
    [words]       optional words (kept with probability 1/2)

Usage: python3 generate.py [--seed N] [--out DIR]
"""

import argparse
import json
import os
import random
import re

SEED = 20261126
SIZES = {"train": 520, "valid": 80, "test": 100}

VOCAB = {
    "device": [
        "lights", "light", "lamp", "ceiling light", "desk lamp", "floor lamp", "reading lamp",
        "fan", "ceiling fan", "tv", "television", "heater", "air conditioner", "coffee machine",
        "dishwasher", "washing machine", "radio", "speaker", "porch light", "fairy lights",
        "humidifier", "kettle", "heating", "night light", "led strip",
    ],
    "device:lamp": ["lights", "light", "lamp", "ceiling light", "desk lamp", "floor lamp", "reading lamp",
             "porch light", "fairy lights", "night light", "led strip", "spotlights"],
    "device:door": ["front door", "back door", "garage door", "side gate", "patio door", "main entrance",
             "garage", "shed", "cellar door", "door"],
    "room": [
        "kitchen", "living room", "bedroom", "bathroom", "hallway", "office", "garage",
        "dining room", "kids room", "guest room", "basement", "attic", "garden", "master bedroom",
        "upstairs", "downstairs", "nursery", "study", "lounge", "porch",
    ],
    "value:pct": ["10", "20", "25", "30", "40", "50", "60", "70", "75", "80", "90", "100",
                  "fifteen", "thirty", "forty", "fifty", "sixty five", "eighty", "a hundred", "ninety five"],
    "value:temp": ["16", "17", "18", "19", "20", "21", "22", "23", "24", "25", "68", "70", "72",
                   "eighteen", "nineteen", "twenty", "twenty one", "twenty two", "twenty three",
                   "seventy"],
    "value:oven": ["150", "180", "200", "220", "350", "400", "one eighty", "two hundred"],
    "unit:pct": ["percent", "%"],
    "unit:temp": ["degrees", "celsius", "fahrenheit", "degrees celsius", "degrees fahrenheit", "c"],
    "duration": [
        "5 minutes", "ten minutes", "two minutes", "15 minutes", "twenty minutes", "half an hour",
        "an hour", "one hour", "90 seconds", "thirty seconds", "45 minutes", "three minutes",
        "1 hour and 30 minutes", "an hour and a half", "seven minutes", "a minute", "12 minutes",
        "two and a half minutes", "40 seconds", "25 minutes",
    ],
    "time": [
        "tomorrow", "tonight", "today", "this weekend", "tomorrow morning", "this afternoon",
        "this evening", "friday", "saturday", "monday", "next week", "sunday afternoon",
        "the weekend", "tomorrow night", "wednesday",
    ],
    "time:clock": ["7 am", "6:30", "noon", "midnight", "8 pm", "half past seven", "10 o'clock",
              "quarter to six", "9:15", "five thirty"],
    "city": [
        "london", "paris", "new york", "berlin", "tokyo", "oslo", "madrid", "lisbon",
        "rio de janeiro", "cape town", "hong kong", "los angeles", "buenos aires", "mexico city",
        "sydney", "toronto", "nairobi", "reykjavik", "kuala lumpur", "san francisco", "dublin",
        "seoul", "vienna", "the city", "home",
    ],
    # Invented artists and bands, so the names carry no outside knowledge.
    "artist": [
        "the paper lanterns", "luna park", "nico vale", "the midnight owls", "aurora fields",
        "marco diaz", "the copper kettles", "juniper blue", "sam okafor", "the quiet hours",
        "velvet harbour", "ida lindqvist", "the north wind", "kofi mensah", "static bloom",
        "rosa amarilla", "the glass tigers", "eli brandt", "moss and stone", "yuki tanaka",
    ],
    "genre": [
        "jazz", "rock", "classical", "hip hop", "lo fi", "country", "reggae", "blues", "pop",
        "ambient", "heavy metal", "bossa nova", "drum and bass", "folk", "soul", "punk",
        "piano music", "chill music", "white noise", "rain sounds",
    ],
}

GREETINGS = ["hey", "ok", "hey house", "hi", "excuse me"]
# Request words only go before an imperative (a command starting with one of IMPERATIVE).
REQUESTS = ["please", "could you", "can you", "would you", "i want you to", "kindly", "go ahead and"]
IMPERATIVE = {
    "turn", "switch", "start", "power", "activate", "kill", "shut", "stop", "set", "put", "dim",
    "brighten", "make", "change", "adjust", "preheat", "warm", "cool", "create", "remind", "tell",
    "wake", "count", "play", "shuffle", "lock", "unlock", "secure", "check", "close", "open",
    "release", "bolt", "unbolt", "disable", "raise", "lower", "heat", "let",
}
POLITE_SUFFIX = ["please", "thanks", "thank you", "for me", "now", "right away"]
# Urgency (a second sentence task): words that ask for the command at once or allow it to wait,
# added after the command (or before it), tagged O. A command without them is "normal".
URGENT = {
    "suffix": ["now", "right away", "right now", "immediately", "quickly", "asap", "this instant",
               "as fast as you can", "it is urgent"],
    "prefix": ["quick", "right now", "urgent", "hurry"],
}
RELAXED = {
    "suffix": ["when you can", "later", "no rush", "whenever you get a chance", "in a bit",
               "when you have a moment", "at some point", "no hurry"],
    "prefix": ["no rush but", "when you can", "whenever you like"],
}
URGENCY_SEED_OFFSET = 1

# (intent, template, weight). Some templates are deliberately close to other intents.
TEMPLATES = [
    # turn_on
    ("turn_on", "(turn|switch) on the {device} [in the {room}]", 4),
    ("turn_on", "(turn|switch) the {room} {device} on", 3),
    ("turn_on", "(turn|switch) the {device} on", 2),
    ("turn_on", "{device} on [in the {room}]", 1),
    ("turn_on", "start the {device}", 2),
    ("turn_on", "power up the {device} [in the {room}]", 1),
    ("turn_on", "(i need|give me) (some|) light in the {room}", 1),
    ("turn_on", "(lights|light) on in the {room}", 2),
    ("turn_on", "it is too dark in the {room}", 1),
    ("turn_on", "activate the {room} {device}", 1),
    ("turn_on", "turn on the {device} at {time:clock}", 1),
    # turn_off
    ("turn_off", "(turn|switch) off the {device} [in the {room}]", 4),
    ("turn_off", "(turn|switch) the {room} {device} off", 3),
    ("turn_off", "(turn|switch) the {device} off", 2),
    ("turn_off", "kill the (lights|light) [in the {room}]", 1),
    ("turn_off", "shut (off|down) the {device}", 2),
    ("turn_off", "stop the {device} [in the {room}]", 1),
    ("turn_off", "{device} off [in the {room}]", 1),
    ("turn_off", "(no more|enough) light in the {room}", 1),
    ("turn_off", "i am leaving the {room} (turn|switch) everything off", 1),
    ("turn_off", "turn off the {device} at {time:clock}", 1),
    ("turn_off", "(stop|turn off) the music", 1),
    # set_brightness
    ("set_brightness", "(set|put) the {device:lamp} [in the {room}] to {value:pct} {unit:pct}", 4),
    ("set_brightness", "(dim|brighten) the {room} {device:lamp} to {value:pct} {unit:pct}", 3),
    ("set_brightness", "(dim|brighten) the {device:lamp} [in the {room}]", 2),
    ("set_brightness", "{device:lamp} to {value:pct} {unit:pct} [in the {room}]", 1),
    ("set_brightness", "make the {device:lamp} (brighter|dimmer|darker) [in the {room}]", 2),
    ("set_brightness", "turn (up|down) the {device:lamp} [in the {room}]", 2),
    ("set_brightness", "(change|adjust) the brightness of the {device:lamp} to {value:pct} {unit:pct}", 1),
    ("set_brightness", "{room} brightness {value:pct} {unit:pct}", 1),
    ("set_brightness", "(set|put) the {room} to {value:pct}", 1),
    ("set_brightness", "the {device:lamp} (is|are) too bright", 1),
    # set_temperature
    ("set_temperature", "(set|change) the (temperature|thermostat) [in the {room}] to {value:temp} [{unit:temp}]", 4),
    ("set_temperature", "make it {value:temp} {unit:temp} [in the {room}]", 1),
    ("set_temperature", "heat the {room} to {value:temp} [{unit:temp}]", 1),
    ("set_temperature", "(turn up|turn down|raise|lower) the (heat|temperature) [in the {room}]", 2),
    ("set_temperature", "it is too (cold|hot|warm|chilly) in the {room}", 2),
    ("set_temperature", "make the {room} (warmer|cooler|colder)", 2),
    ("set_temperature", "(set|preheat) the oven to {value:oven} [{unit:temp}]", 2),
    ("set_temperature", "i want {value:temp} {unit:temp} in the {room}", 1),
    ("set_temperature", "(warm|cool) the {room} (up|down) to {value:temp}", 1),
    ("set_temperature", "thermostat {value:temp} [{unit:temp}]", 1),
    ("set_temperature", "turn the heating up to {value:temp} {unit:temp}", 1),
    # set_timer
    ("set_timer", "set a timer for {duration}", 4),
    ("set_timer", "(start|create) a {duration} timer", 3),
    ("set_timer", "timer {duration}", 1),
    ("set_timer", "(remind me|tell me|let me know) in {duration}", 2),
    ("set_timer", "wake me (up|) in {duration}", 1),
    ("set_timer", "count down {duration}", 1),
    ("set_timer", "set the oven timer (for|to) {duration}", 1),
    ("set_timer", "(can you|) time {duration} for the (pasta|eggs|rice|tea)", 1),
    ("set_timer", "put a timer on for {duration}", 1),
    ("set_timer", "alarm in {duration}", 1),
    # play_music
    ("play_music", "play (something|some music|songs|a song) by {artist}", 3),
    ("play_music", "play (some|) {genre} [in the {room}]", 3),
    ("play_music", "put on (some|) {genre} [in the {room}]", 2),
    ("play_music", "(i want to|let me|i'd like to) (hear|listen to) {artist}", 2),
    ("play_music", "play {artist} on the {device}", 1),
    ("play_music", "play {genre} by {artist}", 1),
    ("play_music", "(shuffle|start) my {genre} playlist", 1),
    ("play_music", "music in the {room}", 1),
    ("play_music", "i am in the mood for {genre}", 1),
    ("play_music", "(turn on|switch on) some {genre}", 1),
    ("play_music", "play the radio [in the {room}]", 1),
    # get_weather
    ("get_weather", "what is the weather (like|) [in {city}] [{time}]", 3),
    ("get_weather", "(will|is) it (going to|) rain [in {city}] {time}", 2),
    ("get_weather", "(how hot|how cold|how warm) (is it|will it be) in {city} [{time}]", 2),
    ("get_weather", "(weather|forecast) (for|in) {city} [{time}]", 2),
    ("get_weather", "do i need an umbrella [in {city}] {time}", 2),
    ("get_weather", "(what is|what's) the temperature (outside|in {city}) [{time}]", 2),
    ("get_weather", "is it (sunny|cold|windy|snowing) in {city}", 1),
    ("get_weather", "(should i|do i need to) wear a coat {time}", 1),
    ("get_weather", "what will the weather be like on {time} [in {city}]", 1),
    ("get_weather", "tell me the forecast (for|) {time}", 1),
    # lock_door
    ("lock_door", "lock the {device:door}", 4),
    ("lock_door", "(is|check if) the {device:door} (is|) locked", 1),
    ("lock_door", "(make sure|check) the {device:door} is (locked|secure)", 2),
    ("lock_door", "secure the {device:door}", 2),
    ("lock_door", "lock (up|) the house", 1),
    ("lock_door", "lock (all|) the doors", 1),
    ("lock_door", "(close and lock|bolt) the {device:door}", 1),
    ("lock_door", "lock the {device:door} at {time:clock}", 1),
    ("lock_door", "i am going to bed lock the {device:door}", 1),
    ("lock_door", "(close|shut) the {device:door}", 1),
    # unlock_door
    ("unlock_door", "unlock the {device:door}", 4),
    ("unlock_door", "(open|release) the {device:door}", 2),
    ("unlock_door", "let me in (through the {device:door}|)", 1),
    ("unlock_door", "(can you|) unlock (the|my) {device:door} for the (delivery|guests|kids)", 1),
    ("unlock_door", "unbolt the {device:door}", 1),
    ("unlock_door", "i am home open the {device:door}", 1),
    ("unlock_door", "unlock the {device:door} at {time:clock}", 1),
    ("unlock_door", "(disable|turn off) the lock on the {device:door}", 1),
]

ALT = re.compile(r"\(([^()]*)\)")
OPT = re.compile(r"\[([^\[\]]*)\]")


def expand(template, rng):
    """Resolve optional parts and alternatives, then fill slots; returns (words, tags)."""
    text = OPT.sub(lambda m: m.group(1) if rng.random() < 0.5 else "", template)
    text = ALT.sub(lambda m: rng.choice(m.group(1).split("|")), text)
    words, tags = [], []
    for token in text.split():
        if token.startswith("{") and token.endswith("}"):
            key = token[1:-1]
            value = rng.choice(VOCAB[key]).split()
            slot = key.split(":")[0]
            words += value
            tags += ["B-" + slot] + ["I-" + slot] * (len(value) - 1)
        else:
            words.append(token)
            tags.append("O")
    return words, tags


def politeness(words, tags, rng):
    """Optionally wrap the command in polite words (tagged O)."""
    r = rng.random()
    if r < 0.1 or (r < 0.35 and words[0] in IMPERATIVE):
        prefix = rng.choice(GREETINGS if r < 0.1 else REQUESTS).split()
        words, tags = prefix + words, ["O"] * len(prefix) + tags
    if rng.random() < 0.15:
        suffix = rng.choice(POLITE_SUFFIX).split()
        words, tags = words + suffix, tags + ["O"] * len(suffix)
    return words, tags


def urgency(ex, rng):
    """Adds the urgency task: markers already in the command decide it; otherwise about a fifth
    of the commands get an urgent and a fifth a relaxed marker (prefix or suffix, tagged O)."""
    text = " ".join(ex["words"])
    def has(markers):
        return any(text.endswith(" " + m) or text.startswith(m + " ") or text == m
                   for m in markers["suffix"] + markers["prefix"])
    if has(URGENT):
        return "urgent"
    if has(RELAXED):
        return "relaxed"
    r = rng.random()
    if r >= 0.4:
        return "normal"
    markers, label = (URGENT, "urgent") if r < 0.2 else (RELAXED, "relaxed")
    if rng.random() < 0.3:
        words = rng.choice(markers["prefix"]).split()
        ex["words"], ex["tags"] = words + ex["words"], ["O"] * len(words) + ex["tags"]
    else:
        words = rng.choice(markers["suffix"]).split()
        ex["words"], ex["tags"] = ex["words"] + words, ex["tags"] + ["O"] * len(words)
    return label


def generate(seed):
    """Unique examples, intents drawn uniformly, split per intent so every split has every intent."""
    rng = random.Random(seed)
    total = sum(SIZES.values())
    by_intent = {}
    for intent, template, weight in TEMPLATES:
        by_intent.setdefault(intent, []).append((template, weight))
    intents = sorted(by_intent)
    seen, pools = set(), {i: [] for i in intents}
    attempts = 0
    while len(seen) < total:
        attempts += 1
        if attempts > 100 * total:
            raise SystemExit("templates too narrow for the requested size")
        intent = rng.choice(intents)
        templates = by_intent[intent]
        template = rng.choices([t for t, _ in templates], weights=[w for _, w in templates])[0]
        words, tags = politeness(*expand(template, rng), rng)
        key = " ".join(words)
        if key in seen:
            continue
        seen.add(key)
        pools[intent].append({"words": words, "tags": tags, "intent": intent})
    splits = {name: [] for name in SIZES}
    for intent in intents:
        pool = pools[intent]
        n_valid = round(len(pool) * SIZES["valid"] / total)
        n_test = round(len(pool) * SIZES["test"] / total)
        splits["valid"] += pool[:n_valid]
        splits["test"] += pool[n_valid:n_valid + n_test]
        splits["train"] += pool[n_valid + n_test:]
    for examples in splits.values():
        rng.shuffle(examples)
    # Urgency on its own random stream, so the commands and their split stay as without it.
    urng = random.Random(seed + URGENCY_SEED_OFFSET)
    for name in SIZES:
        for ex in splits[name]:
            ex["urgency"] = urgency(ex, urng)
    return splits


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    args = parser.parse_args()
    for name, examples in generate(args.seed).items():
        path = os.path.join(args.out, name + ".jsonl")
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            for ex in examples:
                assert len(ex["words"]) == len(ex["tags"]), ex
                f.write(json.dumps(ex, ensure_ascii=False) + "\n")
        print(f"{path}: {len(examples)} examples")


if __name__ == "__main__":
    main()
