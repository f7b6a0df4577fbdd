"""Shared vocabulary of the S3 checks: the registry, expected values computed
independently of the gateway (MD5 ETags, CRC32/CRC32C/SHA checksums), assertions."""

import base64
import hashlib
import zlib

from botocore.exceptions import ClientError

MIB = 1024 * 1024
# Every non-last part of a multipart upload must be at least this big (S3's rule).
PART_BYTES_MIN = 5 * MIB
# One byte over the single-PUT limit: the gateway must refuse it from the header.
SINGLE_PUT_BYTES_MAX = 5 * 1024 * MIB

CHECKS = []


def check(function):
    CHECKS.append(function)
    return function


def pattern(length, seed):
    """Deterministic bytes that do not compress (so every shardlet is distinct)."""
    out = bytearray()
    counter = 0
    while len(out) < length:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:length])


def md5_hex(data):
    return hashlib.md5(data).hexdigest()


def multipart_etag(parts):
    """S3's multipart ETag: MD5 of the concatenated binary part MD5s, then -N."""
    digests = b"".join(hashlib.md5(part).digest() for part in parts)
    return f'"{hashlib.md5(digests).hexdigest()}-{len(parts)}"'


def crc32_base64(data):
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def _crc32c_table():
    table = []
    for byte in range(256):
        value = byte
        for _ in range(8):
            value = (value >> 1) ^ 0x82F63B78 if value & 1 else value >> 1
        table.append(value)
    return table


CRC32C_TABLE = _crc32c_table()


def crc32c_base64(data):
    value = 0xFFFFFFFF
    for byte in data:
        value = CRC32C_TABLE[(value ^ byte) & 0xFF] ^ (value >> 8)
    return base64.b64encode((value ^ 0xFFFFFFFF).to_bytes(4, "big")).decode()


def expected_checksum(algorithm, data):
    """The x-amz-checksum-* value S3 gives `data`, computed here, not by the gateway."""
    if algorithm == "CRC32":
        return crc32_base64(data)
    if algorithm == "CRC32C":
        return crc32c_base64(data)
    return base64.b64encode(hashlib.new(algorithm.lower(), data).digest()).decode()


def expect_equal(actual, expected, what):
    if actual != expected:
        raise AssertionError(f"{what}: expected {expected!r}, got {actual!r}")


def expect_error(code, status, call, *args, **kwargs):
    """Runs call and requires a ClientError with this S3 code and HTTP status, and a
    message saying why (botocore fills a HEAD's from the HTTP reason, as there is no
    body; everything else must carry its own)."""
    try:
        call(*args, **kwargs)
    except ClientError as error:
        actual_code = error.response.get("Error", {}).get("Code")
        actual_status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        codes = code if isinstance(code, tuple) else (code,)
        if actual_code not in codes or actual_status != status:
            raise AssertionError(
                f"expected {codes} / HTTP {status}, got {actual_code} / HTTP {actual_status}: "
                f"{error.response.get('Error')}"
            )
        if not error.response.get("Error", {}).get("Message") and status != 304:
            raise AssertionError(f"{actual_code} came without a message: {error.response.get('Error')}")
        return error
    raise AssertionError(f"expected {code} / HTTP {status}, but the call succeeded")
