"""Every endpoint, every input form, through a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import base64
import io

import httpx
import numpy as np
import pytest
from PIL import Image
from starlette.concurrency import run_in_threadpool

from app.contract.images import ImageOptions, decode_image
from app.contract.repository import latest_version
from app.main import RuntimeLoader
from app.settings import Settings
from tests.app.conftest import digit_like, png_bytes
from training.datasets import FASHION_CLASSES

ENDPOINTS = ("/classify", "/embed", "/reconstruct")


@pytest.fixture(scope="module")
def reference(settings: Settings) -> dict[str, object]:
    """Direct (in-process) outputs of the tiny mnist model for three test images, from the
    service's own loader (so its runtime) and graphs."""
    loader = RuntimeLoader(settings.runtime, settings.inference_threads, settings.graph_cache)
    model = loader(*latest_version(settings.model_repository, "mnist"))
    images = np.stack([digit_like(s) for s in (1, 5, 8)])
    rebuilt = model.run("reconstruct", images)
    return {
        "images": images,
        "latents": model.run("embed", images).latent,
        "probabilities": model.run("classify", images).probabilities,
        "reconstruction": rebuilt.reconstruction,
        "pixels": rebuilt.pixels,
    }


def multipart(images: np.ndarray) -> dict[str, object]:
    return {
        "files": [("file", (f"{i}.png", png_bytes(im), "image/png")) for i, im in enumerate(images)]
    }


def json_arrays(images: np.ndarray) -> dict[str, object]:
    return {"json": {"instances": [im.tolist() for im in images]}}


def json_b64(images: np.ndarray) -> dict[str, object]:
    return {
        "json": {"instances": [{"b64": base64.b64encode(png_bytes(im)).decode()} for im in images]}
    }


FORMS = {"multipart": multipart, "json-array": json_arrays, "json-b64": json_b64}


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("form", FORMS)
def test_every_form_gives_the_models_outputs_in_request_order(
    client: httpx.Client, reference: dict, endpoint: str, form: str
) -> None:
    images = reference["images"]
    response = client.post(endpoint, **FORMS[form](images))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == {"name": "mnist", "version": 1}
    if endpoint == "/classify":
        got = np.array([p["probabilities"] for p in body["predictions"]])
        np.testing.assert_allclose(got, reference["probabilities"], atol=1e-5)
        assert [p["label"] for p in body["predictions"]] == list(got.argmax(axis=1))
    elif endpoint == "/embed":
        np.testing.assert_allclose(np.array(body["embeddings"]), reference["latents"], atol=1e-5)
    else:
        decoded = [
            np.asarray(Image.open(io.BytesIO(base64.b64decode(r["image_png"]))))
            for r in body["reconstructions"]
        ]
        np.testing.assert_array_equal(np.stack(decoded), reference["pixels"])
        expected = np.mean((reference["reconstruction"] - images / 255.0) ** 2, axis=(1, 2))
        np.testing.assert_allclose(
            [r["error"] for r in body["reconstructions"]], expected, rtol=1e-4
        )


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_raw_image_body(client: httpx.Client, reference: dict, endpoint: str) -> None:
    """One image as the whole body (Content-Type image/png) gives that image's outputs."""
    response = client.post(
        endpoint, content=png_bytes(reference["images"][1]), headers={"content-type": "image/png"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    if endpoint == "/embed":
        np.testing.assert_allclose(body["embeddings"], reference["latents"][1:2], atol=1e-5)
    elif endpoint == "/classify":
        (prediction,) = body["predictions"]
        np.testing.assert_allclose(
            prediction["probabilities"], reference["probabilities"][1], atol=1e-5
        )
    else:
        (rebuilt,) = body["reconstructions"]
        png = Image.open(io.BytesIO(base64.b64decode(rebuilt["image_png"])))
        np.testing.assert_array_equal(np.asarray(png), reference["pixels"][1])


def test_order_is_kept_for_a_batch(client: httpx.Client, reference: dict) -> None:
    images = reference["images"][::-1]
    body = client.post("/embed", **multipart(images)).json()
    np.testing.assert_allclose(body["embeddings"], reference["latents"][::-1], atol=1e-5)


def test_many_images_are_built_off_the_loop_with_the_same_values(
    client: httpx.Client, reference: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over INLINE_ROWS images take the worker-thread path; rows stay exact and ordered."""
    import app.protocols.native.routes

    monkeypatch.setattr(
        app.protocols.native.routes, "INLINE_ROWS", 2
    )  # the server runs in this process
    built_in_thread: list[str] = []

    async def spy(build, *args):  # type: ignore[no-untyped-def]
        # A schema is built and serialised in one go: `_dump(build, ...)`.
        built_in_thread.append(args[0].__name__ if build.__name__ == "_dump" else build.__name__)
        return await run_in_threadpool(build, *args)

    monkeypatch.setattr(app.protocols.native.routes, "run_in_threadpool", spy)
    images = np.concatenate([reference["images"]] * 2)
    body = client.post("/embed", **multipart(images)).json()
    got = np.array(body["embeddings"], dtype=np.float32)
    # float32 written as its shortest text reads back as the identical float32.
    np.testing.assert_array_equal(got[:3], reference["latents"].astype(np.float32))
    np.testing.assert_array_equal(got, np.concatenate([got[:3]] * (len(images) // 3)))
    rebuilt = client.post("/reconstruct", **multipart(images)).json()["reconstructions"]
    assert len(rebuilt) == len(images)
    first = np.asarray(Image.open(io.BytesIO(base64.b64decode(rebuilt[-1]["image_png"]))))
    np.testing.assert_array_equal(first, reference["pixels"][(len(images) - 1) % 3])
    assert built_in_thread == ["_embed_answer", "reconstruct_response"]


def test_embed_dimension_and_normalisation(client: httpx.Client, reference: dict) -> None:
    body = client.post("/embed?normalize=true", **json_arrays(reference["images"])).json()
    vectors = np.array(body["embeddings"])
    assert body["dim"] == vectors.shape[1] == reference["latents"].shape[1]
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    direction = reference["latents"] / np.linalg.norm(reference["latents"], axis=1, keepdims=True)
    np.testing.assert_allclose(vectors, direction, atol=1e-5)


def test_top_k_lists_best_classes_first(client: httpx.Client, reference: dict) -> None:
    body = client.post("/classify?top_k=3", **json_arrays(reference["images"][:1])).json()
    prediction = body["predictions"][0]
    top = prediction["top_k"]
    assert len(top) == 3
    assert top[0]["label"] == prediction["label"]
    assert [t["confidence"] for t in top] == sorted((t["confidence"] for t in top), reverse=True)
    assert top[0]["class_name"] == str(prediction["label"])  # mnist classes are "0".."9"


def test_model_query_picks_the_model(client: httpx.Client, reference: dict) -> None:
    data = json_arrays(reference["images"][:1])
    mnist = client.post("/classify", **data).json()
    fashion = client.post("/classify?model=fashion-mnist", **data).json()
    assert mnist["model"]["name"] == "mnist"
    assert fashion["model"]["name"] == "fashion-mnist"
    assert fashion["predictions"][0]["class_name"] in FASHION_CLASSES


def test_reconstruct_png_round_trip(client: httpx.Client, reference: dict) -> None:
    response = client.post(
        "/reconstruct",
        content=png_bytes(reference["images"][0]),
        headers={"content-type": "image/png", "accept": "image/png"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.headers["x-model-version"] == "1"
    image = Image.open(io.BytesIO(response.content))
    assert (image.mode, image.size) == ("L", (28, 28))
    np.testing.assert_array_equal(np.asarray(image), reference["pixels"][0])


def test_dark_on_light_upload_is_inverted_automatically(client: httpx.Client) -> None:
    light = digit_like(3)
    on_white = 255 - light
    auto = client.post("/embed", **json_arrays(on_white[None])).json()["embeddings"]
    native = client.post("/embed", **json_arrays(light[None])).json()["embeddings"]
    forced_off = client.post("/embed?invert=false", **json_arrays(on_white[None])).json()
    np.testing.assert_allclose(auto, native, atol=1e-6)
    assert not np.allclose(forced_off["embeddings"], native, atol=1e-3)


def test_larger_upload_is_fitted_unless_resize_false(client: httpx.Client) -> None:
    """An 84x84 upload is answered as the 28x28 image the model's framing makes of it."""
    big = np.asarray(Image.fromarray(digit_like(4)).resize((84, 84)))
    files = {"files": [("file", ("big.png", png_bytes(big), "image/png"))]}
    framing = client.get("/models/mnist").json()["input"]  # mnist: a 20-pixel box, by mass
    options = ImageOptions(
        max_pixels=10**6, fit_box=framing["fit_box"], centre_of_mass=framing["centre_of_mass"]
    )
    fitted = decode_image(png_bytes(big), options, 0)
    assert fitted.shape == (28, 28) and not np.array_equal(fitted, digit_like(4))
    served = client.post("/embed", **files).json()["embeddings"]
    native = client.post("/embed", **json_arrays(fitted[None])).json()["embeddings"]
    np.testing.assert_array_equal(served, native)
    refused = client.post("/classify?resize=false", **files)
    assert refused.status_code == 422
    assert refused.json()["error"]["index"] == 0
    assert "resize=false" in refused.json()["error"]["message"]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_debug_framed_shows_what_the_model_saw(client: httpx.Client, endpoint: str) -> None:
    """?debug=framed returns each input as framed (a grey, noisy photo of a digit here: the
    PNG is the clean 28x28 the model was given); without it there is no `framed` field."""
    rng = np.random.default_rng(0)
    photo = np.asarray(Image.fromarray(255 - digit_like(4)).resize((120, 90)), np.float32)
    photo = np.clip(photo * 0.8 + rng.normal(0, 4, photo.shape), 0, 255).astype(np.uint8)
    files = [("file", ("a.png", png_bytes(photo), "image/png"))] * 2
    plain = client.post(endpoint, files=files)
    debug = client.post(f"{endpoint}?debug=framed", files=files)
    assert plain.status_code == debug.status_code == 200
    assert "framed" not in plain.json()
    framed = [
        np.asarray(Image.open(io.BytesIO(base64.b64decode(p)))) for p in debug.json()["framed"]
    ]
    assert len(framed) == 2 and framed[0].shape == (28, 28)
    framing = client.get("/models/mnist").json()["input"]
    options = ImageOptions(
        max_pixels=10**6, fit_box=framing["fit_box"], centre_of_mass=framing["centre_of_mass"]
    )
    np.testing.assert_array_equal(framed[0], decode_image(png_bytes(photo), options, 0))
    assert framed[0].max() == 255 and framed[0][0].max() == 0  # light on a black ground
    assert client.post(f"{endpoint}?debug=pixels", files=files).status_code == 400


def test_model_metadata(client: httpx.Client, settings: Settings) -> None:
    listing = client.get("/models").json()["models"]
    assert [m["name"] for m in listing] == ["fashion-mnist", "mnist"]
    mnist = client.get("/models/mnist").json()
    assert mnist["default"] is True
    assert mnist["class_names"] == [str(d) for d in range(10)]
    assert mnist["input"]["dtype"] == "uint8"
    assert mnist["latent_dim"] == int(np.prod(mnist["latent_shape"]))
    assert "accuracy" in mnist["metrics"]
    assert mnist["limits"] == {
        "max_body_bytes": settings.max_body_bytes,
        "max_images": settings.max_images,
        "max_image_pixels": settings.max_image_pixels,
        "batching": True,
        "max_batch_images": settings.max_batch_images,
        "max_batch_delay_ms": settings.max_batch_delay_ms,
        "max_queue_images": settings.max_queue_images,
        "request_timeout_ms": settings.request_timeout_ms,
    }
    missing = client.get("/models/nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "model_not_found"


def test_health_and_openapi(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "alive", "models": {}, "versions": {}}
    assert client.get("/readyz").json() == {
        "status": "ready",
        "models": {"fashion-mnist": 1, "mnist": 1},
        "versions": {"fashion-mnist": [1], "mnist": [1]},
    }
    spec = client.get("/openapi.json").json()
    for path in (*ENDPOINTS, "/similar"):
        content = spec["paths"][path]["post"]["requestBody"]["content"]
        assert set(content) == {"multipart/form-data", "image/*", "application/json"}
        assert "422" in spec["paths"][path]["post"]["responses"]
    schemas = spec["components"]["schemas"]
    assert schemas["InstancesRequest"]["properties"]["instances"]["maxItems"] == 8  # max_images
    assert set(schemas["SimilarRequest"]["properties"]) == {"instances", "embedding", "embeddings"}
    assert "/models/{name}/versions/{version}" in spec["paths"]
    assert client.get("/docs").status_code == 200


def test_embed_as_npy_is_the_same_float32_array(client: httpx.Client, reference: dict) -> None:
    """Accept: application/x-npy gives the embeddings as a .npy file: the exact float32 values
    the JSON form writes as text."""
    form = multipart(reference["images"])
    as_json = client.post("/embed?normalize=true", **form).json()["embeddings"]
    response = client.post("/embed?normalize=true", **form, headers={"accept": "application/x-npy"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-npy"
    assert response.headers["x-model-version"] == "1"
    array = np.load(io.BytesIO(response.content), allow_pickle=False)
    assert array.dtype == np.float32 and array.shape == (3, reference["latents"].shape[1])
    np.testing.assert_array_equal(array, np.asarray(as_json, np.float32))
