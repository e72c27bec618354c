"""ui.plain: user-given text made safe for Streamlit's markdown and plotly's HTML, and shown as typed.

The markdown is read back here the way CommonMark reads it (backslash escapes, code spans, hard line breaks);
tests/test_e2e_injection.py checks the same in a real browser.
"""

from __future__ import annotations

import re

import pytest

from ui import plain

HOSTILE = [
    "![x](http://127.0.0.1:9/t.png) :red[r] :material/home: $x$ <b>b</b>",
    "[link](http://127.0.0.1:9/l) <http://127.0.0.1:9/a> HTTP://127.0.0.1:9/u [ref]: http://127.0.0.1:9/r",
    "www.example.com WWW.Example.com a@b.co mailto:a@b.co xmpp:a@b.co",
    ":blue-badge[b] :color[c]{foreground=red} :small[s] :help[h] :foo[bar] :red[**x**]",
    ":material/home: :material_home: :streamlit: :smile: :+1: x:material/home:smile: :material/",
    "$x^2$ and $$y$$ \\(z\\) \\[w\\]",
    "<b>b</b> <img src=x onerror=alert(1)> &lt; &#60; &amp; <!-- c --> <script>alert(1)</script>",
    "*em* **st** ~~del~~ `code` ``a`b`` # h _u_ ***",
    "a -> b <= c --- d -- e <-> f ~= g >= h <- i",
    "12:30:45 :smile:",
    "1. x\n- y\n\n    code\n> q\n# h\n| a | b |\n|---|---|\n===",
    "back\\slash\\ `` ` `x` ``` \\",
    "`:material/home:` www.x.com:material/home: [http://a] ]]http://a[[ `http://b]`",
    "a\u202eb\u200bc\u2066d\u200ee\ufefff\x07g\x1b[31mh\x00i\ud800j",
    "line one\r\nline two\rthree\u2028four\u2029five\x85six",
]
SHOWN_AS_IS = ["run 3", "cats vs dogs", "飛行機", "Ünïcödé ✓", "folder name with  two spaces"]
# What Streamlit rewrites in parsed text (escaped or not): it must never be left outside a code span.
REWRITTEN = re.compile(r":[\w+-]+:|https?://|www\.|@|(?:^|\s)(?:<->|->|<-|--|>=|<=|~=)(?:\s|$)", re.IGNORECASE)
PUNCTUATION = set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


def read(markdown: str) -> tuple[str, str]:
    """(the text CommonMark shows for this output of plain.md, that text with each code span replaced by a NUL).

    Only what plain.md writes is understood: backslash escapes, code spans and hard line breaks; anything else
    (an unescaped punctuation character outside a code span) fails the test."""
    shown, outside, i = [], [], 0
    while i < len(markdown):
        c = markdown[i]
        if markdown.startswith("  \n", i):
            shown.append("\n"), outside.append("\n")
            i += 3
        elif c == "\\":
            assert markdown[i + 1] in PUNCTUATION, f"a backslash before {markdown[i + 1]!r} in {markdown!r}"
            shown.append(markdown[i + 1]), outside.append(markdown[i + 1])
            i += 2
        elif c == "`":
            fence = re.match("`+", markdown[i:]).group()
            close = re.compile(rf"(?<!`){fence}(?!`)").search(markdown, i + len(fence))
            assert close, f"an unclosed code span in {markdown!r}"
            code = markdown[i + len(fence) : close.start()]
            if code.startswith(" ") and code.endswith(" ") and code.strip():
                code = code[1:-1]
            assert "\n" not in code and ":material/" not in code and not set("[]") & set(code), code
            shown.append(code), outside.append("\0")
            i = close.end()
        else:
            assert c not in PUNCTUATION, f"{c!r} unescaped outside a code span in {markdown!r}"
            shown.append(c), outside.append(c)
            i += 1
    return "".join(shown), "".join(outside)


def expected(text: str) -> str:
    """What md(text) must show: clean(text), each line's spaces collapsed, blank lines dropped."""
    lines = (re.sub(r"\s+", " ", part).strip() for part in plain.clean(text).split("\n"))
    return "\n".join(part for part in lines if part)


@pytest.mark.parametrize("text", HOSTILE + SHOWN_AS_IS)
def test_markdown_shows_the_text_as_typed_and_nothing_streamlit_would_rewrite(text):
    markdown = plain.md(text)
    shown, outside = read(markdown)
    assert shown == expected(text)
    assert ":material/" not in markdown  # Streamlit rewrites it in the source, before parsing, code spans included
    for part in outside.split("\0"):
        assert not REWRITTEN.search(part), f"{part!r} of {markdown!r}"


def test_the_runs_page_example_escapes_or_quotes_every_piece():
    markdown = plain.md("![x](http://127.0.0.1:9/t.png) :red[r] :material/home: $x$ <b>b</b>")
    assert markdown == r"`!`\[`x`\]`(http://127.0.0.1:9/t.png)` \:red\[r\] \:material\/home\: \$x\$ \<b\>b\<\/b\>"


@pytest.mark.parametrize("text", SHOWN_AS_IS)
def test_ordinary_text_stays_ordinary(text):
    assert plain.md(text) == " ".join(text.split())


def test_brackets_and_the_material_slash_stand_outside_code_spans():
    assert plain.md("http://a] x:material/home:smile:") == r"`http://a`\] `x:material`\/`home:smile:`"


def test_control_and_format_characters_are_dropped_line_breaks_kept():
    assert plain.clean("a\u202eb\u200bc\u2066d\u2069e\u200ef\ufeffg\x07h\x1bi\x00j\ud800k\u00adl") == "abcdefghijkl"
    assert plain.clean("one\r\ntwo\rthree\u2028four\u2029five\tsix") == "one\ntwo\nthree\nfour\nfive\tsix"
    assert plain.line("one\r\n  two\tthree") == "one two three"


def test_plot_text_has_no_tags_or_entities_of_its_own():
    text = plain.plot("<b>bold</b> <a href='http://127.0.0.1:9/'>x</a> &lt;\nnext\u202e")
    assert text == "&lt;b&gt;bold&lt;/b&gt; &lt;a href='http://127.0.0.1:9/'&gt;x&lt;/a&gt; &amp;lt; next"
    assert "<" not in text and ">" not in text and not re.search(r"&(?!amp;|lt;|gt;)", text)


def test_anything_is_turned_into_text():
    assert plain.md(ValueError("www.x.com is missing")) == r"`www.x.com` is missing"
    assert plain.md("") == "" and plain.md(" \n\t ") == ""
