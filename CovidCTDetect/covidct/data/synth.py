"""Synthetic COVID-19 lesions inserted into the real lungs of real CTs, and whole synthetic datasets.

The lesions follow the typical CT appearance of COVID-19 pneumonia: ground-glass opacity (GGO),
consolidation and crazy paving; irregular shapes; multifocal, peripheral/subpleural, often bilateral.

How a lesion is made (all sizes in millimetres, so it works on any voxel spacing, in 2D or 3D):

* **Shape**: an ellipsoid with random semi-axes and orientation whose boundary is perturbed by a
  smoothed Gaussian random field, with a soft margin (``alpha`` in 0…1; wider for GGO). It is cut to
  the lung it starts in: lesions lie inside the lungs only. The lesion mask is ``alpha ≥ 0.5``.
* **Place**: the centre is drawn from lung voxels weighted by ``exp(-depth / peripheral_mm)``, depth
  being the distance below the outer lung surface (costal and diaphragmatic pleura, not the
  mediastinal side), and a fraction ``subpleural`` of lesions is centred close enough to that
  surface to touch the pleura. Lesions alternate between the two lungs (bilateral) with
  probability ``bilateral``.
* **Density** (a partial-filling model of the airspaces): each voxel moves towards the density of
  fluid-filled lung by a fraction ``f``, ``hu' = hu + alpha·f·(fluid − hu)``. For GGO, ``f`` is chosen so
  that the lesion's parenchyma reaches a target of −750…−300 HU while vessels and other dense
  structures keep their contrast (they blend rather than being replaced). Consolidation fills
  completely to −100…+50 HU (vessels vanish, as in real consolidation). Crazy paving is GGO plus a
  reticular network of thickened interlobular septa (zero crossings of a random field with a ~8 mm
  cell size) at −250…−50 HU.
* **Noise**: filling reduces the background's noise by ``1 − alpha·f``; fresh noise with the
  background's own level (estimated from neighbouring-voxel differences in the lungs) and a slightly
  correlated in-plane texture restores it, so the lesion has the CT's noise texture.

:func:`paint_lesions` works on numpy arrays (the UNet training augmentation uses it on 2D slices);
:func:`insert_lesions` on SimpleITK images; :func:`make_synth_dataset` writes a labelled dataset
whose positives and negatives share the same backgrounds, so the lesions are the only signal.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage as ndi

from ..errors import DatasetError

KINDS = ("ggo", "consolidation", "crazy_paving")
#: Non-COVID lesions for negatives (a classifier must not call every lesion COVID-19): a solitary solid
#: nodule or mass, as a lung tumour shows
MIMIC_KINDS = ("mass",)
#: Value of each kind in the lesion mask (0 = no lesion).
LESION_LABELS = {"ggo": 1, "consolidation": 2, "crazy_paving": 3, "mass": 4}
#: Target density ranges in HU.
GGO_HU = (-750.0, -300.0)
CONSOLIDATION_HU = (-100.0, 50.0)
MASS_HU = (10.0, 60.0)
SEPTA_HU = (-250.0, -50.0)
#: HU of fluid-filled (fully consolidated) lung towards which GGO moves the parenchyma.
FLUID_HU = 20.0
_MARGIN = {"ggo": 0.35, "consolidation": 0.12, "crazy_paving": 0.25, "mass": 0.05}  # soft edge, relative to the radius
#: Cell size (mm) of the grid on which lesion centres are placed, and the in-plane closing radius (mm)
#: that fills the mediastinum to tell the outer (costal) lung surface from the inner one.
PLACEMENT_MM = 4.0
MEDIASTINUM_MM = 40.0


@dataclass(frozen=True)
class LesionOptions:
    """Parameters of :func:`paint_lesions` (defaults: the typical COVID-19 picture).

    ``n_lesions``: inclusive range of the number of lesions per volume; ``size_mm``: range of the
    lesion diameter; ``peripheral_mm``: depth scale of the peripheral preference; ``subpleural``:
    fraction of lesions touching the pleura; ``bilateral``: probability of spreading lesions over both
    lungs; ``strength``: scales every lesion's density change (1 = the ranges above); ``mediastinal``:
    fraction of the lesions touching the pleura that are placed on the lung's whole surface, its
    mediastinal side included, instead of the thorax's outer surface (costal and diaphragmatic pleura).
    """

    kinds: tuple[str, ...] = KINDS
    n_lesions: tuple[int, int] = (2, 6)
    size_mm: tuple[float, float] = (15.0, 60.0)
    peripheral_mm: float = 10.0
    subpleural: float = 0.7
    bilateral: float = 0.8
    strength: float = 1.0
    mediastinal: float = 0.0

    def __post_init__(self):
        unknown = [kind for kind in self.kinds if kind not in KINDS + MIMIC_KINDS]
        if unknown or not self.kinds:
            raise DatasetError(
                f"Unknown lesion kind(s) {unknown or '(none)'}; choose from {', '.join(KINDS + MIMIC_KINDS)}."
            )
        if not (1 <= self.n_lesions[0] <= self.n_lesions[1]):
            raise DatasetError(f"The number of lesions {self.n_lesions} must be a range of at least 1, e.g. 2-6.")
        if not (0 < self.size_mm[0] <= self.size_mm[1]):
            raise DatasetError(f"The lesion size range {self.size_mm} mm must be positive, e.g. 15-60.")
        if not (0.0 <= self.mediastinal <= 1.0):
            raise DatasetError(f"The mediastinal share of lesions must lie in [0, 1] (got {self.mediastinal}).")


#: the non-COVID lesions some negatives get (``negative_masses``): one or two solid nodules or masses
#: of 10-50 mm, anywhere in the lungs, mostly not touching the pleura
MASS_OPTIONS = LesionOptions(kinds=MIMIC_KINDS, n_lesions=(1, 2), size_mm=(10.0, 50.0), subpleural=0.3, bilateral=0.2)


def estimate_noise(hu: np.ndarray, lungs: np.ndarray) -> float:
    """Noise level (HU) of ``hu`` inside ``lungs``: robust standard deviation of differences between
    neighbours along the last axis, divided by √2 (the difference-of-neighbours estimator)."""
    inside = lungs[..., 1:] & lungs[..., :-1]
    diffs = np.diff(hu.astype(np.float32), axis=-1)[inside]
    if diffs.size < 10:
        return 0.0
    mad = np.median(np.abs(diffs - np.median(diffs)))
    return float(1.4826 * mad / np.sqrt(2.0))


def texture_noise(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise with a CT-like in-plane correlation, scaled so :func:`estimate_noise` reads 1."""
    noise = rng.standard_normal(shape).astype(np.float32)
    sigma = [0.0] * (len(shape) - 2) + [0.6, 0.6]
    noise = ndi.gaussian_filter(noise, sigma)
    level = estimate_noise(noise, np.ones(shape, bool))
    return noise / level if level > 0 else noise


def paint_lesions(
    hu: np.ndarray, lungs: np.ndarray, spacing, rng: np.random.Generator, options: LesionOptions = LesionOptions()
) -> tuple[np.ndarray, np.ndarray]:
    """Insert lesions into the lungs of a CT array (2D or 3D, HU).

    ``lungs``: same-shaped labelmap (1 = right, 2 = left, or any non-zero = lung; separate lungs are
    found as connected components when only one label is present). ``spacing``: voxel size in mm per
    array axis (for a SimpleITK array ``(z, y, x)``: the image spacing reversed). Returns the new CT as
    float32 HU and the lesion mask (uint8, values of :data:`LESION_LABELS`).
    """
    out = np.array(hu, dtype=np.float32)
    lung = np.asarray(lungs) > 0
    if out.shape != lung.shape:
        raise DatasetError(
            f"The lung mask's shape {lung.shape} differs from the CT's {out.shape}; give a mask on the CT's grid."
        )
    if not lung.any():
        raise DatasetError("The lung mask is empty, so no lesion can be inserted; check the mask or the CT.")
    spacing = np.asarray(spacing, dtype=float)
    sides = _lung_sides(np.asarray(lungs), lung)
    placement = _Placement(sides, spacing)
    sigma = estimate_noise(out, lung)
    labels = np.zeros(out.shape, np.uint8)
    n = int(rng.integers(options.n_lesions[0], options.n_lesions[1] + 1))
    bilateral = len(sides) > 1 and rng.random() < options.bilateral
    first = int(rng.integers(len(sides)))
    for i in range(n):
        side = (first + i) % len(sides) if bilateral else first
        kind = options.kinds[int(rng.integers(len(options.kinds)))]
        _paint_one(out, labels, sides[side], placement, side, spacing, sigma, kind, rng, options)
    return out, labels


def insert_lesions(
    ct: sitk.Image,
    lungs: sitk.Image,
    rng: np.random.Generator,
    kinds=KINDS,
    n_lesions: tuple[int, int] = LesionOptions.n_lesions,
    size_mm: tuple[float, float] = LesionOptions.size_mm,
    **options,
) -> tuple[sitk.Image, sitk.Image]:
    """Insert synthetic COVID-19 lesions into the lungs of ``ct``.

    ``lungs``: a labelmap on the CT grid (non-zero = lung). Further keyword options are those of
    :class:`LesionOptions`. Returns ``(ct_with_lesions, lesion_mask)``: the CT with the CT's pixel type
    (rounded and clipped for integer types) and geometry, and a UInt8 mask on the same grid with the
    values of :data:`LESION_LABELS`.
    """
    if ct.GetSize() != lungs.GetSize():
        raise DatasetError(
            f"The lung mask's size {lungs.GetSize()} differs from the CT's {ct.GetSize()}; "
            "give a mask on the CT's grid."
        )
    opts = LesionOptions(kinds=tuple(kinds), n_lesions=tuple(n_lesions), size_mm=tuple(size_mm), **options)
    hu, labels = paint_lesions(
        sitk.GetArrayViewFromImage(ct), sitk.GetArrayViewFromImage(lungs), ct.GetSpacing()[::-1], rng, opts
    )
    return _like(hu, ct), _mask_like(labels, ct)


def add_background_noise(ct: sitk.Image, lungs: sitk.Image, fraction: float, rng: np.random.Generator) -> sitk.Image:
    """``ct`` plus fresh texture noise at ``fraction`` of its own noise level (everywhere), so that
    volumes made from one background are never bit-identical; total noise rises by √(1 + fraction²)."""
    hu = sitk.GetArrayFromImage(ct).astype(np.float32)
    sigma = estimate_noise(hu, sitk.GetArrayViewFromImage(lungs) > 0)
    return _like(hu + fraction * sigma * texture_noise(hu.shape, rng), ct)


def _lung_sides(labels: np.ndarray, lung: np.ndarray) -> list[np.ndarray]:
    """Boolean masks of the separate lungs: labels 1 and 2 when present, else the two largest components."""
    values = [v for v in (1, 2) if np.any(labels == v)]
    if len(values) == 2:
        return [labels == v for v in values]
    components, count = ndi.label(lung)
    if count < 2:
        return [lung]
    sizes = np.bincount(components.ravel())[1:]
    largest = np.argsort(sizes)[::-1][:2] + 1
    if sizes[largest[1] - 1] < 0.1 * sizes[largest[0] - 1]:
        return [lung]
    return [components == v for v in largest]


class _Placement:
    """Where lesions may start: the lungs on a coarse grid (cells of about :data:`PLACEMENT_MM`) with
    each cell's depth below the *outer* lung surface (costal and diaphragmatic pleura).

    Depth is measured from the boundary of the thorax region (the lungs with the mediastinum between
    them filled in by an in-plane closing of :data:`MEDIASTINUM_MM` and hole filling), so that lesions
    prefer the periphery of the lungs rather than the mediastinal surface; the depth below the lung's
    own surface (every side) is found when a lesion first asks for it (``LesionOptions.mediastinal``).
    The coarse grid keeps the distance transforms cheap on full-resolution CTs.
    """

    def __init__(self, sides: list[np.ndarray], spacing: np.ndarray):
        self.factor = np.maximum(1, np.round(PLACEMENT_MM / spacing)).astype(int)
        self.spacing = spacing * self.factor
        self.sides = sides
        self.coarse = []
        for side in sides:
            fraction = _block_mean(side, self.factor)
            self.coarse.append(fraction >= 0.5 if np.any(fraction >= 0.5) else fraction > 0)
        self.outer_depth = ndi.distance_transform_edt(
            _thorax(np.logical_or.reduce(self.coarse), self.spacing), sampling=self.spacing
        )
        self._own_depth = None

    def depth(self, any_surface: bool) -> np.ndarray:
        """Depth (mm) of every coarse cell below the outer surface, or below the lung's own surface."""
        if not any_surface:
            return self.outer_depth
        if self._own_depth is None:
            self._own_depth = ndi.distance_transform_edt(np.logical_or.reduce(self.coarse), sampling=self.spacing)
        return self._own_depth

    def centre(
        self, side: int, touching_mm: float | None, peripheral_mm: float, rng, any_surface: bool = False
    ) -> np.ndarray:
        """A full-resolution lung voxel of ``side``: within ``touching_mm`` of the outer surface (of the
        lung's own surface, every side, when ``any_surface``) when given (else anywhere), weighted by
        ``exp(-depth / peripheral_mm)``."""
        depth = self.depth(any_surface)
        cells = self.coarse[side]
        if touching_mm is not None and np.any(cells & (depth <= touching_mm)):
            cells = cells & (depth <= touching_mm)
        index = np.flatnonzero(cells)
        weights = np.exp(-depth.ravel()[index] / peripheral_mm)
        cell = np.array(np.unravel_index(rng.choice(index, p=weights / weights.sum()), cells.shape))
        block = tuple(slice(c * f, (c + 1) * f) for c, f in zip(cell, self.factor, strict=True))
        voxels = np.argwhere(self.sides[side][block])
        if len(voxels) == 0:  # a cell kept only because the lung is thin everywhere: its centre
            return np.minimum(cell * self.factor + self.factor // 2, np.array(self.sides[side].shape) - 1)
        return voxels[rng.integers(len(voxels))] + cell * self.factor


def _block_mean(mask: np.ndarray, factor: np.ndarray) -> np.ndarray:
    """Mean of ``mask`` over blocks of ``factor`` voxels (the array is zero-padded to whole blocks)."""
    padded_shape = [int(np.ceil(n / f)) * f for n, f in zip(mask.shape, factor, strict=True)]
    padded = np.zeros(padded_shape, np.float32)
    padded[tuple(slice(0, n) for n in mask.shape)] = mask
    interleaved = [v for n, f in zip(padded_shape, factor, strict=True) for v in (n // f, f)]
    return padded.reshape(interleaved).mean(axis=tuple(range(1, 2 * mask.ndim, 2)))


def _thorax(lung: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """The lungs plus the mediastinum between them: in-plane closing and hole filling, slice by slice."""
    radius = np.maximum(1, np.round(MEDIASTINUM_MM / spacing[-2:])).astype(int)
    grid = np.ogrid[-radius[0] : radius[0] + 1, -radius[1] : radius[1] + 1]
    disk = (grid[0] / radius[0]) ** 2 + (grid[1] / radius[1]) ** 2 <= 1.0
    in_plane = np.zeros((3,) * (lung.ndim - 2) + (3, 3), bool)
    in_plane[(1,) * (lung.ndim - 2)] = ndi.generate_binary_structure(2, 1)
    structure = disk.reshape((1,) * (lung.ndim - 2) + disk.shape)
    pad = [(0, 0)] * (lung.ndim - 2) + [(r, r) for r in radius]
    closed = ndi.binary_closing(np.pad(lung, pad), structure)
    closed = closed[tuple(slice(p, closed.shape[i] - p) for i, (p, _) in enumerate(pad))]
    return ndi.binary_fill_holes(closed | lung, in_plane)


def _paint_one(
    out, labels, side_mask, placement: _Placement, side: int, spacing, sigma, kind, rng, options: LesionOptions
) -> None:
    ndim = out.ndim
    diameter = rng.uniform(*options.size_mm)
    radii = diameter / 2.0 * rng.uniform(0.6, 1.4, ndim)
    # centre: touching the pleura, or anywhere with a peripheral preference
    touching = 0.8 * radii.min() if rng.random() < options.subpleural else None
    any_surface = touching is not None and options.mediastinal > 0 and rng.random() < options.mediastinal
    centre = placement.centre(side, touching, options.peripheral_mm, rng, any_surface)
    # local box and coordinates (mm) about the centre
    reach = np.ceil(radii.max() * 1.6 / spacing).astype(int) + 1
    box = tuple(slice(max(c - r, 0), min(c + r + 1, n)) for c, r, n in zip(centre, reach, out.shape, strict=True))
    grids = np.meshgrid(
        *[(np.arange(s.start, s.stop) - c) * sp for s, c, sp in zip(box, centre, spacing, strict=True)], indexing="ij"
    )
    coords = np.stack(grids, axis=-1) @ _random_rotation(ndim, rng)
    radius_field = np.sqrt(np.sum((coords / radii) ** 2, axis=-1))
    shape_noise = _smooth_field(radius_field.shape, spacing, diameter / 5.0, rng)
    level = radius_field + 0.25 * shape_noise
    margin = _MARGIN[kind]
    alpha = np.clip((1.0 - level) / margin + 0.5, 0.0, 1.0) * side_mask[box]  # one lung: the pleura bounds it
    core = alpha >= 0.5
    if not core.any():
        return
    alpha *= ndi.binary_dilation(core, iterations=2)  # no stray faint patches away from the lesion
    region = out[box]
    if kind in ("consolidation", "mass"):
        low_high, texture = (CONSOLIDATION_HU, 15.0) if kind == "consolidation" else (MASS_HU, 8.0)
        target = rng.uniform(*low_high) + texture * _smooth_field(region.shape, spacing, 4.0, rng)
        fill = np.ones_like(region)
    else:
        parenchyma = float(np.median(region[core]))
        ggo = rng.uniform(*GGO_HU)
        target = np.full(region.shape, FLUID_HU, np.float32)
        fill = np.full(region.shape, _fluid_fraction(ggo, parenchyma), np.float32)
        if kind == "crazy_paving":
            septa = np.abs(_smooth_field(region.shape, spacing, 3.0, rng)) < 0.25
            septum = rng.uniform(*SEPTA_HU)
            fill[septa] = np.maximum(fill[septa], _fluid_fraction(septum, parenchyma))
    weight = np.clip(alpha * fill * options.strength, 0.0, 1.0)
    painted = region + weight * (target - region)
    # restore the noise that the filling removed: var(noise) = sigma^2 (1 - (1 - w)^2)
    painted += sigma * np.sqrt(1.0 - (1.0 - weight) ** 2) * texture_noise(region.shape, rng)
    out[box] = painted
    labels[box][core] = LESION_LABELS[kind]


def _fluid_fraction(hu: float, parenchyma: float) -> float:
    """Blend weight (0…1) towards :data:`FLUID_HU` that takes tissue of ``parenchyma`` HU to ``hu`` HU;
    0 when the tissue is already at least as dense as fluid (e.g. a lesion painted over consolidation)."""
    if parenchyma >= FLUID_HU:
        return 0.0
    return float(np.clip((hu - parenchyma) / (FLUID_HU - parenchyma), 0.0, 1.0))


def _smooth_field(shape, spacing, correlation_mm: float, rng: np.random.Generator) -> np.ndarray:
    """A Gaussian random field with correlation length ``correlation_mm``, normalised to unit std."""
    field = ndi.gaussian_filter(
        rng.standard_normal(shape).astype(np.float32), [max(correlation_mm / s, 0.3) for s in spacing], mode="wrap"
    )
    std = field.std()
    return field / std if std > 0 else field


def _random_rotation(ndim: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((ndim, ndim)))
    return q * np.sign(np.diag(r))


def _like(hu: np.ndarray, ct: sitk.Image) -> sitk.Image:
    """``hu`` as an image with ``ct``'s pixel type (rounded and clipped for integers) and geometry."""
    dtype = sitk.GetArrayViewFromImage(ct).dtype
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        hu = np.clip(np.rint(hu), info.min, info.max)
    image = sitk.GetImageFromArray(hu.astype(dtype))
    image.CopyInformation(ct)
    return image


def _mask_like(labels: np.ndarray, ct: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(labels.astype(np.uint8))
    image.CopyInformation(ct)
    return image


def make_synth_dataset(
    backgrounds,
    out_dir: str | os.PathLike,
    n_pos: int,
    n_neg: int,
    seed: int = 0,
    lungs=None,
    lungs_method: str = "threshold",
    device: str = "auto",
    options: LesionOptions = LesionOptions(),
    background_noise: float = 0.25,
    progress=None,
    negative_masses: float = 0.0,
) -> Path:
    """Write a labelled synthetic dataset and return the path of its manifest CSV.

    ``backgrounds``: CT paths (files or DICOM folders) of real, lesion-free chest CTs. Positive ``k``
    and negative ``k`` both use background ``k mod len(backgrounds)``, so every background gives as
    many positives as negatives (when ``n_pos == n_neg``) and the lesions are the only signal.
    Every volume gets fresh background noise (``background_noise`` × the CT's own noise level) from
    its own seed, so no two volumes are identical. ``lungs``: optional lung-mask paths, one per
    background (``None`` entries are segmented with ``lungs_method`` on ``device``).
    ``negative_masses``: the share of negatives that get a non-COVID lesion (:data:`MASS_OPTIONS`:
    a solitary solid nodule or mass), so that a classifier learns that not every lesion is COVID-19.

    Layout of ``out_dir``: ``ct/<id>.nii.gz`` (int16 HU like the backgrounds), ``lesions/<id>.nii.gz``
    (positives; values of :data:`LESION_LABELS`), ``lungs/<background>.nii.gz`` (shared),
    ``manifest.csv`` (id, ct, label, lungs, split (empty), lesions, background, lesion_ml, kinds) and
    ``synth.json`` (every parameter, so a dataset can be regenerated). Case ``k`` of each label is
    drawn from ``numpy.random.default_rng([seed, label, k])``: the same seed gives the same files.
    """
    from ..io import load_ct, read_image, save_image
    from ..outputs import write_json
    from .manifest import Case, write_manifest

    backgrounds = [Path(b) for b in backgrounds]
    lungs = list(lungs) if lungs is not None else [None] * len(backgrounds)
    if not backgrounds:
        raise DatasetError("No background CT was given; name at least one real lesion-free chest CT.")
    if len(lungs) != len(backgrounds):
        raise DatasetError(f"{len(lungs)} lung masks were given for {len(backgrounds)} CTs; give one per CT or none.")
    if n_pos < 0 or n_neg < 0 or n_pos + n_neg == 0:
        raise DatasetError(f"Asked for {n_pos} positives and {n_neg} negatives; ask for at least one volume.")
    out_dir = Path(out_dir)
    if (out_dir / "manifest.csv").exists():
        raise DatasetError(
            f"'{out_dir}' already holds a synthetic dataset (manifest.csv); choose another --out or delete that folder."
        )
    names = _unique_stems(backgrounds)
    total = n_pos + n_neg
    cases: list[Case] = []
    for b, (background, mask_path, name) in enumerate(zip(backgrounds, lungs, names, strict=True)):
        ct = load_ct(background)
        if mask_path is not None:
            lung_image = read_image(mask_path)
            if lung_image.GetSize() != ct.GetSize():
                raise DatasetError(
                    f"Lung mask '{mask_path}' ({lung_image.GetSize()}) is not on the grid of "
                    f"'{background}' ({ct.GetSize()}); give the mask made from that CT."
                )
            lung_image = sitk.Cast(lung_image, sitk.sitkUInt8)
            lung_image.CopyInformation(ct)
        else:
            from ..lungs import segment_lungs

            lung_image = segment_lungs(ct, method=lungs_method, device=device)
        lung_path = save_image(lung_image, out_dir / "lungs" / f"{name}.nii.gz")
        for label, count in ((1, n_pos), (0, n_neg)):
            for k in range(b, count, len(backgrounds)):
                rng = np.random.default_rng([seed, label, k])
                case_id = f"{name}_{'pos' if label else 'neg'}{k:04d}"
                volume = add_background_noise(ct, lung_image, background_noise, rng)
                extra = {"background": background.name, "lesions": None, "lesion_ml": 0.0, "kinds": ""}
                drawn = options if label else (MASS_OPTIONS if rng.random() < negative_masses else None)
                if drawn is not None:
                    volume, lesions = insert_lesions(
                        volume, lung_image, rng, **{k: getattr(drawn, k) for k in drawn.__annotations__}
                    )
                    values = sitk.GetArrayViewFromImage(lesions)
                    voxel_ml = float(np.prod(ct.GetSpacing())) / 1000.0
                    extra.update(
                        lesions=save_image(lesions, out_dir / "lesions" / f"{case_id}.nii.gz"),
                        lesion_ml=round(float(np.count_nonzero(values)) * voxel_ml, 2),
                        kinds=" ".join(k for k, v in LESION_LABELS.items() if np.any(values == v)),
                    )
                ct_path = save_image(volume, out_dir / "ct" / f"{case_id}.nii.gz")
                cases.append(
                    Case(
                        id=case_id,
                        ct=Path(ct_path).resolve(),
                        label=label,
                        lungs=Path(lung_path).resolve(),
                        extra=extra,
                    )
                )
                if progress is not None:
                    progress.stage("synth", len(cases), total)
    cases.sort(key=lambda case: case.id)
    write_json(
        out_dir / "synth.json",
        {
            "seed": seed,
            "positives": n_pos,
            "negatives": n_neg,
            "backgrounds": [b.name for b in backgrounds],
            "lungs": [Path(m).name if m is not None else f"segment_lungs(method={lungs_method!r})" for m in lungs],
            "background_noise": background_noise,
            "negative_masses": negative_masses,
            "options": {k: getattr(options, k) for k in options.__annotations__},
            "note": "Synthetic lesions inserted into real CTs (covidct.data.synth); not real COVID-19 cases.",
        },
    )
    return write_manifest(out_dir / "manifest.csv", cases)


def _unique_stems(paths: list[Path]) -> list[str]:
    from ..formats import path_stem

    stems = [path_stem(path) or path.parent.name for path in paths]
    return [stem if stems.count(stem) == 1 else f"{stem}-{i}" for i, stem in enumerate(stems)]
