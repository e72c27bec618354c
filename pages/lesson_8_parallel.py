"""Lesson 8: data-parallel training, run live as two CPU processes with torchrun and DDP next to one process."""

from ui import frame, lessons, parallel
from ui.i18n import N_

frame.ensure_router()  # a fresh server's first visit to this URL runs the file alone: go through app.py's gate

lessons.render("08_parallel", {"script": parallel.script, "losses": parallel.losses, "timing": parallel.timing})
lessons.next_lesson("pages/lab.py", N_("Train the CNN in the lab"))
