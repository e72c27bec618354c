"""Lesson 5: the tutorial Net layer by layer on a real image; filters, one convolution by hand, every layer's output,
your own image's top-3."""

from ui import cnn, frame, lessons

frame.ensure_router()  # a fresh server's first visit to this URL runs the file alone: go through app.py's gate

lessons.render(
    "05_cnn",
    {
        "setup": cnn.setup,
        "layers": cnn.layers,
        "filters": cnn.filters,
        "convolution": cnn.convolution,
        "activations": cnn.activations,
        "upload": cnn.upload,
    },
)
lessons.next_lesson("pages/lesson_6_devices.py", "CPU and GPU")
