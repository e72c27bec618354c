"""Lesson 1: why PyTorch: a Python-first API, the NumPy bridge, dynamic graphs (content: lessons/01_why.md)."""

from ui import frame, lessons, playgrounds

frame.ensure_router()  # a fresh server's first visit to this URL runs the file alone: go through app.py's gate

lessons.render("01_why", {"ragged_batch": playgrounds.ragged_batch})
lessons.next_lesson("pages/lesson_2_tensors.py", "Tensors")
