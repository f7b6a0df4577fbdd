#!/usr/bin/env python3
"""boto3 in virtual-hosted style against a gateway started with `--domain`.

Usage: virtual_host.py --endpoint http://DOMAIN:PORT --access-key K --secret-key S
                       --region R --bucket B --dotted-bucket D --missing-bucket M

Run by `integration/tests/gateway_clients/virtual_host.rs` in a mount namespace whose
/etc/hosts maps DOMAIN and each BUCKET.DOMAIN to the gateway. Every check runs; each
prints `ok NAME` or `FAIL NAME: reason`; the exit status is 1 when any failed.
Each request's Host is recorded, so a check fails if botocore quietly fell back to
path style.
"""

import argparse
import sys
import traceback
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError


def client(arguments, style, hosts, **config):
    s3 = boto3.client(
        "s3",
        endpoint_url=arguments.endpoint,
        aws_access_key_id=arguments.access_key,
        aws_secret_access_key=arguments.secret_key,
        region_name=arguments.region,
        config=Config(
            s3={"addressing_style": style},
            retries={"max_attempts": 1, "mode": "standard"},
            connect_timeout=10,
            read_timeout=120,
            **config,
        ),
    )
    s3.meta.events.register(
        "before-send.s3", lambda request, **_: hosts.append(urlsplit(request.url).hostname)
    )
    return s3


def error_code(call):
    try:
        call()
    except ClientError as error:
        return error.response["Error"]["Code"], error.response["ResponseMetadata"][
            "HTTPStatusCode"
        ]
    raise AssertionError("the call succeeded")


def main():
    parser = argparse.ArgumentParser()
    for name in [
        "endpoint",
        "access-key",
        "secret-key",
        "region",
        "bucket",
        "dotted-bucket",
        "missing-bucket",
    ]:
        parser.add_argument("--" + name, required=True)
    arguments = parser.parse_args()
    domain = urlsplit(arguments.endpoint).hostname
    hosts = []
    virtual = client(arguments, "virtual", hosts)
    path_hosts = []
    path = client(arguments, "path", path_hosts)
    # botocore presigns with SigV2 (query `Signature=`) unless told otherwise; SigV2 signs
    # `/bucket/key` and no Host, SigV4 signs the Host: both are checked.
    presigner = client(arguments, "virtual", [], signature_version="s3v4")
    bucket = arguments.bucket
    failed = []

    def check(name, function):
        hosts.clear()
        try:
            function()
            print(f"ok {name}", flush=True)
        except Exception as error:  # every check runs; the failure names itself
            failed.append(name)
            detail = "".join(traceback.format_exception_only(type(error), error)).strip()
            print(f"FAIL {name}: {detail}", flush=True)

    def used_virtual_host(bucket_name):
        expected = f"{bucket_name}.{domain}"
        assert hosts and all(host == expected for host in hosts), (
            f"requests went to {hosts}, not {expected}"
        )

    def create_put_get_list():
        virtual.create_bucket(Bucket=bucket)
        virtual.put_object(Bucket=bucket, Key="dir/one.txt", Body=b"one" * 1000)
        virtual.put_object(Bucket=bucket, Key="two", Body=b"")
        body = virtual.get_object(Bucket=bucket, Key="dir/one.txt")["Body"].read()
        assert body == b"one" * 1000, f"read {len(body)} bytes"
        ranged = virtual.get_object(Bucket=bucket, Key="dir/one.txt", Range="bytes=3-5")
        assert ranged["Body"].read() == b"one"
        keys = [o["Key"] for o in virtual.list_objects_v2(Bucket=bucket)["Contents"]]
        assert keys == ["dir/one.txt", "two"], keys
        listed = virtual.list_objects_v2(Bucket=bucket, Delimiter="/")
        prefixes = [p["Prefix"] for p in listed.get("CommonPrefixes", [])]
        assert prefixes == ["dir/"], prefixes
        virtual.head_bucket(Bucket=bucket)
        used_virtual_host(bucket)

    def multipart_upload():
        part = b"p" * (5 * 1024 * 1024)
        upload = virtual.create_multipart_upload(Bucket=bucket, Key="multi")
        etags = []
        for number, data in [(1, part), (2, b"tail")]:
            answer = virtual.upload_part(
                Bucket=bucket,
                Key="multi",
                UploadId=upload["UploadId"],
                PartNumber=number,
                Body=data,
            )
            etags.append({"PartNumber": number, "ETag": answer["ETag"]})
        virtual.complete_multipart_upload(
            Bucket=bucket,
            Key="multi",
            UploadId=upload["UploadId"],
            MultipartUpload={"Parts": etags},
        )
        head = virtual.head_object(Bucket=bucket, Key="multi")
        assert head["ContentLength"] == len(part) + 4, head["ContentLength"]
        used_virtual_host(bucket)

    def presigned_get():
        url = presigner.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": "dir/one.txt"}, ExpiresIn=300
        )
        parts = urlsplit(url)
        assert parts.hostname == f"{bucket}.{domain}", url
        assert "X-Amz-Signature=" in url, url
        with urllib.request.urlopen(url, timeout=60) as answer:
            assert answer.read() == b"one" * 1000
        # SigV4 covers the Host: the same URL sent path style to the domain fails.
        moved = f"http://{domain}:{parts.port}/{bucket}{parts.path}?{parts.query}"
        try:
            urllib.request.urlopen(moved, timeout=60)
            raise AssertionError("a presigned URL moved to another Host was accepted")
        except urllib.error.HTTPError as error:
            assert error.code == 403, error.code
            assert b"SignatureDoesNotMatch" in error.read()

    def presigned_get_sigv2():
        url = virtual.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": "dir/one.txt"}, ExpiresIn=300
        )
        assert urlsplit(url).hostname == f"{bucket}.{domain}", url
        assert "Signature=" in url and "X-Amz-Signature" not in url, url
        with urllib.request.urlopen(url, timeout=60) as answer:
            assert answer.read() == b"one" * 1000

    def presigned_put():
        url = presigner.generate_presigned_url(
            "put_object", Params={"Bucket": bucket, "Key": "presigned"}, ExpiresIn=300
        )
        assert urlsplit(url).hostname == f"{bucket}.{domain}", url
        request = urllib.request.Request(url, data=b"sent by url", method="PUT")
        with urllib.request.urlopen(request, timeout=60) as answer:
            assert answer.status == 200, answer.status
        body = virtual.get_object(Bucket=bucket, Key="presigned")["Body"].read()
        assert body == b"sent by url", body

    def path_style_still_works():
        keys = [o["Key"] for o in path.list_objects_v2(Bucket=bucket)["Contents"]]
        assert "dir/one.txt" in keys, keys
        body = path.get_object(Bucket=bucket, Key="two")["Body"].read()
        assert body == b""
        assert path_hosts and all(host == domain for host in path_hosts), path_hosts

    def dotted_bucket():
        dotted = arguments.dotted_bucket
        virtual.create_bucket(Bucket=dotted)
        virtual.put_object(Bucket=dotted, Key="k", Body=b"dots")
        assert virtual.get_object(Bucket=dotted, Key="k")["Body"].read() == b"dots"
        keys = [o["Key"] for o in virtual.list_objects_v2(Bucket=dotted)["Contents"]]
        assert keys == ["k"], keys
        # botocore keeps dotted names virtual over plain HTTP (no certificate to break).
        used_virtual_host(dotted)
        virtual.delete_object(Bucket=dotted, Key="k")
        virtual.delete_bucket(Bucket=dotted)

    def unknown_bucket():
        missing = arguments.missing_bucket
        code, status = error_code(lambda: virtual.get_object(Bucket=missing, Key="k"))
        assert (code, status) == ("NoSuchBucket", 404), (code, status)
        code, status = error_code(lambda: virtual.list_objects_v2(Bucket=missing))
        assert (code, status) == ("NoSuchBucket", 404), (code, status)
        used_virtual_host(missing)

    def delete_everything():
        for key in ["dir/one.txt", "two", "multi", "presigned"]:
            virtual.delete_object(Bucket=bucket, Key=key)
        assert virtual.list_objects_v2(Bucket=bucket).get("KeyCount") == 0
        virtual.delete_bucket(Bucket=bucket)
        code, status = error_code(lambda: virtual.head_bucket(Bucket=bucket))
        assert status == 404, (code, status)
        used_virtual_host(bucket)

    check("create_put_get_list", create_put_get_list)
    check("multipart_upload", multipart_upload)
    check("presigned_get", presigned_get)
    check("presigned_get_sigv2", presigned_get_sigv2)
    check("presigned_put", presigned_put)
    check("path_style_still_works", path_style_still_works)
    check("dotted_bucket", dotted_bucket)
    check("unknown_bucket", unknown_bucket)
    check("delete_everything", delete_everything)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    sys.dont_write_bytecode = True
    main()
