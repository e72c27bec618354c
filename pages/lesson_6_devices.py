"""Lesson 6: CPU and GPU: moving models and tensors, live timing per device, widening the net."""

from ui import devices, lessons

lessons.render("06_devices", {"timing": devices.timing_chart, "widen": devices.widen})
lessons.next_lesson("pages/lesson_7_classifier.py", "Training a classifier")
