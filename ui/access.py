"""The classroom token gate: open when CLASSROOM_TOKEN is unset."""

import os


def signed_in() -> bool:
    """True when the visitor may see the app; to be replaced by the full gate (issue 5)."""
    return not os.environ.get("CLASSROOM_TOKEN")
