#!/usr/bin/env python3
"""The S3 behaviour boto3 relies on, checked against a running Shardlet gateway.

Usage: boto3_suite.py --endpoint URL --access-key K --secret-key S [--only NAME...]

The checks live in `s3checks/` (one module per area). Run by
`integration/tests/gateway/boto3.rs` against a cluster of real processes. boto3
keeps its default checksum settings (CRC checksums, aws-chunked trailers on uploads):
that is what applications send. Every check runs even when an earlier one failed; each
prints `ok NAME` or `FAIL NAME: reason`, and the exit status is 1 when any failed, so a
failure names the behaviour that broke.
"""

import argparse
import os
import sys
import traceback

import boto3
import botocore
from botocore.config import Config
from botocore.exceptions import ClientError

# The checks register themselves in import order, which is the order they run in.
# No __pycache__ next to the sources: the tests run from a git checkout.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from s3checks import CHECKS  # noqa: E402
from s3checks import objects, listing, multipart, conditions, errors  # noqa: E402,F401


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
