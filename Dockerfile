# The bot for a remote (vLLM / OpenAI-compatible) backend: no torch, no transformers.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY engine ./engine
COPY memory ./memory
COPY personas ./personas
COPY finetune ./finetune
RUN pip install --no-cache-dir .
ENV COSTAR_DATA_DIR=/data COSTAR_BACKEND_KIND=openai
VOLUME ["/data"]
ENTRYPOINT ["costar"]
CMD ["run"]
