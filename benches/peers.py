"""Peer engines on quarry's datasets: DuckDB, Polars and DataFusion running the seed rule.

Run by `cargo bench --bench hunt` inside a virtual environment it creates
(`target/bench-venv`); by hand: `python3 benches/peers.py DATASET VERSION ENGINE [THREADS]`.
Prints one JSON line: {"engine", "version", "seconds", "hits"}; the time is the query's alone
(the engine's Python module is imported before the clock starts).

The peers have no Elasticsearch analyzer, so the rule is approximated the usual way: the text
leaves become one case-insensitive regular expression with the pattern analyzer's token
boundaries (`[A-Za-z0-9_-]` runs), the phrases of the negated clause of version 320
case-insensitive substrings. Their hit counts are printed beside quarry's exact ones.
"""

import json
import re
import sys
import time

V2_NAMES = [
    "NetShareEnum", "NetWkstaUserEnum", "NetSessionEnum", "NetLocalGroupEnum",
    "NetLocalGroupGetMembers", "DsGetSiteName", "DsEnumerateDomainTrusts",
    "WTSEnumerateSessionsEx", "WTSQuerySessionInformation", "LsaGetLogonSessionData",
    "QueryServiceObjectSecurity",
]
V320_NAMES = V2_NAMES + [
    "GetComputerNameEx", "NetWkstaGetInfo", "GetUserNameEx", "NetUserEnum", "NetUserGetInfo",
    "NetGroupEnum", "NetGroupGetInfo", "NetGroupGetUsers", "NetWkstaTransportEnum",
    "NetServerGetInfo", "LsaEnumerateTrustedDomains", "NetScheduleJobEnum", "NetUserModalsGet",
]
# `not powershell.file.script_block_text: (...)` of version 320, as AND-ed substring groups.
V320_EXCLUDED = [
    ["DsGetSiteName", "DiscoverWindowsComputerProperties.ps1",
     "param($SourceType, $SourceId, $ManagedEntityId, $ComputerIdentity)"],
    ["# Copyright: (c) 2018, Ansible Project", "#Requires -Module Ansible.ModuleUtils.AddType",
     "#AnsibleRequires -CSharpUtil Ansible.Basic"],
    ["Ansible.Windows.Setup", "NativeMethods.NetWkstaGetInfo(null, 100, out netBuffer);"],
]

TEXT = "powershell.file.script_block_text"
# Version 320's other exclusions: a directory, and a negated case-insensitive DSL wildcard.
V320_DIRECTORY = "C:\\Program Files (x86)\\Automox\\WDK\\Win32\\WinSession"
V320_PATH_LIKE = "_:\\programdata\\microsoft\\windows defender advanced threat protection\\datacollection\\%"


def token_regex(names):
    words = "|".join(n.lower() for n in names)
    return f"(?i)(^|[^a-z0-9_-])({words})([^a-z0-9_-]|$)"


def glob(dataset):
    return f"{dataset}/date=*/*.parquet"


def sql_where(version, list_contains, regex_match, contains, path_like):
    """The WHERE clauses of the rule in SQL, given each engine's spelling of the functions."""
    names = V2_NAMES if version == 2 else V320_NAMES
    where = [
        f"{list_contains}(\"event.category\", 'process')",
        f"{regex_match}(\"{TEXT}\", '{token_regex(names)}')",
    ]
    if version == 320:
        where.append("\"host.os.type\" = 'windows'")
        for group in V320_EXCLUDED:
            both = " AND ".join(
                contains(f"lower(\"{TEXT}\")", p.lower().replace(chr(39), chr(39) * 2))
                for p in group
            )
            where.append(f"NOT coalesce({both}, false)")
        where.append(f"NOT coalesce(\"file.directory\" = '{V320_DIRECTORY}', false)")
        where.append(f"NOT coalesce(lower(\"file.path\") LIKE {path_like}, false)")
    return " AND ".join(where)


def run_duckdb(dataset, version, threads):
    import duckdb

    con = duckdb.connect()
    if threads:
        con.execute(f"PRAGMA threads={threads}")
    where = sql_where(
        version,
        "list_contains",
        "regexp_matches",
        lambda text, p: f"contains({text}, '{p}')",
        f"'{V320_PATH_LIKE}' ESCAPE '!'",
    )
    sql = f"SELECT count(*) FROM read_parquet('{glob(dataset)}', hive_partitioning = false, union_by_name = true) WHERE {where}"
    return con.execute(sql).fetchone()[0]


def run_polars(dataset, version, threads):
    import polars as pl

    names = V2_NAMES if version == 2 else V320_NAMES
    text = pl.col(TEXT)
    cond = pl.col("event.category").list.contains("process") & text.str.contains(
        token_regex(names)
    )
    if version == 320:
        cond = cond & (pl.col("host.os.type") == "windows")
        lower = text.str.to_lowercase()
        for group in V320_EXCLUDED:
            both = None
            for p in group:
                c = lower.str.contains(p.lower(), literal=True)
                both = c if both is None else both & c
            cond = cond & ~both.fill_null(False)
        cond = cond & ~(pl.col("file.directory") == V320_DIRECTORY).fill_null(False)
        like = "^.:" + re.escape(V320_PATH_LIKE[2:-1])
        cond = cond & ~pl.col("file.path").str.to_lowercase().str.contains(like).fill_null(False)
    lf = pl.scan_parquet(
        glob(dataset),
        hive_partitioning=False,
        missing_columns="insert",
        extra_columns="ignore",
    ).filter(cond)
    return lf.select(pl.len()).collect().item()


def run_datafusion(dataset, version, threads):
    import datafusion

    config = datafusion.SessionConfig()
    if threads:
        config = config.with_target_partitions(threads)
    ctx = datafusion.SessionContext(config)
    ctx.register_parquet("events", f"{dataset}/", file_extension=".parquet")
    # DataFusion's LIKE escapes with a backslash: the path's own backslashes are doubled.
    like = V320_PATH_LIKE.replace("\\", "\\\\")
    where = sql_where(
        version,
        "array_has",
        "regexp_like",
        lambda text, p: f"strpos({text}, '{p}') > 0",
        f"'{like}'",
    )
    sql = f"SELECT count(*) AS n FROM events WHERE {where}"
    return ctx.sql(sql).to_pydict()["n"][0]


def main():
    dataset, version, engine = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    threads = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    run = {"duckdb": run_duckdb, "polars": run_polars, "datafusion": run_datafusion}[engine]
    # The engine's module is loaded before the clock starts: only the query is timed.
    __import__(engine)
    started = time.perf_counter()
    hits = run(dataset, version, threads)
    seconds = time.perf_counter() - started
    print(json.dumps({"engine": engine, "version": version, "seconds": seconds, "hits": hits}))


if __name__ == "__main__":
    main()
