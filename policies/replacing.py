"""`dataclasses.replace` without calling the class again, for the frozen dataclasses of a judgement.

`dataclasses.replace(obj, **changes)` reads every field and calls the class with all of them: for a
Ticket (14 fields) that is ~3.5 µs, and a judgement makes four or five (the enriched ticket and
event, the ticket's memory, SLA clocks). For a dataclass whose `__init__` is the generated one and
does nothing but store its fields (no `__post_init__`, no InitVar, every field taken by `__init__`,
no `__slots__`), the new object is the same when its fields are copied and the changes set: ~0.8 µs.
Any other class, or a name that is not a field, goes to `dataclasses.replace` (and its errors).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, TypeVar

T = TypeVar("T")


def replace(obj: T, /, **changes: Any) -> T:
    names = _stored_fields(type(obj))
    if names is None or not names.issuperset(changes):
        return dataclasses.replace(obj, **changes)  # type: ignore[type-var]
    state = obj.__dict__
    new = object.__new__(type(obj))
    new.__dict__.update({name: state[name] for name in names})
    new.__dict__.update(changes)
    return new


@functools.cache
def _stored_fields(cls: type) -> frozenset[str] | None:
    """The field names when `cls.__init__` only stores them, else None."""
    if not dataclasses.is_dataclass(cls) or "__slots__" in vars(cls) or hasattr(cls, "__post_init__"):
        return None
    fields = dataclasses.fields(cls)
    if len(fields) != len(cls.__dataclass_fields__) or not all(f.init for f in fields):
        return None  # an InitVar or ClassVar pseudo-field, or a field __init__ does not take
    code = getattr(cls.__init__, "__code__", None)
    if code is None or code.co_filename != "<string>":  # a hand-written __init__, not the generated one
        return None
    return frozenset(f.name for f in fields)
