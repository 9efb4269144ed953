"""The CEL activation of one evaluation, holding only the variables the policy's conditions read.

Converting a Python value to CEL costs microseconds per leaf (a string ~2-3 µs), the variables of
one event have some fifty leaves, and a policy's conditions read a dozen of them: building the
full activation was a third of a judgement. At load the policy lists the paths its conditions
name (the same scanner that checks them, `conditions.scan_expression`); an activation keeps those
subtrees only. A condition that reads a whole root or map (`event.changes`, `ticket["labels"]`)
keeps that whole subtree, so what a condition can reach is exactly what it would have reached.

The list is proved at load: every condition gives the same answer on the pruned zero sample as
on the full one, else the policy keeps full activations (`Reads.everything`).

Each place that runs conditions converts only what its own conditions read (`PolicyReads`): an
event's evaluation those of the priority, `pick_calendar` and the rules `on` its kind; the scope
and the SLA clock conditions theirs, a couple of ticket fields instead of the dozen every
condition together reads. Each condition is proved on its own, so any group of them may be cut
to what its conditions name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import cel

from .conditions import CEL_RUNTIME_ERRORS, Condition, scan_expression

# A subtree read whole; otherwise a dict of the keys read below it.
WHOLE: Any = None
Tree = dict[str, Any]


@dataclass(frozen=True)
class Reads:
    """The variable paths a policy's conditions read, as a tree (`tree` None: read everything)."""

    tree: Tree | None

    @classmethod
    def of(cls, conditions: Iterable[Condition], sample: Mapping[str, Any]) -> Reads:
        """The paths `conditions` name, proved on `sample` (every variable at its zero value)."""
        conditions = list(conditions)
        reads = cls(_named(conditions))
        pruned = reads.select(sample)
        for condition in conditions:
            if _answer(condition, sample) != _answer(condition, pruned):
                return cls(None)  # the scanner missed a path: read everything rather than guess
        return reads

    @property
    def everything(self) -> bool:
        return self.tree is None

    def reads(self, root: str) -> bool:
        """Whether any condition reads variable `root` (e.g. "decision")."""
        return self.tree is None or root in self.tree

    def select(self, variables: Mapping[str, Any]) -> dict[str, Any]:
        """`variables` cut down to what the conditions read (the same dicts when they read everything)."""
        if self.tree is None:
            return dict(variables)
        return _select(variables, self.tree)

    def context(self, variables: Mapping[str, Any]) -> cel.Context:
        """A CEL context of the variables the conditions read, converted once."""
        return cel.Context(self.select(variables))

    def seen(self, name: str, value: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """What the conditions see of variable `name` set to `value`; None when none reads it."""
        if self.tree is None:
            return value
        if name not in self.tree:
            return None
        below = self.tree[name]
        return value if below is WHOLE else _select(value, below)


EVERYTHING = Reads(None)


@dataclass(frozen=True)
class PolicyReads:
    """What each place that runs a policy's conditions reads: the evaluation of an event (by its kind),
    the scope, the SLA clock conditions."""

    kinds: Mapping[str, Reads]
    scope: Reads = EVERYTHING
    clocks: Reads = EVERYTHING

    @classmethod
    def of(
        cls,
        kinds: Mapping[str, Iterable[Condition]],
        scope: Iterable[Condition],
        clocks: Iterable[Condition],
        sample: Mapping[str, Any],
    ) -> PolicyReads:
        """Each group's paths; a group with a condition whose proof on `sample` fails reads everything."""
        proved: dict[Condition, bool] = {}  # each condition is proved once, however many groups hold it

        def reads(conditions: Iterable[Condition]) -> Reads:
            conditions = list(conditions)
            for condition in conditions:
                if condition not in proved:
                    proved[condition] = not Reads.of([condition], sample).everything
            return Reads(_named(conditions)) if all(proved[c] for c in conditions) else EVERYTHING

        by_kind = MappingProxyType({kind: reads(group) for kind, group in kinds.items()})
        return cls(by_kind, reads(scope), reads(clocks))

    def event(self, kind: str) -> Reads:
        """What the evaluation of an event of `kind` reads (all, for a kind the policy does not know)."""
        return self.kinds.get(kind, EVERYTHING)


def _named(conditions: Iterable[Condition]) -> Tree:
    """The tree of every path `conditions` name."""
    tree: Tree = {}
    for condition in conditions:
        for path in scan_expression(condition.source).paths:
            # a macro's bound name (`l` in `labels.exists(l, …)`) adds a key no variable has, which
            # costs nothing
            _add(tree, path)
    return tree


def _add(tree: Tree, path: tuple[str, ...]) -> None:
    node = tree
    for i, segment in enumerate(path):
        last = i == len(path) - 1
        if segment in node and node[segment] is WHOLE:
            return  # an ancestor is read whole already
        if last:
            node[segment] = WHOLE
            return
        node = node.setdefault(segment, {})


def _select(value: Mapping[str, Any], tree: Tree) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, below in tree.items():
        if key not in value:
            continue  # e.g. `tier` in a clock condition's ticket, which has none
        item = value[key]
        out[key] = _select(item, below) if below is not WHOLE and isinstance(item, Mapping) else item
    return out


def _answer(condition: Condition, variables: Mapping[str, Any]) -> Any:
    try:
        return condition.program.execute(dict(variables))
    except CEL_RUNTIME_ERRORS as exc:
        return type(exc)
