#!/usr/bin/env python3
"""Builds the fuzz targets' seed corpora from the real rules and data beside the checkout.

Run from anywhere: `python3 fuzz/seed.py`. It reads ../shared (the rule corpora and the
Windows event data) and the shipped pack, and writes fuzz/corpus/<target>/, one file per
seed, named by its SHA-1 (as libFuzzer names what it finds). Nothing here is committed: the
corpora are rebuilt from their sources.
"""
import gzip
import hashlib
import json
import os
import sys

FUZZ = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(FUZZ)
SHARED = os.path.join(REPO, "..", "shared")
# Seeds stay small: libFuzzer mutates small inputs faster and finds the same paths.
MAX_SEED = 64 * 1024


def put(target, data, limit=MAX_SEED):
    if not data or len(data) > limit:
        return 0
    out = os.path.join(FUZZ, "corpus", target)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)
    return 1


def jsonl(path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                yield line, json.loads(line)


def main():
    if not os.path.isdir(SHARED):
        sys.exit(f"{SHARED} is absent: the seeds are drawn from the shared rules and data")
    counts = {}
    rules = os.path.join(SHARED, "rules")
    # KQL queries and rule files (as JSON exports and NDJSON) from the rule corpora.
    for name in sorted(os.listdir(rules)):
        if not name.endswith(".jsonl"):
            continue
        for line, rule in jsonl(os.path.join(rules, name)):
            if rule.get("language") == "kuery" and isinstance(rule.get("query"), str):
                counts["kql_parse"] = counts.get("kql_parse", 0) + put(
                    "kql_parse", rule["query"].encode()
                )
            counts["rule_files"] = counts.get("rule_files", 0) + put(
                "rule_files", bytes([1]) + json.dumps(rule).encode()
            ) + put("rule_files", bytes([2]) + line.encode() + b"\n")
    pack = os.path.join(REPO, "datasets", "rules")
    for name in sorted(os.listdir(pack)):
        with open(os.path.join(pack, name), "rb") as f:
            data = f.read()
        # The shipped pack is one big TOML file: its head is a seed of its own.
        counts["rule_files"] += put("rule_files", bytes([0]) + data[:MAX_SEED - 1])
    lock = {"61ac3638-40a3-44b2-855a-985636ca985e": {"rule_name": "x", "sha256": "0" * 64,
                                                     "version": 320}}
    counts["rule_files"] += put("rule_files", bytes([3]) + json.dumps(lock).encode())
    # Log inputs: the first lines of every NDJSON / OTRF file, plain and gzipped, whole small
    # JSON documents, and EVTX files cut to their first chunks.
    data = os.path.join(SHARED, "data")
    for root, _, files in os.walk(data):
        for name in sorted(files):
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                raw = f.read()
            if name.endswith(".evtx"):
                # The file header (4 KiB) and the first chunk (64 KiB), in a corpus of
                # their own: run log_input on it with -max_len=69633 or more.
                seed = bytes([2]) + raw[: 4096 + 65536]
                counts["log_input-evtx"] = counts.get("log_input-evtx", 0) + put(
                    "log_input-evtx", seed, limit=len(seed)
                )
            elif name.endswith((".json", ".jsonl")):
                head = b"".join(raw.splitlines(keepends=True)[:20])
                counts["log_input"] = counts.get("log_input", 0) + put(
                    "log_input", bytes([1]) + head
                ) + put("log_input", bytes([3]) + gzip.compress(head, mtime=0))
                if len(raw) < MAX_SEED:
                    counts["log_input"] += put("log_input", bytes([0]) + raw)
    # Damage lists for the Parquet part: a flip, a truncation, a footer byte, an insertion.
    for seed in (b"\x00\x10\x00\x00\x55", b"\x01\x00\x80\x00\x00", b"\x02\x07\x00\x00\xff",
                 b"\x03\x00\x00\x01\x41", b"\x02\x00\x00\x00\x00\x02\x01\x00\x00\x00"):
        counts["parquet_part"] = counts.get("parquet_part", 0) + put("parquet_part", seed)
    for target, n in sorted(counts.items()):
        print(f"{target}: {n} seeds")


if __name__ == "__main__":
    main()
