"""Multipart uploads: explicit parts, UploadPartCopy, ListParts, ListMultipartUploads,
Abort, and boto3's managed transfer."""

import io

from boto3.s3.transfer import TransferConfig

from s3checks import (
    MIB,
    PART_BYTES_MIN,
    check,
    expect_equal,
    expect_error,
    md5_hex,
    multipart_etag,
    pattern,
)


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
