"""The СМЭВ adapter's envelope: every message kind read back as it was built, every malformed input
refused with its own reason (and never another exception), every document the module builds valid
against the project's schema and the adapter's published one."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime

import pytest
from lxml import etree

from posog.module.smev.envelope import (
    ADAPTER_NS,
    EnvelopeError,
    InboundError,
    InboundRequest,
    InboundResponse,
    InboundStatus,
    OutboundInvalid,
    OutboundRequest,
    OutboundResponse,
    Reject,
    SmevMetadata,
    Status,
    adapter_schema,
    client_message,
    client_message_element,
    parse_query_result,
    parse_query_result_element,
    parse_xml,
    query_result,
)
from tests.reference import ADAPTER_REFERENCE, assert_valid_against_reference

META = SmevMetadata(
    message_id="6b1e4c2a-0c3d-11ee-9e2f-0242ac120002",
    reference_message_id="6b1e4c2a-0c3d-11ee-9e2f-0242ac120003",
    transaction_code="TX-1",
    original_message_id="6b1e4c2a-0c3d-11ee-9e2f-0242ac120004",
)
BUSINESS = b'<b:Thing xmlns:b="urn://example/thing/1.0.0"><b:Value>\xd0\x9e\xd0\x93</b:Value></b:Thing>'
A = "{" + ADAPTER_NS + "}"


def _business() -> etree._Element:
    return etree.fromstring(BUSINESS)


def _request(client_id: str = "req-1") -> InboundRequest:
    return InboundRequest(META, client_id, _business(), frgu_service_code="10000000001", test_message=True)


def _same(left: object, right: object) -> None:
    """Equal values; business elements compared by their serialisation."""
    left_content = getattr(left, "content", None)
    right_content = getattr(right, "content", None)
    if isinstance(left_content, etree._Element) or isinstance(right_content, etree._Element):
        assert left_content is not None
        assert right_content is not None
        assert etree.tostring(left_content, method="c14n", exclusive=True) == etree.tostring(
            right_content, method="c14n", exclusive=True
        )
        assert {**vars(left), "content": None} == {**vars(right), "content": None}
    else:
        assert left == right


KINDS = {
    "request": _request(),
    "response_content": InboundResponse(META, "ans-1", "req-1", content=_business()),
    "response_rejects": InboundResponse(
        META,
        "ans-1",
        "req-1",
        rejects=(Reject("UNKNOWN_REQUEST_DESCRIPTION", "a: b"), Reject("NO_DATA", "нет сведений")),
    ),
    "response_status": InboundResponse(
        META, "ans-1", "req-1", status=Status("accepted", "Принято", (("card_id", "c-1"), ("link_state", "issued")))
    ),
    "status": InboundStatus(
        SmevMetadata(message_id=META.message_id),
        "st-1",
        "geps-1",
        "OTHER",
        "Доставлено",
        datetime(2026, 12, 6, 10, 0, tzinfo=UTC),
    ),
    "error": InboundError(
        SmevMetadata(),
        "st-2",
        "geps-2",
        "ERROR",
        None,
        None,
        error_type="CLIENT",
        fault_code="F-1",
        fault_description="Получатель неизвестен",
    ),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_message_kind_reads_back_as_built(kind: str) -> None:
    message = KINDS[kind]
    document = query_result(message)
    assert_valid_against_reference(document, ADAPTER_REFERENCE)
    _same(parse_query_result(document), message)
    # The SOAP transport hands over an element inside a larger tree.
    wrapper = etree.fromstring(b'<s:Body xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"/>')
    wrapper.append(etree.fromstring(document))
    _same(parse_query_result_element(wrapper[0]), message)


def test_a_prefixed_xsi_type_and_prefixed_elements_are_read() -> None:
    document = f"""<?xml version="1.0" encoding="UTF-8"?>
<ns2:QueryResult xmlns:ns2="{ADAPTER_NS}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <ns2:smevMetadata><ns2:MessageId>{META.message_id}</ns2:MessageId></ns2:smevMetadata>
  <ns2:Message xsi:type="ns2:RequestMessageType">
    <ns2:RequestMetadata><ns2:clientId>abc</ns2:clientId></ns2:RequestMetadata>
    <ns2:RequestContent><ns2:content><ns2:MessagePrimaryContent>{BUSINESS.decode()}</ns2:MessagePrimaryContent>
    </ns2:content></ns2:RequestContent>
  </ns2:Message>
</ns2:QueryResult>""".encode()
    parsed = parse_query_result(document)
    assert isinstance(parsed, InboundRequest)
    assert parsed.client_id == "abc"
    assert parsed.meta.message_id == META.message_id
    assert parsed.content.tag == "{urn://example/thing/1.0.0}Thing"


OUTBOUND = {
    "request": OutboundRequest("req-1", BUSINESS, frgu_service_code="10000000001", test_message=True),
    "request_plain": OutboundRequest("req-2", BUSINESS),
    "response_content": OutboundResponse("ans-1", "req-1", content=BUSINESS),
    "response_rejects": OutboundResponse(
        "ans-1", "req-1", rejects=(Reject("UNKNOWN_REQUEST_DESCRIPTION", "organization.inn: bad_checksum — …"),)
    ),
    "response_status": OutboundResponse("ans-1", "req-1", status=Status("duplicate", "Уже принято", (("a", "b"),))),
}


@pytest.mark.parametrize("kind", sorted(OUTBOUND))
def test_every_client_message_is_valid_against_both_schemas(kind: str) -> None:
    document = client_message("POSOG", OUTBOUND[kind])
    assert document.startswith(b"<?xml")
    root = etree.fromstring(document)
    assert root.tag == A + "ClientMessage"
    assert adapter_schema().validate(root), adapter_schema().error_log
    assert_valid_against_reference(document, ADAPTER_REFERENCE)
    assert etree.tostring(client_message_element("POSOG", OUTBOUND[kind])) == etree.tostring(root)


def test_client_message_carries_every_part() -> None:
    root = etree.fromstring(client_message("POSOG", OUTBOUND["request"]))
    assert root.findtext(A + "itSystem") == "POSOG"
    metadata = root.find(f"{A}RequestMessage/{A}RequestMetadata")
    assert metadata is not None
    assert metadata.findtext(A + "clientId") == "req-1"
    assert metadata.findtext(f"{A}createGroupIdentity/{A}FRGUServiceCode") == "10000000001"
    assert metadata.findtext(A + "testMessage") == "true"
    primary = root.find(f"{A}RequestMessage/{A}RequestContent/{A}content/{A}MessagePrimaryContent")
    assert primary is not None
    assert etree.tostring(primary[0], method="c14n", exclusive=True) == etree.tostring(
        etree.fromstring(BUSINESS), method="c14n", exclusive=True
    )
    answer = etree.fromstring(client_message("POSOG", OUTBOUND["response_status"]))
    assert answer.findtext(f"{A}ResponseMessage/{A}ResponseMetadata/{A}replyToClientId") == "req-1"
    status = answer.find(f"{A}ResponseMessage/{A}ResponseContent/{A}status")
    assert status is not None
    assert [status.findtext(A + "code"), status.findtext(f"{A}parameter/{A}key")] == ["duplicate", "a"]


@pytest.mark.parametrize(
    "message",
    [
        OutboundResponse("ans-1", "req-1"),  # none of the three
        OutboundResponse("ans-1", "req-1", content=BUSINESS, status=Status("a", "b")),  # two
        OutboundResponse("x" * 51, "req-1", status=Status("a", "b")),  # clientId over 50
        OutboundResponse("ans-1", "req-1", rejects=(Reject("WHATEVER", "b"),)),  # not a reject code
        OutboundRequest("req-1", b"not xml"),
        OutboundRequest("req-1", b'<Thing xmlns="' + ADAPTER_NS.encode() + b'"/>'),  # not another namespace
    ],
)
def test_an_invalid_outgoing_message_is_refused_before_it_leaves(message: OutboundRequest | OutboundResponse) -> None:
    with pytest.raises(OutboundInvalid):
        client_message("POSOG", message)


# --- Malformed inbound documents --------------------------------------------------------------------

VALID = query_result(_request("req-77"))


def _reason(body: bytes, **kwargs: int) -> EnvelopeError:
    with pytest.raises(EnvelopeError) as caught:
        parse_query_result(body, **kwargs)
    return caught.value


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<QueryResult xmlns="urn://x-artefacts-smev-gov-ru/services/service-adapter/types">&lol9;</QueryResult>"""

EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE q [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<QueryResult xmlns="urn://x-artefacts-smev-gov-ru/services/service-adapter/types">&secret;</QueryResult>"""


def test_not_xml() -> None:
    for body in (b"", b'{"card_id": 1}', b"<QueryResult", b"\xff\xfe\x00garbage", VALID[:-20]):
        assert _reason(body).reason == "not_xml", body


def test_entity_bombs_and_external_entities_are_refused_unexpanded() -> None:
    assert _reason(BILLION_LAUGHS).reason == "entities"
    error = _reason(EXTERNAL_ENTITY)
    assert error.reason == "entities"
    assert "root:" not in str(error)  # nothing of /etc/passwd
    # The same DTD in UTF-16, which a byte scan for "<!DOCTYPE" does not see: the parsed tree's does.
    utf16 = EXTERNAL_ENTITY.replace(b'<?xml version="1.0"?>', b'<?xml version="1.0" encoding="UTF-16"?>')
    assert _reason(utf16.decode().encode("utf-16")).reason == "entities"
    with pytest.raises(EnvelopeError) as caught:
        parse_xml(BILLION_LAUGHS)
    assert caught.value.reason == "entities"


def test_wrong_namespace() -> None:
    other = VALID.replace(ADAPTER_NS.encode(), b"urn://somebody-else/types")
    assert _reason(other).reason == "wrong_namespace"
    assert _reason(b"<QueryResult/>").reason == "wrong_namespace"


def test_unknown_xsi_type_keeps_the_client_id_to_answer() -> None:
    for replacement in (b'xsi:type="Foo"', b'xsi:type="x:RequestMessageType" xmlns:x="urn:other"'):
        error = _reason(VALID.replace(b'xsi:type="RequestMessageType"', replacement))
        assert error.reason == "unknown_type"
        assert error.client_id == "req-77"
        assert error.message_id == META.message_id


def test_a_ten_megabyte_body_is_refused_unparsed() -> None:
    huge = VALID.replace(b"</QueryResult>", b"<!--" + b"x" * 10_000_000 + b"--></QueryResult>")
    assert _reason(huge).reason == "too_large"
    assert _reason(VALID, max_bytes=100).reason == "too_large"


@pytest.mark.parametrize(
    ("cut", "client_id"),
    [
        ("<smevMetadata>.*?</smevMetadata>", "req-77"),  # metadata required
        (r"<RequestContent>.*?</RequestContent>", "req-77"),  # no content
        (r"<MessagePrimaryContent>.*?</MessagePrimaryContent>", "req-77"),
        (r"<clientId>.*?</clientId>", None),  # no address to answer
        (r"<b:Thing.*?</b:Thing>", "req-77"),  # an empty MessagePrimaryContent
    ],
)
def test_missing_required_parts_are_invalid(cut: str, client_id: str | None) -> None:
    body = re.sub(cut.encode(), b"", VALID, flags=re.DOTALL)
    assert body != VALID
    error = _reason(body)
    assert error.reason == "invalid", error
    assert error.client_id == client_id


def test_no_message_and_another_root_are_invalid() -> None:
    assert _reason(f'<QueryResult xmlns="{ADAPTER_NS}"><smevMetadata/></QueryResult>'.encode()).reason == "invalid"
    assert _reason(f'<ClientMessage xmlns="{ADAPTER_NS}"/>'.encode()).reason == "invalid"
    no_type = VALID.replace(b' xsi:type="RequestMessageType"', b"")
    assert _reason(no_type).reason == "unknown_type"


def test_a_too_long_client_id_is_not_an_address() -> None:
    error = _reason(VALID.replace(b"req-77", b"r" * 60))
    assert error.reason == "invalid"
    assert error.client_id is None


def test_no_mangled_document_raises_anything_but_an_envelope_error() -> None:
    rng = random.Random(15)
    samples = [query_result(message) for message in KINDS.values()]
    for _ in range(600):
        body = bytearray(rng.choice(samples))
        for _ in range(rng.randint(1, 4)):
            position = rng.randrange(len(body))
            action = rng.random()
            if action < 0.4:
                del body[position : position + rng.randint(1, 20)]
            elif action < 0.8:
                body[position] = rng.randrange(256)
            else:
                body[position:position] = rng.choice([b"<", b">", b"&", b'"', b"<x>", b"</Message>", b"\x00"])
        reasons: set[str] = set()
        try:
            parse_query_result(bytes(body))
        except EnvelopeError as error:
            reasons.add(error.reason)
        assert reasons <= {"not_xml", "entities", "wrong_namespace", "unknown_type", "invalid"}
