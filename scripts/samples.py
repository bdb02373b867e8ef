"""Writes docs/samples/: the images the README's examples send (run from the repository root).

- ankle-boot.png, trouser.png, bag.png: the first Fashion-MNIST test image of each of these
  classes (test images 0, 2 and 18; Fashion-MNIST is MIT-licensed, Zalando Research);
- drawn-7.png: a 7 drawn here with Pillow, dark strokes on a white 140x140 ground, the way a
  person draws on paper or a canvas (the service inverts and frames it).
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

from training.datasets import load_dataset

OUT = Path("docs/samples")
FASHION = {"ankle-boot": 0, "trouser": 2, "bag": 18}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    test = load_dataset("fashion-mnist").x_test
    for name, index in FASHION.items():
        Image.fromarray(test[index]).save(OUT / f"{name}.png")
    drawing = Image.new("L", (140, 140), 255)
    ImageDraw.Draw(drawing).line([(30, 28), (110, 28), (62, 120)], fill=0, width=12, joint="curve")
    drawing.save(OUT / "drawn-7.png")


if __name__ == "__main__":
    main()
