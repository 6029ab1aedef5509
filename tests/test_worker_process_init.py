"""What each Celery pool process does when it starts (workers.tasks)."""
from __future__ import annotations

import gc
import importlib

from celery.signals import worker_process_init


def test_a_starting_pool_process_freezes_what_it_was_forked_with():
    importlib.import_module("workers.tasks")  # where the receivers are connected, as in a worker
    gc.unfreeze()
    try:
        worker_process_init.send(sender=None)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
