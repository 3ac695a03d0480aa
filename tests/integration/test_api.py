"""The HTTP API of a real worker, against the real Kafka and Redis.

What a client sees: keys required, bad input answered with problem details,
profiles and warnings read back after the worker processed events, actions
turned into ``collection`` events on the Kafka topic (and applied by the
worker), live warnings as server-sent events, and metrics that moved.
"""

from __future__ import annotations

import http.client
import json
import queue
import re
import threading
import urllib.error
import urllib.request
from typing import Any

from stream_risk.api import auth
from stream_risk.schemas.events import CollectionEvent, input_event_adapter
from stream_risk.schemas.outputs import RiskProfile, RiskWarning

from .conftest import Env, Worker, wait_for

KEY = "test-key-1"
OTHER_KEY = "test-key-2"
T0 = "2026-01-01T00:00:00+00:00"


def call(
    worker: Worker,
    method: str,
    path: str,
    body: Any = None,
    key: str | None = KEY,
    raw: bytes | None = None,
    content_type: str = "application/json",
) -> tuple[int, dict[str, str], Any]:
    """One request; returns status, headers and the decoded JSON body (or text)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(worker.url + path, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", content_type)
    if key is not None:
        request.add_header("X-API-Key", key)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, headers, payload = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        status, headers, payload = err.code, dict(err.headers), err.read()
    kind = headers.get("Content-Type", "")
    decoded = json.loads(payload) if "json" in kind else payload.decode()
    return status, headers, decoded


def assert_problem(response: tuple[int, dict[str, str], Any], status: int) -> dict[str, Any]:
    got, headers, body = response
    assert got == status, body
    assert headers["Content-Type"].startswith("application/problem+json"), headers
    assert body["status"] == status
    assert body["type"].startswith("urn:stream-risk:problem:")
    assert body["title"] and body["detail"]
    return dict(body)


def ev(type_: str, event_id: str, at: str, customer: str, **fields: object) -> dict[str, object]:
    return {
        "type": type_,
        "event_id": event_id,
        "customer_id": customer,
        "occurred_at": at,
        **fields,
    }


def deteriorating(customer: str) -> list[dict[str, object]]:
    """A customer who uses 95% of the limit and then lets an invoice run 31 days overdue."""
    return [
        ev(
            "customer",
            f"{customer}-c1",
            T0,
            customer,
            credit_limit=1000,
            currency="EUR",
            payment_terms_days=30,
            segment={"industry": "retail", "size": "small", "region": "DACH"},
        ),
        ev(
            "invoice",
            f"{customer}-i1",
            "2026-01-02T00:00:00+00:00",
            customer,
            invoice_id=f"{customer}-inv-1",
            amount=950,
            currency="EUR",
            due_at="2026-02-01T00:00:00+00:00",
        ),
        ev(
            "order",
            f"{customer}-o1",
            "2026-03-05T00:00:00+00:00",
            customer,
            order_id=f"{customer}-ord-1",
            amount=10,
            currency="EUR",
            status="placed",
        ),
    ]


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus text exposition (0 when absent)."""
    # The exposition sorts labels by name.
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = re.escape(name) + (r"\{" + re.escape(wanted) + r"\}" if labels else "") + r" (\S+)"
    match = re.search("^" + pattern + "$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def listen(worker: Worker, frames: queue.Queue[dict[str, Any]], ready: threading.Event) -> None:
    """Read ``GET /events`` and put every warning it sends into ``frames``."""
    host, port = worker.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    conn.request("GET", "/events", headers={"Authorization": f"Bearer {KEY}"})
    response = conn.getresponse()
    assert response.status == 200
    assert response.getheader("Content-Type") == "text/event-stream"
    event = None
    try:
        while True:
            line = response.readline()
            if not line:
                return
            text = line.decode().rstrip("\n")
            if text.startswith(": connected"):
                ready.set()
            elif text.startswith("event: "):
                event = text[7:]
            elif text.startswith("data: ") and event == "warning":
                frames.put(json.loads(text[6:]))
    except (OSError, http.client.HTTPException):
        return
    finally:
        conn.close()


def test_data_and_actions_need_a_key_and_bad_input_gets_problem_details(env: Env) -> None:
    worker = env.worker(STREAM_RISK_API_KEYS=f"{KEY},{OTHER_KEY}")
    worker.start()

    status, _, health = call(worker, "GET", "/health", key=None)
    assert (status, health["status"], health["checks"]["redis"]) == (200, "ok", "ok")
    status, _, page = call(worker, "GET", "/", key=None)
    assert status == 200 and "stream-risk" in page
    status, _, doc = call(worker, "GET", "/openapi.json", key=None)
    assert status == 200 and "/warnings/{warning_id}/ack" in doc["paths"]

    protected = [
        ("GET", "/customers/acme/risk"),
        ("GET", "/customers/acme/history"),
        ("GET", "/customers"),
        ("GET", "/warnings"),
        ("GET", "/summary"),
        ("GET", "/events"),
        ("GET", "/metrics"),
        ("POST", "/warnings/w-1/ack"),
        ("POST", "/customers/acme/contact"),
        ("POST", "/customers/acme/promise-to-pay"),
    ]
    for method, path in protected:
        problem = assert_problem(call(worker, method, path, key=None), 401)
        assert "API key" in problem["detail"], (method, path)
        assert_problem(call(worker, method, path, key="wrong"), 401)
    # Either header works, and any configured key.
    assert call(worker, "GET", "/warnings", key=OTHER_KEY)[0] == 200
    request = urllib.request.Request(worker.url + "/summary")
    request.add_header("Authorization", f"Bearer {KEY}")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200

    problem = assert_problem(call(worker, "GET", "/warnings?level=severe&limit=0"), 400)
    assert {e["field"] for e in problem["errors"]} == {"level", "limit"}
    assert_problem(call(worker, "GET", "/warnings?segment=retail"), 400)
    assert_problem(call(worker, "GET", "/warnings?since=2026-01-01T00:00:00"), 400)
    assert_problem(call(worker, "GET", "/customers/nobody/risk"), 404)
    assert_problem(call(worker, "POST", "/warnings/w-unknown/ack", {}), 404)
    assert_problem(call(worker, "DELETE", "/warnings"), 405)
    assert_problem(call(worker, "GET", "/no/such/route"), 404)


def test_events_become_profiles_warnings_and_actions_become_collection_events(
    env: Env,
) -> None:
    # The events run on their own (early 2026) event time: actions join the stream's time.
    worker = env.worker(STREAM_RISK_API_KEYS=KEY, STREAM_RISK_API_EVENT_TIME="stream")
    worker.start()
    frames: queue.Queue[dict[str, Any]] = queue.Queue()
    ready = threading.Event()
    threading.Thread(target=listen, args=(worker, frames, ready), daemon=True).start()
    assert ready.wait(15), "the event stream did not open"

    for event in deteriorating("acme"):
        env.send(event)
    env.flush()

    # The live stream carries the warning as the sink publishes it.
    live = frames.get(timeout=60)
    RiskWarning.model_validate(live)
    assert live["customer_id"] == "acme" and live["status"] == "firing"

    # GET risk returns the profile once the events are processed.
    def profile() -> Any:
        status, _, body = call(worker, "GET", "/customers/acme/risk")
        return body if status == 200 and body["updated_at"].startswith("2026-03-05") else None

    body = wait_for(profile, what="the profile of acme")
    RiskProfile.model_validate(body)
    assert body["features"]["days_past_due"] >= 30
    assert body["features"]["segment_industry"] == "retail"
    assert body["active_warnings"]

    status, _, page = call(worker, "GET", "/warnings?customer_id=acme&status=firing")
    assert status == 200 and page["items"], page
    warning = page["items"][0]
    assert warning["warning_id"] in body["active_warnings"]
    status, _, other = call(worker, "GET", "/warnings?segment=industry:construction")
    assert status == 200 and other["items"] == []
    status, _, one = call(worker, "GET", "/warnings?segment=region:DACH&limit=1")
    assert status == 200 and len(one["items"]) == 1 and one["next_cursor"]
    status, _, rest = call(worker, "GET", f"/warnings?limit=50&cursor={one['next_cursor']}")
    assert status == 200 and one["items"][0] not in rest["items"]
    status, _, history = call(worker, "GET", "/customers/acme/history")
    assert status == 200 and history["items"][-1]["days_past_due"] >= 30
    status, _, ranking = call(worker, "GET", "/customers?limit=5")
    assert status == 200 and ranking["items"][0]["customer_id"] == "acme"

    # Actions: an ack, a contact and a promise to pay, each a collection event on Kafka.
    status, _, ack = call(worker, "POST", f"/warnings/{warning['warning_id']}/ack", {"note": "ok"})
    assert status == 202, ack
    status, _, contact = call(worker, "POST", "/customers/acme/contact", {"note": "called"})
    assert status == 202, contact
    promise_path = "/customers/acme/promise-to-pay"
    promise_body = {"amount": 500, "currency": "USD", "date": "2026-04-30"}
    status, _, promise = call(worker, "POST", promise_path, promise_body)
    assert status == 202, promise

    # Invalid actions are answered with problem details and produce nothing.
    problem = assert_problem(
        call(worker, "POST", promise_path, {**promise_body, "amount": "500"}),
        422,
    )
    assert problem["errors"][0]["field"] == "amount"
    problem = assert_problem(
        call(worker, "POST", promise_path, {**promise_body, "currency": "JPY"}),
        422,
    )
    assert problem["errors"][0]["field"] == "currency"
    assert_problem(
        call(worker, "POST", promise_path, {**promise_body, "date": "2025-01-01"}),
        422,
    )
    assert_problem(call(worker, "POST", promise_path, {}), 422)
    assert_problem(call(worker, "POST", "/customers/acme/contact", raw=b"{not json"), 400)
    assert_problem(
        call(worker, "POST", "/customers/acme/contact", raw=b"note", content_type="text/plain"),
        415,
    )
    assert_problem(call(worker, "POST", "/customers/acme/contact", {"colour": "red"}), 422)

    records = env.consume("collection", lambda rs: len(rs) >= 3)
    assert len(records) == 3, [r["value"] for r in records]
    for record in records:
        assert record["key"] == b"acme"
        parsed = input_event_adapter.validate_json(json.dumps(record["value"]))
        assert isinstance(parsed, CollectionEvent)
    by_action = {r["value"]["action"]: r["value"] for r in records}
    assert by_action["acknowledged"] == ack["event"]
    assert by_action["acknowledged"]["warning_id"] == warning["warning_id"]
    assert by_action["acknowledged"]["note"] == "ok"
    assert by_action["acknowledged"]["occurred_at"] == "2026-03-05T00:00:00+00:00"
    assert by_action["contacted"]["note"] == "called"
    assert by_action["promise_to_pay"]["promised_amount"] == 450.0  # USD at 0.9
    assert by_action["promise_to_pay"]["promised_at"] == "2026-04-30T23:59:59+00:00"
    assert len({r["value"]["event_id"] for r in records}) == 3
    # Each names the key that acted: a bare key is named after its hash.
    assert {r["value"]["api_key_id"] for r in records} == {auth.parse_key(KEY).id}

    # The worker applies them (they flow back into state) and the metrics moved.
    def metrics() -> str | None:
        status, _, text = call(worker, "GET", "/metrics")
        assert status == 200
        # Events are counted when applied, latencies once their outputs are handed on.
        applied = metric(text, "stream_risk_events_total", type="collection") >= 3
        handed = metric(text, "stream_risk_event_latency_seconds_count") >= 6
        return text if applied and handed else None

    text = wait_for(metrics, what="the collection events applied by the worker")
    assert metric(text, "stream_risk_events_total", type="customer") == 1
    assert metric(text, "stream_risk_events_total", type="invoice") == 1
    assert metric(text, "stream_risk_warnings_total", level=live["level"], status="firing") >= 1
    assert metric(text, "stream_risk_dead_letters_total") == 0
    assert metric(text, "stream_risk_collection_actions_total", action="acknowledged") == 1
    assert metric(text, "stream_risk_redis_writes_total", kind="warning") >= 1
    lag = re.findall(r"^stream_risk_consumer_lag\{(.*)\} (\S+)$", text, re.MULTILINE)
    assert any(f'topic="{env.topic("invoice")}"' in labels for labels, _ in lag), lag

    def open_promises() -> Any:
        return call(worker, "GET", "/customers/acme/risk")[2]["features"]["open_promises"]

    promises = wait_for(open_promises, what="the promise in the profile")
    assert promises == 1
