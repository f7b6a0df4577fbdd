"""Conditional requests and presigned URLs."""

import datetime
import http.client
import urllib.error
import urllib.parse
import urllib.request

from s3checks import check, expect_equal, expect_error, md5_hex, pattern


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
