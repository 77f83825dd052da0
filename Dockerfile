# The bot for a remote (vLLM / OpenAI-compatible) backend: no torch, no transformers, no llama.cpp.
# torch is imported only by engine/backends/embedded.py, which COSTAR_BACKEND_KIND=openai never loads
# (tests/test_openai_backend.py::test_bot_with_the_remote_backend_never_imports_torch).
#
#   docker build -t costar .
#   docker run --rm -e COSTAR_BACKEND_BASE_URL=http://vllm-host:8000/v1 costar vllm-args
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# Dependencies first, so code edits do not reinstall them: the core set only (pyproject.toml).
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY engine ./engine
COPY memory ./memory
COPY personas ./personas
COPY finetune ./finetune
RUN pip install . \
    && python -c "import importlib.util as u, sys; sys.exit(1 if u.find_spec('torch') or u.find_spec('llama_cpp') else 0)"

RUN useradd --create-home --uid 10001 costar && mkdir -p /data /config && chown costar /data /config
USER costar

# No local sentence-embedding model in this image (it is exported to ONNX with torch): recall by
# meaning is off unless COSTAR_MEMORY_EMBEDDINGS=openai points it at an embeddings endpoint.
ENV COSTAR_DATA_DIR=/data \
    COSTAR_BACKEND_KIND=openai \
    COSTAR_MEMORY_EMBEDDINGS=off \
    COSTAR_METRICS_HOST=0.0.0.0
VOLUME ["/data"]
EXPOSE 9108
# Exec form: costar itself is PID 1 and gets docker stop's SIGTERM. It handles it (bot/shutdown.py):
# the kernel delivers no signal to a PID 1 without a handler, which used to mean a kill after the
# stop timeout. STOPSIGNAL states the default on purpose.
STOPSIGNAL SIGTERM
ENTRYPOINT ["costar"]
CMD ["run"]
