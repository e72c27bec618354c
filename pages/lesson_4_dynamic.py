"""Lesson 4: dynamic graphs: Python control flow in a forward pass, two inputs' graphs side by side."""

from ui import frame, lessons, playgrounds

frame.ensure_router()  # a fresh server's first visit to this URL runs the file alone: go through app.py's gate

lessons.render("04_dynamic", {"two_graphs": playgrounds.two_graphs})
lessons.next_lesson("pages/lesson_5_cnn.py", "Anatomy of the CNN")
