"""Lesson 2: tensors: creating, shapes, indexing, broadcasting, matmul; a playground and the NumPy bridge."""

from ui import lessons, playgrounds

lessons.render("02_tensors", {"tensor_playground": playgrounds.tensor_playground, "numpy_bridge": playgrounds.numpy_bridge})
lessons.next_lesson("pages/lesson_3_autograd.py", "Autograd")
