"""The agent's MQTT connection: QoS 1 publishes, a retained Last Will, control messages in.

paho-mqtt 2.x with its own network thread (loop_start). paho reconnects by itself and keeps
QoS 1 messages that are not yet acknowledged (also those published while disconnected) and
sends them again after reconnecting; wait_all_acked() is the bounded wait before exit.
on_connected runs on every (re)connection: a broker that restarts may have published the Last
Will meanwhile (mosquitto did, measured), so the agent republishes its current state there.

With a Spool (runners/spool.py), publish_durable() writes the message to disk first and removes
it on PUBACK; what the spool still holds and paho does not (an agent started again on the same
work directory, or messages paho's bounded queue refused during a long broker outage) is
published again on every (re)connection and by pump().
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import BaseModel, ValidationError

from runners.spool import Spool
from sipflow.messages import ControlMessage

log = logging.getLogger(__name__)
QOS = 1
# paho's in-memory queue with a spool: beyond it messages wait on disk only.
MEMORY_QUEUE_WITH_SPOOL = 1000


def encode(payload: BaseModel) -> bytes:
    return payload.model_dump_json(by_alias=True).encode()


class MqttLink:
    def __init__(
        self,
        host: str,
        port: int,
        client_id: str,
        will_topic: str,
        will_payload: BaseModel,
        control_topic: str,
        on_connected: Callable[[], None] | None = None,
        username: str | None = None,
        password: str | None = None,
        spool: Spool | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.control_topic = control_topic
        self.on_connected = on_connected
        self.controls: queue.Queue[ControlMessage] = queue.Queue()
        self.connected = threading.Event()
        # When a control message last came (monotonic): the agent's dead man's switch.
        self.last_control = time.monotonic()
        # mids not yet acknowledged (PUBACK); acks can overtake the bookkeeping in publish().
        self._pending: set[int] = set()
        self._acked_early: set[int] = set()
        self._lock = threading.Lock()
        self.spool = spool
        self._pump_lock = threading.Lock()
        # Spooled messages handed to paho: spool key <-> mid (until their PUBACK).
        self._key_mid: dict[str, int] = {}
        self._mid_key: dict[int, str] = {}
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.will_set(will_topic, encode(will_payload), qos=QOS, retain=True)
        self.client.max_inflight_messages_set(100)
        # Without a spool unlimited: nothing is dropped while offline; with one the spool keeps
        # what paho's bounded queue refuses.
        self.client.max_queued_messages_set(MEMORY_QUEUE_WITH_SPOOL if spool is not None else 0)
        self.client.reconnect_delay_set(min_delay=1, max_delay=5)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish

    def start(self, timeout: float) -> bool:
        """Connect in the background; True when connected within timeout (publishes queue
        anyway and go out once the broker is reachable)."""
        self.client.connect_async(self.host, self.port, keepalive=15)
        self.client.loop_start()
        return self.connected.wait(timeout)

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason_code: mqtt.ReasonCode,
        properties: mqtt.Properties | None,
    ) -> None:
        if reason_code.is_failure:
            log.warning("MQTT connect refused: %s", reason_code)
            return
        log.info("MQTT connected to %s:%s", self.host, self.port)
        client.subscribe(self.control_topic, qos=QOS)
        self.connected.set()
        if self.on_connected is not None:
            self.on_connected()
        self.pump()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason_code: mqtt.ReasonCode,
        properties: mqtt.Properties | None,
    ) -> None:
        self.connected.clear()
        log.warning("MQTT disconnected: %s", reason_code)

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        try:
            ctl = ControlMessage.model_validate_json(msg.payload)
        except ValidationError as e:
            log.warning("ignoring bad control message %r: %s", msg.payload[:200], e)
            return
        self.last_control = time.monotonic()
        if ctl.type != "keepalive":
            self.controls.put(ctl)

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason_code: mqtt.ReasonCode,
        properties: mqtt.Properties | None,
    ) -> None:
        key = None
        with self._lock:
            if mid in self._pending:
                self._pending.discard(mid)
                key = self._mid_key.pop(mid, None)
                if key is not None:
                    self._key_mid.pop(key, None)
            else:
                self._acked_early.add(mid)
        if key is not None and self.spool is not None:
            self.spool.remove(key)

    def publish(self, topic: str, payload: BaseModel, retain: bool = False) -> None:
        """QoS 1. While disconnected paho queues the message (rc NO_CONN) and sends it after
        reconnecting; the same mid is acknowledged then."""
        info = self.client.publish(topic, encode(payload), qos=QOS, retain=retain)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            log.error("publish to %s failed: %s", topic, mqtt.error_string(info.rc))
            return
        with self._lock:
            if info.mid in self._acked_early:
                self._acked_early.discard(info.mid)
            else:
                self._pending.add(info.mid)

    def publish_durable(self, key: str, topic: str, payload: BaseModel) -> None:
        """QoS 1 through the spool (when there is one): on disk until the broker acknowledges it."""
        if self.spool is None:
            self.publish(topic, payload)
            return
        body = encode(payload)
        self.spool.put(key, topic, body)
        self._send_spooled(key, topic, body)

    def _send_spooled(self, key: str, topic: str, body: bytes) -> bool:
        """Hands one spooled message to paho; False when paho's queue is full."""
        info = self.client.publish(topic, body, qos=QOS)
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            return False
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            log.error("publish to %s failed: %s", topic, mqtt.error_string(info.rc))
            return False
        acked = False
        with self._lock:
            if info.mid in self._acked_early:
                self._acked_early.discard(info.mid)
                acked = True
            else:
                self._pending.add(info.mid)
                self._key_mid[key] = info.mid
                self._mid_key[info.mid] = key
        if acked and self.spool is not None:
            self.spool.remove(key)
        return True

    def pump(self) -> int:
        """Publishes again what the spool holds and paho does not; returns how many."""
        if self.spool is None or not self.connected.is_set():
            return 0
        if not self._pump_lock.acquire(blocking=False):
            return 0  # another thread replays just now
        try:
            return self._pump(self.spool)
        finally:
            self._pump_lock.release()

    def _pump(self, spool: Spool) -> int:
        sent = 0
        for key in spool.sorted_keys():
            with self._lock:
                if key in self._key_mid:
                    continue
            found = spool.read(key)
            if found is None:
                continue
            if not self._send_spooled(key, *found):
                break
            sent += 1
        if sent:
            log.info("published %d spooled messages again", sent)
        return sent

    def spooled(self) -> int:
        return 0 if self.spool is None else len(self.spool)

    def unacked(self) -> int:
        with self._lock:
            return len(self._pending)

    def wait_all_acked(self, timeout: float) -> bool:
        """Waits (at most timeout) until the broker acknowledged everything, spool included."""
        deadline = time.monotonic() + timeout
        next_pump = time.monotonic() + 1.0
        while self.unacked() or self.spooled():
            now = time.monotonic()
            if now >= deadline:
                log.error(
                    "%d MQTT messages not acknowledged, %d spooled, after %.0fs",
                    self.unacked(),
                    self.spooled(),
                    timeout,
                )
                return False
            if now >= next_pump:
                self.pump()
                next_pump = now + 1.0
            time.sleep(0.05)
        return True

    def close(self) -> None:
        """Clean disconnect: the broker discards the Last Will."""
        self.client.disconnect()
        self.client.loop_stop()
