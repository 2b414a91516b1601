"""canvas-mini: the embedded benchmark world, rendered procedurally by our own code.

Ten painting styles plus a photo-like surrogate style, times ten shape objects, at 32x32
RGB (any size works; 32 is the default). Every image is a pure function of
``(style, object, seed)``: the same seed gives the same bytes, different seeds vary the
position, scale, rotation and colours inside the pair, without limit.

The styles differ in kind (palette, texture, stroke, background) like UnlearnCanvas's,
and three pairs are deliberately close, sharing a palette but not a texture, so that
damage to a neighbouring concept is measurable:

- ``Ink_Outline`` / ``Pencil_Hatch``: monochrome on paper; clean stroke vs hatched fill.
- ``Neon_Outline`` / ``Neon_Stripes``: neon on black; glowing outline vs striped fill.
- ``Pastel_Flat`` / ``Watercolor_Wash``: pastels; crisp flat fill vs soft mottled wash.

Shapes are described by signed distance fields (negative inside), which gives every
style fills, strokes, glows and hatches from one description of the object. Images are
rendered at twice the size and averaged down (anti-aliasing).
"""

from __future__ import annotations

import colorsys
import hashlib
from collections.abc import Callable
from pathlib import Path

import datasets
import numpy as np
from PIL import Image

from spare.catalogue import Catalogue, register_catalogue
from spare.data.schema import rows_to_dataset
from spare.io import atomic_path, cache_root, config_hash
from spare.progress import tqdm
from spare.viz import image_grid

RENDERER_VERSION = "1"

Array = np.ndarray
Rng = np.random.Generator

# --------------------------------------------------------------------------------------
# Signed distance fields of the objects, in object units (the shape fills about [-1, 1]^2,
# y grows downwards as in an image).
# --------------------------------------------------------------------------------------


def _sd_polygon(px: Array, py: Array, verts: list[tuple[float, float]]) -> Array:
    """Signed distance to a simple polygon (even-odd rule), vectorised over points."""
    v = np.asarray(verts, dtype=np.float64)
    d2 = np.full(px.shape, np.inf)
    inside = np.zeros(px.shape, dtype=bool)
    for i in range(len(v)):
        (ax, ay), (bx, by) = v[i], v[i - 1]
        ex, ey = bx - ax, by - ay
        wx, wy = px - ax, py - ay
        t = np.clip((wx * ex + wy * ey) / (ex * ex + ey * ey), 0.0, 1.0)
        d2 = np.minimum(d2, (wx - ex * t) ** 2 + (wy - ey * t) ** 2)
        crosses = (ay > py) != (by > py)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = ax + (py - ay) * ex / np.where(ey == 0, 1e-12, ey)
        inside ^= crosses & (px < x_at)
    return np.where(inside, -1.0, 1.0) * np.sqrt(d2)


def _sd_circle(px: Array, py: Array, cx: float, cy: float, r: float) -> Array:
    return np.hypot(px - cx, py - cy) - r


def _star(n: int, outer: float, inner: float) -> list[tuple[float, float]]:
    angles = -np.pi / 2 + np.arange(2 * n) * np.pi / n
    radii = np.where(np.arange(2 * n) % 2 == 0, outer, inner)
    return list(zip(radii * np.cos(angles), radii * np.sin(angles) + 0.08, strict=True))


SHAPES: dict[str, Callable[[Array, Array], Array]] = {
    "Disc": lambda x, y: _sd_circle(x, y, 0, 0, 0.85),
    "Ring": lambda x, y: np.abs(np.hypot(x, y) - 0.68) - 0.2,
    "Square": lambda x, y: _sd_polygon(x, y, [(-0.75, -0.75), (0.75, -0.75), (0.75, 0.75), (-0.75, 0.75)]),
    "Triangle": lambda x, y: _sd_polygon(x, y, [(0, -0.9), (0.92, 0.72), (-0.92, 0.72)]),
    "Cross": lambda x, y: _sd_polygon(
        x,
        y,
        [
            (-0.27, -0.9),
            (0.27, -0.9),
            (0.27, -0.27),
            (0.9, -0.27),
            (0.9, 0.27),
            (0.27, 0.27),
            (0.27, 0.9),
            (-0.27, 0.9),
            (-0.27, 0.27),
            (-0.9, 0.27),
            (-0.9, -0.27),
            (-0.27, -0.27),
        ],
    ),
    "Star": lambda x, y: _sd_polygon(x, y, _star(5, 1.0, 0.42)),
    "Heart": lambda x, y: np.minimum(
        np.minimum(_sd_circle(x, y, -0.42, -0.3, 0.46), _sd_circle(x, y, 0.42, -0.3, 0.46)),
        _sd_polygon(x, y, [(-0.84, -0.12), (0.84, -0.12), (0, 0.92)]),
    ),
    "Crescent": lambda x, y: np.maximum(_sd_circle(x, y, 0, 0, 0.88), -_sd_circle(x, y, 0.42, -0.18, 0.7)),
    "Arrow": lambda x, y: _sd_polygon(
        x, y, [(-0.92, -0.2), (0.1, -0.2), (0.1, -0.62), (0.95, 0), (0.1, 0.62), (0.1, 0.2), (-0.92, 0.2)]
    ),
    "Bolt": lambda x, y: _sd_polygon(
        x, y, [(0.15, -0.95), (0.6, -0.95), (0.25, -0.2), (0.6, -0.2), (-0.35, 0.95), (-0.05, 0.05), (-0.4, 0.05)]
    ),
}

# --------------------------------------------------------------------------------------
# Colour and texture helpers.
# --------------------------------------------------------------------------------------


def _hsv(h: float, s: float, v: float) -> Array:
    return np.array(colorsys.hsv_to_rgb(h % 1.0, float(np.clip(s, 0, 1)), float(np.clip(v, 0, 1))))


def _value_noise(rng: Rng, n: int, cells: int) -> Array:
    """Smooth noise in [0, 1] on an n x n grid, from a cells x cells random lattice."""
    coarse = Image.fromarray(rng.random((cells, cells)).astype(np.float32), mode="F")
    return np.asarray(coarse.resize((n, n), Image.Resampling.BICUBIC), dtype=np.float64).clip(0, 1)


def _mix(base: Array, colour: Array, alpha: Array) -> Array:
    """Alpha-composite ``colour`` (3,) or (H, W, 3) over ``base`` with per-pixel ``alpha``."""
    return base * (1 - alpha[..., None]) + colour * alpha[..., None]


class Canvas:
    """The sampled geometry of one image, handed to a style: coordinates, the shape's SDF."""

    def __init__(self, rng: Rng, shape: Callable[[Array, Array], Array], n: int) -> None:
        self.rng, self.n = rng, n
        self.px = 2.0 / n  # one (super-sampled) pixel in image units; the image spans [-1, 1]
        coords = (np.arange(n) + 0.5) * self.px - 1.0
        self.x, self.y = np.meshgrid(coords, coords)
        self.scale = rng.uniform(0.56, 0.76)
        self.cx, self.cy = rng.uniform(-0.16, 0.16, size=2)
        angle = rng.uniform(-0.45, 0.45)  # about +-26 degrees: objects stay upright-ish
        cos, sin = np.cos(angle), np.sin(angle)
        dx, dy = self.x - self.cx, self.y - self.cy
        ox, oy = (cos * dx + sin * dy) / self.scale, (-sin * dx + cos * dy) / self.scale
        self.d = shape(ox, oy) * self.scale  # signed distance in image units
        self.ox, self.oy = ox, oy

    def fill(self, soften: float = 1.0) -> Array:
        """Coverage of the shape's inside, anti-aliased over ``soften`` pixels."""
        return np.clip(0.5 - self.d / (soften * self.px), 0.0, 1.0)

    def stroke(self, width_px: float, offset_px: float = 0.0) -> Array:
        """Coverage of a line of ``width_px`` pixels along the outline (shifted inwards by offset)."""
        dist = np.abs(self.d + offset_px * self.px)
        return np.clip(0.5 + (0.5 * width_px * self.px - dist) / self.px, 0.0, 1.0)

    def stripes(self, period_px: float, angle: float, duty: float = 0.5) -> Array:
        """Parallel bands over the whole image, ``period_px`` pixels apart."""
        u = (np.cos(angle) * self.x + np.sin(angle) * self.y) / (period_px * self.px)
        return ((u % 1.0) < duty).astype(np.float64)

    def noise(self, cells: int) -> Array:
        return _value_noise(self.rng, self.n, cells)

    def background(self, colour: Array) -> Array:
        return np.broadcast_to(colour, (self.n, self.n, 3)).astype(np.float64).copy()


# --------------------------------------------------------------------------------------
# The styles. Each one paints a Canvas into an (n, n, 3) float image in [0, 1].
# --------------------------------------------------------------------------------------


def _paper(c: Canvas) -> Array:
    tone = c.rng.uniform(0.9, 0.97)
    img = c.background(np.array([tone, tone * 0.985, tone * 0.94]))
    return img - 0.03 * c.noise(8)[..., None]


def photo(c: Canvas) -> Array:
    """Neutral photo-like scene: sky and ground, a shaded solid object with a soft shadow."""
    r = c.rng
    sky = _hsv(r.uniform(0.52, 0.62), r.uniform(0.15, 0.45), r.uniform(0.75, 0.95))
    ground = _hsv(r.uniform(0.08, 0.33), r.uniform(0.3, 0.55), r.uniform(0.35, 0.6))
    horizon = r.uniform(0.1, 0.5)
    t = np.clip((c.y - horizon) / 0.25 + 0.5, 0, 1)[..., None]
    img = sky * (1 - t) + ground * t
    img *= (0.94 + 0.06 * c.noise(6))[..., None]
    shadow_d = np.roll(c.d, shift=(2, 2), axis=(0, 1))
    img *= 1 - 0.35 * np.clip(0.5 - shadow_d / (3 * c.px), 0, 1)[..., None]
    base = _hsv(r.uniform(0, 1), r.uniform(0.35, 0.75), r.uniform(0.5, 0.85))
    light = np.clip(1.1 - 0.3 * (c.ox + c.oy), 0.6, 1.35)  # lit from the top left
    obj = np.clip(base * light[..., None], 0, 1)
    return _mix(img, obj, c.fill())


def ink_outline(c: Canvas) -> Array:
    """Black pen contour on paper, no fill."""
    ink = np.full(3, c.rng.uniform(0.0, 0.12))
    return _mix(_paper(c), ink, c.stroke(c.rng.uniform(2.4, 3.0)))


def pencil_hatch(c: Canvas) -> Array:
    """Grey pencil on paper: thin contour, diagonal hatching inside (Ink_Outline's neighbour)."""
    grey = np.full(3, c.rng.uniform(0.3, 0.45))
    hatch = c.stripes(c.rng.uniform(3.5, 4.5), np.pi / 4 + c.rng.uniform(-0.2, 0.2), duty=0.45)
    img = _mix(_paper(c), grey, 0.85 * hatch * c.fill())
    return _mix(img, grey, c.stroke(1.6))


def _neon_colour(c: Canvas) -> Array:
    hue = c.rng.choice([0.5, 0.83, 0.3]) + c.rng.uniform(-0.04, 0.04)  # cyan, magenta, lime
    return _hsv(hue, 0.9, 1.0)


def _night(c: Canvas) -> Array:
    return c.background(np.array([0.03, 0.02, 0.08]) * c.rng.uniform(0.6, 1.4))


def neon_outline(c: Canvas) -> Array:
    """Glowing neon tube along the contour on a black night background."""
    neon = _neon_colour(c)
    glow = 0.55 * np.exp(-np.abs(c.d) / (3 * c.px))
    return _mix(_mix(_night(c), neon, glow), neon, c.stroke(2.4))


def neon_stripes(c: Canvas) -> Array:
    """Neon horizontal stripes filling the shape on black (Neon_Outline's neighbour)."""
    neon = _neon_colour(c)
    stripes = c.stripes(c.rng.uniform(7.0, 8.0), np.pi / 2 + c.rng.uniform(-0.1, 0.1))
    return _mix(_night(c), neon, (0.3 + 0.7 * stripes) * c.fill())


def _pastel(c: Canvas, hue: float) -> Array:
    return _hsv(hue, c.rng.uniform(0.25, 0.4), c.rng.uniform(0.9, 1.0))


def pastel_flat(c: Canvas) -> Array:
    """Crisp flat pastel shape on a flat pastel ground of another hue."""
    hue = c.rng.uniform(0, 1)
    ground = _pastel(c, hue)
    shape = _hsv(hue + c.rng.uniform(0.35, 0.65), c.rng.uniform(0.45, 0.6), c.rng.uniform(0.8, 0.92))
    return _mix(c.background(ground), shape, c.fill())


def watercolor_wash(c: Canvas) -> Array:
    """Pastel_Flat's palette as a wet wash: blotchy ground, soft mottled shape with a pigment rim."""
    hue = c.rng.uniform(0, 1)
    ground = _pastel(c, hue) * (0.9 + 0.2 * c.noise(4))[..., None]
    img = _mix(np.clip(ground, 0, 1), np.ones(3), 0.35 * c.noise(5))
    pigment = _hsv(hue + c.rng.uniform(0.35, 0.65), c.rng.uniform(0.45, 0.6), c.rng.uniform(0.8, 0.92))
    mottled = pigment * (0.85 + 0.3 * c.noise(7))[..., None]
    img = _mix(img, np.clip(mottled, 0, 1), 0.85 * c.fill(soften=3.0))
    return _mix(img, pigment * 0.7, 0.5 * c.stroke(2.0, offset_px=0.5))


def pop_halftone(c: Canvas) -> Array:
    """Comic pop art: halftone dots on yellow, saturated flat fill, heavy black outline."""
    r = c.rng
    ground = _hsv(r.uniform(0.12, 0.17), 0.85, 1.0)
    period = 8 * c.px
    gx, gy = (c.x + 1) % period - period / 2, (c.y + 1) % period - period / 2
    dots = np.clip(0.5 + (0.22 * period - np.hypot(gx, gy)) / c.px, 0, 1)
    img = _mix(c.background(ground), _hsv(r.choice([0.0, 0.95]), 0.8, 0.95), dots)
    fill = _hsv(r.choice([0.0, 0.6, 0.52]) + r.uniform(-0.02, 0.02), 0.95, 0.95)
    img = _mix(img, fill, c.fill())
    return _mix(img, np.zeros(3), c.stroke(3.6))


def sunset_silhouette(c: Canvas) -> Array:
    """Black silhouette against an orange-to-purple sunset gradient."""
    r = c.rng
    top = _hsv(r.uniform(0.72, 0.8), 0.7, r.uniform(0.45, 0.6))
    bottom = _hsv(r.uniform(0.05, 0.1), 0.9, 1.0)
    t = ((c.y + 1) / 2)[..., None]
    return _mix(top * (1 - t) + bottom * t, np.array([0.05, 0.03, 0.06]), c.fill())


def blueprint_grid(c: Canvas) -> Array:
    """White technical contour on blueprint blue with a light grid."""
    r = c.rng
    blue = _hsv(r.uniform(0.58, 0.62), 0.8, r.uniform(0.55, 0.7))
    step = 8 * c.px
    grid_x = np.abs((c.x + 1 + r.uniform(0, step)) % step - step / 2) > step / 2 - c.px
    grid_y = np.abs((c.y + 1 + r.uniform(0, step)) % step - step / 2) > step / 2 - c.px
    img = _mix(c.background(blue), np.array([0.7, 0.8, 1.0]), 0.45 * (grid_x | grid_y))
    return _mix(img, np.ones(3), c.stroke(2.2))


def chalkboard(c: Canvas) -> Array:
    """Chalk on a green board: grainy white contour and a sparse scribbled fill."""
    board = _hsv(c.rng.uniform(0.35, 0.42), 0.45, c.rng.uniform(0.22, 0.3))
    img = c.background(board) * (0.9 + 0.2 * c.noise(5))[..., None]
    grain = c.rng.random((c.n, c.n))
    chalk = np.array([0.93, 0.94, 0.9])
    img = _mix(img, chalk, 0.35 * (grain > 0.55) * c.fill())
    return _mix(img, chalk, c.stroke(3.0) * (0.6 + 0.4 * (grain > 0.25)))


STYLES: dict[str, Callable[[Canvas], Array]] = {
    "Ink_Outline": ink_outline,
    "Pencil_Hatch": pencil_hatch,
    "Neon_Outline": neon_outline,
    "Neon_Stripes": neon_stripes,
    "Pastel_Flat": pastel_flat,
    "Watercolor_Wash": watercolor_wash,
    "Pop_Halftone": pop_halftone,
    "Sunset_Silhouette": sunset_silhouette,
    "Blueprint_Grid": blueprint_grid,
    "Chalkboard": chalkboard,
    "Photo": photo,
}

CLOSE_STYLE_PAIRS: tuple[tuple[str, str], ...] = (
    ("Ink_Outline", "Pencil_Hatch"),
    ("Neon_Outline", "Neon_Stripes"),
    ("Pastel_Flat", "Watercolor_Wash"),
)

CANVAS_MINI = register_catalogue(
    Catalogue(
        name="mini",
        styles=tuple(s for s in STYLES if s != "Photo"),
        objects=tuple(SHAPES),
        photo="Photo",
        aliases={"canvas_mini_photo": "Photo"},
        # SPARE's lr and steps and the baselines' step and lr factors were chosen on the first two,
        # the tuning grid (ablations/tuning.yaml) runs on all four (with validation answer seeds,
        # never the answer set's); the tables' reported summaries leave them out. The last two were
        # added before any tuning run: the first style and object in catalogue order that no other
        # preset reports (robust, finer, sequential) and that the first turn's SPARE did not fail
        validation_targets=("style:Pop_Halftone", "style:Blueprint_Grid", "object:Crescent", "object:Disc"),
    )
)


def image_seed(style: str, object: str, index: int, split: str = "train", base_seed: int = 0) -> int:  # noqa: A002
    """A stable 63-bit seed for image ``index`` of a pair; splits never share seeds."""
    key = f"canvas-mini|{RENDERER_VERSION}|{base_seed}|{split}|{style}|{object}|{index}"
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little") >> 1


def render(style: str, object: str, seed: int, size: int = 32) -> np.ndarray:  # noqa: A002
    """Render one canvas-mini image as ``(size, size, 3)`` uint8; a pure function of its arguments."""
    style = CANVAS_MINI.style(style)
    object = CANVAS_MINI.object(object)  # noqa: A001
    rng = np.random.default_rng(seed)
    canvas = Canvas(rng, SHAPES[object], 2 * size)
    img = np.clip(STYLES[style](canvas), 0.0, 1.0)
    img = img.reshape(size, 2, size, 2, 3).mean(axis=(1, 3))
    return np.round(img * 255).astype(np.uint8)


# --------------------------------------------------------------------------------------
# The dataset: rendered once per configuration, cached on disk as a datasets.Dataset.
# --------------------------------------------------------------------------------------

SPLITS = ("train", "validation", "test")


def canvas_mini_dataset(
    n_per_pair: int = 20,
    *,
    split: str = "train",
    size: int = 32,
    base_seed: int = 0,
    cache_dir: str | Path | None = None,
) -> datasets.Dataset:
    """``n_per_pair`` images of every (style incl. photo, object) pair, cached on disk.

    Splits use disjoint seeds (train / validation / test), never disjoint pairs, so a
    classifier is validated on unseen renderings of every concept it knows.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
    config = {"renderer": RENDERER_VERSION, "n_per_pair": n_per_pair, "split": split, "size": size, "seed": base_seed}
    root = Path(cache_dir) if cache_dir is not None else cache_root() / "canvas-mini"
    path = root / f"{split}-{n_per_pair}x{size}px-{config_hash(config)}"
    if (path / "dataset_info.json").exists():
        return datasets.load_from_disk(str(path))
    pairs = [(s, o) for s in CANVAS_MINI.style_classes for o in CANVAS_MINI.objects]
    rows = (
        {
            "image": Image.fromarray(render(s, o, image_seed(s, o, i, split, base_seed), size)),
            "style": s,
            "object": o,
            "prompt": CANVAS_MINI.prompt(s, o),
            "index": i,
        }
        for s, o in tqdm(pairs, desc=f"rendering canvas-mini {split}", unit="pair", leave=False)
        for i in range(n_per_pair)
    )
    dataset = rows_to_dataset(rows)
    with atomic_path(path) as tmp:
        dataset.save_to_disk(str(tmp))
    return datasets.load_from_disk(str(path))


def preview_grid(size: int = 32, index: int = 0, scale: int = 3) -> Image.Image:
    """Every style (rows, photo last) x every object (columns), one rendering each."""
    cells = [
        [render(s, o, image_seed(s, o, index, "train"), size) for o in CANVAS_MINI.objects]
        for s in CANVAS_MINI.style_classes
    ]
    title = f"canvas-mini: {len(CANVAS_MINI.style_classes)} styles x {len(CANVAS_MINI.objects)} objects, {size}x{size}"
    return image_grid(cells, CANVAS_MINI.style_classes, CANVAS_MINI.objects, scale=scale, title=title)
