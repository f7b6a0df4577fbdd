#!/usr/bin/env python3
"""Who may do what: every S3 operation the gateway serves, tried by several real keys
through boto3, each answer compared with what the key's access allows.

Usage: authorization_suite.py --endpoint URL --region R --owner NAME:ACCESS:SECRET
           --key NAME:ACCESS:SECRET:LEVEL [--key ...]

`--owner` owns the buckets `shared` and `shared-source` (created if missing) and
must be allowed everything. Each `--key` is expected to have LEVEL on both of them:
`none` (a stranger: every operation on them is AccessDenied), `read` or `read-write`
(what `shardlet admin bucket grant` gives). Every key also owns a bucket of its own,
`own-NAME`, used as the other end of copies. Before each key's operations the owner
puts the fixtures back (an object, an upload with one part), so an allowed
delete or abort by one key does not change what the next key sees.

Prints `ok NAME` or `FAIL NAME: reason` per check; exits 1 if any failed. Run by
`integration/tests/gateway_clients/authorization.rs`.
"""

import argparse
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

SHARED = "shared"
SOURCE = "shared-source"
OBJECT = "doc.txt"
BODY = b"the owner's document\n"
LEVELS = {"none": 0, "read": 1, "read-write": 2, "owner": 3}
NEEDS = {"read": 1, "write": 2, "own": 3}


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
        ),
    )


def error_code(error):
    return error.response.get("Error", {}).get("Code", "")


def ensure_bucket(s3, name):
    try:
        s3.create_bucket(Bucket=name)
    except ClientError as error:
        if error_code(error) not in ("BucketAlreadyOwnedByYou",):
            raise


class Fixtures:
    """What the owner keeps in its buckets for the keys to act on."""

    def __init__(self, owner):
        self.owner = owner
        self.upload_id = None

    def reset(self):
        s3 = self.owner
        for bucket in (SHARED, SOURCE):
            ensure_bucket(s3, bucket)
            s3.put_object(Bucket=bucket, Key=OBJECT, Body=BODY)
        # One open upload with one part, for ListParts, UploadPart and the rest.
        for upload in s3.list_multipart_uploads(Bucket=SHARED).get("Uploads", []):
            s3.abort_multipart_upload(Bucket=SHARED, Key=upload["Key"], UploadId=upload["UploadId"])
        self.upload_id = s3.create_multipart_upload(Bucket=SHARED, Key="upload.bin")["UploadId"]
        s3.upload_part(Bucket=SHARED, Key="upload.bin", UploadId=self.upload_id, PartNumber=1, Body=b"p" * 1024)


def operations(fixtures, own_bucket):
    """(name, access needed on the shared buckets, function(s3)) for every operation."""
    upload = lambda: fixtures.upload_id  # noqa: E731 - read when the operation runs

    def complete(s3):
        etag = fixtures.owner.list_parts(Bucket=SHARED, Key="upload.bin", UploadId=upload())["Parts"][0]["ETag"]
        s3.complete_multipart_upload(
            Bucket=SHARED,
            Key="upload.bin",
            UploadId=upload(),
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
        )

    def upload_part_copy_from_shared_into_own(s3):
        started = s3.create_multipart_upload(Bucket=own_bucket, Key="copy-part.bin")["UploadId"]
        try:
            s3.upload_part_copy(
                Bucket=own_bucket,
                Key="copy-part.bin",
                UploadId=started,
                PartNumber=1,
                CopySource={"Bucket": SOURCE, "Key": OBJECT},
            )
        finally:
            s3.abort_multipart_upload(Bucket=own_bucket, Key="copy-part.bin", UploadId=started)

    return [
        ("head_bucket", "read", lambda s3: s3.head_bucket(Bucket=SHARED)),
        ("get_bucket_location", "read", lambda s3: s3.get_bucket_location(Bucket=SHARED)),
        ("get_bucket_versioning", "read", lambda s3: s3.get_bucket_versioning(Bucket=SHARED)),
        ("list_objects", "read", lambda s3: s3.list_objects(Bucket=SHARED)),
        ("list_objects_v2", "read", lambda s3: s3.list_objects_v2(Bucket=SHARED)),
        ("list_multipart_uploads", "read", lambda s3: s3.list_multipart_uploads(Bucket=SHARED)),
        ("list_parts", "read", lambda s3: s3.list_parts(Bucket=SHARED, Key="upload.bin", UploadId=upload())),
        ("get_object", "read", lambda s3: s3.get_object(Bucket=SHARED, Key=OBJECT)["Body"].read()),
        ("head_object", "read", lambda s3: s3.head_object(Bucket=SHARED, Key=OBJECT)),
        # Copying out of a shared bucket into one's own needs read on the source only.
        (
            "copy_object_from_shared_into_own",
            "read",
            lambda s3: s3.copy_object(Bucket=own_bucket, Key="copied", CopySource={"Bucket": SOURCE, "Key": OBJECT}),
        ),
        ("upload_part_copy_from_shared_into_own", "read", upload_part_copy_from_shared_into_own),
        ("put_object", "write", lambda s3: s3.put_object(Bucket=SHARED, Key="new.txt", Body=b"new")),
        (
            "copy_object_within_shared",
            "write",
            lambda s3: s3.copy_object(Bucket=SHARED, Key="copy.txt", CopySource={"Bucket": SOURCE, "Key": OBJECT}),
        ),
        (
            "copy_object_from_own_into_shared",
            "write",
            lambda s3: s3.copy_object(Bucket=SHARED, Key="in.txt", CopySource={"Bucket": own_bucket, "Key": "mine"}),
        ),
        (
            "upload_part",
            "write",
            lambda s3: s3.upload_part(Bucket=SHARED, Key="upload.bin", UploadId=upload(), PartNumber=2, Body=b"q"),
        ),
        (
            "upload_part_copy_into_shared",
            "write",
            lambda s3: s3.upload_part_copy(
                Bucket=SHARED,
                Key="upload.bin",
                UploadId=upload(),
                PartNumber=3,
                CopySource={"Bucket": own_bucket, "Key": "mine"},
            ),
        ),
        ("complete_multipart_upload", "write", complete),
        (
            "create_multipart_upload",
            "write",
            lambda s3: s3.create_multipart_upload(Bucket=SHARED, Key="started-by-key.bin"),
        ),
        (
            "abort_multipart_upload",
            "write",
            lambda s3: s3.abort_multipart_upload(Bucket=SHARED, Key="upload.bin", UploadId=upload()),
        ),
        ("delete_object", "write", lambda s3: s3.delete_object(Bucket=SHARED, Key=OBJECT)),
        (
            "delete_objects",
            "write",
            lambda s3: s3.delete_objects(Bucket=SHARED, Delete={"Objects": [{"Key": OBJECT}]}),
        ),
        ("get_bucket_acl", "own", lambda s3: s3.get_bucket_acl(Bucket=SHARED)),
        ("get_object_acl", "own", lambda s3: s3.get_object_acl(Bucket=SHARED, Key=OBJECT)),
        # A bucket's configuration is its owner's even to read (a grant is objects only);
        # the owner is told it has none.
        ("get_bucket_encryption", "own", lambda s3: s3.get_bucket_encryption(Bucket=SHARED)),
        ("get_bucket_request_payment", "own", lambda s3: s3.get_bucket_request_payment(Bucket=SHARED)),
        ("put_bucket_logging_off", "own", lambda s3: s3.put_bucket_logging(Bucket=SHARED, BucketLoggingStatus={})),
        # Not empty: the owner gets BucketNotEmpty (allowed, refused for another reason).
        ("delete_bucket", "own", lambda s3: s3.delete_bucket(Bucket=SHARED)),
    ]


def check_operation(name, needs, function, s3, level):
    """None if the answer matches the level, else what went wrong."""
    allowed = LEVELS[level] >= NEEDS[needs]
    try:
        function(s3)
        outcome = "ok"
    except ClientError as error:
        outcome = error_code(error)
        # A HEAD answer has no body: botocore reports the status as the code.
        if outcome == "403" and name.startswith("head_"):
            outcome = "AccessDenied"
        elif outcome == "AccessDenied":
            message = error.response.get("Error", {}).get("Message", "")
            if message != "Access Denied":
                return f"AccessDenied with a revealing message {message!r}"
    if allowed and outcome == "AccessDenied":
        return f"denied, but {level} allows {needs}"
    if not allowed and outcome != "AccessDenied":
        return f"answered {outcome}, but {level} must not {needs}"
    if allowed and outcome not in ("ok", "BucketNotEmpty", "ServerSideEncryptionConfigurationNotFoundError"):
        return f"allowed but failed: {outcome}"
    return None


def check_denial_reveals_nothing(s3):
    """A stranger's GET of a missing key and of an existing one answer the same."""
    answers = []
    for key in (OBJECT, "no-such-key-here"):
        try:
            s3.get_object(Bucket=SHARED, Key=key)
            answers.append(("ok", ""))
        except ClientError as error:
            answers.append((error_code(error), error.response.get("Error", {}).get("Message", "")))
    if answers[0] != answers[1] or answers[0][0] != "AccessDenied":
        return f"existing and missing keys answer differently: {answers}"
    try:
        s3.get_bucket_acl(Bucket=SHARED)
        return "a stranger read the ACL"
    except ClientError as error:
        if error_code(error) != "AccessDenied":
            return f"ACL answered {error_code(error)}"
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--owner", required=True, help="NAME:ACCESS:SECRET")
    parser.add_argument("--key", action="append", default=[], help="NAME:ACCESS:SECRET:LEVEL")
    arguments = parser.parse_args()

    owner_name, owner_access, owner_secret = arguments.owner.split(":")
    owner = client(arguments.endpoint, arguments.region, owner_access, owner_secret)
    fixtures = Fixtures(owner)
    principals = [(owner_name, owner_access, owner_secret, "owner")]
    for text in arguments.key:
        name, access, secret, level = text.split(":")
        if level not in LEVELS:
            parser.error(f"unknown level {level!r} in --key {name}")
        principals.append((name, access, secret, level))

    failures = []

    def report(name, problem):
        if problem is None:
            print(f"ok {name}", flush=True)
        else:
            failures.append(name)
            print(f"FAIL {name}: {problem}", flush=True)

    for name, access, secret, level in principals:
        s3 = client(arguments.endpoint, arguments.region, access, secret)
        own_bucket = f"own-{name}"
        ensure_bucket(s3, own_bucket)
        s3.put_object(Bucket=own_bucket, Key="mine", Body=b"mine")
        for operation, needs, function in operations(fixtures, own_bucket):
            fixtures.reset()
            report(f"{name}/{level}/{operation}", check_operation(operation, needs, function, s3, level))
        if level == "none":
            fixtures.reset()
            report(f"{name}/{level}/denial_reveals_nothing", check_denial_reveals_nothing(s3))
        # What the owner's buckets hold after the key's turn is the owner's: a denied
        # write left no trace.
        fixtures.reset()
        keys = sorted(item["Key"] for item in owner.list_objects_v2(Bucket=SHARED).get("Contents", []))
        if LEVELS[level] < NEEDS["write"]:
            stray = [key for key in keys if key in ("new.txt", "copy.txt", "in.txt")]
            report(f"{name}/{level}/denied_writes_left_nothing", f"found {stray}" if stray else None)
        for key in ("new.txt", "copy.txt", "in.txt"):
            owner.delete_object(Bucket=SHARED, Key=key)

    print(f"{len(failures)} checks failed: {failures}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
