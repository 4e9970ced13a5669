"""What a runner's Fargate task runs before the agent: the entry point of its task definition.

ECS puts the session's token secret (JSON: runner id -> token) into the environment variable
TOKENS_ENV of the container (the task definition holds only the secret's ARN). This entry
point, run by the image's own Python under tini, takes its runner's token out of the
environment (so neither SIPp nor anything else the agent starts inherits it), writes it to the
token file (0600) the agent reads, and starts the agent exactly as the docker backend does.

The API serves a container runner its runner id as its address (on a docker session network
that name resolves to the container); a Fargate task has no such name, so the entry point makes
the runner id resolve to the task's own address (the one its route to the API leaves from).
An agent option for this (`--local-ip auto`, in runners/) would replace that part.
"""

from __future__ import annotations

TOKENS_ENV = "SIPFLOW_RUNNER_TOKENS"

ENTRY_CODE = """\
import json, os, runpy, socket, sys, urllib.parse
rid, url, token_path, heartbeat = sys.argv[1:5]
tokens = json.loads(os.environ.pop("{env}"))
fd = os.open(token_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
os.write(fd, tokens[rid].encode())
os.close(fd)
del tokens
u = urllib.parse.urlsplit(url)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect((u.hostname, u.port or 80))
ip = s.getsockname()[0]
s.close()
_resolve = socket.gethostbyname
socket.gethostbyname = lambda name: ip if name == rid else _resolve(name)
sys.argv = ["runners.agent", "--config-url", url, "--token-file", token_path,
            "--heartbeat-file", heartbeat]
runpy.run_module("runners.agent", run_name="__main__", alter_sys=True)
""".replace("{env}", TOKENS_ENV)

ENTRY_POINT = ["/usr/bin/tini", "--", "python", "-c", ENTRY_CODE]


def command(runner_id: str, config_url: str, token_path: str, heartbeat_path: str) -> list[str]:
    """The per-runner part (RunTask's container override): no secret in it."""
    return [runner_id, config_url, token_path, heartbeat_path]
