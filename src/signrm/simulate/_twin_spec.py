"""Fixed design of the twin panel: taste axes (anchor texts), response styles, persona tastes.

Everything here is plain data and small deterministic functions, shared by the build script
(``scripts/build_twin_panel.py``) and the loader. Changing anything here changes the shipped panel:
rebuild it and bump ``PANEL_VERSION``.
"""

from __future__ import annotations

import numpy as np

PANEL_VERSION = "1"
BUILD_SEED = 20251027

#: Taste axes: name -> (texts of the positive pole, texts of the negative pole).
#: axis_k = normalised mean embedding of the positive anchors minus that of the negative ones.
AXES: dict[str, tuple[list[str], list[str]]] = {
    "detailed_vs_concise": (
        [
            "There are several things to consider here. First, the background: it developed over "
            "many years. Second, the main factors, each of which matters in its own way. Finally, "
            "a few practical tips and examples to make it concrete.",
            "Let me explain this step by step, with the reasons behind each step, some examples, "
            "and the common pitfalls you should watch out for along the way.",
            "The full answer has a few parts, so I will go through each of them in detail and add "
            "some context about why it works this way.",
            "In more detail: the answer depends on several conditions, which I describe one by "
            "one below, together with what to do in each case.",
        ],
        ["Yes.", "No.", "It's 42.", "Paris.", "Try restarting it.", "Sure, that works."],
    ),
    "formal_vs_casual": (
        [
            "Certainly. Please find the requested information below.",
            "I would be pleased to assist you with this matter.",
            "Kindly note that the procedure requires prior authorisation.",
            "Thank you for your enquiry. The answer is as follows.",
            "Please let me know should you require further assistance.",
        ],
        [
            "lol yeah totally, just do it",
            "omg no way, that's awesome haha",
            "yep, gonna be fine, no worries dude",
            "eh, kinda depends tbh",
            "haha sure thing, buddy",
        ],
    ),
    "cautious_vs_bold": (
        [
            "I might be wrong, but it could possibly be this. Please double-check.",
            "I'm not entirely sure; it may depend on the situation.",
            "It is hard to say for certain, so treat this as a tentative answer.",
            "Perhaps, although there is some uncertainty about it.",
        ],
        [
            "Definitely. There is no doubt about it.",
            "Absolutely, that is exactly right, trust me.",
            "Without question, this is the answer.",
            "It is 100% certain. Just do it.",
        ],
    ),
    "technical_vs_plain": (
        [
            "The kernel allocates memory pages via the virtual memory subsystem and the MMU.",
            "Use a hash map with O(1) amortised lookups and handle collisions by chaining.",
            "The algorithm's asymptotic complexity is O(n log n) in the comparison model.",
            "Configure the TCP socket buffer size and check the DNS resolver settings.",
        ],
        [
            "It's like a big box that keeps your things safe.",
            "Think of it as a helper that remembers stuff for you.",
            "Just press the big button and wait a little.",
            "It's a simple thing, a bit like cooking a meal.",
        ],
    ),
    "warm_vs_blunt": (
        [
            "What a lovely question! I hope this helps, and have a wonderful day.",
            "I'm so glad you asked, and I'm always happy to help you.",
            "That sounds hard, I'm sorry. You're doing great, take care of yourself.",
            "Thank you so much for sharing this with me, it means a lot.",
        ],
        [
            "That's wrong. Next question.",
            "Figure it out yourself.",
            "Obviously not. That's it.",
            "Irrelevant. Move on.",
        ],
    ),
    "playful_vs_serious": (
        [
            "Ha! Why did the robot cross the road? To get to the other byte!",
            "Ooh, fun one! Let me juggle some jokes while I think.",
            "I'd tell you, but then I'd have to tickle you. Just kidding!",
            "Knock knock. Who's there? The answer, with a wink.",
        ],
        [
            "This is a serious matter and deserves a careful, sober answer.",
            "The facts are as follows, without embellishment.",
            "This question concerns an important issue that requires attention.",
            "Here is a precise, factual answer.",
        ],
    ),
}
AXIS_NAMES: list[str] = list(AXES)

#: Population-average taste on each axis (positive = the first pole), and the per-axis spread of
#: individual tastes. Chosen a priori as plausible (people agree more on warmth and caution than on
#: detail, formality and humour); documented in docs/simulation.md, not tuned on any estimator.
TASTE_MEAN = np.array([0.5, 0.2, 0.3, -0.2, 0.5, 0.0])
TASTE_SPREAD = np.array([0.8, 0.8, 0.5, 0.7, 0.5, 0.9])
#: Log-sd of persona confidence (lognormal, normalised to mean 1).
CONFIDENCE_SIGMA = 0.8
#: A persona of confidence 1 has utility differences with this standard deviation (logit units) on
#: random pairs of the default alternatives: it picks its preferred alternative ~79 % of the time.
UNIT_MARGIN_SD = 2.0
N_PERSONAS = 200
CANDIDATES_PER_PROMPT = 10
VARIANTS_PER_ANSWER = 6

# Response styles: an opening, a closing and an optional shortening, combined at random.
OPENINGS = {
    "": "",
    "warm": "Great question! ",
    "formal": "Certainly. ",
    "casual": "Oh, ",
    "cautious": "I might be wrong, but ",
    "bold": "Definitely: ",
    "playful": "Ha, fun one! ",
}
CLOSINGS = {
    "": "",
    "detailed": (
        " To add a bit more context, the full picture depends on several factors, and it is worth "
        "looking into the details of your situation."
    ),
    "warm": " I hope that helps, have a lovely day!",
    "formal": " Please let me know should you require further assistance.",
    "cautious": " You may want to double-check this with another source.",
    "bold": " No doubt about it.",
    "technical": " Technically, this follows from how the underlying system is specified.",
    "casual": " lol",
    "blunt": " That's it.",
}


def _shorten(text: str, max_words: int = 10) -> str:
    """First sentence, at most ``max_words`` words."""
    first = text.strip()
    for sep in (". ", "! ", "? "):
        if sep in first:
            first = first.split(sep)[0] + sep.strip()
            break
    words = first.split()
    if len(words) > max_words:
        first = " ".join(words[:max_words]).rstrip(",;:") + "."
    return first


def styled_variants(
    answer: str, n_variants: int, rng: np.random.Generator
) -> list[tuple[str, str]]:
    """``n_variants`` styled versions of ``answer``: (text, style tag); the first is the original."""
    out = [(answer, "original")]
    open_keys, close_keys = list(OPENINGS), list(CLOSINGS)
    seen = {answer}
    tries = 0
    while len(out) < n_variants and tries < 50 * n_variants:
        tries += 1
        o = open_keys[rng.integers(len(open_keys))] if rng.random() < 0.6 else ""
        c = close_keys[rng.integers(len(close_keys))] if rng.random() < 0.6 else ""
        short = rng.random() < 0.3
        body = _shorten(answer) if short else answer
        if o and o.endswith((", ", ": ")) and body[:1].isupper() and body[1:2].islower():
            body = body[0].lower() + body[1:]
        text = f"{OPENINGS[o]}{body}{CLOSINGS[c]}".strip()
        if text in seen:
            continue
        seen.add(text)
        tag = "+".join(t for t in (o and f"open:{o}", c and f"close:{c}", short and "short") if t)
        out.append((text, tag or "original"))
    return out
