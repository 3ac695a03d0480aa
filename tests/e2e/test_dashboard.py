"""The live dashboard in headless Chromium while the demo runs.

A person opens the dashboard, sees a warning arrive, and acknowledges it; the
acknowledgement reaches Kafka as a ``collection`` event and the worker applies
it. The test saves a screenshot in its tmp dir; with
``STREAM_RISK_DASHBOARD_SCREENSHOT=docs/dashboard.png`` it also writes it there.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from stream_risk.schemas.events import CollectionEvent, input_event_adapter

from .browser import chromium, chromium_path

BOOTSTRAP = os.environ.get("STREAM_RISK_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
#: A live (not preloaded) firing warning the dashboard offers to acknowledge.
FRESH = "#warnings li.warning.fresh[data-status='firing']:not([data-acked])"


def wait_for_line(path: Path, pattern: str, proc: subprocess.Popen[bytes]) -> re.Match[str]:
    deadline = time.monotonic() + 120
    while True:
        text = path.read_text(errors="replace") if path.exists() else ""
        match = re.search(pattern, text)
        if match:
            return match
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"the demo never printed {pattern!r}:\n{text[-3000:]}")
        time.sleep(0.2)


def collection_events(topic: str, warning_id: str, timeout: float = 30) -> list[dict[str, Any]]:
    """Read ``topic`` from the start until an event for ``warning_id`` is there."""
    consumer = KafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False)
    deadline = time.monotonic() + timeout
    try:
        while not consumer.partitions_for_topic(topic):
            assert time.monotonic() < deadline, f"topic {topic} never appeared"
            time.sleep(0.2)
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        records: list[dict[str, Any]] = []
        while not any(r["value"].get("warning_id") == warning_id for r in records):
            assert time.monotonic() < deadline, f"no collection event for {warning_id}: {records}"
            for batch in consumer.poll(timeout_ms=500).values():
                records += [{"key": m.key, "value": json.loads(m.value)} for m in batch]
        return records
    finally:
        consumer.close()


def test_dashboard_shows_live_warnings_and_acknowledges_one(tmp_path: Path) -> None:
    chromium_path()  # fails loudly, before anything starts, when chromium is missing
    err_path = tmp_path / "demo.err"
    with err_path.open("wb") as err:
        demo = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "stream_risk.cli",
                "demo",
                "--customers",
                "60",
                "--days",
                "200",
                "--speed",
                "6",
                "--duration",
                "120",
                "--no-colour",
                "--web-port",
                "0",
                "--data-dir",
                str(tmp_path / "demo"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        run_id = wait_for_line(err_path, r"demo: topics (\S+)\.\*", demo).group(1)
        url = wait_for_line(err_path, r"demo: dashboard: (http://\S+)", demo).group(1)
        shot = tmp_path / "dashboard.png"
        target = os.environ.get("STREAM_RISK_DASHBOARD_SCREENSHOT")
        found = asyncio.run(_use_dashboard(url, tmp_path / "chromium", shot, bool(target)))
        warning_id, customer_id = found["warningId"], found["customerId"]

        # The click became a collection event on the demo's Kafka topic, key customer_id.
        records = collection_events(f"{run_id}.collection", warning_id)
        (ack,) = [r for r in records if r["value"].get("warning_id") == warning_id]
        assert ack["key"] == customer_id.encode()
        event = input_event_adapter.validate_json(json.dumps(ack["value"]))
        assert isinstance(event, CollectionEvent)
        assert (event.action, event.customer_id) == ("acknowledged", customer_id)

        # ... and the worker applied it like any upstream event.
        def applied() -> bool:
            with urllib.request.urlopen(url + "metrics", timeout=10) as response:
                text = response.read().decode()
            return 'stream_risk_events_total{type="collection"} 1.0' in text

        deadline = time.monotonic() + 30
        while not applied():
            assert time.monotonic() < deadline, "the worker never applied the acknowledgement"
            time.sleep(0.5)

        if target:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(shot, target)
    finally:
        demo.send_signal(signal.SIGTERM)
        try:
            demo.wait(timeout=60)
        except subprocess.TimeoutExpired:
            demo.kill()
            demo.wait(timeout=10)
    assert demo.returncode == 0, err_path.read_text(errors="replace")[-3000:]


async def _use_dashboard(url: str, profile: Path, shot: Path, for_docs: bool) -> dict[str, str]:
    async with chromium(profile) as page:
        await page.goto(url)
        await page.wait_for(
            "document.querySelector('#live-status').textContent === 'live'",
            30,
            "the live feed to connect",
        )
        if for_docs:
            # A screenshot for the docs shows a few levels, not the first minute's trickle.
            await page.wait_for(
                "document.querySelectorAll('#warnings li').length >= 12 && "
                "!!document.querySelector('#warnings .badge.high')",
                120,
                "a fuller dashboard",
            )
        found: dict[str, str] = await page.wait_for(
            f"""(() => {{
                const item = document.querySelector("{FRESH} button.ack")?.closest("li");
                return item ? {{...item.dataset}} : null;
            }})()""",
            90,
            "a live warning with an Acknowledge button",
        )
        # The level is shown in its colour.
        colour = await page.evaluate(
            f"""getComputedStyle(document.querySelector(
                "li[data-warning-id='{found["warningId"]}'] .badge")).backgroundColor"""
        )
        expected = {
            "low": "rgb(37, 99, 235)",
            "medium": "rgb(234, 179, 8)",
            "high": "rgb(249, 115, 22)",
            "critical": "rgb(220, 38, 38)",
        }
        assert colour == expected[found["level"]], (found, colour)
        await page.click(f"#warnings li[data-warning-id='{found['warningId']}'] button.ack")
        await page.wait_for(
            f"""document.querySelector(
                "#warnings li[data-warning-id='{found["warningId"]}']").dataset.acked === 'true'""",
            30,
            "the warning to show as acknowledged",
        )
        toast = await page.evaluate("document.querySelector('#toast').textContent")
        assert toast.startswith("Acknowledged"), toast
        # Counts and the ranking are filled in from the API.
        await page.wait_for(
            "document.querySelectorAll('#riskiest tbody tr').length > 0", 15, "the ranking"
        )
        await asyncio.sleep(1.6)  # the arrival highlight fades
        await page.screenshot(shot)
        # The pointer leaves the list: warnings held while it was there are shown.
        await page.move(5, 5)
        await page.wait_for(
            "document.querySelector('#warnings-held').hidden", 5, "held warnings to show"
        )
        assert page.errors == [], page.errors
        return found
