"""The callers' and the callees' scripts checked against each other (issue 13): a pair that can
never pass is refused when the spec is validated, with the path of the step at fault, rather
than run to fail every call.

Refused:
- the callees answer (200) while the callers expect a final failure, or the callees reject with
  NNN while the callers expect 2xx or another final code;
- both sides hang up (two BYEs cross: one side's call fails), or both wait for the other's BYE;
- callers that `expect hangup` from callees that never hang up (the built-in `answer`);
- callee steps the callers' side cannot go with: a flow (it chooses the callee side), the
  built-in `call` (it expects 200 and sends the BYE itself: the callees answer and `expect
  hangup`).
Directly (no target between them), also a caller's `expect 180` / `expect 183` that the callee
script never sends (`ring` / `early_media`). Through a target these are left to the run: a SUT
may answer, ring or rewrite codes itself (a PBX's voicemail answers a rejected call).
"""

from __future__ import annotations

from sipflow.call_script import Step
from sipflow.callee_script import CalleeStep, ends_call, outcome

CALLER_PATH = "roles.callers.script"
CALLEE_PATH = "roles.callees.script"
PROVISIONAL_STEPS = {180: "ring", 183: "early_media"}


def _caller_final(steps: list[Step]) -> tuple[int, int]:
    """(index, code) of the callers' expected final answer."""
    return next((i, s.parsed.code) for i, s in enumerate(steps) if s.parsed.code >= 200)


def _callee_at(steps: list[CalleeStep], *verbs: str) -> int:
    return next(i for i, s in enumerate(steps) if s.parsed.verb in verbs)


def check_pair(
    caller: list[Step] | None,
    callee: list[CalleeStep] | None,
    *,
    caller_builtin_call: bool,
    direct: bool,
) -> None:
    """ValueError naming the step at fault when the two sides cannot pass together.
    caller_builtin_call: the callers run the built-in `call` (no script, no flow)."""
    if callee is None:
        if caller is not None and any(s.parsed.verb == "expect_hangup" for s in caller):
            i = next(i for i, s in enumerate(caller) if s.parsed.verb == "expect_hangup")
            raise ValueError(
                f"{CALLER_PATH}[{i}]: 'expect hangup' waits for the callees' BYE, and the "
                f"built-in callee never hangs up: give {CALLEE_PATH} ending with 'hangup'"
            )
        return
    if caller_builtin_call:
        if outcome(callee) != 200 or ends_call(callee) != "caller":
            i = _callee_at(callee, "reject", "hangup")
            raise ValueError(
                f"{CALLEE_PATH}[{i}]: the callers' built-in 'call' expects 200 and hangs up "
                "itself: the callees answer and end with 'expect hangup' (or give the callers "
                "a script)"
            )
        return
    if caller is None:
        return  # a custom XML: it writes its own expectations
    i, want = _caller_final(caller)
    got = outcome(callee)
    if (want < 300) != (got < 300) or (got >= 300 and want != got):
        j = _callee_at(callee, "reject", "answer")
        said = f"reject {got}" if got >= 300 else "answer"
        raise ValueError(
            f"{CALLEE_PATH}[{j}]: the callees {said} but {CALLER_PATH}[{i}] expects {want}"
        )
    if got < 300:
        ender = ends_call(callee)
        caller_ends = caller[-1].parsed.verb == "hangup"
        if (ender == "callee") == caller_ends:
            who = "both sides hang up" if caller_ends else "both sides wait for the other's BYE"
            raise ValueError(
                f"{CALLEE_PATH}[{len(callee) - 1}]: {who}: one of them ends the call "
                "('hangup'), the other waits for it ('expect hangup')"
            )
    if direct:
        sent = {s.parsed.verb for s in callee}
        for k, step in enumerate(caller):
            verb = PROVISIONAL_STEPS.get(step.parsed.code)
            if step.parsed.verb == "expect" and verb is not None and verb not in sent:
                raise ValueError(
                    f"{CALLER_PATH}[{k}]: 'expect {step.parsed.code}' but {CALLEE_PATH} "
                    f"never sends it (add '{verb}')"
                )
