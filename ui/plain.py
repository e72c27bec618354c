"""User-given text (run names, data sources and paths, class names, file names, messages, URL parameters) shown
as plain text: never as markdown, never as plotly's HTML.

Streamlit renders markdown, with its own syntax on top of CommonMark, in st.markdown, st.caption, st.error and the
other alerts, progress and spinner text, image captions, and labels. A backslash before an ASCII punctuation
character makes CommonMark take it literally, and that stops links, images, emphasis, headings, lists, HTML,
`$` math and the `:red[..]` / `:material/..:` directives. It does not stop what Streamlit rewrites in the parsed
text itself, where the backslashes are already gone: web addresses and e-mail addresses become links (GFM
autolink literals), `:streamlit:` becomes an image, `:material_home:` an icon, `:smile:` an emoji (when the
element has any `:word:` in its source), and ` -> `, ` <= ` and the like become arrows. A word holding one of those
goes into a code span instead, which Streamlit leaves alone, except that it turns `:material/` into
`:material_` anywhere in the source, and that a directive's label (`:red[...]`) ends at the first `]` even inside
code: that slash and brackets stand outside the span, escaped.
"""

from __future__ import annotations

import re
import unicodedata

_HIDDEN = {"Cc", "Cf", "Cs"}  # control; format: bidi overrides and isolates, zero-width characters; lone surrogates
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")  # every ASCII punctuation character: CommonMark escapes each one
# What Streamlit rewrites inside parsed text, backslash-escaped or not (its StreamlitMarkdown, remark-emoji and the
# GFM autolink transform): shortcodes (emoji, :streamlit:, :material_icon:), web and e-mail addresses, arrows.
_REWRITTEN = re.compile(r":[\w+-]+:|https?://|www(?:\.|$)|@|^(?:<->|->|<-|--|>=|<=|~=)$", re.IGNORECASE)


def clean(text: object) -> str:
    """str(text) without control, format (bidi, zero-width) and surrogate characters; newlines and tabs stay
    (\\r\\n, \\r and the Unicode line and paragraph separators become \\n)."""
    text = re.sub(r"\r\n?|[\x85\u2028\u2029]", "\n", str(text))
    return "".join(c for c in text if c in "\n\t" or unicodedata.category(c) not in _HIDDEN)


def line(text: object) -> str:
    """clean(text) on one line: each run of whitespace with a line break or tab in it becomes one space."""
    return re.sub(r"\s*[\n\t]\s*", " ", clean(text))


def md(text: object) -> str:
    """text as markdown that Streamlit shows as exactly that text (less control and format characters; lines
    become hard line breaks, runs of spaces one space). Next to it put a space, markup or punctuation, but no
    letter, digit or colon: Streamlit's rewriting of `:word:` and web addresses would read across the seam."""
    lines = (re.sub(r"\s+", " ", part).strip() for part in clean(text).split("\n"))
    return "  \n".join(" ".join(map(_word, part.split(" "))) for part in lines if part)


def _word(word: str) -> str:
    if not _REWRITTEN.search(word):
        return _PUNCTUATION.sub(r"\\\1", word)
    # Outside the code spans, escaped: brackets (a `:red[...]` label ends at the first `]`, in code or not) and the
    # slash of `:material/` (Streamlit turns `:material/` into `:material_` anywhere, code included).
    pieces = re.split(r"((?<=:material)/|[\[\]])", word)
    return "".join("\\" + piece if i % 2 else _code(piece) for i, piece in enumerate(pieces))


def _code(text: str) -> str:
    """A code span showing text as it is (it holds no whitespace): its fence is one backtick longer than the
    longest run inside, and a space pads text that starts or ends with a backtick (CommonMark strips both)."""
    if not text:
        return ""
    fence = "`" * (max(map(len, re.findall("`+", text)), default=0) + 1)
    pad = " " if text[0] == "`" or text[-1] == "`" else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def plot(text: object) -> str:
    """text for a plotly title, legend, tick label or hover text, which read `<b>`, `<br>`, `<a href>` and
    entities: one line, with &, < and > written as entities that plotly shows as the characters."""
    return line(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
