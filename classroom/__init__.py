"""Torch Classroom's engine: data, models, training, evaluation, checkpoints and runs. Never imports streamlit."""
