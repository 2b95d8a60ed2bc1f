"""One real `mlflow models serve` under a bounded load of good and bad requests from concurrent clients: every
good request gets the images its seed always gives, every bad one a 4xx (never a 5xx, never a dropped
connection), the server still answers afterwards, and its memory stays within a stated bound."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import psutil
import pytest

from tests.helpers import IMAGE_SHAPE, LATENT_DIM
from tests.serving.conftest import LIMIT

CLIENTS, REQUESTS_PER_CLIENT = 8, 25
SEEDS = range(5)
LOAD_SECONDS = 60  # the whole load (200 requests) must finish within this
# Peak resident memory of the server (all its processes) over its idle size after one warm-up request. The
# biggest bad request here is a latent of 10**5 numbers (~0.5 MB of JSON), which MLflow's parsing turns
# into Python objects before the model refuses it; measured growth is ~35 MB. A 10**7 latent (40 MB) costs
# ~900 MB and ~20 s: that is what the reverse proxy's body limit is for (README, "Serving").
MEMORY_GROWTH_MB = 250

GOOD = [{"dataframe_records": [{"n": 4, "seed": seed}]} for seed in SEEDS]
BAD: list[dict | bytes] = [
    {"dataframe_records": [{"seed": 1}]},  # neither n nor latent
    {"dataframe_records": [{"n": 10**9}]},
    {"dataframe_records": [{"n": LIMIT + 1}]},
    {"dataframe_records": [{"n": 1}] * (LIMIT + 1)},
    {"dataframe_records": [{"n": "lots"}]},
    {"dataframe_records": [{"n": True}]},
    {"dataframe_records": [{"n": 2.5}]},
    {"inputs": {"n": 2, "seed": -4}},
    {"dataframe_records": [{"latent": ["a"] * LATENT_DIM}]},
    {"dataframe_records": [{"latent": [0.5] * 10**5}]},
    {"dataframe_records": [{"n": 2}], "params": {"format": "gif"}},
    {"rows": [{"n": 2}]},  # no MLflow input key
    b"{not json",
    b"[1, 2]",
    b"",
    b"\xff\xfe not utf-8",
]


def post(url: str, body: dict | bytes) -> tuple[int, bytes]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def resident_mb(process: psutil.Process) -> float:
    family = [process, *process.children(recursive=True)]
    total = 0
    for member in family:
        with contextlib.suppress(psutil.NoSuchProcess):  # a worker that exited between the two calls
            total += member.memory_info().rss
    return total / 2**20


@pytest.fixture(scope="module")
def served(champion_server):
    expected = {seed: champion_server.local.predict([{"n": 4, "seed": seed}]) for seed in SEEDS}
    return champion_server.base_url, champion_server.process, expected


def test_concurrent_good_and_bad_requests(served):
    base, process, expected = served
    url = f"{base}/invocations"
    assert post(url, GOOD[0])[0] == 200  # warm-up: the first prediction traces the generator
    idle_mb = resident_mb(process)
    peak_mb = [idle_mb]
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.1):
            peak_mb[0] = max(peak_mb[0], resident_mb(process))

    def client(number: int) -> list[tuple[str, int, int, bytes]]:
        answers = []
        for request in range(REQUESTS_PER_CLIENT):
            if request % 2 == 0:
                seed = (number + request) % len(SEEDS)
                answers.append(("good", seed, *post(url, GOOD[seed])))
            else:
                which = (number * REQUESTS_PER_CLIENT + request) % len(BAD)
                answers.append(("bad", which, *post(url, BAD[which])))
        return answers

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    started = time.monotonic()
    with ThreadPoolExecutor(CLIENTS) as pool:
        answers = [answer for batch in pool.map(client, range(CLIENTS)) for answer in batch]
    elapsed = time.monotonic() - started
    done.set()
    watcher.join()

    assert len(answers) == CLIENTS * REQUESTS_PER_CLIENT
    for kind, which, status, body in answers:
        if kind == "good":
            assert status == 200, (which, body[:300])
            images = np.asarray(json.loads(body)["predictions"], np.float32)
            assert images.shape == (4, *IMAGE_SHAPE)
            np.testing.assert_allclose(images, expected[which], atol=1e-5)
        else:
            assert 400 <= status < 500, (BAD[which] if isinstance(BAD[which], bytes) else str(BAD[which])[:200],
                                         status, body[:300])
    assert {which for kind, which, *_ in answers if kind == "bad"} == set(range(len(BAD)))
    assert elapsed < LOAD_SECONDS, f"{len(answers)} requests took {elapsed:.1f}s"
    assert peak_mb[0] - idle_mb < MEMORY_GROWTH_MB, f"resident memory {idle_mb:.0f} → peak {peak_mb[0]:.0f} MB"

    assert process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    with urllib.request.urlopen(f"{base}/ping", timeout=10) as response:
        assert response.status == 200
    status, body = post(url, GOOD[1])
    assert status == 200
    np.testing.assert_allclose(np.asarray(json.loads(body)["predictions"], np.float32), expected[1], atol=1e-5)
    print(f"{len(answers)} requests from {CLIENTS} clients in {elapsed:.1f}s; "
          f"resident memory {idle_mb:.0f} MB idle, {peak_mb[0]:.0f} MB peak")
