"""Training data: real faces only, and pseudo-fakes made from them on the fly.

Real faces come from two shared sources (never from the FaceForensics++ crops, which are only for
validation):

* `faces/utkface`: 200x200 aligned photos, each a different person;
* frames of the shared videos: every few frames, faces found by `vidgan.faces`' MTCNN.

`pack_faces` runs MTCNN once over both, cuts every face with the scoring recipe (`crop.crop_face`)
at `PACK_SIZE` px with its 5 landmarks, and caches the lot in one .npz under the git-ignored
`packed/` folder, so training epochs cost no detection. `pack_ffpp` does the same for the labelled
validation crops.

`PseudoFakeDataset` yields pairs: a real crop and a pseudo-fake made from that same crop (a
self-blend, a swap with another source's face, or a shipped generator's rendering of it blended in;
`FakeMix` sets the shares), both augmented alike (flip, scale/shift jitter,
colour, blur, JPEG), so the only difference the network can rely on is the manipulation.
"""

from __future__ import annotations

import glob
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import cv2
import numpy as np
import torch

from .crop import MARGIN, crop_face
from .pseudofake import face_swap, gan_blend, self_blend

log = logging.getLogger(__name__)

PACK_SIZE = 160  # stored crop size; training and scoring resize the same crop to the model's input
# Clips kept out of training, so the video-level check in the benchmark sees unseen real footage.
HELD_OUT_VIDEOS = ("glasses_man.mp4", "interview_720p.mp4", "hikers.mp4")
FFPP_TYPES = ("df", "ff", "fs", "nt")


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def default_data_dir() -> Path:
    return repo_root().parent / "shared" / "data"


def default_pack_path() -> Path:
    return repo_root() / "packed" / "deepfake_faces.npz"


# -- packing ---------------------------------------------------------------------------------------
def _best_face(dets, min_side: float, min_score: float = 0.95):
    dets = [d for d in dets if d.score >= min_score and d.landmarks is not None
            and min(d.box.width, d.box.height) >= min_side]
    return dets


def _pack_one(image: np.ndarray, det, size: int):
    box = (det.box.x1, det.box.y1, det.box.x2, det.box.y2)
    crop, lms = crop_face(image, box, size, MARGIN, np.array(det.landmarks, np.float32))
    return crop, lms


def pack_faces(out_path: Path, data_dir: Path, *, size: int = PACK_SIZE, utk_limit: int = 0,
               video_stride_s: float = 0.25, video_max_frames: int = 120, min_side: int = 40,
               device: str = "auto",
               include_videos: bool = True,
               progress: Optional[Callable[[str], None]] = None) -> Path:
    """Detect and crop every real face once; save crops (N,size,size,3 uint8), landmarks (N,5,2),
    source ids (int, one per person or clip, for swaps between *different* sources) and names."""
    from ..faces import DetectorOptions, FaceDetector
    from ..media import VideoReader

    det = FaceDetector(DetectorOptions(device=device, min_face=min_side, batch_size=16))
    crops, lms, sources, names = [], [], [], []

    utk = sorted(glob.glob(str(data_dir / "faces" / "utkface" / "*.jpg")))
    if utk_limit:
        utk = utk[:utk_limit]
    for start in range(0, len(utk), 64):
        batch = [cv2.cvtColor(cv2.imread(p), cv2.COLOR_BGR2RGB) for p in utk[start:start + 64]]
        shapes = {b.shape for b in batch}
        results = det.detect(batch) if len(shapes) == 1 else [det.detect([b])[0] for b in batch]
        for path, img, dets in zip(utk[start:start + 64], batch, results):
            faces = _best_face(dets, min_side)
            if len(faces) != 1:
                continue
            c, lm = _pack_one(img, faces[0], size)
            crops.append(c)
            lms.append(lm)
            sources.append(len(names))
            names.append("utk/" + os.path.basename(path))
        if progress:
            progress(f"utkface {min(start + 64, len(utk))}/{len(utk)}: {len(crops)} faces")

    videos = sorted(glob.glob(str(data_dir / "videos" / "*"))) if include_videos else []
    for path in videos:
        name = os.path.basename(path)
        if name in HELD_OUT_VIDEOS or "corrupt" in name or "theora_vorbis" in name:
            continue
        if name.startswith("party_1s"):  # cuts of party_h264_aac: same faces
            continue
        source = len(names)
        names.append("video/" + name)
        try:
            with VideoReader(path) as reader:
                next_t = 0.0
                frames = []
                for frame in reader:
                    if frame.time + 1e-6 >= next_t:
                        frames.append(frame.image)
                        next_t = frame.time + video_stride_s
                    if len(frames) >= video_max_frames:
                        break
        except Exception as exc:  # noqa: BLE001 - a clip PyAV cannot read is simply not used
            log.warning("skipping %s: %s", name, exc)
            continue
        n0 = len(crops)
        for start in range(0, len(frames), 16):
            batch = frames[start:start + 16]
            for img, dets in zip(batch, det.detect(batch)):
                for d in _best_face(dets, min_side):
                    c, lm = _pack_one(img, d, size)
                    crops.append(c)
                    lms.append(lm)
                    sources.append(source)
        if progress:
            progress(f"{name}: {len(crops) - n0} faces")

    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_suffix(".tmp.npz")
    np.savez(tmp, crops=np.stack(crops), landmarks=np.stack(lms).astype(np.float32),
             sources=np.array(sources, np.int64), names=np.array(names))
    os.replace(tmp, out_path)
    return out_path


def load_pack(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


@dataclass
class LabelledCrops:
    """FaceForensics++ validation crops after the scoring recipe: images (N,S,S,3), label 1 = fake,
    manipulation type per image, file names."""

    images: np.ndarray
    labels: np.ndarray
    types: np.ndarray
    files: list[str]


def pack_ffpp(ffpp_dir: Path, size: int = PACK_SIZE, device: str = "auto",
              cache: Optional[Path] = None) -> LabelledCrops:
    """Re-crop the ffpp images with our recipe (MTCNN's box on the 256 px crop, margin 1.3, border
    reflected), so validation sees faces framed exactly as in training and scoring. Images where
    MTCNN finds nothing fall back to the whole picture (counted in the log)."""
    if cache is not None and cache.is_file():
        with np.load(cache) as z:
            return LabelledCrops(z["images"], z["labels"], z["types"], list(z["files"]))
    from ..faces import DetectorOptions, FaceDetector

    det = FaceDetector(DetectorOptions(device=device, min_face=40, batch_size=16))
    files = sorted(glob.glob(str(ffpp_dir / "*" / "*" / "*" / "*.png")))
    images, labels, types, missed = [], [], [], 0
    for path in files:
        img = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
        dets = det.detect([img])[0]
        if dets:
            d = max(dets, key=lambda d: d.box.width * d.box.height)
            crop, _ = crop_face(img, (d.box.x1, d.box.y1, d.box.x2, d.box.y2), size)
        else:
            missed += 1
            crop = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
        parts = Path(path).parts
        images.append(crop)
        labels.append(1 if parts[-2] == "fake" else 0)
        types.append(parts[-4])
    if missed:
        log.warning("ffpp: MTCNN found no face in %d of %d images (whole picture used)", missed, len(files))
    out = LabelledCrops(np.stack(images), np.array(labels), np.array(types),
                        [os.path.relpath(f, ffpp_dir) for f in files])
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, images=out.images, labels=out.labels, types=out.types, files=np.array(out.files))
        os.replace(tmp, cache)
    return out


# -- augmentation ------------------------------------------------------------------------------------
def augment_geometry(rng: np.random.Generator, size: int, out: int):
    """One random geometric jitter (flip, scale +-6 %, shift +-4 %) applied to both images of a pair,
    so the real and its fake stay pixel-aligned."""
    s = out / size * rng.uniform(0.94, 1.06)
    tx, ty = rng.uniform(-0.04, 0.04, size=2) * out
    flip = rng.random() < 0.5
    m = np.array([[s, 0, out / 2 - s * size / 2 + tx], [0, s, out / 2 - s * size / 2 + ty]], np.float32)
    if flip:
        m[0] = -m[0]
        m[0, 2] += out - 1

    def apply(img: np.ndarray) -> np.ndarray:
        return cv2.warpAffine(img, m, (out, out), flags=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REFLECT101)
    return apply


_H264: dict = {}  # (width, height, qp) -> (encoder, decoder, frame counter), per process


def h264_roundtrip(img: np.ndarray, qp: int) -> np.ndarray:
    """`img` (H,W,3 uint8 RGB) through an intra-only libx264 encode at a constant quantiser `qp`
    (4:2:0, deblocked) and back: the compression every frame of a video went through, which JPEG
    only approximates. Encoder and decoder are kept per size and qp, so a call costs a few ms; a
    constant quantiser and intra-only frames make the result independent of earlier calls (CRF's
    rate control would carry state from frame to frame, and break exact resume)."""
    import av
    from fractions import Fraction

    h0, w0 = img.shape[:2]
    if h0 % 2 or w0 % 2:  # 4:2:0 needs even sides
        img = cv2.copyMakeBorder(img, 0, h0 % 2, 0, w0 % 2, cv2.BORDER_REPLICATE)
    h, w = img.shape[:2]
    key = (w, h, int(qp))
    if key not in _H264:
        enc = av.CodecContext.create("libx264", "w")
        enc.width, enc.height, enc.pix_fmt, enc.time_base = w, h, "yuv420p", Fraction(1, 25)
        enc.options = {"qp": str(int(qp)), "preset": "ultrafast", "tune": "zerolatency",
                       "x264-params": "keyint=1"}
        _H264[key] = (enc, av.CodecContext.create("h264", "r"), [0])
    enc, dec, count = _H264[key]
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
    frame.pts = count[0]
    count[0] += 1
    out = [f for packet in enc.encode(frame) for f in dec.decode(packet)]
    return out[0].to_ndarray(format="rgb24")[:h0, :w0] if out else img[:h0, :w0]


def augment_photometric(img: np.ndarray, rng: np.random.Generator, video_prob: float = 0.0) -> np.ndarray:
    """Whole-image changes a real video goes through: brightness/contrast/saturation, a little blur or
    noise, JPEG re-compression, or (with probability `video_prob`) an H.264 round trip at qp 18-32
    instead (c23, FaceForensics++' level, is crf 23). Drawn independently for each image of a pair."""
    out = img.astype(np.float32)
    if rng.random() < 0.8:
        out = (out - 128) * rng.uniform(0.8, 1.2) + 128 + rng.uniform(-20, 20)
        grey = out.mean(2, keepdims=True)
        out = grey + (out - grey) * rng.uniform(0.7, 1.3)
    out = np.clip(out, 0, 255).astype(np.uint8)
    r = rng.random()
    if r < 0.15:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.3, 1.0))
    elif r < 0.25:
        noise = rng.normal(0, rng.uniform(1, 5), out.shape)
        out = np.clip(out + noise, 0, 255).astype(np.uint8)
    if video_prob > 0 and rng.random() < video_prob:  # (drawn only when on: old batches stay the same)
        return h264_roundtrip(out, int(rng.integers(18, 33)))
    if rng.random() < 0.6:
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(60, 96))])
        out = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    return out


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """N,H,W,3 uint8 -> N,3,H,W float in [0, 1] (the model normalises itself)."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)


@dataclass
class FakeMix:
    """How each pseudo-fake is drawn: a GAN-rendered blend with probability `gan_prob` (when renders
    are given), else a swap with `swap_prob`, else a self-blend; of the self-blends, `lower_prob`
    confine the mask to nose, mouth and chin, and `detail_prob` use a detail-loss copy
    (`pseudofake.detail_loss`) instead of the random transform mix."""

    swap_prob: float = 0.3
    lower_prob: float = 0.0
    gan_prob: float = 0.0
    detail_prob: float = 0.0


class PseudoFakeDataset(torch.utils.data.Dataset):
    """Item i -> (2,3,S,S) float [real, fake] and labels [0, 1].

    `strength` (curriculum) is read from a shared value each time, so the trainer can anneal it
    while DataLoader workers run: pass a `multiprocessing.Value('d')` or anything with `.value`.
    `gan`: a generator's rendering of every crop (`ganfakes`), needed for `mix.gan_prob`.
    `video_prob`: the share of images that get an H.264 round trip instead of the JPEG one."""

    def __init__(self, pack: dict[str, np.ndarray], indices: np.ndarray, size: int, seed: int,
                 strength, mix: Optional[FakeMix] = None, gan: Optional[np.ndarray] = None,
                 video_prob: float = 0.0):
        self.crops = pack["crops"]
        self.lms = pack["landmarks"]
        self.sources = pack["sources"]
        self.indices = np.asarray(indices)
        self.size = size
        self.seed = seed
        self.strength = strength
        self.mix = mix or FakeMix()
        if self.mix.gan_prob > 0 and gan is None:
            raise ValueError("gan_prob > 0 needs the GAN renderings of the pack")
        self.gan = gan
        self.video_prob = video_prob  # share of images compressed with H.264 rather than JPEG
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.indices)

    def pair(self, i: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(real, fake, mask): the two augmented crops and where the fake was blended (float32
        size x size in [0, 1], through the same geometric jitter)."""
        idx = int(self.indices[i])
        real, lms = self.crops[idx], self.lms[idx]
        strength = float(self.strength.value)
        mix = self.mix
        # (each extra draw only when its option is on: runs without it keep their exact batches)
        if mix.gan_prob > 0 and rng.random() < mix.gan_prob:
            made = gan_blend(real, self.gan[idx], lms if rng.random() < 0.85 else None, rng, strength)
        elif rng.random() < mix.swap_prob:
            for _ in range(5):
                j = int(self.indices[rng.integers(len(self.indices))])
                if self.sources[j] != self.sources[idx]:
                    break
            made = face_swap(real, lms, self.crops[j], self.lms[j], rng, strength)
        else:
            use_lms = lms if rng.random() < 0.85 else None  # sometimes the plain face ellipse
            lower = mix.lower_prob > 0 and use_lms is not None and rng.random() < mix.lower_prob
            detail = mix.detail_prob > 0 and rng.random() < mix.detail_prob
            made = self_blend(real, use_lms, rng, strength, lower, detail)
        geo = augment_geometry(rng, real.shape[0], self.size)
        vp = self.video_prob
        return (augment_photometric(geo(real), rng, vp), augment_photometric(geo(made.image), rng, vp),
                geo(made.mask))

    def item(self, i: int, rng: np.random.Generator):
        """Tensors for one pair: images (2,3,S,S), labels (2,) = [0, 1], and the blend maps
        (2,1,S/8,S/8): zeros for the real, the blend mask for the fake. The maps supervise the
        auxiliary head (where was the picture altered?), a dense signal that teaches a network
        trained from scratch to look at blending traces much sooner than the single label does."""
        real, fake, mask = self.pair(i, rng)
        m = self.size // 8
        small = cv2.resize(mask, (m, m), interpolation=cv2.INTER_AREA)
        maps = torch.from_numpy(np.stack([np.zeros_like(small), small]))[:, None]
        return to_tensor(np.stack([real, fake])), torch.tensor([0.0, 1.0]), maps

    def __getitem__(self, i: int):
        # Seeded by (seed, epoch, index): a resumed run draws the same pseudo-fakes it would have.
        return self.item(i, np.random.default_rng([self.seed, self.epoch, i]))
