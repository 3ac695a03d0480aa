"""Export the JSON Schema files of the contract next to this module.

python -m stream_risk.schemas.export          # write the files
python -m stream_risk.schemas.export --check  # exit 1 when they drifted
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from stream_risk.schemas.events import InputEvent
from stream_risk.schemas.outputs import (
    CreditAction,
    DeadLetter,
    RiskProfile,
    RiskWarning,
    TierChange,
)

HERE = Path(__file__).resolve().parent


def schemas() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema, generated from the models."""
    return {
        "input-event.schema.json": TypeAdapter(InputEvent).json_schema(),
        "warning.schema.json": RiskWarning.model_json_schema(),
        "risk-profile.schema.json": RiskProfile.model_json_schema(),
        "dead-letter.schema.json": DeadLetter.model_json_schema(),
        "tier-change.schema.json": TierChange.model_json_schema(),
        "credit-action.schema.json": CreditAction.model_json_schema(),
    }


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="fail when a file differs")
    args = parser.parse_args(argv)
    drifted = []
    for name, schema in schemas().items():
        path = HERE / name
        text = render(schema)
        if args.check:
            if not path.exists() or path.read_text() != text:
                drifted.append(name)
        else:
            path.write_text(text)
    if drifted:
        print("JSON Schema files out of date: " + ", ".join(drifted))
        print("run: python -m stream_risk.schemas.export")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
