"""Torch Classroom: the st.navigation router and the frame every page shares."""

import streamlit as st

from ui import access, frame, i18n
from ui.i18n import N_, _

LESSONS = [
    ("pages/lesson_1_why.py", N_("Why PyTorch"), ":material/lightbulb:"),
    ("pages/lesson_2_tensors.py", N_("Tensors"), ":material/grid_on:"),
    ("pages/lesson_3_autograd.py", N_("Autograd"), ":material/functions:"),
    ("pages/lesson_4_dynamic.py", N_("Dynamic graphs"), ":material/account_tree:"),
    ("pages/lesson_5_cnn.py", N_("Anatomy of the CNN"), ":material/layers:"),
    ("pages/lesson_6_devices.py", N_("CPU and GPU"), ":material/memory:"),
    ("pages/lesson_7_classifier.py", N_("Training a classifier"), ":material/school:"),
    ("pages/lesson_8_parallel.py", N_("Training on many GPUs"), ":material/hub:"),
]  # titles in English; each page shows its title in the page's language (a lesson's equals its file's "# " title)


def pages() -> dict[str, list[st.Page]]:
    """The app's pages by section, lesson 1 first, named in the page's language (the URLs stay the same)."""
    lessons = [st.Page(path, title=_(title), icon=icon, default=i == 0) for i, (path, title, icon) in enumerate(LESSONS)]
    return {
        _("Lessons"): lessons,
        _("Lab"): [st.Page("pages/lab.py", title=_("Train the CNN"), icon=":material/science:")],
        _("Runs"): [st.Page("pages/runs.py", title=_("All runs"), icon=":material/monitoring:")],
    }


def run() -> None:
    st.set_page_config(page_title="Torch Classroom", page_icon=":material/local_fire_department:", layout="wide")
    i18n.language()  # the URL and this session agree on the language before anything is drawn
    signed_in = access.signed_in()
    # Behind a closed gate the pages are still routed (so a link to /runs is not "not found" and opens /runs
    # once the token is given) but hidden, and none of them runs.
    page = st.navigation(pages(), position="sidebar" if signed_in else "hidden")
    if not signed_in:
        access.sign_in_box()
        st.stop()
    frame.sidebar()
    with frame.routing():
        page.run()


if __name__ == "__main__":
    run()
