"""docs/asyncapi.yaml's СМЭВ-adapter part against what the code really declares and sends: the
queues and their arguments are the adapter topology the worker declares, the outbound port publishes
as the document says, and the example documents are what the module reads and builds."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from lxml import etree

from posog.core.bus import OutgoingMessage, QueueSpec
from posog.module.smev.answers import STATUS_TEXT
from posog.module.smev.envelope import InboundRequest, OutboundResponse, Status, client_message, parse_query_result
from posog.module.smev.transport import XML_CONTENT_TYPE, AmqpOutbound, adapter_topology
from posog.settings import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"


def _doc() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(DOC.read_text(encoding="utf-8"))
    return loaded


def _arguments(queue: QueueSpec) -> dict[str, Any]:
    """The queue arguments posog.core.rabbit.RabbitBus.declare gives a QueueSpec."""
    arguments: dict[str, Any] = {}
    if queue.quorum:
        arguments["x-queue-type"] = "quorum"
    if queue.dead_letter_exchange is not None:
        arguments["x-dead-letter-exchange"] = queue.dead_letter_exchange
    if queue.delivery_limit is not None:
        arguments["x-delivery-limit"] = queue.delivery_limit
    return arguments


def _defaults() -> Settings:
    return Settings(_env_file=None, env="test")  # type: ignore[call-arg]


def test_the_adapter_queues_are_the_declared_topology() -> None:
    s = _defaults()
    topology = adapter_topology(
        in_queue=s.smev_in_queue,
        out_queue=s.smev_out_queue,
        dead_letter_exchange=s.smev_in_dead_letter_exchange,
        dead_letter_queue=s.smev_in_dead_letter_queue,
    )
    channels = _doc()["channels"]
    queues = {queue.name: queue for queue in topology.queues}
    for key, name in (
        ("smevIn", s.smev_in_queue),
        ("smevOut", s.smev_out_queue),
        ("smevInDead", s.smev_in_dead_letter_queue),
    ):
        channel = channels[key]
        assert channel["address"] == name
        assert channel["bindings"]["amqp"]["queue"]["name"] == name
        assert channel["bindings"]["amqp"]["queue"]["durable"] is True
        assert channel["x-queue-arguments"] == _arguments(queues[name]), key
    (exchange,) = topology.exchanges
    documented = channels["smevInDeadLetterExchange"]["bindings"]["amqp"]["exchange"]
    assert (documented["name"], documented["type"]) == (exchange.name, exchange.kind)
    (binding,) = topology.bindings
    assert (binding.queue, binding.exchange, binding.routing_key) == (s.smev_in_dead_letter_queue, exchange.name, "")


def test_the_outbound_port_publishes_as_documented() -> None:
    published: list[tuple[str, str, OutgoingMessage]] = []

    class Bus:
        async def publish(self, exchange: str, routing_key: str, messages: Sequence[OutgoingMessage]) -> None:
            published.extend((exchange, routing_key, m) for m in messages)

    s = _defaults()
    document = client_message(
        s.smev_it_system,
        OutboundResponse(client_id="ans-1", reply_to_client_id="og-1", status=Status("accepted", "Сведения приняты.")),
    )
    asyncio.run(AmqpOutbound(Bus(), s.smev_out_queue).send([document]))  # type: ignore[arg-type]
    ((exchange, routing_key, message),) = published
    doc = _doc()
    operation = doc["operations"]["sendClientMessages"]
    assert exchange == ""  # the default exchange: the routing key is the queue
    assert [routing_key] == operation["bindings"]["amqp"]["cc"]
    assert routing_key == doc["channels"]["smevOut"]["address"]
    assert message.content_type == doc["components"]["messages"]["ClientMessage"]["contentType"] == XML_CONTENT_TYPE
    assert message.body == document


def _c14n(document: bytes) -> bytes:
    return etree.tostring(etree.fromstring(document, etree.XMLParser(remove_blank_text=True)), method="c14n")


def test_the_example_documents_are_what_the_module_reads_and_builds() -> None:
    messages = _doc()["components"]["messages"]
    (fact,) = messages["QueryResult"]["examples"]
    request = parse_query_result(fact["payload"].encode())
    assert isinstance(request, InboundRequest)
    assert etree.QName(request.content).localname == "OgFactRequest"
    (answer,) = messages["ClientMessage"]["examples"]
    built = client_message(
        "POSOG",
        OutboundResponse(
            client_id="ans-6f1d2c3b4a5948e7b6c5d4e3f2a1b0c9",
            reply_to_client_id=request.client_id or "",
            status=Status(
                "accepted",
                STATUS_TEXT["accepted"],
                (("card_id", "MFC-77-2026-000000001-0042"), ("link_state", "issued")),
            ),
        ),
    )
    assert _c14n(answer["payload"].encode()) == _c14n(built)
