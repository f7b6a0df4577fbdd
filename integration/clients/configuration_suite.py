#!/usr/bin/env python3
"""The bucket configurations Shardlet does not have, through boto3: each GET answers
what S3 answers for a bucket without the configuration (its status, error code and
message, or its empty document), each PUT NotImplemented naming the configuration or,
where it asks for the state the bucket is already in, success; each DELETE success.
A missing bucket answers NoSuchBucket to every operation, and another owner's key
AccessDenied to every operation on the owner's bucket.

Usage: configuration_suite.py --endpoint URL --region R --owner ACCESS:SECRET
           --stranger ACCESS:SECRET

Prints `ok NAME` or `FAIL NAME: reason` per check; exits 1 if any failed. Run by
`integration/tests/gateway_clients/configuration.rs`.
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

BUCKET = "configured"
OBJECT = "doc.txt"
MISSING = "no-such-bucket-here"
NOT_IMPLEMENTED = (501, "NotImplemented")
# The GETs come first in `operations`: asked again after the accepted PUTs.
GETS = 15


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


def answer(function):
    """(status, code, message, response) of one call; code "" on success."""
    try:
        response = function()
        return response["ResponseMetadata"]["HTTPStatusCode"], "", "", response
    except ClientError as error:
        details = error.response.get("Error", {})
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return status, details.get("Code", ""), details.get("Message", ""), None


def unsupported(what):
    return (501, "NotImplemented", f"Shardlet does not support {what}")


def operations(bucket):
    """(name, call(s3), expected (status, code, message) or a check of the response)."""
    acl_text = "setting ACLs; access to a bucket is granted by the operator with `shardlet admin bucket grant`"
    policy_text = (
        "bucket policies; access to a bucket is granted by the operator with `shardlet admin bucket grant`"
    )
    empty_notification = {}
    return [
        # GETs: S3's "not configured" errors (404) or empty documents (200).
        (
            "get_bucket_encryption",
            lambda s3: s3.get_bucket_encryption(Bucket=bucket),
            (404, "ServerSideEncryptionConfigurationNotFoundError", "The server side encryption configuration was not found"),
        ),
        (
            "get_bucket_replication",
            lambda s3: s3.get_bucket_replication(Bucket=bucket),
            (404, "ReplicationConfigurationNotFoundError", "The replication configuration was not found"),
        ),
        (
            "get_object_lock_configuration",
            lambda s3: s3.get_object_lock_configuration(Bucket=bucket),
            (404, "ObjectLockConfigurationNotFoundError", "Object Lock configuration does not exist for this bucket"),
        ),
        (
            "get_bucket_website",
            lambda s3: s3.get_bucket_website(Bucket=bucket),
            (404, "NoSuchWebsiteConfiguration", "The specified bucket does not have a website configuration"),
        ),
        (
            "get_bucket_ownership_controls",
            lambda s3: s3.get_bucket_ownership_controls(Bucket=bucket),
            (404, "OwnershipControlsNotFoundError", "The bucket ownership controls were not found"),
        ),
        (
            "get_public_access_block",
            lambda s3: s3.get_public_access_block(Bucket=bucket),
            (404, "NoSuchPublicAccessBlockConfiguration", "The public access block configuration was not found"),
        ),
        (
            "get_bucket_logging",
            lambda s3: s3.get_bucket_logging(Bucket=bucket),
            lambda response: "LoggingEnabled" not in response or f"logging is on: {response}",
        ),
        (
            "get_bucket_notification_configuration",
            lambda s3: s3.get_bucket_notification_configuration(Bucket=bucket),
            lambda response: not any(
                key in response
                for key in (
                    "TopicConfigurations",
                    "QueueConfigurations",
                    "LambdaFunctionConfigurations",
                    "EventBridgeConfiguration",
                )
            )
            or f"notifications configured: {response}",
        ),
        (
            "get_bucket_accelerate_configuration",
            lambda s3: s3.get_bucket_accelerate_configuration(Bucket=bucket),
            lambda response: "Status" not in response or f"a Status: {response}",
        ),
        (
            "get_bucket_request_payment",
            lambda s3: s3.get_bucket_request_payment(Bucket=bucket),
            lambda response: response.get("Payer") == "BucketOwner" or f"payer: {response}",
        ),
        (
            "get_object_acl",
            lambda s3: s3.get_object_acl(Bucket=bucket, Key=OBJECT),
            lambda response: (
                [grant["Permission"] for grant in response.get("Grants", [])] == ["FULL_CONTROL"]
                and response["Grants"][0]["Grantee"]["ID"] == response["Owner"]["ID"]
            )
            or f"not the owner's FULL_CONTROL: {response}",
        ),
        (
            "get_bucket_cors",
            lambda s3: s3.get_bucket_cors(Bucket=bucket),
            (404, "NoSuchCORSConfiguration", "The CORS configuration does not exist"),
        ),
        (
            "get_bucket_lifecycle_configuration",
            lambda s3: s3.get_bucket_lifecycle_configuration(Bucket=bucket),
            (404, "NoSuchLifecycleConfiguration", "The lifecycle configuration does not exist"),
        ),
        (
            "get_bucket_policy",
            lambda s3: s3.get_bucket_policy(Bucket=bucket),
            (404, "NoSuchBucketPolicy", "The bucket policy does not exist"),
        ),
        (
            "get_bucket_policy_status",
            lambda s3: s3.get_bucket_policy_status(Bucket=bucket),
            lambda response: response.get("PolicyStatus") == {"IsPublic": False} or f"status: {response}",
        ),
        # PUTs of what Shardlet does not have: NotImplemented naming it.
        (
            "put_bucket_encryption",
            lambda s3: s3.put_bucket_encryption(
                Bucket=bucket,
                ServerSideEncryptionConfiguration={
                    "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
                },
            ),
            unsupported("bucket default encryption configuration"),
        ),
        (
            "put_bucket_replication",
            lambda s3: s3.put_bucket_replication(
                Bucket=bucket,
                ReplicationConfiguration={
                    "Role": "arn:aws:iam::123456789012:role/replication",
                    "Rules": [
                        {
                            "Status": "Enabled",
                            "Prefix": "",
                            "Destination": {"Bucket": "arn:aws:s3:::elsewhere"},
                        }
                    ],
                },
            ),
            unsupported("bucket replication"),
        ),
        (
            "put_object_lock_configuration",
            lambda s3: s3.put_object_lock_configuration(
                Bucket=bucket, ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"}
            ),
            unsupported("object lock"),
        ),
        (
            "put_bucket_website",
            lambda s3: s3.put_bucket_website(
                Bucket=bucket, WebsiteConfiguration={"IndexDocument": {"Suffix": "index.html"}}
            ),
            unsupported("static website hosting"),
        ),
        (
            "put_bucket_ownership_controls",
            lambda s3: s3.put_bucket_ownership_controls(
                Bucket=bucket, OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
            ),
            unsupported("bucket ownership controls (the bucket's owner owns every object in it)"),
        ),
        (
            "put_public_access_block",
            lambda s3: s3.put_public_access_block(
                Bucket=bucket,
                PublicAccessBlockConfiguration={
                    "BlockPublicAcls": True,
                    "IgnorePublicAcls": True,
                    "BlockPublicPolicy": True,
                    "RestrictPublicBuckets": True,
                },
            ),
            unsupported("public access block configuration (there is no public access: every request is signed)"),
        ),
        ("put_bucket_acl", lambda s3: s3.put_bucket_acl(Bucket=bucket, ACL="private"), unsupported(acl_text)),
        (
            "put_object_acl",
            lambda s3: s3.put_object_acl(Bucket=bucket, Key=OBJECT, ACL="private"),
            unsupported(acl_text),
        ),
        (
            "put_bucket_logging_enabled",
            lambda s3: s3.put_bucket_logging(
                Bucket=bucket,
                BucketLoggingStatus={"LoggingEnabled": {"TargetBucket": bucket, "TargetPrefix": "logs/"}},
            ),
            unsupported("server access logging"),
        ),
        (
            "put_bucket_notification_configuration_with_a_queue",
            lambda s3: s3.put_bucket_notification_configuration(
                Bucket=bucket,
                NotificationConfiguration={
                    "QueueConfigurations": [
                        {"QueueArn": "arn:aws:sqs:us-east-1:123456789012:queue", "Events": ["s3:ObjectCreated:*"]}
                    ]
                },
            ),
            unsupported("event notifications"),
        ),
        (
            "put_bucket_accelerate_configuration_enabled",
            lambda s3: s3.put_bucket_accelerate_configuration(
                Bucket=bucket, AccelerateConfiguration={"Status": "Enabled"}
            ),
            unsupported("transfer acceleration"),
        ),
        (
            "put_bucket_request_payment_requester",
            lambda s3: s3.put_bucket_request_payment(
                Bucket=bucket, RequestPaymentConfiguration={"Payer": "Requester"}
            ),
            unsupported("requester pays buckets"),
        ),
        (
            "put_bucket_cors",
            lambda s3: s3.put_bucket_cors(
                Bucket=bucket,
                CORSConfiguration={"CORSRules": [{"AllowedMethods": ["GET"], "AllowedOrigins": ["*"]}]},
            ),
            unsupported("bucket CORS configuration"),
        ),
        (
            "put_bucket_lifecycle_configuration",
            lambda s3: s3.put_bucket_lifecycle_configuration(
                Bucket=bucket,
                LifecycleConfiguration={
                    "Rules": [{"ID": "expire", "Status": "Enabled", "Filter": {"Prefix": "logs/"}, "Expiration": {"Days": 1}}]
                },
            ),
            unsupported("bucket lifecycle configuration"),
        ),
        (
            "put_bucket_policy",
            lambda s3: s3.put_bucket_policy(
                Bucket=bucket,
                Policy='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*",'
                f'"Action":"s3:GetObject","Resource":"arn:aws:s3:::{bucket}/*"}}]}}',
            ),
            unsupported(policy_text),
        ),
        # PUTs of the state every bucket is in: accepted, nothing changes.
        (
            "put_bucket_logging_off",
            lambda s3: s3.put_bucket_logging(Bucket=bucket, BucketLoggingStatus={}),
            (200, "", ""),
        ),
        (
            "put_bucket_notification_configuration_empty",
            lambda s3: s3.put_bucket_notification_configuration(
                Bucket=bucket, NotificationConfiguration=empty_notification
            ),
            (200, "", ""),
        ),
        (
            "put_bucket_accelerate_configuration_suspended",
            lambda s3: s3.put_bucket_accelerate_configuration(
                Bucket=bucket, AccelerateConfiguration={"Status": "Suspended"}
            ),
            (200, "", ""),
        ),
        (
            "put_bucket_request_payment_bucket_owner",
            lambda s3: s3.put_bucket_request_payment(
                Bucket=bucket, RequestPaymentConfiguration={"Payer": "BucketOwner"}
            ),
            (200, "", ""),
        ),
        # DELETEs: the bucket has none, and has none after.
        ("delete_bucket_encryption", lambda s3: s3.delete_bucket_encryption(Bucket=bucket), (204, "", "")),
        ("delete_bucket_replication", lambda s3: s3.delete_bucket_replication(Bucket=bucket), (204, "", "")),
        ("delete_bucket_website", lambda s3: s3.delete_bucket_website(Bucket=bucket), (204, "", "")),
        (
            "delete_bucket_ownership_controls",
            lambda s3: s3.delete_bucket_ownership_controls(Bucket=bucket),
            (204, "", ""),
        ),
        ("delete_public_access_block", lambda s3: s3.delete_public_access_block(Bucket=bucket), (204, "", "")),
        ("delete_bucket_cors", lambda s3: s3.delete_bucket_cors(Bucket=bucket), (204, "", "")),
        ("delete_bucket_lifecycle", lambda s3: s3.delete_bucket_lifecycle(Bucket=bucket), (204, "", "")),
        ("delete_bucket_policy", lambda s3: s3.delete_bucket_policy(Bucket=bucket), (204, "", "")),
    ]


def check_owner(name, call, expected, s3):
    status, code, message, response = answer(lambda: call(s3))
    if callable(expected):
        if code:
            return f"answered {status} {code} {message!r}, expected success"
        verdict = expected(response)
        return None if verdict is True else verdict
    if (status, code) != expected[:2] or (code and message != expected[2]):
        return f"answered {(status, code, message)}, expected {expected}"
    return None


def check_refused(call, s3, expected_code, expected_status):
    status, code, message, _ = answer(lambda: call(s3))
    if (status, code) != (expected_status, expected_code):
        return f"answered {(status, code, message)}, expected {expected_status} {expected_code}"
    if expected_code == "AccessDenied" and message != "Access Denied":
        return f"AccessDenied with a revealing message {message!r}"
    return None


def check_invalid_values(owner):
    """Values outside S3's enumerations are MalformedXML, not accepted."""
    problems = []
    for name, call in (
        (
            "accelerate Status",
            lambda: owner.put_bucket_accelerate_configuration(
                Bucket=BUCKET, AccelerateConfiguration={"Status": "Sometimes"}
            ),
        ),
        (
            "Payer",
            lambda: owner.put_bucket_request_payment(
                Bucket=BUCKET, RequestPaymentConfiguration={"Payer": "Nobody"}
            ),
        ),
    ):
        status, code, message, _ = answer(call)
        if (status, code) != (400, "MalformedXML") or "Sometimes" not in message and "Nobody" not in message:
            problems.append(f"{name}: {(status, code, message)}")
    return "; ".join(problems) or None


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
    """A configuration PUT whose body is not XML, or XML of another element, is
    MalformedXML (400) for the owner and AccessDenied for a stranger (authorization
    runs before the body is read)."""
    problems = []
    for path, body in (
        (f"/{BUCKET}?encryption", b"<ServerSideEncryptionConfiguration><Rule>"),
        (f"/{BUCKET}?requestPayment", b"not xml at all"),
        (f"/{BUCKET}?accelerate", b"<Unexpected/>"),
        (f"/{BUCKET}?logging", b"\xff\xfe"),
    ):
        for who, keys, expected in (
            ("owner", owner_keys, (400, "MalformedXML")),
            ("stranger", stranger_keys, (403, "AccessDenied")),
        ):
            answered = signed_put(arguments.endpoint, arguments.region, *keys, path, body)
            if answered != expected:
                problems.append(f"{who} PUT {path} {body[:20]!r}: {answered}, expected {expected}")
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
    owner.put_object(Bucket=BUCKET, Key=OBJECT, Body=b"configured\n")

    failures = []

    def report(name, problem):
        if problem is None:
            print(f"ok {name}", flush=True)
        else:
            failures.append(name)
            print(f"FAIL {name}: {problem}", flush=True)

    for name, call, expected in operations(BUCKET):
        report(f"owner/{name}", check_owner(name, call, expected, owner))
    # The accepted PUTs changed nothing: the GETs still answer "not configured".
    for name, call, expected in operations(BUCKET)[:GETS]:
        report(f"owner/after_puts/{name}", check_owner(name, call, expected, owner))
    for name, call, _ in operations(BUCKET):
        report(f"stranger/{name}", check_refused(call, stranger, "AccessDenied", 403))
    for name, call, _ in operations(MISSING):
        report(f"missing_bucket/{name}", check_refused(call, owner, "NoSuchBucket", 404))
    report("owner/get_object_acl_of_a_missing_key", check_refused(
        lambda s3: s3.get_object_acl(Bucket=BUCKET, Key="no-such-key"), owner, "NoSuchKey", 404))
    report("owner/invalid_values_are_malformed_xml", check_invalid_values(owner))
    report(
        "malformed_bodies",
        check_malformed_bodies(arguments, arguments.owner.split(":", 1), arguments.stranger.split(":", 1)),
    )

    print(f"{len(failures)} checks failed: {failures}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
