"""Field helpers of the params.yaml schema: a range rule and the words that describe it in errors."""

from __future__ import annotations

import dataclasses
from dataclasses import field


def check(default=dataclasses.MISSING, *, rule=None, expect: str = ""):
    """A field with a range rule: `rule(value) -> bool`, described by `expect` in errors."""
    return field(default=default, metadata={"rule": rule, "expect": expect})


def positive(default=dataclasses.MISSING):
    return check(default, rule=lambda v: v >= 1, expect="an integer >= 1")


def fraction(default=dataclasses.MISSING):
    return check(default, rule=lambda v: 0 < v < 1, expect="a number in (0, 1)")


def seed(default=dataclasses.MISSING):
    return check(default, rule=lambda v: 0 <= v < 2**32, expect="an integer in [0, 2**32)")
