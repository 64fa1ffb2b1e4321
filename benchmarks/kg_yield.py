"""Why document-KG samples are rejected: counts and shares per reason for one or more
run folders (e.g. the same recipe, seed and response cache before and after a parser
change), round 0 only by default.

    python benchmarks/kg_yield.py BEFORE_RUN AFTER_RUN [--round 0]

Prints a table per run, then one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter

from deltalake import DeltaTable


def yield_of(run: str, round: int) -> dict:
    rejects = DeltaTable(f"{run}/rejects").to_pyarrow_table(
        columns=["round", "reason", "sample_key"]
    )
    corpus = DeltaTable(f"{run}/corpus").to_pyarrow_table(columns=["round", "sample_key"])
    reasons = Counter(r["reason"] for r in rejects.to_pylist() if r["round"] == round)
    records = sum(1 for r in corpus.to_pylist() if r["round"] == round)
    rows = records + sum(reasons.values())
    return {
        "run": run,
        "records": records,
        "rejects": dict(reasons.most_common()),
        "rows": rows,
        "acceptance": records / rows if rows else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--round", type=int, default=0)
    args = parser.parse_args()
    results = [yield_of(run, args.round) for run in args.runs]
    for res in results:
        print(
            f"{res['run']}: {res['records']} records of {res['rows']} rows ({res['acceptance']:.1%})"
        )
        for reason, count in res["rejects"].items():
            print(f"  {reason:<24} {count:>5}  {count / max(1, res['rows']):6.1%}")
    print(json.dumps({"round": args.round, "runs": results}))


if __name__ == "__main__":
    main()
