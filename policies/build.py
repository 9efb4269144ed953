"""From validated sections to a compiled `Policy`, checking every cross-reference and naming its line."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from connector.model import AddLabel, AssignGroup, AssignUser, Priority, RemoveLabel, SetPriority

from .calendars import Calendar
from .closed_sets import closed_sets
from .conditions import Condition, compile_condition
from .policy import (
    EVENT_KINDS,
    METRICS,
    NEXT_TIER,
    TICKET_NOTE,
    Escalate,
    Level,
    NoteTemplate,
    NotifyTemplate,
    PriorityRules,
    Raise,
    Rule,
    Step,
)
from .problems import WARNING, Problem
from .schema import (
    ActionSpec,
    ChoiceSpec,
    FieldSpec,
    MatrixRow,
    ModeName,
    PrioritySpec,
    RaiseSpec,
    RuleSpec,
)
from .source import LineOf, Loc, validate
from .templates import compile_note, known_locale
from .variables import (
    BOOL,
    FIELD_TYPES,
    INT,
    LIST,
    NUMBER,
    ROOTS_FOR_LEVELS,
    ROOTS_FOR_RULES,
    STRING,
    FieldDef,
    variable_schema,
    zero_sample,
)

# The text of `notify: channel` when the rule gives none.
DEFAULT_NOTICE = (
    "{{ ticket.key }} ({{ decision.priority or 'no priority' }}, {{ decision.tier }}): {{ ticket.title }}\n"
    "Rule {{ rule.name }} of policy {{ policy.name }} v{{ policy.version }}."
)

_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass
class Builder:
    """Collects problems while compiling one policy file's sections."""

    path: str
    line_of: LineOf
    name: str
    version: Any
    tiers: tuple[str, ...] | None  # None: the tiers section is broken, so tier references are not checked
    problems: list[Problem] = field(default_factory=list)
    fields: tuple[FieldDef, ...] = ()
    mode: str = "raise_only"
    default_language: str = "en"
    languages: dict[str, None] = field(default_factory=dict)  # every language a text is given in
    channels: dict[str, int] = field(default_factory=dict)  # channel → first line that notifies it
    _compiled: dict[str, Any] = field(default_factory=dict)
    # sla.calendars once built (follow_the_sun teams name them); None: the sla section is broken
    calendars: Mapping[str, Calendar] | None = field(default_factory=dict)

    def problem(self, loc: Loc, message: str) -> None:
        self.problems.append(Problem(self.path, self.line_of(loc), message))

    def warning(self, loc: Loc, message: str) -> None:
        """Something that loads but is probably not what the author meant."""
        self.problems.append(Problem(self.path, self.line_of(loc), message, WARNING))

    def section(self, model: Any, data: Any, loc: Loc, label: str = "", shown: Loc = ()) -> Any:
        spec, problems = validate(
            model, data, path=self.path, line_of=self.line_of, prefix=loc, label=label, shown=shown
        )
        self.problems.extend(problems)
        return spec

    # --- fields -------------------------------------------------------------------------------------

    def build_fields(self, raw: Mapping[str, Any]) -> tuple[FieldDef, ...]:
        """Declared custom fields; a broken one is still declared so conditions naming it don't cascade."""
        out = []
        for name, spec_data in raw.items():
            loc: Loc = ("fields", name)
            if not isinstance(name, str) or not _FIELD_NAME.match(name):
                self.problem(
                    loc,
                    f"fields: '{name}' is not a usable field name (letters, digits, _; "
                    "it is read as ticket.fields.<name>)",
                )
                continue
            spec = self.section(FieldSpec, spec_data, loc, f"field '{name}'")
            if spec is None:
                kind = spec_data.get("type") if isinstance(spec_data, dict) else None
                out.append(FieldDef(name, kind if kind in FIELD_TYPES else STRING, None))
                continue
            default = _default_for(spec.type, spec.default)
            if default is None:
                self.problem(
                    loc + ("default",), f"field '{name}': default {spec.default!r} is not a {spec.type}"
                )
                default = _default_for(spec.type, None)
            out.append(FieldDef(name, spec.type, default))
        self.fields = tuple(out)
        return self.fields

    # --- conditions ---------------------------------------------------------------------------------

    def condition(
        self, source: str | None, loc: Loc, where: str, *, levels: bool = False
    ) -> Condition | None:
        if source is None:
            return None
        roots = ROOTS_FOR_LEVELS if levels else ROOTS_FOR_RULES
        sample = {
            **zero_sample(self.fields),
            "decision": {"priority": "", "impact": "", "urgency": "", "priority_from": ""},
        }
        schema = variable_schema(self.fields)
        compiled, errors = compile_condition(source, where, roots, schema, sample, self.closed_sets)
        for message in errors:
            self.problem(loc, message)
        return compiled

    @property
    def closed_sets(self) -> dict[str, tuple[str, ...]]:
        """The variables whose values are known in advance (tiers only once the tiers section is valid)."""
        return closed_sets(self.tiers, METRICS)

    # --- priority -----------------------------------------------------------------------------------

    def build_priority(self, raw: Any) -> PriorityRules | None:
        spec: PrioritySpec | None = self.section(PrioritySpec, raw, ("priority",))
        if spec is None:
            return None
        self.mode = self.section(ModeName, spec.mode, ("priority", "mode"), "priority.mode") or self.mode
        matrix: dict[str, dict[str, Priority]] = {}
        for row, cells in spec.matrix.items():
            valid = self.section(MatrixRow, cells, ("priority", "matrix", row), f"priority.matrix.{row}")
            if valid is not None:  # a broken row is reported once, not again as "missing levels"
                matrix[row] = {c: Priority(p) for c, p in valid.items()}
        rows = list(spec.matrix)
        columns = list(dict.fromkeys(c for cells in matrix.values() for c in cells))
        for row, cells in matrix.items():
            missing = [c for c in columns if c not in cells]
            if missing:
                self.problem(
                    ("priority", "matrix", row),
                    f"priority.matrix.{row}: missing urgency level(s) {', '.join(missing)} "
                    f"(every row needs all of: {', '.join(columns)})",
                )
        impact = self._levels(spec.impact, "impact", rows, "a row")
        urgency = self._levels(spec.urgency, "urgency", columns, "a column")
        raises = []
        for i, data in enumerate(spec.raise_):
            loc: Loc = ("priority", "raise", i)
            entry: RaiseSpec | None = self.section(RaiseSpec, data, loc, f"priority.raise[{i}]")
            when = self.condition(entry.when, loc + ("when",), f"priority.raise[{i}]") if entry else None
            if entry and when:
                raises.append(Raise(when, entry.by, entry.why))
        frozen = {r: MappingProxyType(cells) for r, cells in matrix.items()}
        return PriorityRules(MappingProxyType(frozen), impact, urgency, tuple(raises))

    def _levels(self, entries: list[Any], key: str, allowed: list[str], what: str) -> tuple[Level, ...]:
        out = []
        for i, data in enumerate(entries):
            loc: Loc = ("priority", key, i)
            entry: ChoiceSpec | None = self.section(ChoiceSpec, data, loc, f"priority.{key}[{i}]")
            if entry is None:
                continue
            last = i == len(entries) - 1
            if last and entry.when is not None:
                self.problem(
                    loc + ("when",),
                    f"priority.{key}: the last entry must have no 'when' "
                    "(it is the default when nothing else matches)",
                )
            elif not last and entry.when is None:
                self.problem(
                    loc,
                    f"priority.{key}[{i}]: only the last entry may omit 'when' "
                    "(the entries after it could never match)",
                )
            if entry.is_ not in allowed:
                self.problem(
                    loc + ("is",),
                    f"priority.{key}[{i}]: {key} level '{entry.is_}' is not {what} of "
                    f"priority.matrix (levels: {', '.join(allowed)})",
                )
            when = self.condition(entry.when, loc + ("when",), f"priority.{key}[{i}]", levels=True)
            out.append(Level(entry.is_, when))
        return tuple(out)

    # --- rules --------------------------------------------------------------------------------------

    def build_rules(self, raw: list[Any], note_sample: Mapping[str, Any]) -> tuple[Rule, ...]:
        out: list[Rule] = []
        first_line: dict[str, int] = {}
        for i, rule_data in enumerate(raw):
            name = rule_data.get("name") if isinstance(rule_data, dict) else None
            label = f"rule '{name}'" if isinstance(name, str) and name else f"rules[{i}]"
            spec: RuleSpec | None = self.section(RuleSpec, rule_data, ("rules", i), label)
            if spec is None:
                continue
            if spec.name in first_line:
                self.problem(
                    ("rules", i, "name"),
                    f"{label}: duplicate rule name (first used on line {first_line[spec.name]})",
                )
            first_line.setdefault(spec.name, self.line_of(("rules", i, "name")))
            for j, kind in enumerate(spec.on):
                if kind not in EVENT_KINDS:
                    self.problem(
                        ("rules", i, "on", j),
                        f"{label}: unknown event kind '{kind}' in 'on' "
                        f"(known: {', '.join(sorted(EVENT_KINDS))})",
                    )
            when = self.condition(spec.when, ("rules", i, "when"), label)
            rule_sample = {**note_sample, "rule": {"name": spec.name}}
            steps = []
            for k, action_data in enumerate(spec.then):
                loc: Loc = ("rules", i, "then", k)
                action: ActionSpec | None = self.section(ActionSpec, action_data, loc, label, ("then", k))
                if action is not None:
                    steps.extend(self._steps(action, loc, label, rule_sample, action_data))
            out.append(
                Rule(spec.name, frozenset(spec.on), when, tuple(steps), spec.stop, spec.description or "")
            )
        return tuple(out)

    def _steps(
        self, action: ActionSpec, loc: Loc, label: str, sample: Mapping[str, Any], raw: Any = None
    ) -> list[Step]:
        """The evaluator's steps for one action (`labels: [a, b]` gives two); [] when it is broken."""
        if action.priority is not None:
            return [SetPriority(Priority(action.priority))]
        if action.escalate is not None:
            tiers = self.tiers or ()
            if self.tiers is not None and action.escalate != NEXT_TIER and action.escalate not in tiers:
                self.problem(
                    loc + ("escalate",),
                    f"{label}: escalate to unknown tier '{action.escalate}' "
                    f"(tiers: {', '.join(tiers)}, or 'next')",
                )
            return [Escalate(action.escalate)]
        if action.label is not None:
            return [AddLabel(action.label)]
        if action.labels is not None:
            return [AddLabel(x) for x in action.labels]
        if action.unlabel is not None:
            return [RemoveLabel(x) for x in action.unlabel]
        if action.assign is not None:
            user, group = action.assign.user, action.assign.group
            return [AssignUser(user)] if user else [AssignGroup(group or "")]
        if action.notify is not None:
            out: list[Step] = []
            for j, notify in enumerate(action.notify):
                listed = isinstance(raw, dict) and isinstance(raw.get("notify"), list)
                here = loc + (("notify", j) if listed else ("notify",))
                self._channel(notify.channel, here)
                text = notify.text if notify.text is not None else DEFAULT_NOTICE
                translations = self.texts(text, here + ("text",), label, sample)
                if translations is not None:
                    out.append(NotifyTemplate(notify.channel, translations))
            return out
        if action.report is not None:
            for j, target in enumerate(action.report.to):
                if target != TICKET_NOTE:
                    self._channel(target, loc + ("report", "to", j))
            intro = self.texts(action.report.text or "", loc + ("report", "text"), label, sample)
            if intro is None:
                return []
            return [NotifyTemplate(target, intro, "report") for target in action.report.to]
        assert action.note is not None  # ActionSpec guarantees exactly one key
        translations = self.texts(action.note.text, loc + ("note", "text"), label, sample)
        if translations is None:
            return []
        source = (
            action.note.text
            if isinstance(action.note.text, str)
            else action.note.text.get(self.default_language, "")
        )
        template = translations[self.default_language]
        return [NoteTemplate(source, template, action.note.internal, MappingProxyType(translations))]

    def _channel(self, name: str, loc: Loc) -> None:
        if name == TICKET_NOTE:
            self.problem(loc, f"notify: '{TICKET_NOTE}' is the ticket itself, only a report can go there "
                         "(report: {to: [note, …]})")  # fmt: skip
            return
        self.channels.setdefault(name, self.line_of(loc))

    def texts(self, raw: Any, loc: Loc, label: str, sample: Mapping[str, Any]) -> dict[str, Any] | None:
        """One compiled template per language: a plain text is the default language's; a mapping
        needs the default language and Babel must know every language. None when something is wrong."""
        if isinstance(raw, str):
            raw = {self.default_language: raw}
        if not isinstance(raw, dict) or not raw:
            self.problem(loc, f"{label}: a text is a template, or a mapping of language → template "
                         f"(e.g. {{{self.default_language}: …, id: …}}) (got {raw!r})")  # fmt: skip
            return None
        out: dict[str, Any] = {}
        ok = True
        if self.default_language not in raw:
            self.problem(loc, f"{label}: no text in the default language '{self.default_language}' "
                         f"(given: {', '.join(map(str, raw))})")  # fmt: skip
            ok = False
        for language, source in raw.items():
            if not isinstance(language, str) or not known_locale(language):
                self.problem(loc + (language,), f"{label}: unknown language '{language}' "
                             "(a locale such as en, id, de, pt_BR)")  # fmt: skip
                ok = False
                continue
            if not isinstance(source, str):
                self.problem(loc + (language,), f"{label}: the '{language}' text must be a string")
                ok = False
                continue
            template, error = self._compiled.get(source) or compile_note(source, sample)
            if template is not None:
                self._compiled[source] = (template, None)  # one object per text: rendered once per event
            if template is None:
                self.problem(loc + (language,) if len(raw) > 1 or language != self.default_language else loc,
                             f"{label}: {error}")  # fmt: skip
                ok = False
                continue
            out[language] = template
            self.languages.setdefault(language, None)
        return out if ok else None


def _default_for(kind: str, value: Any) -> Any:
    """The declared default checked against the type (None when it does not fit); zero when not given."""
    if value is None:
        return {BOOL: False, INT: 0, NUMBER: 0.0, STRING: "", LIST: []}[kind]
    if kind == BOOL:
        return value if isinstance(value, bool) else None
    if kind == INT:
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    if kind == NUMBER:
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
    if kind == STRING:
        return value if isinstance(value, str) else None
    return list(value) if isinstance(value, list) and all(isinstance(v, str) for v in value) else None
