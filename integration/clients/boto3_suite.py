#!/usr/bin/env python3
"""The S3 behaviour boto3 relies on, checked against a running Shardlet gateway.

Usage: boto3_suite.py --endpoint URL --access-key K --secret-key S [--only NAME...]

Run by `integration/tests/gateway/boto3.rs` against a cluster of real processes. boto3
keeps its default checksum settings (CRC checksums, aws-chunked trailers on uploads):
that is what applications send. Every check runs even when an earlier one failed; each
prints `ok NAME` or `FAIL NAME: reason`, and the exit status is 1 when any failed, so a
failure names the behaviour that broke.
"""

import argparse
import base64
import datetime
import hashlib
import http.client
import io
import os
import sys
import traceback
import urllib.error
import urllib.parse
import urllib.request
import zlib

import boto3
import botocore
import botocore.credentials
from boto3.s3.transfer import TransferConfig
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
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
    """Runs call and requires a ClientError with this S3 code and HTTP status."""
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
        return error
    raise AssertionError(f"expected {code} / HTTP {status}, but the call succeeded")


class Suite:
    def __init__(self, endpoint, access_key, secret_key, region):
        self.endpoint = endpoint
        self.access_key = access_key
        self.secret_key = secret_key
        self.region = region
        self.s3 = self.client(access_key, secret_key)
        self.bucket = "boto3-suite"

    def client(self, access_key, secret_key, **config):
        options = dict(
            s3={"addressing_style": "path"},
            # One attempt: a retried request would hide the first answer's error.
            retries={"max_attempts": 1, "mode": "standard"},
            connect_timeout=10,
            read_timeout=120,
        )
        options.update(config)
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name=self.region,
            config=Config(**options),
        )

    def put(self, key, data, **extra):
        return self.s3.put_object(Bucket=self.bucket, Key=key, Body=data, **extra)

    def get_bytes(self, key, **extra):
        return self.s3.get_object(Bucket=self.bucket, Key=key, **extra)["Body"].read()

    def all_keys(self, prefix):
        keys = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        ):
            keys += [item["Key"] for item in page.get("Contents", [])]
        return keys


@check
def buckets_create_head_list_locate(suite):
    suite.s3.create_bucket(Bucket=suite.bucket)
    suite.s3.head_bucket(Bucket=suite.bucket)
    names = [bucket["Name"] for bucket in suite.s3.list_buckets()["Buckets"]]
    if suite.bucket not in names:
        raise AssertionError(f"{suite.bucket} missing from ListBuckets: {names}")
    location = suite.s3.get_bucket_location(Bucket=suite.bucket)
    if location.get("LocationConstraint") not in (None, "", suite.region):
        raise AssertionError(f"unexpected location {location}")
    # Creating it again as its owner: S3 (us-east-1) answers BucketAlreadyOwnedByYou.
    expect_error("BucketAlreadyOwnedByYou", 409, suite.s3.create_bucket, Bucket=suite.bucket)


@check
def put_get_small_and_empty_objects_etag_is_md5(suite):
    for key, data in [("small/hello.txt", b"hello, shardlet\n"), ("small/empty", b"")]:
        answer = suite.put(key, data)
        expect_equal(answer["ETag"], f'"{md5_hex(data)}"', f"PutObject ETag of {key}")
        got = suite.s3.get_object(Bucket=suite.bucket, Key=key)
        expect_equal(got["Body"].read(), data, f"body of {key}")
        expect_equal(got["ETag"], f'"{md5_hex(data)}"', f"GetObject ETag of {key}")
        expect_equal(got["ContentLength"], len(data), f"Content-Length of {key}")


@check
def multi_shardlet_object_round_trips(suite):
    data = pattern(9 * MIB + 12345, "multi-shardlet")
    answer = suite.put("large/nine-mib", data)
    expect_equal(answer["ETag"], f'"{md5_hex(data)}"', "ETag")
    expect_equal(suite.get_bytes("large/nine-mib"), data, "body")


@check
def overwrite_is_last_writer_wins(suite):
    suite.put("overwrite/key", b"first version")
    suite.put("overwrite/key", b"second, longer version")
    expect_equal(suite.get_bytes("overwrite/key"), b"second, longer version", "body")


@check
def user_metadata_and_content_type_round_trip(suite):
    metadata = {"colour": "blue", "owner-team": "storage"}
    suite.put("meta/object", b"{}", Metadata=metadata, ContentType="application/json")
    head = suite.s3.head_object(Bucket=suite.bucket, Key="meta/object")
    expect_equal(head["Metadata"], metadata, "user metadata on HEAD")
    expect_equal(head["ContentType"], "application/json", "Content-Type on HEAD")
    expect_equal(head["ContentLength"], 2, "Content-Length on HEAD")
    got = suite.s3.get_object(Bucket=suite.bucket, Key="meta/object")
    expect_equal(got["Metadata"], metadata, "user metadata on GET")


@check
def head_object_reports_size_etag_and_modified_time(suite):
    data = pattern(70_000, "head")
    suite.put("head/object", data)
    head = suite.s3.head_object(Bucket=suite.bucket, Key="head/object")
    expect_equal(head["ContentLength"], len(data), "ContentLength")
    expect_equal(head["ETag"], f'"{md5_hex(data)}"', "ETag")
    age = datetime.datetime.now(datetime.timezone.utc) - head["LastModified"]
    if abs(age.total_seconds()) > 600:
        raise AssertionError(f"LastModified {head['LastModified']} is far from now")
    expect_error("404", 404, suite.s3.head_object, Bucket=suite.bucket, Key="head/missing")


@check
def ranged_gets_return_exactly_the_range(suite):
    data = pattern(5 * MIB + 77, "ranges")
    suite.put("range/object", data)
    size = len(data)
    cases = [
        ("bytes=0-0", data[0:1], f"bytes 0-0/{size}"),
        ("bytes=10-99", data[10:100], f"bytes 10-99/{size}"),
        ("bytes=-50", data[-50:], f"bytes {size - 50}-{size - 1}/{size}"),
        ("bytes=4194000-", data[4194000:], f"bytes 4194000-{size - 1}/{size}"),
        # Across a shardlet boundary (2 MiB shardlets for an object of this size).
        ("bytes=2097100-2097200", data[2097100:2097201], f"bytes 2097100-2097200/{size}"),
        # An end past the object is clamped, as S3 does.
        (f"bytes={size - 3}-{size + 1000}", data[-3:], f"bytes {size - 3}-{size - 1}/{size}"),
    ]
    for header, expected, content_range in cases:
        got = suite.s3.get_object(Bucket=suite.bucket, Key="range/object", Range=header)
        expect_equal(got["ResponseMetadata"]["HTTPStatusCode"], 206, f"status for {header}")
        expect_equal(got["ContentRange"], content_range, f"Content-Range for {header}")
        body = got["Body"].read()
        if body != expected:
            raise AssertionError(f"{header}: {len(body)} bytes differ from the expected {len(expected)}")


@check
def default_crc_checksums_are_verified_and_returned(suite):
    data = pattern(300_000, "checksums")
    # boto3's default: a CRC checksum, sent as an aws-chunked trailer.
    answer = suite.put("checksum/default", data)
    expect_equal(answer["ETag"], f'"{md5_hex(data)}"', "ETag")
    got = suite.s3.get_object(Bucket=suite.bucket, Key="checksum/default", ChecksumMode="ENABLED")
    expect_equal(got["Body"].read(), data, "body")
    if "ChecksumCRC32" in answer:
        expect_equal(answer["ChecksumCRC32"], crc32_base64(data), "PutObject ChecksumCRC32")
        expect_equal(got.get("ChecksumCRC32"), crc32_base64(data), "GetObject ChecksumCRC32")
    # Each algorithm the gateway documents. botocore computes CRC32C only with the
    # optional awscrt package, so that value is computed here and sent as a header.
    for algorithm in ["CRC32", "CRC32C", "SHA256", "SHA1"]:
        key = f"checksum/{algorithm.lower()}"
        if algorithm == "CRC32C":
            answer = suite.put(key, data, ChecksumCRC32C=crc32c_base64(data))
        else:
            answer = suite.put(key, data, ChecksumAlgorithm=algorithm)
        head = suite.s3.head_object(Bucket=suite.bucket, Key=key, ChecksumMode="ENABLED")
        field = f"Checksum{algorithm}"
        expected = expected_checksum(algorithm, data)
        expect_equal(head.get(field), expected, f"{field} on HEAD with checksum mode")
        if field in answer:
            expect_equal(answer[field], expected, f"{field} in the PutObject answer")
    # A wrong checksum header must be refused (BadDigest in S3's words).
    wrong = base64.b64encode(b"\0\0\0\0").decode()
    expect_error(
        ("BadDigest", "InvalidRequest", "XAmzContentChecksumMismatch"),
        400,
        suite.put,
        "checksum/wrong",
        data,
        ChecksumCRC32=wrong,
    )
    expect_error("NoSuchKey", 404, suite.s3.get_object, Bucket=suite.bucket, Key="checksum/wrong")


@check
def copy_object_copies_bytes_and_metadata(suite):
    data = pattern(3 * MIB + 5, "copy-source")
    suite.put("copy/source", data, Metadata={"origin": "source"})
    answer = suite.s3.copy_object(
        Bucket=suite.bucket, Key="copy/same-metadata", CopySource={"Bucket": suite.bucket, "Key": "copy/source"}
    )
    expect_equal(answer["CopyObjectResult"]["ETag"], f'"{md5_hex(data)}"', "copy ETag")
    expect_equal(suite.get_bytes("copy/same-metadata"), data, "copied body")
    head = suite.s3.head_object(Bucket=suite.bucket, Key="copy/same-metadata")
    expect_equal(head["Metadata"], {"origin": "source"}, "copied metadata")
    suite.s3.copy_object(
        Bucket=suite.bucket,
        Key="copy/replaced-metadata",
        CopySource={"Bucket": suite.bucket, "Key": "copy/source"},
        MetadataDirective="REPLACE",
        Metadata={"origin": "replaced"},
    )
    head = suite.s3.head_object(Bucket=suite.bucket, Key="copy/replaced-metadata")
    expect_equal(head["Metadata"], {"origin": "replaced"}, "replaced metadata")
    expect_equal(suite.get_bytes("copy/replaced-metadata"), data, "body after REPLACE")
    # The copy is independent of its source.
    suite.s3.delete_object(Bucket=suite.bucket, Key="copy/source")
    expect_equal(suite.get_bytes("copy/same-metadata"), data, "copy after deleting the source")


@check
def delete_object_and_delete_objects(suite):
    keys = [f"delete/{index}" for index in range(6)]
    for key in keys:
        suite.put(key, key.encode())
    suite.s3.delete_object(Bucket=suite.bucket, Key="delete/0")
    expect_error("NoSuchKey", 404, suite.s3.get_object, Bucket=suite.bucket, Key="delete/0")
    # Deleting a key that does not exist succeeds (S3 is idempotent here).
    answer = suite.s3.delete_object(Bucket=suite.bucket, Key="delete/never-existed")
    expect_equal(answer["ResponseMetadata"]["HTTPStatusCode"], 204, "DeleteObject of a missing key")
    answer = suite.s3.delete_objects(
        Bucket=suite.bucket,
        Delete={"Objects": [{"Key": key} for key in ["delete/1", "delete/2", "delete/3", "delete/missing"]]},
    )
    deleted = sorted(item["Key"] for item in answer.get("Deleted", []))
    expect_equal(deleted, ["delete/1", "delete/2", "delete/3", "delete/missing"], "Deleted")
    expect_equal(answer.get("Errors", []), [], "Errors")
    expect_equal(suite.all_keys("delete/"), ["delete/4", "delete/5"], "keys left")
    quiet = suite.s3.delete_objects(
        Bucket=suite.bucket, Delete={"Objects": [{"Key": "delete/4"}], "Quiet": True}
    )
    expect_equal(quiet.get("Deleted", []), [], "Quiet mode lists nothing deleted")
    expect_equal(suite.all_keys("delete/"), ["delete/5"], "keys left after quiet delete")


def create_listing_tree(suite):
    keys = sorted(
        [f"list/top-{index:02}" for index in range(9)]
        + [f"list/alpha/{index:02}" for index in range(7)]
        + [f"list/beta/gamma/{index:02}" for index in range(4)]
        + ["list/zeta/only"]
    )
    for key in keys:
        suite.put(key, key.encode())
    return keys


@check
def list_objects_v2_pages_with_max_keys_and_continuation_tokens(suite):
    keys = create_listing_tree(suite)
    seen = []
    token = None
    pages = 0
    while True:
        arguments = dict(Bucket=suite.bucket, Prefix="list/", MaxKeys=4)
        if token:
            arguments["ContinuationToken"] = token
        page = suite.s3.list_objects_v2(**arguments)
        pages += 1
        contents = [item["Key"] for item in page.get("Contents", [])]
        if len(contents) > 4:
            raise AssertionError(f"page {pages} has {len(contents)} keys > MaxKeys 4")
        expect_equal(page["KeyCount"], len(contents), "KeyCount")
        seen += contents
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
        if pages > 20:
            raise AssertionError("listing does not end")
    expect_equal(seen, keys, "keys over all pages")
    expect_equal(pages, (len(keys) + 3) // 4, "number of pages")
    # Sizes and ETags in the listing match the objects.
    page = suite.s3.list_objects_v2(Bucket=suite.bucket, Prefix="list/zeta/")
    item = page["Contents"][0]
    expect_equal(item["Size"], len(b"list/zeta/only"), "Size")
    expect_equal(item["ETag"], f'"{md5_hex(b"list/zeta/only")}"', "ETag in listing")


@check
def list_objects_v2_delimiter_common_prefixes_and_start_after(suite):
    if not suite.all_keys("list/"):
        create_listing_tree(suite)
    page = suite.s3.list_objects_v2(Bucket=suite.bucket, Prefix="list/", Delimiter="/")
    prefixes = [item["Prefix"] for item in page.get("CommonPrefixes", [])]
    expect_equal(prefixes, ["list/alpha/", "list/beta/", "list/zeta/"], "CommonPrefixes")
    expect_equal(
        [item["Key"] for item in page.get("Contents", [])],
        [f"list/top-{index:02}" for index in range(9)],
        "Contents next to the common prefixes",
    )
    # Common prefixes count towards max-keys and page like keys.
    collected_keys, collected_prefixes, token = [], [], None
    for _ in range(20):
        arguments = dict(Bucket=suite.bucket, Prefix="list/", Delimiter="/", MaxKeys=2)
        if token:
            arguments["ContinuationToken"] = token
        page = suite.s3.list_objects_v2(**arguments)
        entries = len(page.get("Contents", [])) + len(page.get("CommonPrefixes", []))
        if entries > 2:
            raise AssertionError(f"{entries} entries on a page with MaxKeys 2")
        collected_keys += [item["Key"] for item in page.get("Contents", [])]
        collected_prefixes += [item["Prefix"] for item in page.get("CommonPrefixes", [])]
        if not page["IsTruncated"]:
            break
        token = page["NextContinuationToken"]
    expect_equal(collected_prefixes, ["list/alpha/", "list/beta/", "list/zeta/"], "paged prefixes")
    expect_equal(collected_keys, [f"list/top-{index:02}" for index in range(9)], "paged keys")
    # Nested prefix with delimiter.
    page = suite.s3.list_objects_v2(Bucket=suite.bucket, Prefix="list/beta/", Delimiter="/")
    expect_equal([p["Prefix"] for p in page.get("CommonPrefixes", [])], ["list/beta/gamma/"], "nested")
    # StartAfter skips everything up to and including the given key.
    page = suite.s3.list_objects_v2(Bucket=suite.bucket, Prefix="list/", StartAfter="list/top-05")
    expect_equal([item["Key"] for item in page.get("Contents", [])], ["list/top-06", "list/top-07", "list/top-08", "list/zeta/only"], "StartAfter")
    # ListObjects (v1) with Marker.
    page = suite.s3.list_objects(Bucket=suite.bucket, Prefix="list/alpha/", MaxKeys=3)
    expect_equal([item["Key"] for item in page["Contents"]], ["list/alpha/00", "list/alpha/01", "list/alpha/02"], "v1 first page")
    expect_equal(page["IsTruncated"], True, "v1 IsTruncated")
    page = suite.s3.list_objects(Bucket=suite.bucket, Prefix="list/alpha/", Marker="list/alpha/02")
    expect_equal([item["Key"] for item in page["Contents"]], [f"list/alpha/{index:02}" for index in range(3, 7)], "v1 after Marker")
    # A prefix that matches nothing is an empty, complete listing.
    page = suite.s3.list_objects_v2(Bucket=suite.bucket, Prefix="list/nothing-here/")
    expect_equal((page["KeyCount"], page["IsTruncated"], page.get("Contents")), (0, False, None), "empty listing")


@check
def multipart_with_explicit_parts_upload_part_copy_list_parts_and_uploads(suite):
    copy_source = pattern(6 * MIB, "part-copy-source")
    suite.put("multipart/copy-source", copy_source)
    parts_data = [pattern(PART_BYTES_MIN, "part-1"), None, pattern(MIB + 3, "part-3")]
    created = suite.s3.create_multipart_upload(
        Bucket=suite.bucket, Key="multipart/object", Metadata={"kind": "multipart"}
    )
    upload_id = created["UploadId"]
    uploads = suite.s3.list_multipart_uploads(Bucket=suite.bucket, Prefix="multipart/")
    if upload_id not in [item["UploadId"] for item in uploads.get("Uploads", [])]:
        raise AssertionError(f"ListMultipartUploads misses {upload_id}: {uploads.get('Uploads')}")
    etags = {}
    etags[1] = suite.s3.upload_part(
        Bucket=suite.bucket, Key="multipart/object", UploadId=upload_id, PartNumber=1, Body=parts_data[0]
    )["ETag"]
    expect_equal(etags[1], f'"{md5_hex(parts_data[0])}"', "part 1 ETag")
    # Part 2 copied from a range of another object (bytes 1 MiB .. 6 MiB - 1: 5 MiB).
    copied = suite.s3.upload_part_copy(
        Bucket=suite.bucket,
        Key="multipart/object",
        UploadId=upload_id,
        PartNumber=2,
        CopySource={"Bucket": suite.bucket, "Key": "multipart/copy-source"},
        CopySourceRange=f"bytes={MIB}-{6 * MIB - 1}",
    )
    parts_data[1] = copy_source[MIB : 6 * MIB]
    etags[2] = copied["CopyPartResult"]["ETag"]
    expect_equal(etags[2], f'"{md5_hex(parts_data[1])}"', "part 2 (copy) ETag")
    etags[3] = suite.s3.upload_part(
        Bucket=suite.bucket, Key="multipart/object", UploadId=upload_id, PartNumber=3, Body=parts_data[2]
    )["ETag"]
    listed = suite.s3.list_parts(Bucket=suite.bucket, Key="multipart/object", UploadId=upload_id)
    expect_equal(
        [(part["PartNumber"], part["Size"], part["ETag"]) for part in listed["Parts"]],
        [(number, len(parts_data[number - 1]), etags[number]) for number in (1, 2, 3)],
        "ListParts",
    )
    page = suite.s3.list_parts(Bucket=suite.bucket, Key="multipart/object", UploadId=upload_id, MaxParts=2)
    expect_equal([part["PartNumber"] for part in page["Parts"]], [1, 2], "ListParts MaxParts=2")
    expect_equal(page["IsTruncated"], True, "ListParts IsTruncated")
    page = suite.s3.list_parts(
        Bucket=suite.bucket, Key="multipart/object", UploadId=upload_id, PartNumberMarker=page["NextPartNumberMarker"]
    )
    expect_equal([part["PartNumber"] for part in page["Parts"]], [3], "ListParts after the marker")
    # Invisible until completed.
    expect_error("NoSuchKey", 404, suite.s3.get_object, Bucket=suite.bucket, Key="multipart/object")
    done = suite.s3.complete_multipart_upload(
        Bucket=suite.bucket,
        Key="multipart/object",
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etags[n]} for n in (1, 2, 3)]},
    )
    expected_etag = multipart_etag(parts_data)
    expect_equal(done["ETag"], expected_etag, "CompleteMultipartUpload ETag")
    whole = b"".join(parts_data)
    got = suite.s3.get_object(Bucket=suite.bucket, Key="multipart/object")
    expect_equal(got["ETag"], expected_etag, "GetObject ETag of a multipart object")
    expect_equal(got["Metadata"], {"kind": "multipart"}, "metadata given at CreateMultipartUpload")
    body = got["Body"].read()
    if body != whole:
        raise AssertionError(f"multipart body differs ({len(body)} vs {len(whole)} bytes)")
    # A range across the part boundary.
    ranged = suite.get_bytes("multipart/object", Range=f"bytes={PART_BYTES_MIN - 10}-{PART_BYTES_MIN + 9}")
    expect_equal(ranged, whole[PART_BYTES_MIN - 10 : PART_BYTES_MIN + 10], "range across parts")
    uploads = suite.s3.list_multipart_uploads(Bucket=suite.bucket, Prefix="multipart/")
    if upload_id in [item["UploadId"] for item in uploads.get("Uploads", [])]:
        raise AssertionError("a completed upload is still listed")


@check
def abort_multipart_upload_forgets_the_upload(suite):
    upload_id = suite.s3.create_multipart_upload(Bucket=suite.bucket, Key="abort/object")["UploadId"]
    suite.s3.upload_part(Bucket=suite.bucket, Key="abort/object", UploadId=upload_id, PartNumber=1, Body=b"abc")
    suite.s3.abort_multipart_upload(Bucket=suite.bucket, Key="abort/object", UploadId=upload_id)
    uploads = suite.s3.list_multipart_uploads(Bucket=suite.bucket, Prefix="abort/")
    if upload_id in [item["UploadId"] for item in uploads.get("Uploads", [])]:
        raise AssertionError("an aborted upload is still listed")
    expect_error("NoSuchUpload", 404, suite.s3.list_parts, Bucket=suite.bucket, Key="abort/object", UploadId=upload_id)
    expect_error(
        "NoSuchUpload", 404, suite.s3.upload_part,
        Bucket=suite.bucket, Key="abort/object", UploadId=upload_id, PartNumber=2, Body=b"late",
    )
    expect_error("NoSuchKey", 404, suite.s3.get_object, Bucket=suite.bucket, Key="abort/object")


@check
def managed_transfer_uses_multipart_and_round_trips(suite):
    data = pattern(21 * MIB + 1, "managed-transfer")
    config = TransferConfig(multipart_threshold=8 * MIB, multipart_chunksize=8 * MIB, max_concurrency=2)
    suite.s3.upload_fileobj(io.BytesIO(data), suite.bucket, "transfer/object", Config=config)
    chunks = [data[offset : offset + 8 * MIB] for offset in range(0, len(data), 8 * MIB)]
    head = suite.s3.head_object(Bucket=suite.bucket, Key="transfer/object")
    expect_equal(head["ETag"], multipart_etag(chunks), "multipart ETag from upload_fileobj")
    out = io.BytesIO()
    suite.s3.download_fileobj(suite.bucket, "transfer/object", out, Config=config)
    if out.getvalue() != data:
        raise AssertionError("download_fileobj returned different bytes")


@check
def conditional_gets(suite):
    data = b"conditional body"
    suite.put("conditional/object", data)
    etag = f'"{md5_hex(data)}"'
    head = suite.s3.head_object(Bucket=suite.bucket, Key="conditional/object")
    modified = head["LastModified"]
    past = modified - datetime.timedelta(days=1)
    future = modified + datetime.timedelta(days=1)
    key = dict(Bucket=suite.bucket, Key="conditional/object")
    expect_equal(suite.s3.get_object(IfMatch=etag, **key)["Body"].read(), data, "If-Match (matching)")
    expect_error("PreconditionFailed", 412, suite.s3.get_object, IfMatch='"0123456789abcdef0123456789abcdef"', **key)
    expect_error("304", 304, suite.s3.get_object, IfNoneMatch=etag, **key)
    expect_equal(
        suite.s3.get_object(IfNoneMatch='"0123456789abcdef0123456789abcdef"', **key)["Body"].read(),
        data,
        "If-None-Match (not matching)",
    )
    # HTTP dates have whole seconds: a cache sending back the Last-Modified it got must
    # see 304, however precisely the gateway keeps the modification time.
    expect_error("304", 304, suite.s3.get_object, IfModifiedSince=modified, **key)
    expect_equal(suite.s3.get_object(IfModifiedSince=past, **key)["Body"].read(), data, "If-Modified-Since past")
    expect_error("PreconditionFailed", 412, suite.s3.get_object, IfUnmodifiedSince=past, **key)
    expect_equal(suite.s3.get_object(IfUnmodifiedSince=modified, **key)["Body"].read(), data, "If-Unmodified-Since = Last-Modified")
    expect_equal(suite.s3.get_object(IfUnmodifiedSince=future, **key)["Body"].read(), data, "If-Unmodified-Since future")
    # RFC 9110: If-Match wins over If-Unmodified-Since; If-None-Match over If-Modified-Since.
    expect_equal(
        suite.s3.get_object(IfMatch=etag, IfUnmodifiedSince=past, **key)["Body"].read(), data, "If-Match + stale IUS"
    )
    expect_error("304", 304, suite.s3.head_object, IfNoneMatch=etag, **key)
    expect_error(("412", "PreconditionFailed"), 412, suite.s3.head_object, IfMatch='"0123456789abcdef0123456789abcdef"', **key)


@check
def conditional_put_if_none_match_refuses_overwrite(suite):
    suite.put("conditional/create-once", b"first")
    expect_error("PreconditionFailed", 412, suite.put, "conditional/create-once", b"second", IfNoneMatch="*")
    expect_equal(suite.get_bytes("conditional/create-once"), b"first", "body after refused overwrite")


def open_url(request, what):
    """urlopen that puts the S3 error body into the failure message."""
    try:
        return urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as error:
        raise AssertionError(f"{what}: HTTP {error.code}: {error.read().decode(errors='replace')}") from None


@check
def presigned_get_url_works_and_tampering_is_refused(suite):
    data = pattern(100_000, "presigned-get")
    suite.put("presigned/get", data)
    get_url = suite.s3.generate_presigned_url(
        "get_object", Params={"Bucket": suite.bucket, "Key": "presigned/get"}, ExpiresIn=300
    )
    with open_url(get_url, "presigned GET") as response:
        expect_equal(response.read(), data, "presigned GET body")
    tampered = get_url.replace("presigned/get", "presigned/other")
    try:
        urllib.request.urlopen(tampered, timeout=60)
        raise AssertionError("a tampered presigned URL was accepted")
    except urllib.error.HTTPError as error:
        expect_equal(error.code, 403, "tampered presigned URL status")
        body = error.read().decode(errors="replace")
        if "SignatureDoesNotMatch" not in body:
            raise AssertionError(f"tampered presigned URL: {body}")


def put_without_content_type(url, data):
    """PUT with exactly Host and Content-Length: urllib would add a Content-Type, which a
    SigV2 presigned URL signs (as empty) and so must not be sent."""
    parsed = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)
    try:
        target = parsed.path + ("?" + parsed.query if parsed.query else "")
        connection.putrequest("PUT", target, skip_accept_encoding=True)
        connection.putheader("Content-Length", str(len(data)))
        connection.endheaders()
        connection.send(data)
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        connection.close()


@check
def presigned_put_urls_work_with_sigv2_and_sigv4(suite):
    # boto3's default presigned URL for S3 (query-string SigV2), then SigV4.
    data = pattern(100_000, "presigned-put-v2")
    url = suite.s3.generate_presigned_url(
        "put_object", Params={"Bucket": suite.bucket, "Key": "presigned/put-v2"}, ExpiresIn=300
    )
    status, text = put_without_content_type(url, data)
    expect_equal(status, 200, f"presigned PUT (default signature) {url}: {text}")
    expect_equal(suite.get_bytes("presigned/put-v2"), data, "object stored through a presigned PUT")
    v4 = suite.client(suite.access_key, suite.secret_key, signature_version="s3v4")
    data = pattern(100_000, "presigned-put-v4")
    url = v4.generate_presigned_url(
        "put_object", Params={"Bucket": suite.bucket, "Key": "presigned/put-v4"}, ExpiresIn=300
    )
    if "X-Amz-Signature=" not in url:
        raise AssertionError(f"not a SigV4 presigned URL: {url}")
    request = urllib.request.Request(url, data=data, method="PUT", headers={"Content-Type": "text/plain"})
    with open_url(request, f"presigned PUT (SigV4) {url}") as response:
        expect_equal(response.status, 200, "presigned PUT (SigV4) status")
    expect_equal(suite.get_bytes("presigned/put-v4"), data, "object stored through a SigV4 presigned PUT")
    url = v4.generate_presigned_url(
        "get_object", Params={"Bucket": suite.bucket, "Key": "presigned/put-v4"}, ExpiresIn=300
    )
    with open_url(url, "presigned GET (SigV4)") as response:
        expect_equal(response.read(), data, "presigned GET (SigV4) body")


@check
def error_no_such_bucket(suite):
    expect_error("NoSuchBucket", 404, suite.s3.get_object, Bucket="no-such-bucket-here", Key="k")
    expect_error("NoSuchBucket", 404, suite.s3.list_objects_v2, Bucket="no-such-bucket-here")
    expect_error("NoSuchBucket", 404, suite.s3.put_object, Bucket="no-such-bucket-here", Key="k", Body=b"x")
    expect_error("NoSuchBucket", 404, suite.s3.delete_bucket, Bucket="no-such-bucket-here")


@check
def error_no_such_key(suite):
    expect_error("NoSuchKey", 404, suite.s3.get_object, Bucket=suite.bucket, Key="missing/key")
    expect_error(
        "NoSuchKey", 404, suite.s3.copy_object,
        Bucket=suite.bucket, Key="copy/target", CopySource={"Bucket": suite.bucket, "Key": "missing/key"},
    )


@check
def error_bucket_not_empty(suite):
    suite.s3.create_bucket(Bucket="boto3-not-empty")
    suite.s3.put_object(Bucket="boto3-not-empty", Key="k", Body=b"x")
    expect_error("BucketNotEmpty", 409, suite.s3.delete_bucket, Bucket="boto3-not-empty")
    suite.s3.head_bucket(Bucket="boto3-not-empty")
    suite.s3.delete_object(Bucket="boto3-not-empty", Key="k")
    suite.s3.delete_bucket(Bucket="boto3-not-empty")
    expect_error("404", 404, suite.s3.head_bucket, Bucket="boto3-not-empty")


@check
def error_invalid_range(suite):
    suite.put("range/small", b"0123456789")
    expect_error("InvalidRange", 416, suite.s3.get_object, Bucket=suite.bucket, Key="range/small", Range="bytes=10-20")
    expect_error("InvalidRange", 416, suite.s3.get_object, Bucket=suite.bucket, Key="range/small", Range="bytes=1000-")


@check
def error_signature_does_not_match(suite):
    wrong = suite.client(suite.access_key, suite.secret_key[:-4] + "XXXX")
    expect_error("SignatureDoesNotMatch", 403, wrong.list_objects_v2, Bucket=suite.bucket)
    expect_error("SignatureDoesNotMatch", 403, wrong.put_object, Bucket=suite.bucket, Key="forged", Body=b"x")
    expect_error("NoSuchKey", 404, suite.s3.get_object, Bucket=suite.bucket, Key="forged")


@check
def error_access_denied_for_anonymous_and_unknown_keys(suite):
    anonymous = suite.client(None, None, signature_version=botocore.UNSIGNED)
    expect_error("AccessDenied", 403, anonymous.list_objects_v2, Bucket=suite.bucket)
    expect_error("AccessDenied", 403, anonymous.get_object, Bucket=suite.bucket, Key="small/hello.txt")
    expect_error("AccessDenied", 403, anonymous.put_object, Bucket=suite.bucket, Key="anonymous", Body=b"x")
    # S3 itself answers InvalidAccessKeyId (403) for a key it does not know.
    unknown = suite.client("AKIDUNKNOWN000000000", "unknown-secret-unknown-secret-unknown00")
    expect_error(("InvalidAccessKeyId", "AccessDenied"), 403, unknown.list_objects_v2, Bucket=suite.bucket)
    expect_error("NoSuchKey", 404, suite.s3.get_object, Bucket=suite.bucket, Key="anonymous")


def started_upload_with_two_parts(suite, key):
    upload_id = suite.s3.create_multipart_upload(Bucket=suite.bucket, Key=key)["UploadId"]
    parts = [pattern(PART_BYTES_MIN, f"{key}-1"), pattern(1000, f"{key}-2")]
    etags = [
        suite.s3.upload_part(Bucket=suite.bucket, Key=key, UploadId=upload_id, PartNumber=n + 1, Body=part)["ETag"]
        for n, part in enumerate(parts)
    ]
    return upload_id, etags


@check
def error_invalid_part_and_invalid_part_order(suite):
    key = "errors/multipart"
    upload_id, etags = started_upload_with_two_parts(suite, key)
    complete = lambda parts: suite.s3.complete_multipart_upload(  # noqa: E731
        Bucket=suite.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
    )
    expect_error("InvalidPartOrder", 400, complete, [{"PartNumber": 2, "ETag": etags[1]}, {"PartNumber": 1, "ETag": etags[0]}])
    expect_error("InvalidPart", 400, complete, [{"PartNumber": 1, "ETag": etags[0]}, {"PartNumber": 3, "ETag": etags[1]}])
    expect_error(
        "InvalidPart", 400, complete,
        [{"PartNumber": 1, "ETag": '"0123456789abcdef0123456789abcdef"'}, {"PartNumber": 2, "ETag": etags[1]}],
    )
    # The upload survives refused completions and still completes correctly.
    done = complete([{"PartNumber": 1, "ETag": etags[0]}, {"PartNumber": 2, "ETag": etags[1]}])
    expected = multipart_etag([pattern(PART_BYTES_MIN, f"{key}-1"), pattern(1000, f"{key}-2")])
    expect_equal(done["ETag"], expected, "ETag after refused completions")


@check
def error_entity_too_small(suite):
    key = "errors/too-small"
    upload_id = suite.s3.create_multipart_upload(Bucket=suite.bucket, Key=key)["UploadId"]
    etags = [
        suite.s3.upload_part(Bucket=suite.bucket, Key=key, UploadId=upload_id, PartNumber=n, Body=b"tiny")["ETag"]
        for n in (1, 2)
    ]
    expect_error(
        "EntityTooSmall", 400, suite.s3.complete_multipart_upload,
        Bucket=suite.bucket, Key=key, UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": n + 1, "ETag": etag} for n, etag in enumerate(etags)]},
    )
    suite.s3.abort_multipart_upload(Bucket=suite.bucket, Key=key, UploadId=upload_id)


def raw_signed_request(suite, method, path, headers, body=b""):
    """Sends a SigV4-signed request whose headers boto3 would not let us set (a
    Content-Length far larger than the body), and returns (status, body text)."""
    url = suite.endpoint + path
    request = AWSRequest(method=method, url=url, headers=dict(headers))
    request.headers["x-amz-content-sha256"] = "UNSIGNED-PAYLOAD"
    credentials = botocore.credentials.Credentials(suite.access_key, suite.secret_key)
    SigV4Auth(credentials, "s3", suite.region).add_auth(request)
    parsed = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        for name, value in request.headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        if body:
            try:
                connection.send(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # The server may answer and close before reading a refused body.
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        connection.close()


@check
def error_entity_too_large(suite):
    # Declared one byte over 5 GiB: refused from the header, before any body byte.
    status, text = raw_signed_request(
        suite, "PUT", f"/{suite.bucket}/errors/too-large",
        {"Content-Length": str(SINGLE_PUT_BYTES_MAX + 1)},
    )
    expect_equal(status, 400, f"status for a {SINGLE_PUT_BYTES_MAX + 1}-byte PUT ({text})")
    if "EntityTooLarge" not in text:
        raise AssertionError(f"expected EntityTooLarge, got {text}")
    expect_error("NoSuchKey", 404, suite.s3.get_object, Bucket=suite.bucket, Key="errors/too-large")


@check
def error_bad_digest(suite):
    data = b"the body that is sent"
    wrong_md5 = base64.b64encode(hashlib.md5(b"another body").digest()).decode()
    expect_error("BadDigest", 400, suite.put, "errors/bad-digest", data, ContentMD5=wrong_md5)
    expect_error("NoSuchKey", 404, suite.s3.get_object, Bucket=suite.bucket, Key="errors/bad-digest")
    right_md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
    suite.put("errors/good-digest", data, ContentMD5=right_md5)
    expect_equal(suite.get_bytes("errors/good-digest"), data, "body with a correct Content-MD5")


@check
def error_no_such_upload(suite):
    bogus = "this-upload-id-does-not-exist"
    expect_error(
        "NoSuchUpload", 404, suite.s3.upload_part,
        Bucket=suite.bucket, Key="errors/no-upload", UploadId=bogus, PartNumber=1, Body=b"x",
    )
    expect_error(
        "NoSuchUpload", 404, suite.s3.complete_multipart_upload,
        Bucket=suite.bucket, Key="errors/no-upload", UploadId=bogus,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"0123456789abcdef0123456789abcdef"'}]},
    )
    expect_error("NoSuchUpload", 404, suite.s3.abort_multipart_upload, Bucket=suite.bucket, Key="errors/no-upload", UploadId=bogus)


@check
def error_invalid_bucket_name(suite):
    # Names botocore's own validation lets through but S3's rules refuse.
    for name in ["ab", "UpperCase", "under_score", "-leading-dash", "a" * 64, "192.168.5.4", "double..dot"]:
        expect_error("InvalidBucketName", 400, suite.s3.create_bucket, Bucket=name)


@check
def storage_classes_round_trip_and_unknown_class_is_refused(suite):
    expect_error("InvalidStorageClass", 400, suite.put, "errors/class", b"x", StorageClass="OUTPOSTS")
    for storage_class in ["STANDARD_IA", "ONEZONE_IA", "REDUCED_REDUNDANCY", "GLACIER"]:
        data = pattern(3 * MIB + 11, storage_class)
        suite.put(f"classes/{storage_class}", data, StorageClass=storage_class)
        got = suite.s3.get_object(Bucket=suite.bucket, Key=f"classes/{storage_class}")
        expect_equal(got["Body"].read(), data, f"body stored as {storage_class}")
        expect_equal(got.get("StorageClass"), storage_class, "StorageClass reported on GET")


def run(suite, selected):
    failures = []
    for function in CHECKS:
        if selected and function.__name__ not in selected:
            continue
        try:
            function(suite)
            print(f"ok {function.__name__}", flush=True)
        except Exception as error:  # noqa: BLE001 - every failure is reported, by name
            failures.append(function.__name__)
            detail = traceback.format_exc(limit=3).strip().replace("\n", "\n    ")
            print(f"FAIL {function.__name__}: {error}\n    {detail}", flush=True)
    print(f"{len(failures)} of {len(CHECKS) if not selected else len(selected)} checks failed: {failures}", flush=True)
    return failures


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoint", default=os.environ.get("AWS_ENDPOINT_URL"))
    parser.add_argument("--access-key", default=os.environ.get("AWS_ACCESS_KEY_ID"))
    parser.add_argument("--secret-key", default=os.environ.get("AWS_SECRET_ACCESS_KEY"))
    parser.add_argument("--region", default=os.environ.get("AWS_REGION", "us-east-1"))
    parser.add_argument("--only", nargs="*", default=[], help="run only these checks")
    parser.add_argument("--list", action="store_true", help="print the checks' names and exit")
    arguments = parser.parse_args()
    if arguments.list:
        print("\n".join(function.__name__ for function in CHECKS))
        return 0
    if not (arguments.endpoint and arguments.access_key and arguments.secret_key):
        parser.error("--endpoint, --access-key and --secret-key (or AWS_* variables) are required")
    unknown = set(arguments.only) - {function.__name__ for function in CHECKS}
    if unknown:
        parser.error(f"unknown checks: {sorted(unknown)}")
    print(f"boto3 {boto3.__version__}, botocore {botocore.__version__}", flush=True)
    suite = Suite(arguments.endpoint, arguments.access_key, arguments.secret_key, arguments.region)
    # Later checks need the bucket; create it even when only some checks run.
    if arguments.only and "buckets_create_head_list_locate" not in arguments.only:
        try:
            suite.s3.create_bucket(Bucket=suite.bucket)
        except ClientError:
            pass
    return 1 if run(suite, set(arguments.only)) else 0


if __name__ == "__main__":
    sys.exit(main())
