"""Lesson 7: the tutorial's five steps, run small here; a button into the lab with the tutorial preset."""

from ui import devices, lessons

lessons.render("07_classifier", {"to_the_lab": devices.to_the_lab})
