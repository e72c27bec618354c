"""The server: app.py behind ui.gate's middleware (browser ids; downloads and metrics for signed-in browsers only).

`streamlit run serve.py` (what `make run` and the image do). `streamlit run app.py` still serves the pages, but
without the middleware: every tab is then its own student and downloads are not guarded.
"""

import streamlit as st
from starlette.middleware import Middleware

from ui.gate import Guard

app = st.App("app.py", middleware=[Middleware(Guard)])
