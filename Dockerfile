FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
COPY pyproject.toml README.md ./
COPY ingest ingest
COPY workers workers
COPY crm_sync crm_sync
RUN pip install . && useradd --create-home crm && mkdir -p /app/var && chown crm /app/var
USER crm
EXPOSE 8000
CMD ["crm-ingest", "web", "--host", "0.0.0.0", "--port", "8000"]
