"""Strict Go-like request decoding."""

from __future__ import annotations

import pytest

from tests.consul_emulator.decode import (
    CHECK_UPDATE,
    SERVICE_DEFINITION,
    DecodeError,
    decode_body,
)


def test_keys_are_case_insensitive_and_snake_case_aliases_map_to_fields() -> None:
    body = (
        b'{"name":"web","ID":"w1","enabletagoverride":true,"tagged_addresses":'
        b'{"lan":{"address":"10.0.0.1","port":80}},"check":{"ttl":"10s",'
        b'"deregister_critical_service_after":"1m","tls_skip_verify":true}}'
    )
    assert decode_body(SERVICE_DEFINITION, body) == {
        "Name": "web",
        "ID": "w1",
        "EnableTagOverride": True,
        "TaggedAddresses": {"lan": {"Address": "10.0.0.1", "Port": 80}},
        "Check": {
            "TTL": 10_000_000_000,
            "DeregisterCriticalServiceAfter": 60_000_000_000,
            "TLSSkipVerify": True,
        },
    }


def test_camel_case_key_wins_over_its_snake_case_alias() -> None:
    body = (
        b'{"Check":{"deregister_critical_service_after":"1m",'
        b'"DeregisterCriticalServiceAfter":"2m"}}'
    )
    assert decode_body(SERVICE_DEFINITION, body)["Check"] == {
        "DeregisterCriticalServiceAfter": 120_000_000_000
    }


def test_durations_accept_numbers_as_nanoseconds() -> None:
    got = decode_body(SERVICE_DEFINITION, b'{"Check":{"TTL":1500000000}}')
    assert got["Check"]["TTL"] == 1_500_000_000


def test_trailing_data_after_the_first_value_is_ignored_like_a_go_decoder() -> None:
    assert decode_body(CHECK_UPDATE, b'{"Status":"passing"} trailing') == {"Status": "passing"}


def test_null_body_decodes_to_nothing() -> None:
    assert decode_body(SERVICE_DEFINITION, b"null") == {}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "EOF"),
        (b" \n ", "EOF"),
        (b'{"Foo":1}', 'json: unknown field "Foo"'),
        (b'{"Check":{"ID":"x"}}', 'json: unknown field "ID"'),
        (b'{"Check":{"TTL":"x"}}', 'time: invalid duration "x"'),
        (b'{"Check":{"TTL":"10"}}', 'time: missing unit in duration "10"'),
        (
            b'{"Port":"80"}',
            "json: cannot unmarshal string into Go struct field ServiceDefinition.Port of type int",
        ),
        (
            b'{"Port":1.5}',
            "json: cannot unmarshal number 1.5 into Go struct field ServiceDefinition.Port "
            "of type int",
        ),
        (
            b'{"Tags":"a"}',
            "json: cannot unmarshal string into Go struct field ServiceDefinition.Tags "
            "of type []string",
        ),
        (
            b'{"Meta":{"a":1}}',
            "json: cannot unmarshal number into Go struct field ServiceDefinition.Meta "
            "of type string",
        ),
        (b"[]", "json: cannot unmarshal array into Go value of type structs.ServiceDefinition"),
        (b'{"Name":}', "invalid character '}' looking for beginning of value"),
        (b'{"Name":"a"', "unexpected EOF"),
        (b'{"Name" "a"}', "invalid character '\"' after object key"),
        (b'{"Tags":["a" "b"]}', "invalid character '\"' after array element"),
    ],
)
def test_decode_errors_carry_go_messages(body: bytes, message: str) -> None:
    with pytest.raises(DecodeError) as err:
        decode_body(SERVICE_DEFINITION, body)
    assert str(err.value) == message
