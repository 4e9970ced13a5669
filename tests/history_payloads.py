"""Every Payload inside a Temporal proto message (a history, an event), changed in place by a
function: encrypting saved histories in the replay test, reading what a history holds."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload

PAYLOAD = Payload.DESCRIPTOR.full_name
# Never passed through a codec: search attributes (the server indexes them) and the markers
# the SDK core writes itself (workflow.patched).
UNCODED = {
    "search_attributes",
    "upsert_workflow_search_attributes_event_attributes",
    "marker_recorded_event_attributes",
}


def map_payloads(message: Message, fn: Callable[[Payload], Payload]) -> None:
    for field, value in message.ListFields():
        if field.message_type is None or field.name in UNCODED:
            continue
        if field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            if value_field.message_type is None:
                continue
            for key in list(value):
                if value_field.message_type.full_name == PAYLOAD:
                    value[key].CopyFrom(fn(value[key]))
                else:
                    map_payloads(value[key], fn)
            continue
        items = value if field.is_repeated else [value]
        for item in items:
            if field.message_type.full_name == PAYLOAD:
                item.CopyFrom(fn(item))
            else:
                map_payloads(item, fn)


def payloads(message: Message) -> Iterator[Payload]:
    found: list[Payload] = []

    def keep(p: Payload) -> Payload:
        found.append(Payload.FromString(p.SerializeToString()))
        return p

    map_payloads(message, keep)
    return iter(found)
