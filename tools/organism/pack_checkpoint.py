"""Lossless compact transport of a bfloat16 checkpoint for a resumed device call.

A device call carries the tracked tree (~22 MB), Node (24 MB) and .organism (build + held-out sets,
~3.6 MB) within 64 MiB, which leaves ~17 MB for the checkpoint a resumed call starts from: the
shipped shape's 11.5 MB fits, a wider model's 20-31 MB does not. bfloat16 weights compress well
only by byte plane: the high byte (sign and exponent) of trained weights takes few values, the low
byte (mantissa) is close to random. So the tensor data is split into its high and low bytes and
each plane is LZMA-compressed on its own (the shipped model: 68% of its size, against 71% for xz
on the whole file). Unpacking restores the file byte for byte (its SHA-256 is checked).

    python3 tools/organism/pack_checkpoint.py pack DIR OUT_DIR     # OUT_DIR: DIR without model.safetensors, plus the packed file
    python3 tools/organism/pack_checkpoint.py unpack PACKED_DIR OUT_DIR

device-job.sh unpacks on its own when RESUME holds model.safetensors.planes.xz and no model.safetensors.
"""
import hashlib
import json
import lzma
import shutil
import struct
import sys
from pathlib import Path

PACKED = "model.safetensors.planes.xz"
MAGIC = b"SFPLANES1"


def pack(src: Path, dst: Path) -> None:
    blob = (src / "model.safetensors").read_bytes()
    header_len = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + header_len])
    dtypes = {v["dtype"] for k, v in header.items() if k != "__metadata__"}
    if dtypes != {"BF16"}:
        raise SystemExit(f"{src}/model.safetensors holds {sorted(dtypes)}; only all-BF16 files are packed")
    data = blob[8 + header_len:]
    if len(data) % 2:
        raise SystemExit(f"{src}/model.safetensors: odd tensor data length {len(data)}")
    low, high = data[0::2], data[1::2]  # little-endian: the mantissa byte first
    parts = [blob[:8 + header_len], lzma.compress(high, preset=9 | lzma.PRESET_EXTREME), lzma.compress(low, preset=6)]
    digest = hashlib.sha256(blob).digest()
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.is_file() and f.name != "model.safetensors":
            shutil.copy2(f, dst / f.name)
    with open(dst / PACKED, "wb") as out:
        out.write(MAGIC + digest + struct.pack("<3Q", *(len(p) for p in parts)))
        for p in parts:
            out.write(p)
    packed = (dst / PACKED).stat().st_size
    print(f"packed {len(blob)} bytes into {packed} ({packed / len(blob):.3f}): {dst / PACKED}")


def unpack(src: Path, dst: Path) -> None:
    raw = (src / PACKED).read_bytes()
    if not raw.startswith(MAGIC):
        raise SystemExit(f"{src / PACKED} is not a packed checkpoint (bad magic)")
    at = len(MAGIC)
    digest = raw[at:at + 32]
    sizes = struct.unpack("<3Q", raw[at + 32:at + 56])
    at += 56
    header, high_z, low_z = (raw[at + sum(sizes[:i]):at + sum(sizes[:i + 1])] for i in range(3))
    high, low = lzma.decompress(high_z), lzma.decompress(low_z)
    if len(high) != len(low):
        raise SystemExit(f"{src / PACKED}: byte planes of different lengths ({len(high)} vs {len(low)})")
    data = bytearray(2 * len(low))
    data[0::2], data[1::2] = low, high
    blob = header + bytes(data)
    if hashlib.sha256(blob).digest() != digest:
        raise SystemExit(f"{src / PACKED}: unpacked file does not match the packed SHA-256")
    dst.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.is_file() and f.name != PACKED:
            shutil.copy2(f, dst / f.name)
    (dst / "model.safetensors").write_bytes(blob)
    print(f"unpacked {dst / 'model.safetensors'} ({len(blob)} bytes, SHA-256 ok)")


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("pack", "unpack"):
        raise SystemExit(__doc__)
    src, dst = Path(sys.argv[2]), Path(sys.argv[3])
    if src.resolve() == dst.resolve():
        raise SystemExit("OUT_DIR must differ from the source folder")
    (pack if sys.argv[1] == "pack" else unpack)(src, dst)
