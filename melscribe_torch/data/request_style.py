"""Caption sentences made more like listeners' requests: worded as requests, missing a descriptor.

The training requests are caption sentences, statements about a song; listeners write
requests. The paper leaves this gap open ("we could rephrase each sentence in train as a
request, this step is costly") and its MC_reco test set asks how much it costs. This module
closes part of it without a language model: a rule puts a request's lead-in ("I'm looking
for", "Can you recommend") in front of the sentence, turning its subject into the object
of the request where the sentence has one ("This upbeat pop song features ..." -> "... an
upbeat pop song that features ...") and using "a song where ..." otherwise. The wording
rule drops nothing from the sentence, so the descriptors it names stay relevant.

Requests also leave things out: the paper's manual check of its rephrased test set (MC_reco)
found that rephrasing "sometimes omitted initial descriptors". :func:`without_descriptor`
cuts one descriptor the sentence names out of it; the descriptor set sampled afterwards then
holds it only as a descriptor the request does not name.

Two disjoint sets of lead-ins: training requests get :data:`TRAINING_LEADS`; validation
requests get :data:`VALIDATION_LEADS`, so validation measures requests worded in ways the
model never saw, not the memorised lead-ins.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from .sampling import stable_seed

# A lead-in ending in "?" makes a question.
TRAINING_LEADS = (
    "I'm looking for", "Can you recommend?", "Recommend", "Please find", "I want to hear",
    "Suggest", "Play me", "Could you suggest?", "I'd love to listen to", "Any recommendations for?",
    "Put on", "I'd like",
)
VALIDATION_LEADS = (
    "Find me", "I need", "Give me", "Do you know?", "Could you play?", "I'm in the mood for",
    "Search for", "Show me",
)

_NOUNS = (
    "song|track|tune|piece|recording|music|instrumental|clip|composition|melody|audio|cover|"
    "performance|ballad|number|rendition|arrangement|soundtrack|anthem|jam|beat"
)
# "This is a ...", "This is an ...": the rest is already a noun phrase.
_THIS_IS = re.compile(r"^(?:this|it)\s+is\s+(an?\s+.+)$", re.IGNORECASE | re.DOTALL)
# "This upbeat pop song features ...", "The low quality recording is ...": at most five words
# before the noun, then a verb in the third person ("features", "is", "has") or "with".
_SUBJECT = re.compile(
    rf"^(?:this|the|an?)\s+((?:[\w&/'-]+\s+){{0,5}}?)({_NOUNS})\s+((?:[a-z]+s|with|featuring)\b.*)$",
    re.IGNORECASE | re.DOTALL,
)
# Sentences that already address the listener ("Get ready to ...") are quoted, not rewritten.
_IMPERATIVES = {
    "get", "experience", "immerse", "transport", "listen", "enjoy", "feel", "let", "prepare",
    "discover", "step", "dive", "sit", "take", "relax", "escape", "join", "lose", "indulge",
}


def _article(phrase: str) -> str:
    return "an" if phrase[:1].lower() in "aeiou" else "a"


def _lower_first(text: str) -> str:
    """Lowercase the first letter unless the first word looks like an acronym or "I"."""
    first = text.split(" ", 1)[0]
    if first == "I" or first.startswith("I'") or (len(first) > 1 and first[:2].isupper()):
        return text
    return text[:1].lower() + text[1:]


def as_request(sentence: str, lead: str, noun: str = "song") -> str:
    """``sentence`` as a request that starts with ``lead`` (a lead-in ending in "?" asks a question).

    >>> as_request("This upbeat pop song features steel drums.", "I'm looking for")
    "I'm looking for an upbeat pop song that features steel drums."
    >>> as_request("The tempo is fast.", "Can you recommend?")
    'Can you recommend a song where the tempo is fast?'
    """
    question = lead.endswith("?")
    lead = lead.rstrip("?")
    body = sentence.strip().rstrip(".!?").strip()
    if not body:
        return sentence
    if match := _THIS_IS.match(body):
        phrase = _lower_first(match.group(1))
    elif match := _SUBJECT.match(body):
        modifiers, head, rest = match.groups()
        noun_phrase = _lower_first(f"{modifiers}{head}")
        joiner = " " if rest.split(" ", 1)[0] in ("with", "featuring") else " that "
        # Music and audio take no article ("music that is instrumental").
        article = "" if head.lower() in ("music", "audio") else f"{_article(noun_phrase)} "
        phrase = f"{article}{noun_phrase}{joiner}{rest}"
    elif body.split(" ", 1)[0].lower() in _IMPERATIVES:
        phrase = f"{_article(noun)} {noun} like this: {body}"
    else:
        phrase = f"{_article(noun)} {noun} where {_lower_first(body)}"
    return f"{lead} {phrase}{'?' if question else '.'}"


def _request_rng(purpose: str, seed: int, qid: str) -> random.Random:
    """A generator seeded per request id (draws do not depend on the other requests) and purpose
    (omitting and restyling draw independently)."""
    return random.Random(stable_seed(f"{purpose}:{seed}:{qid}"))


def without_descriptor(request: str, descriptor: str) -> str:
    """``request`` with the first mention of ``descriptor`` cut out, spaces and commas tidied.

    >>> without_descriptor("A sad ballad with mellow piano and soft vocals.", "mellow piano")
    'A sad ballad with and soft vocals.'
    """
    start = request.find(descriptor)
    if start < 0:
        return request
    text = request[:start] + request[start + len(descriptor) :]
    text = re.sub(r"\s+([,.!?])", r"\1", re.sub(r"\s{2,}", " ", text))
    return re.sub(r",\s*,", ",", text).strip()


class RequestRewriter:
    """Makes caption sentences more like listeners' requests, before descriptor sets are sampled.

    Called by :func:`~melscribe_torch.data.sampling.build_sampled_set` on each sentence with the
    record's descriptors. A share ``omit_fraction`` of sentences lose one descriptor they name,
    then a share ``restyle_fraction`` is worded as a request. Descriptor sets are then sampled
    from the rewritten sentence, as the paper's MC_reco sets are from its rephrased requests:
    an omitted descriptor is no longer a match.

    The draws are seeded per request id and purpose, so they do not depend on the order of the
    requests, on which other requests are present, or on each other.
    """

    def __init__(
        self,
        omit_fraction: float,
        restyle_fraction: float,
        *,
        seed: int,
        leads: Sequence[str] = TRAINING_LEADS,
    ) -> None:
        for name, value in (
            ("omit_descriptor_fraction", omit_fraction),
            ("request_style_fraction", restyle_fraction),
        ):
            if not 0 <= value <= 1:
                raise ValueError(f"data.{name} must be in [0, 1], got {value}")
        if restyle_fraction > 0 and not leads:
            raise ValueError("no lead-ins to word requests with")
        self.omit_fraction, self.restyle_fraction = omit_fraction, restyle_fraction
        self.seed, self.leads = seed, tuple(leads)

    def __call__(self, qid: str, sentence: str, descriptors: Sequence[str]) -> str:
        rng = _request_rng("omit", self.seed, qid)
        if rng.random() < self.omit_fraction:
            named = sorted({d for d in descriptors if d.strip() and d in sentence})
            if named:
                sentence = without_descriptor(sentence, rng.choice(named))
        rng = _request_rng("restyle", self.seed, qid)
        if rng.random() < self.restyle_fraction:
            sentence = as_request(sentence, rng.choice(self.leads), rng.choice(("song", "track")))
        return sentence
