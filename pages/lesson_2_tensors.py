"""Lesson 2: tensors: creating, shapes, indexing, broadcasting, matmul; a playground and the NumPy bridge."""

from ui import frame, lessons, playgrounds

frame.ensure_router()  # a fresh server's first visit to this URL runs the file alone: go through app.py's gate

lessons.render(
    "02_tensors",
    {"tensor_playground": playgrounds.tensor_playground, "numpy_bridge": playgrounds.numpy_bridge},
    editable=True,  # "Edit and run" under each block the sandbox accepts
)
lessons.next_lesson("pages/lesson_3_autograd.py", "Autograd")
