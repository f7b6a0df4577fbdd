"""ListObjectsV2 and ListObjects: paging, delimiters, common prefixes, start-after."""

from s3checks import check, expect_equal, md5_hex


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
