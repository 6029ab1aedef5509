"""The Celery app, task wiring, schedules and the `crm-ingest` command line."""
