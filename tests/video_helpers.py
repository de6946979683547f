"""Videos for the tests: an MP4 retimed to a variable frame rate (no ffmpeg needed)."""
import struct

CONTAINERS = (b"moov", b"trak", b"mdia", b"minf", b"stbl")


def retime_mp4(data: bytes, deltas) -> bytes:
    """An MP4 (moov after mdat, one track) with its sample durations replaced by ``deltas``
    (track timescale units, one per frame): the stts table rewritten, its parents resized."""
    def walk(buf: bytes) -> bytes:
        out, i = b"", 0
        while i < len(buf):
            size, kind = struct.unpack(">I4s", buf[i:i + 8])
            body = buf[i + 8:i + size]
            if kind == b"edts":  # the edit list would cut playback at the old duration
                i += size
                continue
            if kind in CONTAINERS:
                body = walk(body)
            elif kind == b"stts":
                body = struct.pack(">II", 0, len(deltas)) + b"".join(struct.pack(">II", 1, d) for d in deltas)
            out += struct.pack(">I4s", len(body) + 8, kind) + body
            i += size
        return out
    return walk(data)


def write_vfr_mp4(path, frames: int = 20, fps: int = 10, long_frame: int = 5, long_s: float = 2.0) -> None:
    """A ``frames``-frame MP4 at ``fps`` whose frame ``long_frame`` lasts ``long_s`` seconds
    (as a phone video with a pause): frame k > long_frame is at (k - 1) / fps + long_s.
    Frame k's pixels are all 10 k. OpenCV writes it (timescale fps x 1024), then the sample
    durations are rewritten."""
    import cv2
    import numpy as np

    tmp = str(path) + ".cfr.mp4"
    w = cv2.VideoWriter(tmp, cv2.VideoWriter_fourcc(*"mp4v"), fps, (64, 48))
    for k in range(frames):
        w.write(np.full((48, 64, 3), 10 * k, np.uint8))
    w.release()
    deltas = [1024] * frames
    deltas[long_frame] = int(round(long_s * fps * 1024))
    with open(tmp, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(retime_mp4(data, deltas))
    import os
    os.remove(tmp)
