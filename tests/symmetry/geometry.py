"""An independent description of the 17 plane groups, for the tests.

Written from the symmetry-element diagrams of the International Tables (Vol. A),
not from the generator's tables: rotation centres, mirror lines and glide lines
in conventional fractional coordinates, turned into Cartesian maps with the cell
vectors and origin a sample records.
"""

import numpy as np

S3 = 1.0 / 3.0
# (kind, point, direction or order, glide as a fraction of the direction vector)
# "rot": (point, n); "mirror": (point, direction); "glide": (point, direction, glide fraction)
_T = [("trans", (1, 0)), ("trans", (0, 1))]
ELEMENTS = {
    "p1": _T,
    "p2": [*_T, ("rot", (0, 0), 2), ("rot", (0.5, 0), 2), ("rot", (0, 0.5), 2), ("rot", (0.5, 0.5), 2)],
    "pm": [*_T, ("mirror", (0, 0), (0, 1)), ("mirror", (0.5, 0), (0, 1))],
    "pg": [*_T, ("glide", (0, 0), (0, 1), 0.5), ("glide", (0.5, 0), (0, 1), 0.5)],
    "cm": [*_T, ("trans", (0.5, 0.5)), ("mirror", (0, 0), (0, 1)), ("glide", (0.25, 0), (0, 1), 0.5)],
    "pmm": [*_T, ("mirror", (0, 0), (0, 1)), ("mirror", (0, 0), (1, 0)), ("mirror", (0.5, 0.5), (0, 1)),
            ("rot", (0, 0), 2), ("rot", (0.5, 0.5), 2)],
    "pmg": [*_T, ("mirror", (0.25, 0), (0, 1)), ("glide", (0, 0), (1, 0), 0.5), ("rot", (0, 0), 2),
            ("rot", (0, 0.5), 2)],
    "pgg": [*_T, ("rot", (0, 0), 2), ("rot", (0.5, 0), 2), ("glide", (0.25, 0), (0, 1), 0.5),
            ("glide", (0, 0.25), (1, 0), 0.5)],
    "cmm": [*_T, ("trans", (0.5, 0.5)), ("mirror", (0, 0), (0, 1)), ("mirror", (0, 0), (1, 0)),
            ("rot", (0, 0), 2), ("rot", (0.25, 0.25), 2), ("glide", (0.25, 0), (0, 1), 0.5)],
    "p4": [*_T, ("rot", (0, 0), 4), ("rot", (0.5, 0.5), 4), ("rot", (0.5, 0), 2)],
    "p4m": [*_T, ("rot", (0, 0), 4), ("mirror", (0, 0), (1, 0)), ("mirror", (0, 0), (1, 1)),
            ("mirror", (0.5, 0), (0, 1)), ("mirror", (0, 0), (1, -1))],
    "p4g": [*_T, ("rot", (0, 0), 4), ("rot", (0.5, 0), 2), ("mirror", (0.5, 0), (1, -1)),
            ("glide", (0, 0), (1, 1), 0.5), ("glide", (0.25, 0), (0, 1), 0.5)],
    "p3": [*_T, ("rot", (0, 0), 3), ("rot", (S3, 2 * S3), 3), ("rot", (2 * S3, S3), 3)],
    "p3m1": [*_T, ("rot", (0, 0), 3), ("rot", (S3, 2 * S3), 3), ("mirror", (0, 0), (1, -1)),
             ("mirror", (0, 0), (1, 2)), ("mirror", (0, 0), (2, 1))],
    "p31m": [*_T, ("rot", (0, 0), 3), ("rot", (S3, 2 * S3), 3), ("mirror", (0, 0), (1, 0)),
             ("mirror", (0, 0), (0, 1)), ("mirror", (0, 0), (1, 1))],
    "p6": [*_T, ("rot", (0, 0), 6), ("rot", (S3, 2 * S3), 3), ("rot", (0.5, 0), 2)],
    "p6m": [*_T, ("rot", (0, 0), 6), ("mirror", (0, 0), (1, 0)), ("mirror", (0, 0), (1, 1)),
            ("mirror", (0, 0), (1, -1)), ("mirror", (0, 0), (1, 2)), ("rot", (S3, 2 * S3), 3)],
}  # fmt: skip

# Operations each group lacks (checked to break the symmetry of a generic pattern).
ABSENT = {
    "p1": [("rot", (0, 0), 2), ("rot", (0.3, 0.2), 2), ("mirror", (0, 0), (1, 0)), ("mirror", (0, 0), (0, 1))],
    "p2": [("mirror", (0, 0), (1, 0)), ("mirror", (0, 0), (0, 1)), ("rot", (0.25, 0), 2)],
    "pm": [("rot", (0, 0), 2), ("mirror", (0, 0), (1, 0)), ("mirror", (0.25, 0), (0, 1))],
    "pg": [("mirror", (0, 0), (0, 1)), ("rot", (0, 0), 2)],
    "cm": [("rot", (0, 0), 2), ("mirror", (0, 0), (1, 0))],
    "pmm": [("rot", (0.25, 0), 2), ("glide", (0, 0), (0, 1), 0.5)],
    "pmg": [("mirror", (0, 0), (1, 0)), ("mirror", (0, 0), (0, 1))],
    "pgg": [("mirror", (0, 0), (0, 1)), ("mirror", (0, 0), (1, 0))],
    "cmm": [("rot", (0.5, 0), 4), ("trans", (0.5, 0))],
    "p4": [("mirror", (0, 0), (1, 0)), ("mirror", (0, 0), (1, 1))],
    "p4m": [("rot", (0.25, 0), 2), ("trans", (0.5, 0.5))],
    "p4g": [("mirror", (0, 0), (1, 0)), ("mirror", (0, 0), (1, 1))],
    "p3": [("rot", (0, 0), 6), ("mirror", (0, 0), (1, 0)), ("mirror", (0, 0), (1, -1))],
    "p3m1": [("rot", (0, 0), 6), ("mirror", (0, 0), (1, 0))],
    "p31m": [("rot", (0, 0), 6), ("mirror", (0, 0), (1, -1))],
    "p6": [("mirror", (0, 0), (1, 0)), ("mirror", (0, 0), (1, -1))],
    "p6m": [("rot", (0.5, 0.5), 6), ("trans", (0.5, 0))],
}  # fmt: skip


def cartesian_map(element, basis, origin):
    """The isometry ``x -> A @ x + b`` (pixel coordinates) of a symmetry element."""
    basis = np.asarray(basis, dtype=float)
    origin = np.asarray(origin, dtype=float)
    kind = element[0]
    if kind == "trans":
        return np.eye(2), basis @ np.asarray(element[1], float)
    point = origin + basis @ np.asarray(element[1], float)
    if kind == "rot":
        angle = 2 * np.pi / element[2]
        a = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        return a, point - a @ point
    d = basis @ np.asarray(element[2], float)
    glide = d * element[3] if kind == "glide" else np.zeros(2)
    d = d / np.linalg.norm(d)
    a = 2 * np.outer(d, d) - np.eye(2)
    return a, point - a @ point + glide
