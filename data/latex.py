"""Reading ``\\boxed{...}`` groups out of LaTeX text: the reference in a dataset's worked
solution (MATH, Minerva) as much as the answer in a model response. Pure string work,
linear in the text's length (no backtracking regexes, no recursion), so hostile model
output cannot make it slow. The verifier (``rewards.extract``) decides which boxes count.
"""

from __future__ import annotations

import re

# Box commands, longest first so that ``\boxed`` is not mistaken for a prefix of another.
_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*")


def _read_braced(text: str, start: int) -> tuple[str, int] | None:
    """Read a ``{...}`` group starting at ``text[start] == '{'``; return (content, end).

    Iterative, counts nesting, honours ``\\{`` / ``\\}`` escapes; a ``\\}`` that closes no
    ``\\{`` is a stray backslash before the closing brace (``\\boxed{185\\}``). ``None`` when
    the group is never closed (an unterminated ``\\boxed{`` yields no answer).
    """
    depth = 0
    escaped_open = 0  # \{ not yet closed by a \}
    i = start
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n and text[i + 1] in "{}":
            if text[i + 1] == "{":
                escaped_open += 1
            elif escaped_open:
                escaped_open -= 1
            else:
                i += 1  # the brace after a stray backslash counts
                continue
            i += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1 : i], i + 1
        i += 1
    return None


def boxed_spans(text: str) -> list[tuple[str, int, int]]:
    """Every ``\\boxed{...}`` / ``\\fbox{...}``: (content, start, end), outermost boxes only,
    in order. ``\\boxed 5`` (no braces, a single token) is accepted too, as LaTeX does."""
    out: list[tuple[str, int, int]] = []
    pos = 0
    while True:
        m = _BOX_RE.search(text, pos)
        if m is None:
            return out
        j = m.end()
        if j < len(text) and text[j] == "{":
            got = _read_braced(text, j)
            if got is None:  # unterminated: nothing after this point can be an answer
                return out
            content, pos = got
            out.append((content.strip(), m.start(), pos))
        else:
            tok = re.match(r"[^\s$\\]+", text[j:])
            if tok and m.group(0).endswith((" ", "\t")):
                pos = j + tok.end()
                out.append((tok.group(0).rstrip(".,;"), m.start(), pos))
            else:
                pos = j


def boxed_answers(text: str) -> list[str]:
    """Every boxed answer's content, outermost boxes only, in order."""
    return [c for c, _, _ in boxed_spans(text)]
