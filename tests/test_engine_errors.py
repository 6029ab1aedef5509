"""A failed statement's error, which goes to the log, never carries the values it was given."""
from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

SECRET = "value-that-must-not-reach-the-log"


def test_a_failed_statement_does_not_carry_its_values_into_its_message(runtime):
    with pytest.raises(DBAPIError) as failure:
        with runtime.engine.begin() as connection:
            connection.execute(text("INSERT INTO no_such_table (x) VALUES (:x)"), {"x": SECRET})

    assert SECRET not in str(failure.value)
