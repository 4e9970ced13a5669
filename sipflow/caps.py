"""The hard caps of a session spec (sipflow.spec re-exports them as sipflow.spec.Caps)."""


class Caps:
    """Hard caps on every count and size of a spec, whoever submits it. A tenant's quota
    (sipflow.tenant_policy) may only lower what these allow."""

    AGENTS = 64  # per role
    ACCOUNTS = 1000  # per role
    CALL_TO = 1000
    THRESHOLDS = 50
    THRESHOLD_CHARS = 200
    RATE = 20000.0  # calls/s, all agents
    MAX_CALLS = 100_000_000
    MAX_CONCURRENT = 100_000
    DURATION_S = 86400.0
    TIMEOUT_S = 86400.0 * 2
    HOLD_MS = 3_600_000
    NAME_CHARS = 120
    USER_CHARS = 64
    PASSWORD_CHARS = 128
    HOST_CHARS = 253
    SCENARIO_CHARS = 1_000_000
    PROFILE_STAGES = 200
