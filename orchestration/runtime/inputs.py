"""What a queued run starts with: one frozen `RunInput`, stored in `Run.input` as engine serde
bytes (msgpack with an allow-list, never pickle), written by `runs` and read by `tasks`.

A run input has a kind (start with a value, continue, continue with a raw `Command`, fork)
and, for any kind, the reviewers' `answers` by interrupt id. Answers are only ever delivered
to interrupts that are still pending at the thread's head, so re-running a run whose worker
died after the engine stored an answer never sends that answer twice (see `undelivered`).
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from orchestration.checkpoint import serde
from orchestration.runtime.errors import InputError
from orchestration.types import Command, Send


class InputKind(StrEnum):
    VALUE = "value"  # start (or restart a finished thread) with `value`
    CONTINUE = "none"  # continue from the head: pending tasks, answers by interrupt id
    COMMAND = "command"  # a caller's own `Command(resume=..., update=..., goto=...)`
    FORK = "fork"  # branch at `Run.from_checkpoint_id`, applying `values` first


@dataclass(frozen=True, slots=True)
class RunInput:
    kind: InputKind = InputKind.CONTINUE
    value: Any = None
    # interrupt id -> answer, for every kind; delivered only while that interrupt is pending
    answers: Mapping[str, Any] = field(default_factory=dict)
    # COMMAND only
    resume: Any = None
    update: Any = None
    goto: tuple[str, ...] = ()
    # FORK only
    values: Mapping[str, Any] = field(default_factory=dict)

    # -- constructors ----------------------------------------------------------------------

    @classmethod
    def start(cls, value: Any) -> RunInput:
        return cls(InputKind.VALUE, value=value)

    @classmethod
    def resume_with(cls, answers: Mapping[str, Any] | None = None) -> RunInput:
        return cls(InputKind.CONTINUE, answers=dict(answers or {}))

    @classmethod
    def fork(cls, values: Mapping[str, Any] | None) -> RunInput:
        return cls(InputKind.FORK, values=dict(values or {}))

    @classmethod
    def from_command(cls, command: Command[Any] | None) -> RunInput:
        """`None` continues; a `Command` is kept as given (its `resume` may be a bare answer
        for the thread's only pending interrupt, so it cannot be read as answers by id)."""
        if command is None:
            return cls()
        if not isinstance(command, Command):
            raise InputError(
                f"a run continues with a Command or None, got {type(command).__name__}; wrap an "
                "answer as Command(resume=answer)"
            )
        goto = command.goto if isinstance(command.goto, list | tuple) else [command.goto]
        if any(isinstance(g, Send) or not isinstance(g, str) for g in goto):
            raise InputError("a queued Command may only goto node names, not Send objects")
        return cls(InputKind.COMMAND, resume=command.resume, update=command.update,
                   goto=tuple(goto))

    # -- answers ---------------------------------------------------------------------------

    def with_answers(self, answers: Mapping[str, Any]) -> RunInput:
        """This input with more answers; an interrupt answered already keeps its first answer
        (a decision is final: one answer per interrupt)."""
        return replace(self, answers={**answers, **self.answers})

    def undelivered(self, pending: Set[str]) -> dict[str, Any]:
        """The answers whose interrupt is still pending at the thread's head. An answer the
        engine already stored (or that belongs to a checkpoint the thread left) is not."""
        return {iid: answer for iid, answer in self.answers.items() if iid in pending}

    def command(self, pending: Set[str], *, first_pass: bool = True) -> Command[Any] | None:
        """The engine input that continues the thread from its head, given the interrupt ids
        pending there: the undelivered answers by id, or `None` (run what is pending).

        A COMMAND kind's own resume/update/goto belong to the run's first pass only (not when
        the run continues from a checkpoint it wrote itself, where a bare answer would land on
        a newer interrupt); and a bare answer is dropped when nothing is pending (a worker
        died after the engine stored it)."""
        answers = self.undelivered(pending)
        if self.kind is not InputKind.COMMAND or not first_pass:
            return Command(resume=answers) if answers else None
        resume = self.resume if pending else None
        if isinstance(resume, Mapping) and answers:
            resume = {**resume, **answers}
        elif answers and resume is None:
            resume = answers
        if resume is None and self.update is None and not self.goto:
            return None
        return Command(update=self.update, goto=self.goto, resume=resume)

    # -- storage ---------------------------------------------------------------------------

    def encode(self) -> bytes:
        record: dict[str, Any] = {"type": self.kind.value}
        if self.kind is InputKind.VALUE:
            record["value"] = self.value
        if self.kind is InputKind.COMMAND:
            record.update(resume=self.resume, update=self.update, goto=list(self.goto))
        if self.kind is InputKind.FORK:
            record["values"] = dict(self.values)
        if self.answers:
            record["answers"] = dict(self.answers)
        try:
            return serde.dumps(record, where="run input")
        except Exception as exc:
            raise InputError(f"the run's input cannot be stored: {exc}") from exc

    @classmethod
    def decode(cls, data: bytes | memoryview | None) -> RunInput:
        """Read back what `encode` wrote (also the dict format runs were queued with before
        this class existed: the same keys without `answers`)."""
        if not data:
            return cls()
        record = serde.loads(bytes(data))
        try:
            kind = InputKind(record.get("type", InputKind.CONTINUE.value))
        except (AttributeError, ValueError) as exc:
            raise InputError(f"unreadable run input {record!r:.200}: {exc}") from exc
        return cls(
            kind,
            value=record.get("value"),
            answers=dict(record.get("answers") or {}),
            resume=record.get("resume"),
            update=record.get("update"),
            goto=tuple(record.get("goto") or ()),
            values=dict(record.get("values") or {}),
        )
