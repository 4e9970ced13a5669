"""What the callers' and the callees' call scripts share (sipflow/call_script.py,
sipflow/callee_script.py): a step is its text, checked against the state of the call that the
steps before it leave, so that an out-of-order step is reported at its own index
(`roles.callers.script[3]`); a script is a list of such steps that must end the call. Each
script's grammar (its words, its states) stays in its own module."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, model_serializer, model_validator

START = "not called"  # the state before a script's first step, in both grammars


@dataclass(frozen=True)
class Grammar:
    """parse: a step's text -> its parsed form, or ValueError with the reason; after: the state
    a step leaves; check_order: ValueError when the step may not come in that state; ended: the
    state of a call that has ended; never_ends: the error of a script that leaves it open."""

    parse: Callable[[str], Any]
    after: Callable[[str, Any], str]
    check_order: Callable[[str, Any], None]
    ended: str
    never_ends: str


class ScriptStep(BaseModel):
    """One step: its text and the state of the call before it (set by `with_states`)."""

    model_config = ConfigDict(extra="forbid")
    grammar: ClassVar[Grammar]
    text: str
    state: str = START

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, v: Any) -> Any:
        return {"text": v} if isinstance(v, str) else v

    @model_validator(mode="after")
    def _valid(self) -> Self:
        self.grammar.check_order(self.state, self.grammar.parse(self.text))
        return self

    @model_serializer
    def _as_text(self) -> str:
        return self.text


def with_states(step_type: type[ScriptStep]) -> Callable[[Any], Any]:
    """The before-validator of a script of `step_type`: each step's text with the state the
    steps before it leave (a step that does not parse leaves it as it was; it is reported
    itself)."""
    grammar = step_type.grammar

    def states(steps: Any) -> Any:
        if not isinstance(steps, list):
            return steps
        state, out = START, []
        for item in steps:
            text = item.text if isinstance(item, ScriptStep) else item
            if not isinstance(text, str):
                out.append(item)
                continue
            out.append({"text": text, "state": state})
            with contextlib.suppress(ValueError):
                state = grammar.after(state, grammar.parse(text))
        return out

    return states


def ends_the_call(step_type: type[ScriptStep]) -> Callable[[list[Any]], list[Any]]:
    """The after-validator of a script of `step_type`: the steps end the call."""
    grammar = step_type.grammar

    def check(steps: list[Any]) -> list[Any]:
        state = START
        for step in steps:
            state = grammar.after(state, grammar.parse(step.text))
        if state != grammar.ended:
            raise ValueError(grammar.never_ends)
        return steps

    return check
