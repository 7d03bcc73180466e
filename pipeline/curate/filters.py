"""The curation filters: named units, each deciding per record whether it stays.

A filter is ``fn(records, ctx, **params) -> list[str | None]``: for each record a
drop reason (a short detail such as ``"zh"`` or ``"duplicate of asdiv:12"``) or
``None`` to keep it. A filter may rewrite a record it keeps (normalisation,
multiple choice reformulated as open-ended, the answer canonicalised). They run
in the order the config lists them (``filters:``), each on the survivors of the
ones before; :data:`DEFAULT_ORDER` is the documented default. Cheap text filters
come first, the verifier's checks next, then the set-level ones (duplicates,
contamination) and the expensive solve rates last.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from data.registry import Registry
from pipeline.curate.sources import Record, split_lettered

FilterFn = Callable[..., list]
FILTERS = Registry("filter", inputs=2)  # name -> fn(records, ctx, **params) -> [drop reason or None]

DEFAULT_ORDER = [
    "normalize",
    "language",
    "hyperlink",
    "subject",
    "multiple_choice",
    "standalone",
    "yes_no",
    "multi_part",
    "proof",
    "closed_form",
    "multi_answer",
    "answer_key",
    "self_verify",
    "exact_dedup",
    "near_dedup",
    "decontaminate",
]


register = FILTERS.register


@dataclass
class Context:
    """What filters may use besides the records."""

    verifier: object = None  # rewards.verifier.Verifier
    eval_problems: list = field(default_factory=list)  # data.benchmarks.EvalProblem, for decontamination
    tick: Callable[[int], None] = lambda n: None  # progress
    out: object = None  # the output directory (for resumable work)
    seed: int = 0


def _each(records: Sequence[Record], ctx: Context, fn: Callable[[Record], str | None]) -> list[str | None]:
    out = []
    for r in records:
        out.append(fn(r))
        ctx.tick(1)
    return out


# ----------------------------------------------------------------- text filters

_MATH_SPAN = re.compile(r"\$\$.*?\$\$|\$[^$]*\$|\\\(.*?\\\)|\\\[.*?\\\]", re.S)
_HSPACE = re.compile(r"[ \t\u00a0\u3000]+")


def clean_question(text: str) -> str:
    """Unicode NFC, no control characters, runs of spaces collapsed, at most one
    blank line in a row, ``$$ $$`` display math kept as is."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch)[0] != "C")
    text = _HSPACE.sub(" ", text)
    text = re.sub(r" *\n *", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


# LaTeX whose backslash became a JSON escape somewhere upstream: "\frac" read as form feed + "rac",
# "\neq" as newline + "eq". Form feed and backspace never belong in a problem; tab, carriage return
# and newline only before the command names listed.
_MANGLED = [
    (re.compile("\x0c(?=[a-z])"), "\\f"),
    (re.compile("\x08(?=[a-z])"), "\\b"),
    (re.compile("\t(?=(?:imes|heta|ext\\{|an\\b|au\\b|frac|riangle|op\\b|ilde))"), "\\t"),
    (re.compile("\r(?=(?:ight|ho\\b|angle|m\\{|ceil|floor))"), "\\r"),
    (re.compile("\n(?=(?:eq\\b|abla\\b|eg\\b|u\\b|ot\\b|ewline))"), "\\n"),
]


def repair_escapes(text: str) -> str:
    """Put back the backslash of LaTeX commands that a JSON escape swallowed."""
    if not any(c in text for c in "\x0c\x08\t\r\n"):
        return text
    for rx, rep in _MANGLED:
        text = rx.sub(rep.replace("\\", "\\\\"), text)
    return text


@register("normalize")
def normalize(records, ctx, min_question_chars: int = 10, max_question_chars: int = 4000):
    """Repair LaTeX escapes that JSON swallowed (``\\x0crac`` -> ``\\frac``), clean
    whitespace and control characters of the question; drop rows with no usable
    answer, or a question shorter/longer than the limits (characters)."""

    def one(r: Record) -> str | None:
        r.question = clean_question(repair_escapes(r.question))
        r.answer = repair_escapes(r.answer).strip()
        if r.meta.get("answer_problem"):
            return r.meta["answer_problem"]
        if not r.answer and not r.correct_option:
            return "no answer"
        if len(r.question) < min_question_chars:
            return "question missing or too short"
        if len(r.question) > max_question_chars:
            return f"question longer than {max_question_chars} characters"
        return None

    return _each(records, ctx, one)


_SCRIPTS = [  # (language label, unicode ranges) for scripts langid needs no help with; not Greek: alpha, beta are math
    ("zh", r"\u4e00-\u9fff\u3400-\u4dbf"),
    ("ja", r"\u3040-\u30ff"),
    ("ko", r"\uac00-\ud7af"),
    ("ru", r"\u0400-\u04ff"),
    ("ar", r"\u0600-\u06ff"),
    ("hi", r"\u0900-\u097f"),
]
_identifier = None


def detect_language(text: str, min_letters: int = 20) -> tuple[str, float]:
    """(language code, confidence) of the prose in ``text``, math stripped first.
    Non-Latin scripts are counted directly; Latin prose goes to ``py3langid``.
    Too little prose to tell gives ``("und", 0.0)``."""
    global _identifier
    prose = _MATH_SPAN.sub(" ", text)
    prose = re.sub(r"\\[A-Za-z]+|[\d_^{}\\$]", " ", prose)
    letters = [ch for ch in prose if ch.isalpha()]
    if not letters:
        return "und", 0.0
    latin_words = sum(len(w) for w in re.findall(r"[A-Za-z]{2,}", prose))  # x, y: variables, not prose
    for lang, ranges in _SCRIPTS:
        n = len(re.findall(f"[{ranges}]", prose))
        # a script of its own is decisive: four characters of it, or most of the prose
        if n >= 4 or (n >= 2 and n / (n + latin_words) > 0.3):
            return lang, 1.0
    if len(letters) < min_letters:
        return "und", 0.0
    if _identifier is None:
        from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

        _identifier = LanguageIdentifier.from_modelpath(MODEL_DIR / MODEL_FILE, norm_probs=True)
    lang, p = _identifier.classify(prose)
    return lang, float(p)


@register("language")
def language(records, ctx, allowed: Sequence[str] = ("en",), min_confidence: float = 0.9, min_letters: int = 20):
    """Drop questions whose prose is confidently in another language (math and
    LaTeX are stripped first; too little prose to tell is kept)."""

    def one(r: Record) -> str | None:
        lang, p = detect_language(r.question, min_letters)
        r.meta["language"] = lang
        if lang != "und" and lang not in allowed and p >= min_confidence:
            return lang
        return None

    return _each(records, ctx, one)


_LINK = re.compile(r"https?://|\bwww\.[a-z0-9-]+\.|\]\((?:https?:)?//|\b[a-z0-9-]+\.(?:com|org|net|edu|io)/", re.I)


@register("hyperlink")
def hyperlink(records, ctx):
    """Drop questions that contain a URL (they point at content the model cannot see)."""
    return _each(records, ctx, lambda r: "contains a URL" if _LINK.search(r.question) else None)


@register("subject")
def subject(records, ctx, keep: Sequence[str] = (), drop: Sequence[str] = ()):
    """For sources that map a subject field: keep only subjects containing one of
    ``keep`` (when given) and none of ``drop`` (case-insensitive substrings).
    Rows without a subject pass."""
    keep_l, drop_l = [k.lower() for k in keep], [d.lower() for d in drop]

    def one(r: Record) -> str | None:
        if not r.subject:
            return None
        s = r.subject.lower()
        if any(d in s for d in drop_l) or (keep_l and not any(k in s for k in keep_l)):
            return r.subject
        return None

    return _each(records, ctx, one)


_NEEDS_OPTIONS = re.compile(
    r"which of the following|which one of|of the following|the following (?:is|are|must|could|can|best|statements?)"
    r"|among the (?:following|options|choices|answers)|none of (?:these|the above)|all of the above"
    r"|\b(?:select|choose|pick) (?:the|one|all|an?)\b"
    r"|\bwhich\s+(?:option|choice|answer|statement|graph|table)s?\b|\bin which (?:number|one)\b"
    # "Which quadratic equation has no real solutions?", "Which number could be ...": many right answers,
    # the options pick one ("Which equation represents this circle?" has one answer, up to equivalence)
    r"|\bwhich\b[^.?]*\b(?:could|might|must|has no|have no|is true|are true|satisf\w*|is not|are not|cannot)\b"
    r"|\b(?:could|might) be\b|equivalent to\b"
    # "approximately how many": the options are rounded; the exact result would not verify
    r"|\bclosest to\b|\bapproximat|\bestimate|\bnearest\b(?! (?:whole|integer|tenth|hundredth|thousandth|cent|dollar|percent))",
    re.I,
)


_ASKS = re.compile(
    r"\?|[:=_]\s*$|\(\s*\)\s*$|\b(?:what|how|find|which|calculate|compute|determine|add|subtract|multiply|divide"
    r"|evaluate|solve|simplify|give|express|write|state)\b",
    re.I,
)


def _inline_options(question: str) -> tuple[str, dict[str, str]] | None:
    """Options written into the question: (stem, {letter: text}) or None."""
    opts = split_lettered(question)
    if not opts or len(opts) < 3:
        return None
    start = re.search(r"(?:^|(?<=\s))\(?A\s*[).:．、]", question)
    if start is None:
        return None
    return question[: start.start()].rstrip(), opts


@register("multiple_choice")
def multiple_choice(records, ctx):
    """Multiple choice -> open-ended: when the correct option's text is a closed-form
    answer and the stem stands without the options, the stem becomes the question
    and the option's text the answer; otherwise the row is dropped. Options come
    from the source's options field or are found inline (``A) ... B) ...``)."""
    from rewards.check import looks_like_prose
    from rewards.normalize import clean
    from rewards.normalize import normalize as normalize_answer

    def one(r: Record) -> str | None:
        stem, opts = r.question, r.options
        if not opts:
            inline = _inline_options(r.question)
            if inline:
                stem, opts = inline
        letter = r.correct_option or (normalize_answer(r.answer).letter if r.answer else None)
        if not opts:
            if letter and not r.correct_option:
                return "answer is an option letter but the options are missing"
            return None
        r.meta["multiple_choice"] = True
        if letter and letter in opts:
            content = opts[letter]
        elif r.answer and not normalize_answer(r.answer).letter and not r.correct_option_given:
            content = r.answer  # the source stores the option's text as the answer
        else:
            return "no recognisable correct option"
        if _NEEDS_OPTIONS.search(stem) or not _ASKS.search(stem):  # no question without the options
            return "the stem needs its options"
        content = clean(content)
        if not content or looks_like_prose(normalize_answer(content).text):  # "36 minutes" is a number with a unit
            return "the correct option is not a closed-form answer"
        r.question, r.answer = stem.strip(), content
        r.meta["reformulated"] = "multiple_choice"
        return None

    return _each(records, ctx, one)


# "(Continue from the previous question)", "using your answer to the previous problem"
_PREVIOUS = re.compile(
    r"\bcontinu(?:e|ed|ing)\s+(?:from|with)\b|\b(?:previous|preceding|last|above|prior)\s+(?:question|problem|exercise|part)s?\b"
    r"|\b(?:your|the) (?:answer|result)s? (?:to|from|of|in) (?:the )?(?:previous|preceding|last|above|part|question|problem)"
    r"|\bpart\s*\(?[a-h]\)\s*(?:above|before)",
    re.I,
)
_DET = r"(?:the|this|these|following|given|above|below|accompanying|adjacent|attached)"
# a visual the text must carry: "the figure", "the diagram below", "in the table", "the graph shown", "... shown?".
# Not: a map, a picture or an image as a thing in a word problem ("on this map", "24 pictures", "the image of f"),
# a figure the text builds ("the resulting figure"), "the graph of y = ...", a ball "drawn" from a bin.
_VISUAL = re.compile(
    rf"\b{_DET}\s+(?!resulting\b|same\b|new\b|original\b|whole\b|entire\b)(?:(?:\w+-)?\w+\s+)?"
    rf"(?:figure|fig\.|diagram|illustration)s?\b(?!\s+(?:formed|obtained|made|created|bounded|enclosed)\b)"
    rf"|\b{_DET}\s+(?:following|accompanying|adjacent|attached)\s+(?:picture|image|drawing|map)s?\b"
    rf"|\b(?:figure|fig\.|diagram)\s+\d"
    rf"|\b(?:in|from|use|using|see|by)\s+{_DET}\s+(?:table|chart|graph|plot|grid|spinner)s?\b(?!\s+(?:of|with|for)\b)"
    r"|\bthe\s+(?:table|chart|graph|plot|bar graph|line graph|scatterplot|histogram|dot plot|box plot)s?\s+"
    r"(?:below|above|shown|shows|gives|lists|summari[sz]es|displays|represents|records|contains|at)\b"
    r"|\b(?:shown|pictured|illustrated|depicted)\s*(?:[?.,;:)]|$)"
    r"|\b(?:shown|pictured|illustrated|depicted|drawn|graphed)\s*(?:below|above|here|at (?:the )?(?:right|left)"
    r"|in (?:the )?(?:figure|diagram|graph|table|picture|chart))",
    re.I,
)
# what carries a table or a drawing in text: LaTeX tables and arrays, TikZ/Asymptote, markdown rows
_VISUAL_IN_TEXT = re.compile(
    r"\\begin\{(?:tabular|array|table|tikzpicture)\}|\[asy\]|\\includegraphics|^\s*\|.*\|\s*$", re.M
)
# options named but not in the row ("Which of the following ..." with no options)
_OPTIONS_NAMED = re.compile(
    r"\bwhich (?:one )?of the following\b|\bthe following (?:options|choices|answers|answer choices|statements)\b"
    r"|\b(?:none|all) of the above\b|\b(?:the|these) (?:options|choices|answer choices)\b"
    r"|\b(?:select|choose|pick) (?:the correct|one|all that)\b",
    re.I,
)
# the items themselves follow in the text ("Which of the following matrices are symmetric? $$A=...$$")
_ITEMS_IN_TEXT = re.compile(r"\$\$|\\\[|\\begin\{(?:array|[bpv]?matrix)\}|(?:\$[^$]+\$[^$]*){2,}", re.S)
_LETTERED = re.compile(r"\(\s*[A-K]\s*\)")


@register("standalone")
def standalone(records, ctx):
    """Drop questions that cannot stand alone: they continue a previous question,
    refer to a figure, diagram, graph or table the row does not carry (a LaTeX
    ``tabular``/``array``, Asymptote or markdown table in the text counts as
    carried), or name options the row does not have ("Which of the following
    ..." with none given; rows with options are the multiple_choice filter's)."""

    def one(r: Record) -> str | None:
        q = r.question
        if _PREVIOUS.search(q):
            return "refers to a previous question"
        m = _VISUAL.search(_MATH_SPAN.sub(" ", q))
        if m and not _VISUAL_IN_TEXT.search(q):
            return f"refers to a visual that is not in the text ({m.group(0).strip()[:40]!r})"
        named = None if r.meta.get("multiple_choice") else _OPTIONS_NAMED.search(q)
        if named and (_LETTERED.search(q) or not _ITEMS_IN_TEXT.search(q[named.end() :])):
            return "names options that are not in the row"
        return None

    return _each(records, ctx, one)


_YES_NO_ANSWER = re.compile(r"^(?:\\text\{)?\s*(?:yes|no|true|false|correct|incorrect)\s*\}?\.?$", re.I)
_YES_NO_QUESTION = re.compile(r"^\s*(?:true or false|is it true|determine (?:whether|if)|decide (?:whether|if))", re.I)


@register("yes_no")
def yes_no(records, ctx):
    """Drop yes/no and true/false problems (a coin flip earns half the reward)."""

    def one(r: Record) -> str | None:
        if _YES_NO_ANSWER.match(r.answer.strip().strip("$").strip()):
            return "answer is yes/no or true/false"
        if _YES_NO_QUESTION.search(r.question):
            return "question asks true/false or whether"
        return None

    return _each(records, ctx, one)


_PARTS = [
    re.compile(r"\(a\)[\s\S]*?\(b\)"),
    re.compile(r"\(i\)[\s\S]*?\(ii\)"),
    re.compile(r"(?m)^\s*\(?a[.)]\s[\s\S]*^\s*\(?b[.)]\s"),
    re.compile(r"\bpart \(?[ab1]\)?[:.,\s]", re.I),
]
# "(a) 3 (b) 4", "part", "x=1; y=2", or several formulas on separate lines
_ANSWER_PARTS = re.compile(r"\(a\)|\(b\)|\(i\)|\(ii\)|\bpart\b|;|\$\s*\n\s*\$", re.I)


_QUOTED = re.compile(r"\"[^\"]{0,300}\"|“[^”]{0,300}”")  # a question quoted inside the problem is not asked
_QUESTION_MARK = re.compile(r"(?<![\d+\-*/=×÷(]\s)(?<![\d+\-*/=×÷(])\?(?!\s*[=+\-*/×÷)])")  # not "35 / ? = 7"


@register("multi_part")
def multi_part(records, ctx, max_questions: int = 1):
    """Drop multi-part problems: ``(a) ... (b)`` / ``(i) ... (ii)`` parts, more than
    ``max_questions`` question marks in the prose, or an answer with parts."""

    def one(r: Record) -> str | None:
        if any(p.search(r.question) for p in _PARTS):
            return "question has parts"
        prose = _QUOTED.sub(" ", _MATH_SPAN.sub(" ", r.question))
        asked = len(_QUESTION_MARK.findall(prose))
        if asked > max_questions:
            return f"{asked} questions"
        if _ANSWER_PARTS.search(r.answer):
            return "answer has parts"
        return None

    return _each(records, ctx, one)


# "prove/show/verify that", "prove", "a proof"; "explain why" opening a sentence (not "if the limit
# does not exist, explain why", whose answer is still the limit); "on show that day" is no proof
_PROOF = re.compile(
    r"(?<!\bon )(?<!\bthe )(?<!\ba )\b(?:prove|show|demonstrate|verify|justify)\s+(?:that|why)\b"
    r"|(?:^|[.?!:]\s+)explain (?:why|how)\b|\bprove\b|\bproof\b",
    re.I,
)


@register("proof")
def proof(records, ctx):
    """Drop proof problems ("prove that", "show that", ...): no single answer to check."""
    return _each(records, ctx, lambda r: "asks for a proof" if _PROOF.search(r.question) else None)


# ----------------------------------------------------------------- the verifier's checks


_ELLIPSIS = re.compile(r"\.\.\.|…|\\[lc]?dots\b")
_ONE_COMMA = re.compile(r"(?<![\d,.])-?\d{1,3},\d{3}(?![\d,])")
_THOUSANDS_ZEROS = re.compile(r"\d,000(?![\d,])")
_SEVERAL_ASKED = re.compile(r"\b(?:each|both|respectively|and how)\b", re.I)


def _thousands_meant(r: Record) -> bool:
    """A comma in the answer is a thousands separator for sure: ``,000`` (no list
    has a 000 item), or the question writes its own numbers so (``143,000 km``)
    and asks for one value (not "the cost of each")."""
    return bool(
        _THOUSANDS_ZEROS.search(r.answer.replace(" ", ""))
        or (_ONE_COMMA.search(r.question) and not _SEVERAL_ASKED.search(r.question))
    )


_CLOCK = re.compile(r"\d{1,2}:\d{2}\s*(?:[ap]\.?\s?m\b|o'?clock)", re.I)
_BARE_TIME = re.compile(r"^\d{1,2}:\d{2}$")
_TIME_WORDS = re.compile(r"\b(?:time|clock|o'clock|[ap]\.m\.|noon|midnight|hours?|minutes?)\b", re.I)


@register("closed_form")
def closed_form(records, ctx, kinds: Sequence[str] = ("number", "expression", "equation", "structure")):
    """Canonicalise each answer through the verifier (``9 (apples)`` -> ``9``,
    ``145.0`` -> ``145``, ``$10-4n$`` -> ``10-4n``) and drop answers that are not
    closed-form: prose, LaTeX the parser cannot read, option letters, empty or
    very long answers, answers with an ellipsis (``0.333...``). ``kinds``: the answer kinds kept (see rewards.check.FORM_*)."""
    forms = ctx.verifier.answer_forms([r.answer for r in records], on_result=lambda i, v: ctx.tick(1))
    out = []
    for r, f in zip(records, forms):
        r.meta["answer_kind"] = f.kind
        if _ELLIPSIS.search(r.answer):  # 0.333... or 1, 2, 4, ...: not the value it stands for
            out.append("answer has an ellipsis")
            continue
        if _ONE_COMMA.search(r.answer.replace(" ", "")) and not _thousands_meant(r):
            # 60,180: sixty thousand, or 60 and 180?
            out.append("ambiguous comma: a thousands separator or two answers")
            continue
        if _CLOCK.search(r.answer) or (_BARE_TIME.match(r.answer.strip("$ ")) and _TIME_WORDS.search(r.question)):
            out.append("answer is a clock time")
            continue
        if f.kind not in kinds:
            out.append(f"answer is {f.kind.replace('_', ' ')}: {f.canonical[:60]}")
            continue
        r.answer = f.canonical
        out.append(None)
    return out


_BRACKETED = re.compile(r"^\s*(?:\(.*\)|\[.*\]|\\\{.*\\\}|\\begin\{.*\\end\{\w+\})\s*$", re.S)
# what asks for one object made of several values: the solutions of an equation, a point, a set
_COLLECTIVE = re.compile(
    r"\b(?:solve|solutions?|roots?|zeros?|all\b|every|values of|intercepts?|factors?|critical (?:points?|numbers?)"
    r"|eigenvalues?|points?|coordinates?|vertex|vertices|ordered|pairs?|triples?|sets?|intervals?|list|vectors?|components?"
    r"|sequence|terms?|digits?|possible|excluded|domain|centroid|cent(?:er|re) of (?:mass|gravity))\b",
    re.I,
)


@register("multi_answer")
def multi_answer(records, ctx):
    """Drop rows whose answer is a bare list of values (``25,100,55``, ``16,32``)
    unless the question asks for one object made of them (the solutions of an
    equation, a point, a set of values), which the verifier compares as a set.
    "Find the second and third angles" or "How old are they?" with a list
    answer is several questions in one; a model's answer to it would be read
    against the list in an order it was never told. Runs after ``closed_form``."""

    from rewards.check import split_top_level

    def one(r: Record) -> str | None:
        a = r.answer.strip()
        items = len(split_top_level(a, ","))
        if items < 2 or _BRACKETED.match(a) or _COLLECTIVE.search(r.question):
            return None
        return f"asks for {items} separate values ({a[:40]})"

    return _each(records, ctx, one)


# "round to", "rounded", "rounding" (not a game's "each round"), "to the nearest", "approximately"
_ROUNDING_ASKED = re.compile(
    r"\bround(?:ed|ing)?\s+(?:\w+\s+){0,3}?(?:to|off|up|down)\b|\brounded\b|\brounding\b|\bnearest\b|\bapproximat|\bestimate|decimal places?|significant (?:figures|digits)"
    r"|\bto (?:one|two|three|\d+) decimal|\bcorrect to\b",
    re.I,
)


def formula_value(text: str):
    """The exact value (a Fraction) of the first side of an arithmetic formula such
    as ASDiv's ``(9+9+22+23+22+22+7)/7=16.3`` or SVAMP's ``( 290.0 / 2.0 )``:
    numbers, ``+ - * / x ×`` and parentheses only, read by Python's parser as a
    syntax tree and folded here (never evaluated as code); ``None`` otherwise.
    Of several steps (ASDiv's ``43+19+16=78; 78-77=1``) the last one."""
    import ast
    from fractions import Fraction

    step = _last_step(text)
    if _DEFINES_UNKNOWN.search(text):  # "x:The number; 2x-12=20": an equation for x, not arithmetic
        return None
    first = _TIMES_X.sub("*", step.split("=")[0].replace("×", "*").replace("÷", "/")).strip()
    if not first or len(first) > 300 or not re.fullmatch(r"[\d.\s+\-*/()]+", first) or "**" in first:
        return None
    try:
        tree = ast.parse(first, mode="eval").body
    except (SyntaxError, ValueError):
        return None

    def fold(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return Fraction(str(node.value))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            v = fold(node.operand)
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
            a, b = fold(node.left), fold(node.right)
            if isinstance(node.op, ast.Add):
                return a + b
            if isinstance(node.op, ast.Sub):
                return a - b
            if isinstance(node.op, ast.Mult):
                return a * b
            if b == 0:
                raise ZeroDivisionError
            return a / b
        raise ValueError("not arithmetic")

    try:
        return fold(tree)
    except (ValueError, ZeroDivisionError, RecursionError):
        return None


def key_contradiction(r: Record, rel_tol: float = 1e-9) -> str | None:
    """Why the source's own arithmetic (``r.solution``) contradicts the answer key,
    or None (it agrees, or there is no arithmetic to read). A division with a
    remainder (ASDiv's ``44/5=8 r4``) agrees with the quotient, one more (rounds
    to beat a score), the remainder (how many are left) and the divisor less the
    remainder (how many more make it even)."""
    from fractions import Fraction

    from rewards.equivalence import _plain_value

    if not r.solution:
        return None
    value = formula_value(r.solution)
    key = _plain_value(r.answer.strip())
    if value is None or key is None:
        return None
    key = key[0]
    if abs(value - key) <= abs(value) * Fraction(rel_tol):
        return None
    division = _REMAINDER.search(_last_step(r.solution))
    if division:  # the quotient, one more (to reach or beat), the remainder, or what would make it even
        quotient, rest = int(division.group(1)), int(division.group(2))
        divisor = rest / (value - quotient) if rest and value != quotient else None  # value = quotient + rest/divisor
        if key in (quotient, quotient + 1, rest) or (divisor is not None and key == divisor - rest):
            return None
    shown = str(value) if value.denominator != 1 else str(value.numerator)
    decimals = len(r.answer.strip().split(".")[1]) if "." in r.answer else 0
    if abs(value - key) <= Fraction(1, 2 * 10**decimals):
        if _ROUNDING_ASKED.search(r.question):
            return None
        return f"answer is rounded: the source's solution gives {shown}"
    return f"the source's solution gives {shown}, the key {r.answer.strip()}"


_REMAINDER = re.compile(r"=\s*(\d+)\s*(?:r|R|rem(?:ainder)?)\s*(\d+)\s*$")
_DEFINES_UNKNOWN = re.compile(r"(?:^|;)\s*[A-Za-z]\s*:")
_TIMES_X = re.compile(r"(?<=[\d)])\s*[xX]\s*(?=[\d(])")


def _last_step(formula: str) -> str:
    """The last of ``;``-separated steps (ASDiv writes a derivation as ``a=b; c=d``)."""
    steps = [x for x in formula.split(";") if x.strip()]
    return steps[-1] if steps else formula


@register("answer_key")
def answer_key(records, ctx, rel_tol: float = 1e-9):
    """Drop rows whose answer key the source's own arithmetic contradicts: the
    value of its formula or equation (``solution:`` in the source's config, e.g.
    ASDiv's ``formula``, SVAMP's ``Equation``) differs from the key. A key that
    is the formula's value rounded is dropped too (``16.3`` for 114/7: "the mean"
    has an exact value) unless the question asks for rounding. Rows without an
    arithmetic solution pass. Runs after ``closed_form`` (the key is a number).
    See :func:`key_contradiction`."""
    return _each(records, ctx, lambda r: key_contradiction(r, rel_tol))


@register("self_verify")
def self_verify(records, ctx):
    """Drop answers that do not verify against themselves: ``\\boxed{answer}`` must
    earn the reward with the answer as reference (otherwise no response can)."""
    verdicts = ctx.verifier.verify_batch(
        [f"\\boxed{{{r.answer}}}" for r in records], [r.answer for r in records], on_result=lambda i, v: ctx.tick(1)
    )
    return [None if v.correct else f"self-check failed ({v.reason})" for v in verdicts]
