"""Lesson 7: the tutorial's five steps, run small here; a button into the lab with the tutorial preset."""

from ui import devices, frame, lessons

frame.ensure_router()  # a fresh server's first visit to this URL runs the file alone: go through app.py's gate

lessons.render("07_classifier", {"to_the_lab": devices.to_the_lab})
