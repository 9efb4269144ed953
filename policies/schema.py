"""The shape of a policy file (v1) as strict pydantic models: unknown keys and wrong types are errors.

Only the shape lives here; cross-references (tiers, fields, CEL, templates) are checked in `build.py`.
Sections, rules and list entries are validated one by one (containers say `Any` for their parts) so that one
mistake does not hide the others.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, model_validator

PriorityName = Literal["P1", "P2", "P3", "P4"]
FieldType = Literal["bool", "int", "number", "string", "list"]
Mode = Literal["raise_only", "enforce"]

NonEmptyStr = Annotated[str, Field(min_length=1)]


def _one_or_many(value: Any) -> Any:
    """Allow `key: x` as a short form of `key: [x]`."""
    return [value] if isinstance(value, str) else value


def _note_short_form(value: Any) -> Any:
    """`note: "text"` is short for `note: {text: "text"}`."""
    return {"text": value} if isinstance(value, str) else value


def _int_or_str(value: Any) -> Any:
    # A plain union would report one error per branch with pydantic's branch names in the location.
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"must be a number or a string (got {value!r})")
    return value


def _platform_priority(value: Any) -> Any:
    # The per-platform shape (a name or a list of names on Jira / Zendesk, a mapping of fields on
    # ServiceNow) is checked in build.py, where the platform is known.
    names = value if isinstance(value, list) else [value]
    if isinstance(value, list) and not value:
        raise ValueError("a list of priority names must name at least one")
    for name in names:
        if not isinstance(name, str | dict) or (isinstance(name, str) and not name.strip()):
            raise ValueError(
                "must be the platform's priority name, a list of names, or a mapping of its fields "
                f"(got {value!r})"
            )
    return value


def _platform_id(value: Any) -> Any:
    """A platform id: a non-empty string, or a number (Zendesk ids) kept as its digits."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be an id: a non-empty string or a number (got {value!r})")
    return value


PlatformId = Annotated[str, BeforeValidator(_platform_id)]


class Strict(BaseModel):
    """Base for every section: no coercion, no unknown keys."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, populate_by_name=True)


class FieldSpec(Strict):
    """A custom ticket field the policy reads (`ticket.fields.<name>`)."""

    type: FieldType
    default: Any = None
    description: str | None = None


class ChoiceSpec(Strict):
    """One `impact` / `urgency` entry: the level it yields when its condition holds."""

    when: NonEmptyStr | None = None
    is_: NonEmptyStr = Field(alias="is")


class RaiseSpec(Strict):
    """One `raise` entry: make the priority `by` levels more urgent when `when` holds."""

    when: NonEmptyStr
    by: int = Field(default=1, ge=1, le=3)
    why: str = ""


class PrioritySpec(Strict):
    """The `priority` section; matrix rows and list entries are validated one by one (see `build.py`)."""

    matrix: dict[str, Any] = Field(min_length=1)
    impact: list[Any] = Field(min_length=1)
    urgency: list[Any] = Field(min_length=1)
    raise_: list[Any] = Field(default_factory=list, alias="raise")
    mode: Any = "raise_only"


MatrixRow = TypeAdapter(dict[str, PriorityName])
ModeName = TypeAdapter(Mode)


class AssignSpec(Strict):
    user: NonEmptyStr | None = None
    group: NonEmptyStr | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> AssignSpec:
        if (self.user is None) == (self.group is None):
            raise ValueError("assign needs exactly one of 'user' or 'group'")
        return self


class NoteSpec(Strict):
    text: Any  # one template, or one per language ({en: …, id: …}); checked in build.py
    internal: bool = True


def _notify_short_form(value: Any) -> Any:
    """`notify: oncall`, `notify: {channel: oncall, text: …}` or a list of either."""
    items = value if isinstance(value, list) else [value]
    return [{"channel": v} if isinstance(v, str) else v for v in items]


def _report_short_form(value: Any) -> Any:
    """`report: note` or `report: [note, oncall]` is short for `report: {to: …}`."""
    return {"to": value} if isinstance(value, str | list) else value


class NotifySpec(Strict):
    """One message to one configured channel; no text: a standard one."""

    channel: NonEmptyStr
    text: Any = None


class ReportSpec(Strict):
    """The post-incident report, built from the audit log when it is sent: `note` is the ticket itself."""

    to: Annotated[list[NonEmptyStr], BeforeValidator(_one_or_many), Field(min_length=1)]
    text: Any = None  # an introduction above the report


ACTION_KEYS = ("priority", "escalate", "label", "labels", "unlabel", "assign", "note", "notify", "report")


class ActionSpec(Strict):
    """One step of a rule's `then`: a mapping with exactly one of ACTION_KEYS."""

    priority: PriorityName | None = None
    escalate: NonEmptyStr | None = None
    label: NonEmptyStr | None = None
    labels: list[NonEmptyStr] | None = Field(default=None, min_length=1)
    unlabel: Annotated[list[NonEmptyStr] | None, BeforeValidator(_one_or_many)] = None
    assign: AssignSpec | None = None
    note: Annotated[NoteSpec | None, BeforeValidator(_note_short_form)] = None
    notify: Annotated[list[NotifySpec] | None, BeforeValidator(_notify_short_form), Field(min_length=1)] = (
        None
    )
    report: Annotated[ReportSpec | None, BeforeValidator(_report_short_form)] = None

    @model_validator(mode="after")
    def _exactly_one(self) -> ActionSpec:
        if len(self.model_fields_set) != 1:
            raise ValueError(f"an action is a mapping with exactly one key, one of: {', '.join(ACTION_KEYS)}")
        return self


class RuleSpec(Strict):
    """One rule; each action in `then` is validated on its own as an ActionSpec."""

    name: NonEmptyStr
    description: str | None = None
    on: Annotated[list[NonEmptyStr], BeforeValidator(_one_or_many), Field(min_length=1)]
    when: NonEmptyStr | None = None
    then: list[Any] = Field(min_length=1)
    stop: bool = False


class TierTargetSpec(Strict):
    assignee: PlatformId | None = None
    group: PlatformId | None = None
    fields: dict[str, Any] = Field(default_factory=dict)
    # follow the sun: regional teams, each validated on its own as a TeamSpec (policies/follow_the_sun.py)
    follow_the_sun: list[Any] | None = Field(default=None, min_length=1)
    fallback: NonEmptyStr | None = None

    @model_validator(mode="after")
    def _at_least_one(self) -> TierTargetSpec:
        if self.follow_the_sun is not None:
            if self.assignee is not None or self.group is not None:
                raise ValueError(
                    "a follow_the_sun tier names its assignee or group per team, not beside the teams"
                )
            return self
        if self.fallback is not None:
            raise ValueError("'fallback' names a team of 'follow_the_sun' (there is none here)")
        if self.assignee is None and self.group is None and not self.fields:
            raise ValueError(
                "a tier target needs at least one of 'assignee', 'group', 'fields' (or 'follow_the_sun')"
            )
        return self


class TeamSpec(Strict):
    """One regional team of a follow_the_sun tier: when it works (an sla calendar) and who it is."""

    calendar: NonEmptyStr
    name: NonEmptyStr | None = None  # defaults to the calendar's name
    assignee: PlatformId | None = None
    group: PlatformId | None = None
    fields: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _someone(self) -> TeamSpec:
        if self.assignee is None and self.group is None:
            raise ValueError("a follow_the_sun team needs an 'assignee' or a 'group'")
        return self


class PlatformSpec(Strict):
    """One platform's names; each tier target is validated on its own as a TierTargetSpec."""

    priorities: dict[PriorityName, Annotated[Any, BeforeValidator(_platform_priority)]]
    tiers: dict[str, Any] = Field(default_factory=dict)
    fields: dict[str, PlatformId] = Field(default_factory=dict)
    labels_field: NonEmptyStr | None = None


class CalendarSpec(Strict):
    """One named business-hours calendar (the string `24x7` stands for an always-open one)."""

    timezone: NonEmptyStr
    hours: Annotated[list[NonEmptyStr], BeforeValidator(_one_or_many), Field(min_length=1)]
    holidays: Annotated[list[NonEmptyStr], BeforeValidator(_one_or_many)] = Field(default_factory=list)
    closed: Annotated[list[NonEmptyStr], BeforeValidator(_one_or_many)] = Field(default_factory=list)


class CalendarChoiceSpec(Strict):
    """One `pick_calendar` entry."""

    when: NonEmptyStr | None = None
    use: NonEmptyStr


class TargetsSpec(Strict):
    """The targets of one priority; each metric is a duration or {target: duration, calendar: name}."""

    first_response: Any = None
    next_response: Any = None
    update_every: Any = None
    resolution: Any = None
    calendar: NonEmptyStr | None = None


class MetricTargetSpec(Strict):
    target: Any
    calendar: NonEmptyStr | None = None


class SlaSpec(Strict):
    """The `sla` section; calendars, calendar choices and targets are validated one by one."""

    calendars: dict[str, Any] = Field(min_length=1)
    pick_calendar: Annotated[Any, BeforeValidator(lambda v: [{"use": v}] if isinstance(v, str) else v)] = None
    targets: dict[str, Any] = Field(min_length=1)
    warn_at: Annotated[Any, BeforeValidator(lambda v: v if isinstance(v, list) or v is None else [v])] = None
    pause_when: NonEmptyStr | None = None
    start: Literal["first_seen", "created"] = "first_seen"


class PolicyHead(Strict):
    """The top level. Sections are `Any` here and validated one by one with the models above."""

    policy: NonEmptyStr
    version: Annotated[Any, BeforeValidator(_int_or_str)]
    description: str | None = None
    fields: dict[str, Any] = Field(default_factory=dict)
    priority: Any
    tiers: list[NonEmptyStr] = Field(min_length=1)
    rules: list[Any] = Field(default_factory=list)
    platforms: dict[str, Any] = Field(default_factory=dict)
    sla: Any = None
    # Which tickets the policy governs at all (a CEL condition on the ticket); the rest are audited
    # as out of scope and never written.
    scope: NonEmptyStr | None = None
    default_language: NonEmptyStr = "en"  # the text used when a reader's language has none
