"""The classroom token gate: with CLASSROOM_TOKEN set, nothing but a sign-in box until the visitor gives it.

The token is accepted from the sign-in box or from the link (`?token=...`, like Jupyter's), then kept for this
browser (ui.gate: a reload or a second tab stays signed in). CLASSROOM_INSTRUCTOR_TOKEN, when set, is a second
token that signs in as the instructor, who may feature any run and stop any run; without it there is no
instructor. Without CLASSROOM_TOKEN the app is open, for local use, and its one user is the instructor.
"""

import hmac
import os
import time

import streamlit as st

from ui import gate, i18n
from ui.i18n import _

ROLE = "classroom_role"  # st.session_state key: "student" or "instructor" once a token matched
LIMITED = "classroom_limited"  # st.session_state key: seconds to wait, when too many wrong tokens came in
WRONG_LINK = "classroom_wrong_link"  # st.session_state key: the link's token was wrong, say so in the box
WRONG_TOKEN_DELAY = 1.0  # seconds; slows one session's guessing (ui.gate's limiter slows all of them)
BROWSER = "classroom_browser"  # st.session_state key: this session's browser id when the browser sent no cookie


def class_token() -> str:
    return os.environ.get("CLASSROOM_TOKEN", "")


def instructor_token() -> str:
    return os.environ.get("CLASSROOM_INSTRUCTOR_TOKEN", "")


def browser_id() -> str:
    """Who this student is: the browser's id cookie (set by serve.py's middleware), so a reload or a second tab
    is the same student; a random id for this session when the browser sent none (AppTest, a bare app.py)."""
    cookie = st.context.cookies.get(gate.COOKIE)
    if gate.valid_browser_id(cookie):
        return cookie
    if BROWSER not in st.session_state:
        st.session_state[BROWSER] = gate.new_browser_id()
    return st.session_state[BROWSER]


def signed_in() -> bool:
    """True when the visitor may see the app: no token is set, this browser gave it, or the link carries it."""
    if not class_token():
        return True
    if not st.session_state.get(ROLE) and (role := gate.sign_ins.role(browser_id())):
        st.session_state[ROLE] = role  # this browser signed in before: in another tab, or before a reload
    if "token" in st.query_params:  # read even when signed in: the instructor's link in a student's browser
        given = st.query_params["token"]
        del st.query_params["token"]  # out of the address bar, the history and the projector
        if _grant(given):
            return True
        if not st.session_state.get(ROLE):
            st.session_state[WRONG_LINK] = True
    return bool(st.session_state.get(ROLE))


def is_instructor() -> bool:
    """The instructor: the holder of the instructor token, or the one user of an open app."""
    if not class_token():
        return True
    return st.session_state.get(ROLE) == "instructor"


def role_of(given: str) -> str | None:
    """Which role a token grants: "instructor", "student" or None; compared in constant time."""
    given_bytes = given.strip().encode()
    teacher, token = instructor_token(), class_token()
    if teacher and hmac.compare_digest(given_bytes, teacher.encode()):
        return "instructor"
    if token and hmac.compare_digest(given_bytes, token.encode()):
        return "student"
    return None


def _grant(given: str) -> bool:
    """Check a token, within the server's limits on tries; says why in the sign-in box when refused."""
    address = st.context.ip_address  # None on localhost (and not a string in AppTest): one bucket for those
    address = address if isinstance(address, str) else None
    wait = gate.limiter.take(address)
    if wait:
        st.session_state[LIMITED] = wait
        return False
    role = role_of(given)
    if role is None:
        time.sleep(WRONG_TOKEN_DELAY)
        return False
    gate.limiter.refund(address)
    st.session_state[ROLE] = role
    gate.sign_ins.grant(browser_id(), role)
    return True


def sign_in_box() -> None:
    """The only thing a visitor without the token sees; a right token reruns the app in its place."""
    wrong = st.session_state.pop(WRONG_LINK, False)
    _left, middle, _right = st.columns([1, 2, 1])
    with middle:
        i18n.switch()  # drawn before the sidebar exists: a Czech class reads the sign-in box in Czech too
        st.title(":material/local_fire_department: Torch Classroom")
        st.write(_("This classroom is private. Enter the class token your instructor gave you, or open their link."))
        with st.form("sign_in"):
            given = st.text_input(_("Class token"), type="password", placeholder=_("the token from your instructor"))
            submitted = st.form_submit_button(_("Sign in"), type="primary", icon=":material/login:")
        if submitted:
            if _grant(given):
                st.rerun()  # draw the app in place of this box
            wrong = True
        if wait := st.session_state.pop(LIMITED, 0):
            st.error(_("Too many wrong tokens were tried: wait {seconds} s, then try again.").format(seconds=max(1, round(wait))))
        elif wrong:
            st.error(_("That token is not right. Check it (or the link) and try again, or ask your instructor."))
