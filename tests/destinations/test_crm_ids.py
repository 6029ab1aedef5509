"""What a record id in a CRM's answer may be: a positive number or a short plain string, never a glitch such as null,
0, false or an object, which linked as it is ("None", "False") would be every person's record."""
from __future__ import annotations

import pytest

from crm_sync.destinations.base import crm_id


@pytest.mark.parametrize(("value", "text"), [(1001, "1001"), (2 ** 63 - 1, str(2 ** 63 - 1)), ("1001", "1001"),
                                             ("0b5c3e1a-uuid", "0b5c3e1a-uuid"), ("x" * 255, "x" * 255)],
                         ids=["number", "largest-number", "numeric-string", "string", "longest-string"])
def test_a_positive_number_or_a_plain_string_is_a_record_id_as_text(value, text):
    assert crm_id(value) == text


def test_a_record_id_string_is_taken_without_surrounding_blanks():
    assert crm_id("  R-17 \n") == "R-17"


@pytest.mark.parametrize("value", [None, 0, -5, False, True, "", "   ", {}, {"id": 1}, [], [1, 2], 1.0, 17.5,
                                   "x" * 256, "R\n17", "R\x0017", 2 ** 63, 10 ** 40],
                         ids=["null", "zero", "negative", "false", "true", "empty", "blank", "empty-object", "object",
                              "empty-list", "list", "float", "fraction", "too-long", "newline", "nul",
                              "beyond-bigint", "huge"])
def test_anything_else_is_no_record_id(value):
    assert crm_id(value) is None
