"""Torch Classroom: the st.navigation router and the frame every page shares."""

import streamlit as st

from ui import access, frame

LESSONS = [
    ("pages/lesson_1_why.py", "Why PyTorch", ":material/lightbulb:"),
    ("pages/lesson_2_tensors.py", "Tensors", ":material/grid_on:"),
    ("pages/lesson_3_autograd.py", "Autograd", ":material/functions:"),
    ("pages/lesson_4_dynamic.py", "Dynamic graphs", ":material/account_tree:"),
    ("pages/lesson_5_cnn.py", "Anatomy of the CNN", ":material/layers:"),
    ("pages/lesson_6_devices.py", "CPU and GPU", ":material/memory:"),
    ("pages/lesson_7_classifier.py", "Training a classifier", ":material/school:"),
    ("pages/lesson_8_parallel.py", "Training on many GPUs", ":material/hub:"),
]


def pages() -> dict[str, list[st.Page]]:
    """The app's pages by section, lesson 1 first."""
    return {
        "Lessons": [st.Page(path, title=title, icon=icon, default=i == 0) for i, (path, title, icon) in enumerate(LESSONS)],
        "Lab": [st.Page("pages/lab.py", title="Train the CNN", icon=":material/science:")],
        "Runs": [st.Page("pages/runs.py", title="All runs", icon=":material/monitoring:")],
    }


def run() -> None:
    st.set_page_config(page_title="Torch Classroom", page_icon=":material/local_fire_department:", layout="wide")
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
