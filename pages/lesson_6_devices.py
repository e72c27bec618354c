"""Lesson 6: CPU and GPU: moving models and tensors, live timing per device, widening the net."""

from ui import devices, frame, lessons

frame.ensure_router()  # a fresh server's first visit to this URL runs the file alone: go through app.py's gate

lessons.render("06_devices", {"timing": devices.timing_chart, "reference": devices.reference, "widen": devices.widen})
lessons.next_lesson("pages/lesson_7_classifier.py", "Training a classifier")
