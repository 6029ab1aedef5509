"""The Alembic migrations of the store (env.py, versions/), run by `crm-ingest migrate`."""

# The Config.attributes key under which env.py leaves the revision the database was at before it migrated (None:
# empty), read under the migration lock, so that `migrate` says what it did even when another ran at the same time.
STARTING_REVISION = "crm_ingest_starting_revision"
