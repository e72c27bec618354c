"""The page's language: English or Czech, per browser, kept in the URL (?lang=cs); gettext catalogues and locale numbers.

Interface strings are marked `_("...")` (and `ngettext` for counts) where they are drawn, extracted and compiled with
Babel (`make messages`, `make catalogues`; README, "Languages"). Lesson prose is one Markdown file per language
(lessons/NN_slug.md, lessons/cs/NN_slug.md). Sentences are never glued from translated pieces: a whole sentence is
one message with named placeholders, and a count gets its plural forms (Czech has three: 1 běh, 2 běhy, 5 běhů).
"""

from __future__ import annotations

import gettext

import streamlit as st
from babel import numbers
from streamlit.runtime.scriptrunner import get_script_run_ctx

from classroom import locale

LANGUAGES = {"en": "English", "cs": "Čeština"}
DEFAULT = locale.DEFAULT
_LOCALES = {"en": "en_US", "cs": "cs_CZ"}
SWITCH = "i18n.switch"  # st.session_state key of the language switch's widget


N_ = locale.N_  # marks a message where it is defined (a module constant); _() translates it where it is drawn


# Display names of the classes the classroom ships (docs/glossary-cs.md, "Názvy tříd"); data and records keep the
# standard names, and an image folder's own class names are shown as they are.
CLASS_NAMES = {
    "cs": {
        "airplane": "letadlo", "plane": "letadlo", "automobile": "automobil", "car": "automobil", "bird": "pták",
        "cat": "kočka", "deer": "jelen", "dog": "pes", "frog": "žába", "horse": "kůň", "ship": "loď",
        "truck": "nákladní auto",
        "circle": "kruh", "ring": "prstenec", "square": "čtverec", "diamond": "kosočtverec", "cross": "kříž",
        "triangle": "trojúhelník", "h-stripes": "vodorovné pruhy", "v-stripes": "svislé pruhy", "checker": "šachovnice",
        "diagonal": "úhlopříčka",
    },
}  # fmt: skip

# A run's status as the engine records it -> its name on the page.
STATUSES = {
    "queued": N_("queued"), "loading": N_("loading"), "running": N_("running"), "paused": N_("paused"),
    "finished": N_("finished"), "stopped": N_("stopped"), "failed": N_("failed"), "interrupted": N_("interrupted"),
    "damaged": N_("damaged"),
}  # fmt: skip


def from_accept_language(header: str | None) -> str | None:
    """The first of our languages in an Accept-Language header, by its q weights (None when none is wanted)."""
    wanted = []
    for i, part in enumerate((header or "").split(",")):
        tag, _sep, params = part.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            key, _sep, value = param.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        code = tag.strip().lower().split("-")[0]
        if code in LANGUAGES and q > 0:
            wanted.append((-q, i, code))
    return min(wanted)[2] if wanted else None


def language() -> str:
    """This page's language: ?lang= in the URL, else this session's earlier choice, else the browser's language.

    Outside a script run (the engine's threads, plain unit tests) there is no page: English."""
    if get_script_run_ctx(suppress_warning=True) is None:
        return DEFAULT
    asked = st.query_params.get("lang")
    if asked in LANGUAGES:
        st.session_state["lang"] = asked
    elif (kept := st.session_state.get("lang")) in LANGUAGES:
        # st.navigation drops the query string on a page switch: put it back, so the address says the language
        st.query_params["lang"] = kept
    else:
        st.session_state["lang"] = _browser_language() or DEFAULT
    return st.session_state["lang"]


def _browser_language() -> str | None:
    """The browser's language when it is one of ours: its first one (navigator.language, which Streamlit passes on),
    else the first of ours its Accept-Language lists. (Chromium driven by Playwright sends its own locale in the
    first and en-US in the second.)"""
    first = from_accept_language(st.context.locale)
    headers = st.context.headers
    return first or from_accept_language(headers.get("Accept-Language") if headers else None)


def switch() -> None:
    """English / Čeština, as one control: the choice goes into the URL (?lang=), so page switches and links keep it."""
    st.session_state[SWITCH] = language()  # follows the URL: a link with ?lang=cs shows Čeština chosen
    st.segmented_control(
        "Language / Jazyk", list(LANGUAGES), format_func=LANGUAGES.get, key=SWITCH, required=True,
        on_change=_switched, label_visibility="collapsed",
    )  # fmt: skip


def _switched() -> None:
    chosen = st.session_state.get(SWITCH)
    if chosen in LANGUAGES:
        st.session_state["lang"] = chosen
        st.query_params["lang"] = chosen


def catalogue(lang: str) -> gettext.NullTranslations:
    """The compiled catalogue of a language (English: the messages themselves), loaded once per process."""
    return locale.translations(lang)


def _(message: str) -> str:
    """The message in this page's language."""
    return catalogue(language()).gettext(message)


def bound() -> gettext.NullTranslations:
    """This page's catalogue, chosen now: for a widget's format_func, which Streamlit may call outside the script run
    (AppTest does), where the page's language cannot be looked up."""
    return catalogue(language())


def ngettext(singular: str, plural: str, n: int) -> str:
    """The form of the message for the count n, in this page's language (format it with n afterwards)."""
    return catalogue(language()).ngettext(singular, plural, n)


def class_name(name: str) -> str:
    """A class's name to show: Czech for CIFAR-10's and the shapes set's classes on a Czech page, else as it is."""
    return CLASS_NAMES.get(language(), {}).get(name, name)


def data_label(label: str) -> str:
    """A data set's label as the engine writes it ("shapes (synthetic)", a folder path) in this page's language."""
    suffix = " (synthetic)"
    return _("{name} (synthetic)").format(name=label[: -len(suffix)]) if label.endswith(suffix) else label


def status_name(status: str) -> str:
    """A run's status (queued, running, finished, ...) in this page's language."""
    return _(STATUSES[status]) if status in STATUSES else status


def localise(fig):
    """A plotly figure with this language's number signs on its axes, hover texts and value labels (Czech: 0,5 and
    12 000); an English figure is left exactly as it was."""
    if language() != DEFAULT:
        fig.update_layout(separators=",\u00a0")  # plotly's: the decimal sign, then the thousands separator
    return fig


def number(value: float, digits: int = 1, grouping: bool = True, plus: bool = False, lang: str | None = None) -> str:
    """A number with this language's signs: 12,345.6 in English (as Python formats it), 12 345,6 in Czech; plus: +1.5.

    Czech groups thousands with a no-break space from five digits on (2000, but 12 000: docs/glossary-cs.md)."""
    lang = lang or language()
    if lang == DEFAULT:
        return f"{value:{'+' if plus else ''}{',' if grouping else ''}.{digits}f}"
    pattern = "#,##0" if grouping and abs(value) >= 9999.5 else "0"
    pattern += "." + "0" * digits if digits else ""
    pattern = f"+{pattern};-{pattern}" if plus else pattern
    return numbers.format_decimal(round(value, digits), format=pattern, locale=_LOCALES[lang])


def decimal(text: str, lang: str | None = None) -> str:
    """A number Python has written already (str(0.1), f"{x:.3g}") with this language's decimal sign."""
    return text if (lang or language()) == DEFAULT else text.replace(".", ",")


def short(value: float, lang: str | None = None) -> str:
    """A number as Python's :g writes it (0.001, 1e-05, 3), with this language's decimal sign."""
    return decimal(f"{value:g}", lang)


def scientific(value: float, digits: int = 1, lang: str | None = None) -> str:
    """A number in exponent notation as Python writes it (1.2e-07), with this language's decimal sign."""
    text = f"{value:.{digits}e}"
    return text if (lang or language()) == DEFAULT else text.replace(".", ",")


def percent(fraction: float, digits: int = 1, space: str = " ", scaled: bool = False, lang: str | None = None) -> str:
    """A fraction as a percentage: 53.8 % in English (space: what stands before %), 53,8 % with a no-break space in Czech.

    scaled: the value is in percent already (53.8, not 0.538)."""
    lang = lang or language()
    value = fraction if scaled else 100 * fraction
    return f"{number(value, digits, lang=lang)}{space if lang == DEFAULT else chr(0xA0)}%"
