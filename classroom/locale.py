"""The interface catalogues (locale/<language>/LC_MESSAGES/classroom.mo, compiled with Babel) for whoever needs them:
the pages (ui.i18n) and the few sentences the engine writes into a lesson's notebook. English: the messages themselves."""

from __future__ import annotations

import functools
import gettext
from pathlib import Path

LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
DOMAIN = "classroom"
DEFAULT = "en"


def N_(message: str) -> str:
    """Mark a message for extraction where it is defined; the page translates it where it shows it."""
    return message


@functools.cache
def translations(language: str) -> gettext.NullTranslations:
    """The compiled catalogue of a language (English, the language the messages are written in: none needed)."""
    if language == DEFAULT:
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, localedir=LOCALE_DIR, languages=[language])


def integer(n: int, language: str = DEFAULT) -> str:
    """A whole number with thousands grouped: 20,000 in English; 20 000 in Czech (no-break space, from five digits on)."""
    if language == DEFAULT:
        return f"{n:,}"
    return f"{n:,}".replace(",", "\u00a0") if abs(n) >= 10_000 else str(n)
