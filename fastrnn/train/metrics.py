"""Evaluation metrics: cross-entropy, bits per character, corpus BLEU-1..4.

BLEU is ours rather than a dependency: it is 40 lines of counting, it must work on word lists (caption
word indices decoded by ``fastrnn.coco.decode_captions``) without any tokenizer of its own, and it is
tested against the values published with the BLEU paper's examples (Papineni et al., 2002) and
NLTK's documentation. sacrebleu scores detokenized strings with its own tokenizer (the right choice for
machine translation, not for pre-tokenized captions); NLTK would add a large dependency for one function.
"""

import math
from collections import Counter

import numpy as np

__all__ = ["cross_entropy", "bits_per_char", "corpus_bleu", "modified_precision", "brevity_penalty"]


def cross_entropy(scores, y):
    """Mean softmax cross-entropy (nats) of scores (N, C) against classes y (N,), computed stably."""
    scores = np.asarray(scores, dtype=np.float64)
    shifted = scores - scores.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(y)), y].mean())


def bits_per_char(nats_per_char):
    """Converts a mean loss in nats per character to bits per character."""
    return nats_per_char / math.log(2)


def _ngrams(tokens, n):
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def modified_precision(references, hypothesis, n):
    """BLEU's clipped n-gram counts for one hypothesis: ``(matches, total)``.

    Each hypothesis n-gram counts at most as often as it occurs in the one reference that has it
    most often ("the the the ..." cannot score by repeating a common word).
    """
    counts = _ngrams(hypothesis, n)
    most = Counter()
    for reference in references:
        for gram, c in _ngrams(reference, n).items():
            if gram in counts and c > most[gram]:
                most[gram] = c
    matches = sum(min(c, most[gram]) for gram, c in counts.items())
    return matches, sum(counts.values())


def brevity_penalty(reference_length, hypothesis_length):
    """1 when the hypotheses are at least as long as the references, exp(1 - r/c) otherwise."""
    if hypothesis_length == 0:
        return 0.0
    if hypothesis_length >= reference_length:
        return 1.0
    return math.exp(1.0 - reference_length / hypothesis_length)


def _closest_length(references, length):
    """The reference length closest to ``length``; on a tie the shorter one."""
    return min((len(r) for r in references), key=lambda r: (abs(r - length), r))


def corpus_bleu(references, hypotheses, max_n=4):
    """Corpus BLEU (Papineni et al., 2002): clipped n-gram counts summed over the corpus, uniform weights,
    the brevity penalty from the summed closest reference lengths; no smoothing.

    ``references``: for each hypothesis, a list of reference token lists; ``hypotheses``: token lists.
    Returns ``{"bleu1": ..., ..., "bleu<max_n>": ..., "precisions": [p1, ...], "brevity_penalty": bp,
    "hypothesis_length": c, "reference_length": r}``; BLEU-n is the geometric mean of p1..pn times bp
    (0 when some pk is 0), on a 0..1 scale.
    """
    if len(references) != len(hypotheses):
        raise ValueError(f"references and hypotheses must have the same length, got {len(references)} and "
                         f"{len(hypotheses)}")
    matches, totals = [0] * max_n, [0] * max_n
    hyp_len = ref_len = 0
    for refs, hyp in zip(references, hypotheses):
        refs, hyp = [list(r) for r in refs], list(hyp)
        if not refs:
            raise ValueError("every hypothesis needs at least one reference")
        for n in range(1, max_n + 1):
            m, t = modified_precision(refs, hyp, n)
            matches[n - 1] += m
            totals[n - 1] += t
        hyp_len += len(hyp)
        ref_len += _closest_length(refs, len(hyp))
    precisions = [m / t if t else 0.0 for m, t in zip(matches, totals)]
    bp = brevity_penalty(ref_len, hyp_len)
    result = {}
    log_sum = 0.0
    for n in range(1, max_n + 1):
        p = precisions[n - 1]
        log_sum = log_sum + math.log(p) if p > 0 and log_sum is not None else None
        result[f"bleu{n}"] = bp * math.exp(log_sum / n) if log_sum is not None else 0.0
    result.update(precisions=precisions, brevity_penalty=bp, hypothesis_length=hyp_len, reference_length=ref_len)
    return result
