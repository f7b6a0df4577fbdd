#!/usr/bin/env python3
"""Prints the ETag S3 gives a file: the MD5 of the bytes for a single PUT, or, with
--part-bytes N for an upload cut into N-byte parts (the last may be shorter), the MD5
of the concatenated binary part MD5s followed by -<number of parts>.

Usage: s3_etag.py FILE [--part-bytes N]

The end-to-end tests compute expected ETags with this, independently of the gateway's
own code."""

import argparse
import hashlib
import sys

READ_BYTES = 1024 * 1024


def etag(path, part_bytes):
    whole = hashlib.md5()
    part_digests = []
    part = hashlib.md5()
    in_part = 0
    with open(path, "rb") as file:
        while True:
            chunk = file.read(READ_BYTES)
            if not chunk:
                break
            whole.update(chunk)
            while chunk and part_bytes:
                take = min(len(chunk), part_bytes - in_part)
                part.update(chunk[:take])
                in_part += take
                chunk = chunk[take:]
                if in_part == part_bytes:
                    part_digests.append(part.digest())
                    part, in_part = hashlib.md5(), 0
    if not part_bytes:
        return whole.hexdigest()
    if in_part:
        part_digests.append(part.digest())
    return f"{hashlib.md5(b''.join(part_digests)).hexdigest()}-{len(part_digests)}"


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("file")
    parser.add_argument("--part-bytes", type=int, default=0)
    arguments = parser.parse_args()
    if arguments.part_bytes < 0:
        parser.error("--part-bytes must be positive")
    print(etag(arguments.file, arguments.part_bytes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
