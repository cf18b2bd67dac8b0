"""Synthetic street scenes for the examples (numpy only): an RGB image and where things are.

    image, truth = scene(height=360, width=480, seed=0)

The scene has sky, a sun, grass, a house with a roof, a tree and a car. `truth` holds the
things' boxes (xyxy pixels) and class ids, a class-id mask, the house's corner keypoints and
a heat map centred on the house, so that every renderer has something true to draw.
"""
from typing import Dict, Tuple

import numpy as np

CLASS_NAMES = ["background", "house", "tree", "car", "sun"]


def scene(height: int = 360, width: int = 480, seed: int = 0) -> Tuple[np.ndarray, Dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    horizon = int(height * rng.uniform(0.55, 0.65))
    image = np.zeros((height, width, 3), dtype=np.float32)
    sky_top, sky_bottom = np.array([70, 130, 210]), np.array([190, 220, 245])
    t = (y / max(horizon, 1))[..., None]
    image[:] = sky_top * (1 - t) + sky_bottom * t
    grass = y >= horizon
    image[grass] = np.array([70, 150, 60]) + rng.normal(0, 8, (int(grass.sum()), 3))
    mask = np.zeros((height, width), dtype=np.int64)

    def paint(region: np.ndarray, colour, class_id: int) -> None:
        image[region] = colour
        mask[region] = class_id

    sun_x, sun_y, sun_r = width * rng.uniform(0.75, 0.9), height * 0.15, height * 0.08
    paint((x - sun_x) ** 2 + (y - sun_y) ** 2 <= sun_r ** 2, (250, 215, 70), 4)

    house_w, house_h = width * rng.uniform(0.28, 0.34), height * 0.28
    hx0, hy1 = width * rng.uniform(0.08, 0.16), horizon + height * 0.08
    hx1, hy0 = hx0 + house_w, hy1 - house_h
    roof_top = hy0 - house_h * 0.6
    paint((x >= hx0) & (x <= hx1) & (y >= hy0) & (y <= hy1), (205, 170, 130), 1)
    roof = (y >= roof_top) & (y <= hy0) & (np.abs(x - (hx0 + hx1) / 2) <= (y - roof_top) / (hy0 - roof_top) * house_w * 0.58)
    paint(roof, (160, 50, 45), 1)
    door = (x >= hx0 + house_w * 0.42) & (x <= hx0 + house_w * 0.58) & (y >= hy1 - house_h * 0.5) & (y <= hy1)
    image[door] = (95, 60, 40)

    tx = width * rng.uniform(0.55, 0.62)
    trunk = (np.abs(x - tx) <= width * 0.015) & (y >= horizon - height * 0.12) & (y <= horizon + height * 0.06)
    paint(trunk, (110, 75, 40), 2)
    crown_r = height * 0.12
    crown = (x - tx) ** 2 + (y - (horizon - height * 0.18)) ** 2 <= crown_r ** 2
    paint(crown, (40, 115, 45), 2)

    cx0, cy1 = width * rng.uniform(0.68, 0.74), horizon + height * 0.3
    cx1, cy0 = cx0 + width * 0.2, cy1 - height * 0.09
    paint((x >= cx0) & (x <= cx1) & (y >= cy0) & (y <= cy1 - height * 0.025), (40, 90, 200), 3)
    paint((x >= cx0 + width * 0.04) & (x <= cx1 - width * 0.05) & (y >= cy0 - height * 0.05) & (y <= cy0), (40, 90, 200), 3)
    for wheel_x in (cx0 + width * 0.045, cx1 - width * 0.045):
        paint((x - wheel_x) ** 2 + (y - (cy1 - height * 0.02)) ** 2 <= (height * 0.03) ** 2, (30, 30, 30), 3)

    image = np.clip(image, 0, 255).round().astype(np.uint8)
    boxes = np.array([[hx0, roof_top, hx1, hy1],
                      [tx - crown_r, horizon - height * 0.18 - crown_r, tx + crown_r, horizon + height * 0.06],
                      [cx0, cy0 - height * 0.05, cx1, cy1 + height * 0.01],
                      [sun_x - sun_r, sun_y - sun_r, sun_x + sun_r, sun_y + sun_r]], dtype=np.float32)
    keypoints = np.array([[hx0, hy1, 1.0], [hx0, hy0, 1.0], [(hx0 + hx1) / 2, roof_top, 1.0], [hx1, hy0, 1.0],
                          [hx1, hy1, 1.0]], dtype=np.float32)
    centre_x, centre_y = (hx0 + hx1) / 2, (roof_top + hy1) / 2
    heat = np.exp(-(((x - centre_x) / (house_w * 0.6)) ** 2 + ((y - centre_y) / (house_h * 0.9)) ** 2))
    return image, {"boxes": boxes, "labels": np.array([1, 2, 3, 4]), "scores": np.array([0.94, 0.81, 0.88, 0.62]),
                   "mask": mask, "keypoints": keypoints, "heat": heat.astype(np.float32)}
