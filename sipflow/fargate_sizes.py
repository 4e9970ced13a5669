"""Fargate's task sizes: the CPU/memory pairs a Fargate task may have, and a role's
`resources` (sipflow.spec.Resources) as one of them.

Fargate accepts only these combinations (CPU units, 1024 = one vCPU; memory in MiB), see
https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task_definition_parameters.html#task_size
"""

from __future__ import annotations

# cpu units -> the memory sizes (MiB) allowed with it
VALID: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4096 + 1, 1024)),
    1024: tuple(range(2048, 8192 + 1, 1024)),
    2048: tuple(range(4096, 16384 + 1, 1024)),
    4096: tuple(range(8192, 30720 + 1, 1024)),
    8192: tuple(range(16384, 61440 + 1, 4096)),
    16384: tuple(range(32768, 122880 + 1, 8192)),
}
DEFAULT = (256, 512)


class InvalidSize(ValueError):
    pass


def _vcpus(units: int) -> str:
    return f"{units / 1024:g}"


def task_size(cpus: float | None, memory_mb: int | None) -> tuple[int, int]:
    """(cpu units, memory MiB) for a runner asking for `cpus` vCPUs and `memory_mb` MiB.

    Neither given: the smallest size. Only memory: the smallest CPU that allows it. Only CPUs:
    the least memory that CPU allows. A combination Fargate does not offer: InvalidSize, naming
    what it does offer (never rounded up silently: the bill and the runner's limits would differ
    from the spec)."""
    if cpus is None and memory_mb is None:
        return DEFAULT
    if cpus is None:
        assert memory_mb is not None
        for units, mems in VALID.items():
            if memory_mb in mems:
                return units, memory_mb
        raise InvalidSize(
            f"memory_mb {memory_mb} is no Fargate task size; allowed: 512, 1024, then multiples "
            "of 1024 up to 30720, of 4096 up to 61440, of 8192 up to 122880"
        )
    units = round(cpus * 1024)
    if units / 1024 != cpus or units not in VALID:
        raise InvalidSize(
            f"cpus {cpus:g} is no Fargate task size; allowed: "
            + ", ".join(_vcpus(u) for u in VALID)
        )
    mems = VALID[units]
    if memory_mb is None:
        return units, mems[0]
    if memory_mb not in mems:
        raise InvalidSize(
            f"memory_mb {memory_mb} does not go with cpus {cpus:g} on Fargate; allowed: "
            f"{mems[0]} to {mems[-1]} in steps of {mems[1] - mems[0]}"
        )
    return units, memory_mb
