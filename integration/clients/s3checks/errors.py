"""Every S3 error code the gateway promises, each provoked by its bad request."""

import base64
import hashlib
import http.client
import urllib.parse

import botocore
import botocore.credentials
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from s3checks import (
    MIB,
    PART_BYTES_MIN,
    SINGLE_PUT_BYTES_MAX,
    check,
    expect_equal,
    expect_error,
    multipart_etag,
    pattern,
)


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
    # An empty object has no byte to send: even a suffix range is unsatisfiable.
    suite.put("range/empty", b"")
    expect_error("InvalidRange", 416, suite.s3.get_object, Bucket=suite.bucket, Key="range/empty", Range="bytes=-5")


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
    if "<Code>EntityTooLarge</Code>" not in text or "<Message>" not in text:
        raise AssertionError(f"expected EntityTooLarge with a message, got {text}")
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
def error_key_too_long(suite):
    # S3 keys are at most 1024 bytes of UTF-8 (here 1025 bytes in 513 characters).
    too_long = "é" * 512 + "x"
    expect_error("KeyTooLongError", 400, suite.put, too_long, b"x")
    # The longest key works everywhere, in a bucket with a longest (63-byte) name.
    bucket = "long-names-" + "b" * 52
    suite.s3.create_bucket(Bucket=bucket)
    longest = "é" * 511 + "xy"
    suite.s3.put_object(Bucket=bucket, Key=longest, Body=b"longest key")
    got = suite.s3.get_object(Bucket=bucket, Key=longest)["Body"].read()
    expect_equal(got, b"longest key", "body under a 1024-byte key")
    listed = suite.s3.list_objects_v2(Bucket=bucket, Prefix="é" * 511)
    expect_equal([item["Key"] for item in listed.get("Contents", [])], [longest], "listing")
    multipart = "é" * 511 + "mp"
    upload_id = suite.s3.create_multipart_upload(Bucket=bucket, Key=multipart)["UploadId"]
    uploads = suite.s3.list_multipart_uploads(Bucket=bucket)["Uploads"]
    expect_equal([upload["Key"] for upload in uploads], [multipart], "uploads listed")
    etag = suite.s3.upload_part(Bucket=bucket, Key=multipart, UploadId=upload_id, PartNumber=1, Body=b"part")["ETag"]
    suite.s3.complete_multipart_upload(
        Bucket=bucket, Key=multipart, UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
    )
    got = suite.s3.get_object(Bucket=bucket, Key=multipart)["Body"].read()
    expect_equal(got, b"part", "multipart body under a 1024-byte key")
    suite.s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": longest}, {"Key": multipart}]})
    suite.s3.delete_bucket(Bucket=bucket)


@check
def error_not_implemented_operations_answer_501_with_a_reason(suite):
    for call, arguments in [
        # Operations Shardlet does not serve (docs/gateway.md's compatibility table):
        # object tagging, and a CORS rule set (the GET answers "not configured").
        (suite.s3.put_object_tagging, {"Key": "k", "Tagging": {"TagSet": [{"Key": "k", "Value": "v"}]}}),
        (suite.s3.get_object_tagging, {"Key": "k"}),
        (suite.s3.put_bucket_cors, {"CORSConfiguration": {"CORSRules": [{"AllowedMethods": ["GET"], "AllowedOrigins": ["*"]}]}}),
    ]:
        expect_error("NotImplemented", 501, call, Bucket=suite.bucket, **arguments)
    # The gateway is still serving.
    suite.s3.head_bucket(Bucket=suite.bucket)


@check
def bucket_versioning_and_acl_report_what_shardlet_does(suite):
    versioning = suite.s3.get_bucket_versioning(Bucket=suite.bucket)
    expect_equal(versioning.get("Status"), None, "versioning status (never enabled)")
    owner = suite.s3.list_buckets()["Owner"]["ID"]
    acl = suite.s3.get_bucket_acl(Bucket=suite.bucket)
    expect_equal(acl["Owner"]["ID"], owner, "ACL owner")
    grants = [(g["Grantee"]["ID"], g["Grantee"]["Type"], g["Permission"]) for g in acl["Grants"]]
    expect_equal(grants, [(owner, "CanonicalUser", "FULL_CONTROL")], "grants")
    expect_error("NoSuchBucket", 404, suite.s3.get_bucket_versioning, Bucket="no-such-bucket-here")
    expect_error("NoSuchBucket", 404, suite.s3.get_bucket_acl, Bucket="no-such-bucket-here")
    expect_error(
        "NotImplemented", 501, suite.s3.put_bucket_versioning,
        Bucket=suite.bucket, VersioningConfiguration={"Status": "Enabled"},
    )


@check
def storage_classes_round_trip_and_unknown_class_is_refused(suite):
    expect_error("InvalidStorageClass", 400, suite.put, "errors/class", b"x", StorageClass="OUTPOSTS")
    for storage_class in ["STANDARD_IA", "ONEZONE_IA", "REDUCED_REDUNDANCY", "GLACIER"]:
        data = pattern(3 * MIB + 11, storage_class)
        suite.put(f"classes/{storage_class}", data, StorageClass=storage_class)
        got = suite.s3.get_object(Bucket=suite.bucket, Key=f"classes/{storage_class}")
        expect_equal(got["Body"].read(), data, f"body stored as {storage_class}")
        expect_equal(got.get("StorageClass"), storage_class, "StorageClass reported on GET")
