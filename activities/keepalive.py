"""The control plane's keepalive to a session's runners (their dead man's switch: a runner that
hears no control message for RunnerConfig.silence_s stops its traffic). Sent by the session's
metrics ingest, which runs exactly as long as the session's runners and dies with its worker."""

from __future__ import annotations

import time

import paho.mqtt.client as mqtt

from backends.runner_tokens import CONTROL_USER, broker_password, token_key
from sipflow.messages import ControlMessage, control_topic
from sipflow.settings import Settings

PAYLOAD = ControlMessage(type="keepalive").model_dump_json(by_alias=True)


class Keepalive:
    """Publishes a keepalive on the session's control topic at most every control_keepalive_s
    (0: never). QoS 0: one lost while the broker is away is replaced by the next."""

    def __init__(self, settings: Settings, session_id: str) -> None:
        self.every_s = settings.control_keepalive_s
        self.topic = control_topic(session_id)
        self.last = 0.0
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"sipflow-keepalive-{session_id}"
        )
        self.client.username_pw_set(
            CONTROL_USER, broker_password(token_key(settings), CONTROL_USER)
        )
        if self.every_s > 0:
            self.client.connect_async(settings.mqtt_host, settings.mqtt_port, keepalive=15)
            self.client.loop_start()

    def tick(self) -> None:
        now = time.monotonic()
        if self.every_s > 0 and now - self.last >= self.every_s and self.client.is_connected():
            self.last = now
            self.client.publish(self.topic, PAYLOAD, qos=0)

    def close(self) -> None:
        if self.every_s > 0:
            self.client.disconnect()
            self.client.loop_stop()
