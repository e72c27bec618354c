"""Lesson 1: why PyTorch: a Python-first API, the NumPy bridge, dynamic graphs (content: lessons/01_why.md)."""

from ui import lessons, playgrounds

lessons.render("01_why", {"ragged_batch": playgrounds.ragged_batch})
lessons.next_lesson("pages/lesson_2_tensors.py", "Tensors")
