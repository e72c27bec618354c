"""Lesson 7: the PyTorch tutorial "Training a classifier", every step run on this server's data (ui.tutorial)."""

from ui import devices, frame, lessons, tutorial

frame.ensure_router()  # a fresh server's first visit to this URL runs the file alone: go through app.py's gate

tutorial.render({"to_the_lab": devices.to_the_lab})
lessons.next_lesson("pages/lesson_8_parallel.py", "Training on many GPUs")
