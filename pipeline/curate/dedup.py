"""Duplicates and contamination: the set-level curation filters.

* ``exact_dedup``: identical questions after normalisation (case, spacing,
  punctuation, ``$`` delimiters); the first occurrence stays.
* ``near_dedup``: MinHash signatures over word shingles with an LSH index
  (``datasketch``), so each question is compared with its candidates only and
  the cost grows linearly with the number of rows.
* ``decontaminate``: a question is contaminated when it shares a word n-gram
  with an evaluation problem, equals one after normalisation, or is a near
  duplicate of one (MinHash, its own threshold); reported per evaluation set.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np

from pipeline.curate.filters import register
from pipeline.curate.sources import Record

_TOKEN = re.compile(r"\d+(?:\.\d+)?|[^\W\d_]+|[+\-*/^=<>!|]")


def tokens(text: str) -> list[str]:
    """Words, numbers and the operators that change a problem (``x^100`` vs
    ``x^-100``, ``-5\\sqrt{15}`` vs ``5\\sqrt{15}``); case, spacing, ``$`` and
    other punctuation are not kept."""
    text = text.lower().replace("\\left", "").replace("\\right", "")
    return _TOKEN.findall(text)


def normal_text(text: str) -> str:
    """The tokens joined by single spaces: the key exact duplicates share."""
    return " ".join(tokens(text))


def shingles(text: str, n: int) -> list[str]:
    """Token n-grams (the whole text when it is shorter)."""
    words = tokens(text)
    if len(words) <= n:
        return [" ".join(words)] if words else []
    return [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]


def _minhashes(texts: Sequence[str], n: int, num_perm: int, seed: int) -> list:
    from datasketch import MinHash

    sets = [[s.encode("utf-8") for s in shingles(t, n)] or [b""] for t in texts]
    return MinHash.bulk(sets, num_perm=num_perm, seed=seed)


@register("exact_dedup")
def exact_dedup(records, ctx):
    """Drop questions identical to an earlier one after normalisation."""
    first: dict[str, str] = {}
    out = []
    for r in records:
        key = normal_text(r.question)
        out.append(f"duplicate of {first[key]}" if key in first else None)
        first.setdefault(key, r.uid)
        ctx.tick(1)
    return out


_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def numbers(text: str) -> tuple[str, ...]:
    """The numbers a question mentions, in order: templated problems that differ only
    in their numbers are different problems."""
    return tuple(_NUMBER.findall(text))


def _answer_key(r: Record) -> str:
    return re.sub(r"\s+", "", r.answer)


@register("near_dedup")
def near_dedup(records, ctx, threshold: float = 0.8, shingle: int = 3, num_perm: int = 128, same_numbers: bool = True):
    """Drop questions whose word-``shingle`` Jaccard similarity with an earlier kept
    question is at least ``threshold`` (MinHash estimate, ``num_perm`` permutations);
    with ``same_numbers``, only when both mention the same numbers (``convert -pi/6
    to degrees`` and ``convert 5pi/4 to degrees`` both stay). Candidates come from
    an LSH index (per group of questions with the same numbers, when that applies),
    so templated data does not make the search quadratic."""
    from datasketch import MinHashLSH

    hashes = _minhashes([r.question for r in records], shingle, num_perm, ctx.seed)
    groups: dict[tuple, list[int]] = {}  # the kept questions, by the numbers they mention
    indexes: dict[tuple, MinHashLSH] = {}  # an LSH index for groups too big to scan
    out = []
    for i, (r, m) in enumerate(zip(records, hashes)):
        key = numbers(r.question) if same_numbers else ()
        kept = groups.setdefault(key, [])
        if key in indexes:
            cands = indexes[key].query(m)
        else:
            cands = kept
        best = None
        for cand in cands:
            if _answer_key(records[cand]) != _answer_key(r):  # "how many large ..." vs "how many small ...": 15 vs 1
                continue
            j = m.jaccard(hashes[cand])
            if j >= threshold and (best is None or j > best[1]):
                best = (cand, j)
        if best is not None:
            out.append(f"near-duplicate of {records[best[0]].uid} (Jaccard {best[1]:.2f})")
        else:
            kept.append(i)
            if key in indexes:
                indexes[key].insert(i, m)
            elif len(kept) > 32:  # a big group: index it
                indexes[key] = lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
                for k in kept:
                    lsh.insert(k, hashes[k])
            out.append(None)
        ctx.tick(1)
    return out


def _hash(grams: Iterable[str]) -> np.ndarray:
    """64-bit hashes of n-grams (stable across runs, unlike ``hash``)."""
    import hashlib

    return np.array(
        [int.from_bytes(hashlib.blake2b(g.encode(), digest_size=8).digest(), "little") for g in grams], dtype=np.uint64
    )


@register("decontaminate")
def decontaminate(records, ctx, ngram: int = 13, near_threshold: float = 0.7, shingle: int = 3, num_perm: int = 128):
    """Drop questions that overlap an evaluation problem: a shared ``ngram``-gram of
    tokens (n-grams that two or more evaluation problems share are boilerplate and
    do not count), an identical normalised question, or a MinHash near duplicate
    at ``near_threshold``. The reason names the evaluation set and problem."""
    from datasketch import MinHashLSH

    evals = ctx.eval_problems
    if not evals:
        ctx.tick(len(records))
        return [None] * len(records)
    owner: dict[int, int] = {}  # n-gram hash -> eval problem index
    shared: set[int] = set()  # n-grams of two or more eval problems: boilerplate ("m and n are relatively prime ...")
    exact: dict[str, int] = {}
    for k, p in enumerate(evals):
        exact.setdefault(normal_text(p.question), k)
        for h in set(_hash(shingles(p.question, ngram)).tolist()):
            if h in owner and owner[h] != k:
                shared.add(h)
            owner.setdefault(h, k)
    for h in shared:
        del owner[h]
    # recall first: a missed contamination costs more than a second look at a candidate
    lsh = MinHashLSH(threshold=near_threshold, num_perm=num_perm, weights=(0.1, 0.9))
    eval_hashes = _minhashes([p.question for p in evals], shingle, num_perm, ctx.seed)
    for k, m in enumerate(eval_hashes):
        lsh.insert(k, m)
    hashes = _minhashes([r.question for r in records], shingle, num_perm, ctx.seed)
    out = []
    for r, m in zip(records, hashes):
        hit, how = exact.get(normal_text(r.question)), "identical"
        if hit is None:
            grams = shingles(r.question, ngram)
            words = len(normal_text(r.question).split())
            if words >= ngram:  # a shorter question only matches whole (identical, above) or near
                hit = next((owner[h] for h in _hash(grams).tolist() if h in owner), None)
                how = f"{ngram}-gram overlap"
        if hit is None:
            scored = [(m.jaccard(eval_hashes[k]), k) for k in lsh.query(m)]
            scored = [s for s in scored if s[0] >= near_threshold]
            if scored:
                j, hit = max(scored)
                how = f"near duplicate, Jaccard {j:.2f}"
        if hit is not None:
            p = evals[hit]
            r.meta["contaminated_by"] = p.benchmark
            out.append(f"{p.benchmark}:{p.id} ({how})")
        else:
            out.append(None)
        ctx.tick(1)
    return out
