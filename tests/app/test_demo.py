"""The demo page at / in a real browser: Debian's chromium driven by Playwright, against a real
server with the shipped models. Screenshots of each state go to .screenshots/ (the README
shows one)."""

from __future__ import annotations

import base64
import io
import re
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser, FileChooser, Page, expect, sync_playwright

from app.contract.errors import NotReady, QueueFull
from app.http.demo import STATIC
from app.main import create_app
from app.settings import Settings
from tests.app.conftest import RaisingRunner, serve, wait_ready
from training.datasets import load_dataset
from training.render import PHOTO, render

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "models"
SCREENSHOTS = ROOT / ".screenshots"
CHROMIUM = Path("/usr/bin/chromium")  # Debian's; Playwright's own download is unreachable here
ANSWER_TIMEOUT_MS = 30_000
# A 7 as two mouse strokes on the 280 px canvas: the bar, then the stem.
SEVEN = [[(60, 60), (220, 60)], [(220, 60), (190, 120), (150, 190), (125, 240)]]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.is_file(), "install Debian's chromium: apt-get install chromium"
    SCREENSHOTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-background-networking"],
        )
        yield browser
        browser.close()


def started(settings: Settings, **kwargs: object) -> Iterator[str]:
    with serve(create_app(settings, **kwargs)) as url:  # type: ignore[arg-type]
        with httpx.Client(base_url=url, timeout=60) as client:
            wait_ready(client)
        yield url


@pytest.fixture(scope="module")
def shipped() -> Iterator[str]:
    yield from started(Settings(model_repository=SHIPPED, default_model="mnist"))


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1000, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    yield page
    context.close()
    assert errors == [], f"the page threw: {errors}"


@pytest.fixture(scope="module")
def ankle_boot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Fashion-MNIST's first test image (an ankle boot) as a PNG file."""
    fashion = load_dataset("fashion-mnist")
    assert fashion.class_names[int(fashion.y_test[0])] == "Ankle boot"
    path = tmp_path_factory.mktemp("uploads") / "ankle-boot.png"
    Image.fromarray(fashion.x_test[0]).save(path)
    return path


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"demo-{name}.png"), full_page=True)


def pick(page: Page, model: str) -> None:
    page.select_option("#model", model)


def top_class(page: Page) -> str:
    return page.locator("#bars li .name").first.inner_text()


def draw(page: Page, strokes: list[list[tuple[int, int]]]) -> None:
    box = page.locator("#canvas").bounding_box()
    assert box is not None
    scale = box["width"] / 280
    for stroke in strokes:
        x, y = stroke[0]
        page.mouse.move(box["x"] + x * scale, box["y"] + y * scale)
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(box["x"] + x * scale, box["y"] + y * scale, steps=8)
        page.mouse.up()


def test_drawing_a_seven_shows_seven_live(page: Page, shipped: str) -> None:
    page.goto(shipped)
    expect(page.locator("#model")).to_have_value("mnist")
    expect(page.locator("#prompt")).to_be_visible()  # an empty canvas asks for a drawing
    draw(page, SEVEN)
    expect(page.locator("#bars li")).to_have_count(5, timeout=ANSWER_TIMEOUT_MS)
    expect(page.locator("#bars li .name").first).to_have_text("7", timeout=ANSWER_TIMEOUT_MS)
    expect(page.locator("#ood")).to_be_hidden()
    expect(page.locator("#reconstruction")).to_be_visible()
    assert re.fullmatch(r"error 0\.\d{4}", page.inner_text("#reconstruction-error"))
    expect(page.locator("#latent-caption")).to_have_text("latent: mean of 32 channels, 7×7")
    neighbours = page.locator("#neighbours li")
    expect(neighbours).to_have_count(8)
    assert neighbours.locator("img").count() == 8  # the shipped digits index stores images
    sevens = sum("7 ·" in text for text in neighbours.all_inner_texts())
    assert sevens >= 5, neighbours.all_inner_texts()
    shot(page, "seven")
    page.click("#clear")
    expect(page.locator("#prompt")).to_be_visible()
    expect(page.locator("#bars li")).to_have_count(0)


def test_an_uploaded_fashion_image_gets_its_class(
    page: Page, shipped: str, ankle_boot: Path
) -> None:
    page.goto(shipped)
    pick(page, "fashion-mnist")
    page.set_input_files("#file", str(ankle_boot))
    expect(page.locator("#bars li .name").first).to_have_text(
        "Ankle boot", timeout=ANSWER_TIMEOUT_MS
    )
    expect(page.locator("#ood")).to_be_hidden()
    # the shipped Fashion-MNIST index stores no images: neighbours by class and distance
    expect(page.locator("#neighbours li")).to_have_count(8)
    assert page.locator("#neighbours img").count() == 0
    assert page.locator("#neighbours li").first.inner_text().startswith("Ankle boot · 0.")
    expect(page.locator("#neighbours-title")).to_contain_text("stores their classes")
    shot(page, "ankle-boot")


def test_a_photo_shows_what_the_model_saw(page: Page, shipped: str, tmp_path: Path) -> None:
    """A phone photo of the ankle boot (dark on grey, unevenly lit, noisy, JPEG, stored
    sideways with an EXIF tag): the page shows the framed 28x28 input beside the upload,
    upright and light on black, and the class."""
    boot = load_dataset("fashion-mnist").x_test[0]
    photo = render(boot, replace(PHOTO, exif_share=1.0), np.random.default_rng(3))
    path = tmp_path / "boot.jpg"
    path.write_bytes(photo)
    page.goto(shipped)
    pick(page, "fashion-mnist")
    page.set_input_files("#file", str(path))
    expect(page.locator("#bars li .name").first).to_have_text(
        "Ankle boot", timeout=ANSWER_TIMEOUT_MS
    )
    source = page.get_attribute("#framed", "src") or ""
    assert source.startswith("data:image/png;base64,")
    framed = np.asarray(Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1]))))
    assert framed.shape == (28, 28)
    assert np.corrcoef(framed.ravel(), boot.ravel())[0, 1] > 0.8  # upright, light on black
    shot(page, "photo-framed")


def test_the_few_label_model_answers_and_its_neighbours_go_by_id(
    page: Page, shipped: str, ankle_boot: Path
) -> None:
    page.goto(shipped)
    pick(page, "fashion-mnist-10")  # saw 10 labels per class: its index stores no classes
    page.set_input_files("#file", str(ankle_boot))
    expect(page.locator("#bars li .name").first).to_have_text(
        "Ankle boot", timeout=ANSWER_TIMEOUT_MS
    )
    expect(page.locator("#neighbours li")).to_have_count(8)
    assert page.locator("#neighbours li").first.inner_text().startswith("train/")
    expect(page.locator("#neighbours-title")).to_contain_text("neither images nor classes")


def test_an_image_of_the_other_kind_is_called_out(
    page: Page, shipped: str, ankle_boot: Path
) -> None:
    page.goto(shipped)
    pick(page, "mnist")
    page.set_input_files("#file", str(ankle_boot))
    notice = page.locator("#ood")
    expect(notice).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    expect(notice).to_contain_text("This does not look like a handwritten digit")
    shot(page, "out-of-distribution")


def test_the_page_works_with_the_keyboard_and_on_a_phone(
    browser: Browser, shipped: str, ankle_boot: Path
) -> None:
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    page = context.new_page()
    # Listening from the start: interception set up by expect_file_chooser() at the key
    # press itself lost the dialog about one run in ten here.
    choosers: list[FileChooser] = []
    page.on("filechooser", lambda chooser: choosers.append(chooser))
    page.goto(shipped)
    expect(page.locator("#model")).to_have_value("mnist")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways on a phone ({width} px)"
    pick(page, "fashion-mnist")
    focused = []
    for _ in range(8):  # model, docs link, canvas, Clear, file chooser ...
        page.keyboard.press("Tab")
        focused.append(page.evaluate("document.activeElement.id"))
    assert "file" in focused, focused
    while page.evaluate("document.activeElement.id") != "file":
        page.keyboard.press("Shift+Tab")
    page.keyboard.press("Space")
    for _ in range(100):
        if choosers:
            break
        page.wait_for_timeout(50)
    assert choosers, "Space on the focused file button opened no file chooser"
    choosers[0].set_files(str(ankle_boot))
    expect(page.locator("#bars li .name").first).to_have_text(
        "Ankle boot", timeout=ANSWER_TIMEOUT_MS
    )
    box = page.locator("#canvas").bounding_box()
    assert box is not None and box["x"] + box["width"] <= 390
    shot(page, "phone")
    context.close()


def test_bad_files_show_the_service_message(page: Page, shipped: str, tmp_path: Path) -> None:
    page.goto(shipped)
    expect(page.locator("#model")).to_have_value("mnist")
    text = tmp_path / "notes.png"
    text.write_text("not an image at all")
    page.set_input_files("#file", str(text))
    error = page.locator("#error")
    expect(error).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    expect(error).to_contain_text("The service answered 4")
    shot(page, "not-an-image")
    limit = httpx.get(f"{shipped}/models/mnist").json()["limits"]["max_body_bytes"]
    huge = tmp_path / "huge.png"
    noise = np.random.default_rng(0).integers(0, 256, (2000, 2000, 3), dtype=np.uint8)
    Image.fromarray(noise).save(huge)
    assert huge.stat().st_size > limit
    page.set_input_files("#file", str(huge))
    expect(error).to_contain_text("413", timeout=ANSWER_TIMEOUT_MS)
    shot(page, "too-large")
    vast = tmp_path / "vast.png"  # few bytes, too many pixels (a decompression bomb)
    Image.new("L", (5000, 5000)).save(vast)
    page.set_input_files("#file", str(vast))
    expect(error).to_contain_text("pixels", timeout=ANSWER_TIMEOUT_MS)
    # the page still works afterwards
    draw(page, SEVEN)
    expect(error).to_be_hidden(timeout=ANSWER_TIMEOUT_MS)
    expect(page.locator("#bars li")).to_have_count(5)


@pytest.mark.parametrize(
    ("error", "shown"),
    [
        (QueueFull("batch queue full (max_queue_images)"), "429: batch queue full"),
        (NotReady("models are still loading"), "503: models are still loading"),
    ],
)
def test_a_busy_or_unready_service_is_reported(page: Page, error: Exception, shown: str) -> None:
    settings = Settings(model_repository=SHIPPED, default_model="mnist")
    for url in started(settings, runner=RaisingRunner(error)):
        page.goto(url)
        expect(page.locator("#model")).to_have_value("mnist")
        draw(page, SEVEN)
        message = page.locator("#error")
        expect(message).to_contain_text(shown, timeout=ANSWER_TIMEOUT_MS)
        if isinstance(error, QueueFull):
            expect(message).to_contain_text("Try again in 1 s")
        expect(page.locator("#bars li")).to_have_count(0)


def test_with_keys_configured_the_page_asks_for_one(page: Page) -> None:
    settings = Settings(
        model_repository=SHIPPED,
        default_model="mnist",
        api_keys="demo-key",  # type: ignore[arg-type]  # parsed like the env var
    )
    for url in started(settings):
        page.goto(url)
        form = page.locator("#key-form")
        expect(form).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
        expect(page.locator("#error")).to_contain_text("needs an API key")
        page.fill("#api-key", "wrong-key")
        page.click("#key-form button")
        expect(page.locator("#error")).to_contain_text("missing or invalid API key")
        page.fill("#api-key", "demo-key")
        page.click("#key-form button")
        expect(page.locator("#model")).to_have_value("mnist", timeout=ANSWER_TIMEOUT_MS)
        expect(page.locator("#error")).to_be_hidden()
        draw(page, SEVEN)
        expect(page.locator("#bars li .name").first).to_have_text("7", timeout=ANSWER_TIMEOUT_MS)
        shot(page, "api-key")


def test_the_page_loads_nothing_from_elsewhere() -> None:
    for asset in STATIC.iterdir():
        text = asset.read_text()
        assert not re.search(r"(src|href)=\"(https?:)?//", text), asset
        assert "@import" not in text and "url(http" not in text, asset


def test_the_demo_can_be_turned_off(model_repo: Path) -> None:
    for url in started(Settings(model_repository=model_repo, demo=False)):
        assert httpx.get(url).status_code == 404
        assert httpx.get(f"{url}/demo/demo.js").status_code == 404
    for url in started(Settings(model_repository=model_repo)):
        page = httpx.get(url)
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert httpx.get(f"{url}/demo/demo.js").status_code == 200


def test_every_state_left_a_screenshot() -> None:
    """Runs last in this module: the screenshots the README points at exist and are images."""
    for name in ("seven", "ankle-boot", "out-of-distribution", "phone", "api-key"):
        path = SCREENSHOTS / f"demo-{name}.png"
        with Image.open(io.BytesIO(path.read_bytes())) as image:
            assert image.width >= 390
    assert shutil.which("chromium") or CHROMIUM.is_file()
