# Torch Classroom: one container serves the dashboard to a class, on a CPU or a GPU machine.
#
#   docker build -t torch-classroom .                                  # torch from PyPI (CUDA on x86-64 Linux)
#   docker build -t torch-classroom:cpu \
#     --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cpu .   # CPU-only torch: a much smaller image
#   docker build --build-arg WITH_CIFAR10=1 -t torch-classroom .       # CIFAR-10 inside: the class works offline
#   docker run -p 8501:8501 -e CLASSROOM_TOKEN=... torch-classroom     # add --gpus all on a GPU machine
#
# The README's "Instructor's guide" has the volumes, the token and the environment variables.
FROM python:3.11-slim

# Where PyTorch's wheels for one flavour live, e.g. https://download.pytorch.org/whl/cpu (CPU only) or
# .../whl/cu128; empty: PyPI's default torch.
ARG TORCH_INDEX=""
# 1: download CIFAR-10 into the image at build time (about 170 MB), so no student waits for it.
ARG WITH_CIFAR10=0

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/app/.venv/bin:$PATH \
    CLASSROOM_RUNS_DIR=/app/runs \
    CLASSROOM_DATA_DIR=/app/data \
    STREAMLIT_SERVER_HEADLESS=true \
    STREAMLIT_SERVER_FILE_WATCHER_TYPE=none \
    STREAMLIT_CLIENT_SHOW_ERROR_DETAILS=type

RUN useradd --create-home --uid 1000 --user-group --shell /usr/sbin/nologin classroom
WORKDIR /app

# The environment first, so changing the app does not reinstall torch. Same script as `make .venv`.
COPY requirements.txt ./
COPY scripts/install-venv.sh scripts/
RUN if [ -n "$TORCH_INDEX" ]; then export PIP_EXTRA_INDEX_URL="$TORCH_INDEX"; fi \
    && sh scripts/install-venv.sh python .venv

# runs/ and data/ belong to the app's user, so named volumes mounted there start writable.
RUN mkdir -p /app/runs /app/data && chown classroom:classroom /app/runs /app/data

COPY classroom/ classroom/
USER 1000:1000
RUN if [ "$WITH_CIFAR10" = "1" ]; then python -m classroom download --data-dir /app/data; fi

COPY . .

EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request, sys; r = urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4); sys.exit(r.read() != b'ok')"]
CMD ["streamlit", "run", "serve.py", "--server.address", "0.0.0.0", "--server.port", "8501"]
