"""The classroom token gate: with CLASSROOM_TOKEN set, nothing but a sign-in box until the visitor gives it.

The token is accepted from the sign-in box or from the link (`?token=...`, like Jupyter's), then kept in
this browser session, so page switches do not ask again. CLASSROOM_INSTRUCTOR_TOKEN, when set, is a second
token that signs in as the instructor (who may feature runs); without it every token holder is the instructor.
Without CLASSROOM_TOKEN the app is open, for local use.
"""

import hmac
import os
import time

import streamlit as st

ROLE = "classroom_role"  # st.session_state key: "student" or "instructor" once a token matched
WRONG_LINK = "classroom_wrong_link"  # st.session_state key: the link's token was wrong, say so in the box
WRONG_TOKEN_DELAY = 1.0  # seconds; slows guessing and blocks only this session's script thread


def class_token() -> str:
    return os.environ.get("CLASSROOM_TOKEN", "")


def instructor_token() -> str:
    return os.environ.get("CLASSROOM_INSTRUCTOR_TOKEN", "")


def signed_in() -> bool:
    """True when the visitor may see the app: no token is set, this session gave it, or the link carries it."""
    if not class_token() or st.session_state.get(ROLE):
        return True
    if "token" in st.query_params:
        given = st.query_params["token"]
        del st.query_params["token"]  # out of the address bar, the history and the projector
        if _grant(given):
            return True
        st.session_state[WRONG_LINK] = True
    return False


def is_instructor() -> bool:
    """The instructor: the holder of the instructor token (or of the class token when there is no
    instructor token), or everyone when the app is open."""
    if not class_token():
        return True
    return st.session_state.get(ROLE) == "instructor"


def role_of(given: str) -> str | None:
    """Which role a token grants: "instructor", "student" or None; compared in constant time."""
    given_bytes = given.strip().encode()
    teacher, token = instructor_token() or class_token(), class_token()
    if teacher and hmac.compare_digest(given_bytes, teacher.encode()):
        return "instructor"
    if token and hmac.compare_digest(given_bytes, token.encode()):
        return "student"
    return None


def _grant(given: str) -> bool:
    role = role_of(given)
    if role is None:
        time.sleep(WRONG_TOKEN_DELAY)
        return False
    st.session_state[ROLE] = role
    return True


def sign_in_box() -> None:
    """The only thing a visitor without the token sees; a right token reruns the app in its place."""
    wrong = st.session_state.pop(WRONG_LINK, False)
    _, middle, _ = st.columns([1, 2, 1])
    with middle:
        st.title(":material/local_fire_department: Torch Classroom")
        st.write("This classroom is private. Enter the class token your instructor gave you, or open their link.")
        with st.form("sign_in"):
            given = st.text_input("Class token", type="password", placeholder="the token from your instructor")
            submitted = st.form_submit_button("Sign in", type="primary", icon=":material/login:")
        if submitted:
            if _grant(given):
                st.rerun()  # draw the app in place of this box
            wrong = True
        if wrong:
            st.error("That token is not right. Check it (or the link) and try again, or ask your instructor.")
