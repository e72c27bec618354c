"""The text Streamlit shows for markdown written with ui.plain.md, for tests that read elements' markdown source."""

from __future__ import annotations

import re

_MARKUP = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)|\\([!-/:-@\[-`{-~])|  \n", re.S)


def shown(markdown: str) -> str:
    """markdown with its code spans, backslash escapes and hard line breaks undone (other markup left as it is)."""

    def undo(m: re.Match) -> str:
        if m.group(1):
            code = m.group(2)
            return code[1:-1] if code.startswith(" ") and code.endswith(" ") and code.strip() else code
        return m.group(3) or "\n"

    return _MARKUP.sub(undo, markdown)
