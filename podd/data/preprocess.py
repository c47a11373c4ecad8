"""How uint8 images become network inputs, and how network-space images are shown again.

Two preprocessors, both fitted on the training split only:

* ZCA (the paper's setting, as in the authors' RaT-BPTT/KIP lineage): x/255 → subtract each
  image's own mean → scale each image to unit L2 norm → multiply by the ZCA matrix
  ``W = U diag((λ + ε)^-1/2) Uᵀ``, where ``U, λ`` are the eigenvectors and eigenvalues of the
  training second-moment matrix ``C = XᵀX / N`` of the normalised images and ``ε = 0.1 · mean(λ)``.
  As in the authors' pipeline there is no separate dataset-mean subtraction: each image is
  already centred by the per-image step. The whitened training data therefore has second
  moment ``W C W = U diag(λ / (λ + ε)) Uᵀ``: identity in the strong directions, damped in the
  weak ones (this is what the regularisation is for).
  ``inverse`` multiplies by ``W⁻¹ = U diag((λ + ε)^1/2) Uᵀ``, which undoes the ZCA exactly, but
  the per-image mean and norm are lost (not invertible), so the result is stretched per image to
  [0, 1] for display. Posters are larger than one image; for them the inverse is applied as a
  convolution whose kernel is the row of ``W⁻¹`` belonging to the centre pixel (ZCA matrices of
  natural images are close to translation invariant): an approximation, used for display only.
* Standardisation (``zca=False``): x/255 → per-channel (x - mean) / std; ``inverse`` is exact
  (then clipped to [0, 1]).

The ZCA fit (an eigendecomposition of a D×D matrix, D = C·H·W) is cached on disk per dataset,
keyed by the dataset name, a hash of the training images and the regularisation.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
import torch.nn.functional as F

from podd.data.dataset import Dataset, data_root
from podd.io import _size, torch_save, verify_checksum, with_checksum
from podd.notes import note_once

ZCA_REG = 0.1
_FIT_BLOCK = 4096  # images per block when accumulating XᵀX (bounds memory, not a hot path)
_PREPROCESSOR_FORMAT = 1
#: n·d² of a ZCA fit from which it is announced (XᵀX alone is n·d² multiply-adds: seconds on a CPU)
SLOW_FIT_FLOPS = 10**10
# D×D float64 matrices alive at once at the peak of a fit on the CPU (XᵀX, XᵀX/N, eigh's
# eigenvectors and workspace, then the float64 products that build W and W⁻¹): measured ~6.1.
# On a GPU at least three of them (XᵀX, XᵀX/N, the eigenvectors) are on the device.
_ZCA_PEAK_MATRICES = 6
_ZCA_PEAK_MATRICES_GPU = 3


def _normalise_images(x_uint8: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """x/255, minus each image's mean, divided by each image's L2 norm → (N, D)."""
    x = x_uint8.flatten(1).to(dtype) / 255.0  # flatten, not reshape(N, -1): N may be 0
    x = x - x.mean(dim=1, keepdim=True)
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-8)  # a constant image stays all-zero


class Preprocessor:
    """Maps uint8 NCHW images to float32 network inputs (``__call__``) and back to [0, 1] (``inverse``).

    Build one with :func:`make_preprocessor`; rebuild a saved one with :meth:`from_state_dict`.
    """

    def __init__(
        self, kind: str, image_shape, *, mean=None, std=None, eigvecs=None, eigvals=None, reg: float | None = None
    ) -> None:
        if kind not in ("zca", "standardize"):
            raise ValueError(f"preprocessor kind must be 'zca' or 'standardize', got {kind!r}")
        self.kind = kind
        self.image_shape = tuple(int(v) for v in image_shape)
        self._per_device: dict[str, dict[str, torch.Tensor]] = {}
        if kind == "zca":
            self.reg = float(reg)
            # Eigenvectors are kept in float32 (half the size on disk and in artifacts), and the
            # matrices are always built from that float32 copy, so that a freshly fitted and a
            # cached or saved preprocessor give bit-identical outputs.
            self.eigvecs = eigvecs.to(torch.float32)
            self.eigvals = eigvals.to(torch.float64)
            self.eps = float(self.reg * self.eigvals.mean())
            u, lam = self.eigvecs.to(torch.float64), self.eigvals + self.eps
            self.matrix = ((u * lam.rsqrt()) @ u.T).to(torch.float32)  # W
            self.inverse_matrix = ((u * lam.sqrt()) @ u.T).to(torch.float32)  # W⁻¹
        else:
            self.mean = torch.as_tensor(mean, dtype=torch.float32).reshape(-1)
            self.std = torch.as_tensor(std, dtype=torch.float32).reshape(-1)

    @property
    def zca(self) -> bool:
        return self.kind == "zca"

    def __repr__(self) -> str:
        extra = f", reg={self.reg}" if self.zca else ""
        return f"Preprocessor(kind={self.kind!r}, image_shape={self.image_shape}{extra})"

    def _on(self, device: torch.device) -> dict[str, torch.Tensor]:
        key = str(device)
        if key not in self._per_device:
            if self.zca:
                self._per_device[key] = {"w": self.matrix.to(device), "w_inv": self.inverse_matrix.to(device)}
            else:
                c = len(self.mean)
                self._per_device[key] = {
                    "mean": self.mean.to(device).view(1, c, 1, 1),
                    "std": self.std.to(device).view(1, c, 1, 1),
                }
        return self._per_device[key]

    def __call__(self, x_uint8: torch.Tensor) -> torch.Tensor:
        """uint8 (N, C, H, W) → float32 (N, C, H, W) network input on the same device."""
        if x_uint8.dtype != torch.uint8:
            raise ValueError(f"Preprocessor expects uint8 images (0..255), got {x_uint8.dtype}")
        if x_uint8.dim() != 4 or x_uint8.shape[1] != self.image_shape[0]:
            raise ValueError(
                f"Preprocessor expects (N, {self.image_shape[0]}, H, W) images, got {tuple(x_uint8.shape)}"
            )
        p = self._on(x_uint8.device)
        if not self.zca:
            return (x_uint8.to(torch.float32) / 255.0 - p["mean"]) / p["std"]
        if tuple(x_uint8.shape[1:]) != self.image_shape:
            raise ValueError(f"this ZCA was fitted on {self.image_shape} images; got {tuple(x_uint8.shape[1:])}")
        z = _normalise_images(x_uint8, torch.float32) @ p["w"]
        return z.reshape(x_uint8.shape)

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        """Network-space images (N, C, H, W) or (C, H, W) → float32 in [0, 1] for display.

        Standardisation is undone exactly. ZCA is undone exactly for images of the fitted size
        and by the centre-row convolution for larger ones (posters); the lost per-image mean and
        norm are replaced by a per-image min–max stretch to [0, 1].
        """
        single = x.dim() == 3
        x = x.detach().to(torch.float32)
        if single:
            x = x.unsqueeze(0)
        if x.dim() != 4 or x.shape[1] != self.image_shape[0]:
            raise ValueError(
                f"inverse expects (N, {self.image_shape[0]}, H, W) or ({self.image_shape[0]}, H, W), "
                f"got {tuple(x.shape) if not single else tuple(x.shape[1:])}"
            )
        if not self.zca:
            p = self._on(x.device)
            out = (x * p["std"] + p["mean"]).clamp(0, 1)
        else:
            y = self.unwhiten(x)
            lo = y.amin(dim=(1, 2, 3), keepdim=True)
            hi = y.amax(dim=(1, 2, 3), keepdim=True)
            out = (y - lo) / (hi - lo).clamp_min(1e-12)
        return out[0] if single else out

    def unwhiten(self, x: torch.Tensor) -> torch.Tensor:
        """ZCA undone, unscaled: (N, C, H, W) network-space images times ``W⁻¹``, exactly for
        images of the fitted size and by the centre-row convolution for larger ones (posters).
        The values are those of mean-free, unit-norm images; :meth:`inverse` stretches them per
        image for display, :func:`podd.display.poster_image` per poster."""
        if not self.zca:
            raise ValueError("unwhiten is for a ZCA preprocessor; this one standardises")
        x = x.detach().to(torch.float32)
        w_inv = self._on(x.device)["w_inv"]
        if tuple(x.shape[1:]) == self.image_shape:
            return (x.reshape(len(x), -1) @ w_inv).reshape(x.shape)
        return self._inverse_convolution(x, w_inv)

    def _inverse_convolution(self, x: torch.Tensor, w_inv: torch.Tensor) -> torch.Tensor:
        c, h, w = self.image_shape
        cy, cx = h // 2, w // 2
        rows = w_inv.reshape(c, h, w, c, h, w)[:, cy, cx]  # (C_out, C_in, h, w)
        padded = F.pad(x, (cx, w - 1 - cx, cy, h - 1 - cy))
        return F.conv2d(padded, rows)

    def state_dict(self) -> dict:
        """Everything needed to rebuild this preprocessor (tensors, floats and strings only).

        For ZCA that is the eigendecomposition, with the D×D eigenvectors in float32 (the applied
        matrices are float32 anyway): 37 MB for 32×32 colour images, 600 MB for 64×64.
        """
        if self.zca:
            return {
                "format": _PREPROCESSOR_FORMAT,
                "kind": "zca",
                "image_shape": list(self.image_shape),
                "reg": self.reg,
                "eigvecs": self.eigvecs,
                "eigvals": self.eigvals,
            }
        return {
            "format": _PREPROCESSOR_FORMAT,
            "kind": "standardize",
            "image_shape": list(self.image_shape),
            "mean": self.mean,
            "std": self.std,
        }

    @classmethod
    def from_state_dict(cls, state: dict) -> Preprocessor:
        if not isinstance(state, dict) or state.get("kind") not in ("zca", "standardize"):
            raise ValueError("not a podd preprocessor state (expected a dict with kind 'zca' or 'standardize')")
        if state["kind"] == "zca":
            return cls(
                "zca", state["image_shape"], eigvecs=state["eigvecs"], eigvals=state["eigvals"], reg=state["reg"]
            )
        return cls("standardize", state["image_shape"], mean=state["mean"], std=state["std"])


def fit_zca(x_train: torch.Tensor, reg: float = ZCA_REG, device: str | torch.device | None = None) -> Preprocessor:
    """Fit the regularised ZCA on uint8 training images (float64 eigendecomposition).

    ``device``: where XᵀX and the eigendecomposition are computed (default: CUDA when available,
    since D×D for 64×64 colour images is large); the result lives on the CPU.
    """
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    n = len(x_train)
    if n < 2:
        raise ValueError(f"ZCA needs at least 2 training images, got {n}")
    flat = x_train.flatten(1)
    if bool((flat.amax(dim=1) == flat.amin(dim=1)).all()):
        # Each image minus its own mean is then zero: XᵀX = 0, its eigenvalues and so the
        # regularisation ε are 0, and W = U diag(0^-1/2) Uᵀ is inf/NaN (every input NaN).
        raise ValueError(
            f"ZCA whitening: each of the {n} training images is a single value in every "
            f"pixel and channel, so the whitening is undefined (it would make every input "
            f"NaN); check how the images were written, or use --set zca=false"
        )
    check_zca_memory(tuple(x_train.shape[1:]), device)
    d = x_train[0].numel()
    gram = torch.zeros(d, d, dtype=torch.float64, device=device)
    for block in x_train.split(_FIT_BLOCK):
        z = _normalise_images(block.to(device), torch.float64)
        gram.addmm_(z.T, z)
    eigvals, eigvecs = torch.linalg.eigh(gram / n)
    # Rounding can make the smallest eigenvalues slightly negative; they are zero.
    return Preprocessor("zca", x_train.shape[1:], eigvecs=eigvecs.cpu(), eigvals=eigvals.clamp_min(0).cpu(), reg=reg)


def _physical_memory() -> int | None:
    """Bytes of RAM of this machine (None where the OS does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def check_zca_memory(image_shape: tuple[int, ...], device: str | torch.device | None = None) -> None:
    """Refuse a ZCA whose D×D matrices cannot fit in memory, before allocating them (the
    allocator's own error names neither the cause nor the way out). ``device``: where the fit
    would run (default as in :func:`fit_zca`); W and W⁻¹ are built on the CPU in any case."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    c, h, w = image_shape
    d = c * h * w
    one = 8 * d * d  # one D×D float64 matrix
    limits = [("this machine's memory", _physical_memory(), _ZCA_PEAK_MATRICES)]
    if device.type == "cuda":
        limits.append(
            ("the GPU's memory", torch.cuda.get_device_properties(device).total_memory, _ZCA_PEAK_MATRICES_GPU)
        )
    for where, have, copies in limits:
        if have is not None and copies * one > have:
            raise ValueError(
                f"ZCA whitening of {c}×{h}×{w} images works on {d}×{d} matrices ({_size(one)} "
                f"each in float64); fitting it needs about {_size(copies * one)}, more than "
                f"{where} ({_size(have)}): use --set zca=false (per-channel standardisation), "
                f"or resize the images (the paper whitens 32×32 and 64×64 images)"
            )


def fit_standardize(x_train: torch.Tensor) -> Preprocessor:
    """Per-channel mean and std of x/255 over the training images."""
    x = x_train.to(torch.float64) / 255.0
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-6)
    return Preprocessor("standardize", x_train.shape[1:], mean=mean, std=std)


def training_hash(ds: Dataset) -> str:
    """A short hash of the training images (with their shape): the ZCA depends on nothing else."""
    h = hashlib.sha256(str(tuple(ds.x_train.shape)).encode())
    h.update(ds.x_train.contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def zca_cache_path(ds: Dataset, reg: float = ZCA_REG, root: str | os.PathLike | None = None) -> Path:
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in ds.name)[:40]
    return data_root(root) / "cache" / f"zca-{safe}-{training_hash(ds)}-reg{reg:g}.pt"


def make_preprocessor(
    ds: Dataset,
    zca: bool,
    root: str | os.PathLike | None = None,
    *,
    reg: float = ZCA_REG,
    device: str | torch.device | None = None,
    cache: bool = True,
) -> Preprocessor:
    """The preprocessor for ``ds``, fitted on its training split.

    ``zca=True``: the paper's ZCA (module docstring), loaded from / saved to
    ``data_root(root)/cache/zca-<name>-<hash>-reg<reg>.pt``. ``zca=False``: per-channel
    standardisation (cheap, never cached).
    """
    lo, hi = torch.aminmax(ds.x_train) if ds.x_train.numel() else (0, 1)
    if lo == hi:
        raise ValueError(
            f"dataset {ds.name!r}: every pixel of all {len(ds.x_train)} training images is "
            f"{int(lo)}, so there is nothing to distil (every input "
            f"would be the same); check how the images were written (an all-zero array "
            f"from a failed conversion?)"
        )
    if not zca:
        return fit_standardize(ds.x_train)
    path = zca_cache_path(ds, reg, root) if cache else None
    if path is not None and path.is_file():
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            if verify_checksum(state, path, ""):  # a damaged cache is fitted again
                return Preprocessor.from_state_dict(state)
        except Exception:  # unreadable or damaged cache: fit again and overwrite it
            pass
    n, d = len(ds.x_train), ds.x_train[0].numel()
    if n * d * d >= SLOW_FIT_FLOPS:  # seconds to minutes on a CPU: say what is happening
        where = f"; later runs read it from {path}" if path is not None else ""
        note_once(
            f"fitting ZCA whitening on {n} training images of {'×'.join(map(str, ds.x_train.shape[1:]))} (once{where})"
        )
    pre = fit_zca(ds.x_train, reg=reg, device=device)
    if path is not None:
        try:
            torch_save(path, with_checksum(pre.state_dict()))
        except OSError as error:
            import warnings

            warnings.warn(f"could not write the ZCA cache {path}: {error}", stacklevel=2)
    return pre
