"""A real `mlflow models serve` of the champion (tests/serving/conftest.py) on a free localhost port:
good requests get images of the right shape, bad ones a 400 with a clear message, and the server keeps
serving after them."""

from __future__ import annotations

import base64
import io
import json
import urllib.error
import urllib.request

import numpy as np
import pytest

from tests.helpers import IMAGE_SHAPE, LATENT_DIM
from tests.serving.conftest import LIMIT


@pytest.fixture(scope="module")
def served(champion_server):
    return f"{champion_server.base_url}/invocations", champion_server.local


def post(url: str, body) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def test_good_request_returns_the_images_the_local_model_draws(served):
    url, local = served
    # Rows of both kinds share a request when the unused key is an explicit null.
    status, answer = post(url, {"dataframe_records": [{"n": 3, "seed": 7, "latent": None},
                                                    {"latent": [0.5] * LATENT_DIM}]})
    assert status == 200
    images = np.asarray(answer["predictions"], np.float32)
    assert images.shape == (4, *IMAGE_SHAPE)
    assert images.min() >= -1.0 and images.max() <= 1.0
    import pandas as pd

    expected = local.predict(pd.DataFrame([{"n": 3.0, "seed": 7.0}]))
    np.testing.assert_allclose(images[:3], expected, atol=1e-5)


RECORDS = [{"n": 2, "seed": 3}]
FLOAT_RECORDS = [{"n": 2.0, "seed": 3.0}]


@pytest.mark.parametrize("body", [
    {"dataframe_records": RECORDS},
    {"dataframe_records": FLOAT_RECORDS},
    {"dataframe_split": {"columns": ["n", "seed"], "data": [[2, 3]]}},
    {"dataframe_split": {"columns": ["n", "seed"], "data": [[2.0, 3.0]]}},
    {"inputs": RECORDS},
    {"inputs": FLOAT_RECORDS},
    {"inputs": {"n": 2, "seed": 3}},
    {"inputs": {"n": 2.0, "seed": 3}},
], ids=["records-int", "records-float", "split-int", "split-float", "inputs-int", "inputs-float", "inputs-row-int",
        "inputs-row-mixed"])
def test_ints_and_floats_in_every_json_form(served, body):
    url, local = served
    status, answer = post(url, body)
    assert status == 200, answer
    np.testing.assert_allclose(np.asarray(answer["predictions"], np.float32), local.predict(RECORDS), atol=1e-5)


def test_latent_rows_and_mixed_rows_in_every_json_form(served):
    url, local = served
    latent = [1, -2, 0, 3]  # ints, as a hand-written latent often is
    expected = local.predict([{"n": 2, "seed": 3, "latent": None}, {"latent": [1.0, -2.0, 0.0, 3.0]}])
    split = {"columns": ["n", "seed", "latent"], "data": [[2, 3, None], [None, None, latent]]}
    mixed = [{"n": 2, "seed": 3, "latent": None}, {"latent": latent}]
    for body in ({"dataframe_records": mixed}, {"dataframe_split": split}):
        status, answer = post(url, body)
        assert status == 200, (body, answer)
        np.testing.assert_allclose(np.asarray(answer["predictions"], np.float32), expected, atol=1e-5)
    # `inputs` takes latent rows; mixing kinds there is refused by MLflow's parsing, which turns the null into
    # a 0-d array (README: send the kinds in separate requests).
    for body in ({"inputs": {"latent": latent}}, {"inputs": [{"latent": latent}]}):
        status, answer = post(url, body)
        assert status == 200, (body, answer)
        np.testing.assert_allclose(np.asarray(answer["predictions"], np.float32), expected[2:], atol=1e-5)


def test_png_format_returns_decodable_pngs(served):
    from PIL import Image

    status, answer = post(served[0], {"dataframe_records": [{"n": 2}], "params": {"format": "png"}})
    assert status == 200 and len(answer["predictions"]) == 2
    image = Image.open(io.BytesIO(base64.b64decode(answer["predictions"][0])))
    assert image.size == IMAGE_SHAPE[:2] and image.mode == "L"


@pytest.mark.parametrize("body, message", [
    ({"dataframe_records": [{"n": LIMIT + 1}]}, f"row 0: n=17 is outside 1..{LIMIT}"),
    ({"dataframe_records": [{"n": 10}, {"n": 10}]}, f"request asks for more than {LIMIT} images"),
    ({"dataframe_records": [{"latent": [0.1, 0.2, 0.3]}]}, "row 0: latent has 3 values; this generator takes 4"),
    ({"dataframe_records": [{"n": "lots"}]}, "row 0: n: 'lots' is not a number"),
    ({"dataframe_records": [{"n": -1}]}, f"row 0: n=-1 is outside 1..{LIMIT}"),
    ({"dataframe_split": {"columns": ["n"], "data": [[2.5]]}}, "row 0: n: 2.5 is not a whole number"),
    ({"inputs": [{"n": 1, "seed": 0.5}]}, "row 0: seed: 0.5 is not a whole number"),
    ({"inputs": {"n": 2, "seed": -4}}, "row 0: seed -4 is outside 0..2**53"),
    ({"inputs": {"n": float(LIMIT + 1)}}, f"row 0: n=17 is outside 1..{LIMIT}"),
    ({"dataframe_records": [{"n": True}]}, "row 0: n: True is not a number"),
    ({"dataframe_records": [{"latent": ["a", "b", "c", "d"]}]}, "row 0: latent must be a list of 4 numbers"),
    ({"dataframe_records": [{"n": 2, "label": 3}]}, "row 0: this generator is unconditional and takes no label"),
    ({"dataframe_records": [{"n": 2.5}]}, "row 0: n: 2.5 is not a whole number"),
    ({"dataframe_records": [{"seed": 1}]}, "row 0: give either n (a count) or latent"),
    ({"dataframe_records": [{"n": 2}], "params": {"format": "gif"}}, "params.format: 'gif' is not one of"),
    (b"{not json", "Invalid input"),
])
def test_bad_request_is_a_400_with_a_clear_message(served, body, message):
    status, answer = post(served[0], body)
    assert status == 400
    assert answer["error_code"] in ("INVALID_PARAMETER_VALUE", "BAD_REQUEST")
    assert message in answer["message"]


def test_server_still_answers_after_bad_requests(served):
    post(served[0], {"dataframe_records": [{"n": 10_000}]})
    status, answer = post(served[0], {"dataframe_records": [{"n": 1}]})
    assert status == 200 and np.asarray(answer["predictions"]).shape == (1, *IMAGE_SHAPE)
