#!/usr/bin/env python3
"""Bucket tagging through boto3: Put/Get/DeleteBucketTagging round trips, S3's rules
(at most 50 tags, keys of 1-128 and values of 0-256 Unicode characters, unique keys,
no `aws:` prefix: each InvalidTag with S3's message, leaving the stored tags as they
were), NoSuchTagSet for a bucket without tags, owner-only access and NoSuchBucket.

Usage: bucket_tagging_suite.py --endpoint URL --region R --owner ACCESS:SECRET
           --stranger ACCESS:SECRET

Prints `ok NAME` or `FAIL NAME: reason` per check; exits 1 if any failed. Run by
`integration/tests/gateway_clients/bucket_tagging.rs`.
"""

import argparse
import sys
import urllib.error
import urllib.request
import xml.etree.ElementTree as ElementTree

import boto3
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

BUCKET = "tagged"
MISSING = "no-such-bucket-here"
NO_TAG_SET = (404, "NoSuchTagSet", "The TagSet does not exist")


def client(endpoint, region, access, secret):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access,
        aws_secret_access_key=secret,
        region_name=region,
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1, "mode": "standard"},
            connect_timeout=10,
            read_timeout=60,
            # boto3 refuses an empty key itself; the server's own check is under test.
            parameter_validation=False,
        ),
    )


def answer(function):
    """(status, code, message, response) of one call; code "" on success."""
    try:
        response = function()
        return response["ResponseMetadata"]["HTTPStatusCode"], "", "", response
    except ClientError as error:
        details = error.response.get("Error", {})
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return status, details.get("Code", ""), details.get("Message", ""), None


def tag_set(*pairs):
    return {"TagSet": [{"Key": key, "Value": value} for key, value in pairs]}


def expect(function, expected):
    """None when the call answered `expected` (status, code, message), else why not."""
    status, code, message, _ = answer(function)
    if (status, code, message) != expected:
        return f"answered {(status, code, message)}, expected {expected}"
    return None


def stored(s3):
    """The bucket's tags as [(key, value)], or the error answered."""
    status, code, message, response = answer(lambda: s3.get_bucket_tagging(Bucket=BUCKET))
    if code:
        return (status, code, message)
    return [(tag["Key"], tag["Value"]) for tag in response["TagSet"]]


def check_round_trip(s3):
    if (got := stored(s3)) != NO_TAG_SET:
        return f"a new bucket answered {got}, expected {NO_TAG_SET}"
    tags = [("project", "shardlet"), ("cost-center", ""), ("émoji", "日本 ✓"), ("a b+-=._:/@", "x")]
    status, code, message, _ = answer(lambda: s3.put_bucket_tagging(Bucket=BUCKET, Tagging=tag_set(*tags)))
    if code or status != 200:
        return f"PUT answered {(status, code, message)}"
    if (got := stored(s3)) != tags:
        return f"GET answered {got}, expected {tags}"
    replacement = [("only", "one")]
    answer(lambda: s3.put_bucket_tagging(Bucket=BUCKET, Tagging=tag_set(*replacement)))
    if (got := stored(s3)) != replacement:
        return f"a second PUT did not replace the set: {got}"
    status, code, message, _ = answer(lambda: s3.delete_bucket_tagging(Bucket=BUCKET))
    if (status, code) != (204, ""):
        return f"DELETE answered {(status, code, message)}"
    if (got := stored(s3)) != NO_TAG_SET:
        return f"after DELETE: {got}"
    status, code, message, _ = answer(lambda: s3.delete_bucket_tagging(Bucket=BUCKET))
    if (status, code) != (204, ""):
        return f"DELETE without tags answered {(status, code, message)}"
    return None


def check_limits_accepted(s3):
    """The largest tag set S3 accepts: 50 tags, 128-character keys, 256-character values
    (counted in characters: these are several bytes each)."""
    tags = [(f"{index:02d}" + "é" * 126, "日" * 256) for index in range(50)]
    status, code, message, _ = answer(lambda: s3.put_bucket_tagging(Bucket=BUCKET, Tagging=tag_set(*tags)))
    if code:
        return f"PUT of the limits answered {(status, code, message)}"
    if (got := stored(s3)) != tags:
        return f"GET answered {len(got)} tags, not the 50 stored"
    return None


def invalid_cases():
    """(name, tag set, message) each refused with InvalidTag."""
    return [
        ("51_tags", tag_set(*[(f"k{index}", "") for index in range(51)]), "Bucket tag count cannot be greater than 50"),
        ("empty_key", tag_set(("", "v")), "The TagKey you have provided is invalid"),
        ("key_of_129_characters", tag_set(("é" * 129, "v")), "The TagKey you have provided is too long, max 128"),
        ("value_of_257_characters", tag_set(("k", "v" * 257)), "The TagValue you have provided is too long, max 256"),
        ("aws_prefix", tag_set(("aws:cloudformation:stack-name", "v")), "Your TagKey cannot be prefixed with aws:"),
        ("duplicate_keys", tag_set(("k", "1"), ("k", "2")), "Cannot provide multiple Tags with the same key"),
    ]


def check_invalid(s3, tagging, message):
    """Refused with InvalidTag, and the tags stored before are unchanged."""
    before = [("kept", "yes")]
    answer(lambda: s3.put_bucket_tagging(Bucket=BUCKET, Tagging=tag_set(*before)))
    problem = expect(lambda: s3.put_bucket_tagging(Bucket=BUCKET, Tagging=tagging), (400, "InvalidTag", message))
    if problem:
        return problem
    if (got := stored(s3)) != before:
        return f"a refused PUT changed the tags: {got}"
    return None


def signed_put(endpoint, region, access, secret, path, body):
    """(status, code) of a SigV4-signed PUT with a body boto3 would never send."""
    request = AWSRequest(method="PUT", url=f"{endpoint}{path}", data=body)
    S3SigV4Auth(Credentials(access, secret), "s3", region).add_auth(request)
    prepared = urllib.request.Request(request.url, data=body, method="PUT", headers=dict(request.headers))
    try:
        with urllib.request.urlopen(prepared, timeout=60) as response:
            return response.status, ""
    except urllib.error.HTTPError as error:
        document = error.read()
        try:
            code = ElementTree.fromstring(document).findtext("Code") or ""
        except ElementTree.ParseError:
            code = f"unparsable answer {document[:200]!r}"
        return error.code, code


def check_malformed_bodies(arguments, owner_keys, stranger_keys):
    """Bodies boto3 never sends: not XML, cut off, a Tag without Key or Value: the owner
    gets MalformedXML, a stranger AccessDenied (authorization runs first)."""
    problems = []
    for body in (
        b"not xml",
        b"<Tagging><TagSet><Tag><Key>k</Key>",
        b"<Tagging><TagSet><Tag><Value>v</Value></Tag></TagSet></Tagging>",
        b"<Tagging><TagSet><Tag><Key>k</Key></Tag></TagSet></Tagging>",
        b"\xff\xfe",
    ):
        for who, keys, expected in (
            ("owner", owner_keys, (400, "MalformedXML")),
            ("stranger", stranger_keys, (403, "AccessDenied")),
        ):
            answered = signed_put(arguments.endpoint, arguments.region, *keys, f"/{BUCKET}?tagging", body)
            if answered != expected:
                problems.append(f"{who} {body[:40]!r}: {answered}, expected {expected}")
    return "; ".join(problems) or None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--owner", required=True, help="ACCESS:SECRET")
    parser.add_argument("--stranger", required=True, help="ACCESS:SECRET")
    arguments = parser.parse_args()
    owner = client(arguments.endpoint, arguments.region, *arguments.owner.split(":", 1))
    stranger = client(arguments.endpoint, arguments.region, *arguments.stranger.split(":", 1))
    owner.create_bucket(Bucket=BUCKET)

    failures = []

    def report(name, problem):
        if problem is None:
            print(f"ok {name}", flush=True)
        else:
            failures.append(name)
            print(f"FAIL {name}: {problem}", flush=True)

    report("round_trip", check_round_trip(owner))
    report("limits_accepted", check_limits_accepted(owner))
    for name, tagging, message in invalid_cases():
        report(f"invalid/{name}", check_invalid(owner, tagging, message))
    # A stranger can neither read, set nor delete the owner's tags, and learns nothing.
    for name, call in (
        ("get", lambda s3: s3.get_bucket_tagging(Bucket=BUCKET)),
        ("put", lambda s3: s3.put_bucket_tagging(Bucket=BUCKET, Tagging=tag_set(("x", "y")))),
        ("delete", lambda s3: s3.delete_bucket_tagging(Bucket=BUCKET)),
    ):
        report(f"stranger/{name}", expect(lambda: call(stranger), (403, "AccessDenied", "Access Denied")))
    for name, call in (
        ("get", lambda: owner.get_bucket_tagging(Bucket=MISSING)),
        ("put", lambda: owner.put_bucket_tagging(Bucket=MISSING, Tagging=tag_set(("x", "y")))),
        ("delete", lambda: owner.delete_bucket_tagging(Bucket=MISSING)),
    ):
        status, code, message, _ = answer(call)
        report(
            f"missing_bucket/{name}",
            None if (status, code) == (404, "NoSuchBucket") else f"answered {(status, code, message)}",
        )
    report("stranger_changed_nothing", None if stored(owner) == [("kept", "yes")] else f"tags now {stored(owner)}")
    report(
        "malformed_bodies",
        check_malformed_bodies(arguments, arguments.owner.split(":", 1), arguments.stranger.split(":", 1)),
    )

    print(f"{len(failures)} checks failed: {failures}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
