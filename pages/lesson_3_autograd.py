"""Lesson 3: autograd: gradients of a chosen function, a finite-difference check, the graph, gradient descent."""

from ui import frame, lessons, playgrounds

frame.ensure_router()  # a fresh server's first visit to this URL runs the file alone: go through app.py's gate

lessons.render(
    "03_autograd",
    {
        "derivative_explorer": playgrounds.derivative_explorer,
        "graph": playgrounds.graph,
        "gradient_descent": playgrounds.gradient_descent,
    },
    editable=True,  # "Edit and run" under each block the sandbox accepts
)
lessons.next_lesson("pages/lesson_4_dynamic.py", "Dynamic graphs")
