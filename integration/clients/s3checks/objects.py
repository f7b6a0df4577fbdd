"""Object operations: buckets, PUT/GET/HEAD, ranges, checksums, copy, delete."""

import base64
import datetime

from s3checks import (
    MIB,
    check,
    crc32_base64,
    crc32c_base64,
    expect_equal,
    expect_error,
    expected_checksum,
    md5_hex,
    pattern,
)


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
