"""Regenerate ``src/espsec/provisioning/proto/*_pb2.py`` (and ``.pyi``) from the ``.proto`` files.

Run ``.venv/bin/python tools/gen_provisioning_protos.py`` after editing a ``.proto``;
``tests/provisioning/test_proto.py`` regenerates into a temporary folder and fails when
the committed modules differ. Needs ``grpcio-tools`` (the ``test`` extra).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
PROTO_DIR = SRC / "espsec" / "provisioning" / "proto"


def generate(out_dir: Path) -> list[Path]:
    """Compile every ``.proto`` into ``out_dir`` (as ``espsec/provisioning/proto/*``)."""
    from grpc_tools import protoc

    protos = sorted(str(p.relative_to(SRC)) for p in PROTO_DIR.glob("*.proto"))
    out_dir.mkdir(parents=True, exist_ok=True)
    args = ["protoc", f"-I{SRC}", f"--python_out={out_dir}", f"--pyi_out={out_dir}", *protos]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    made = out_dir / "espsec" / "provisioning" / "proto"
    return sorted(p for p in made.iterdir() if p.name.endswith(("_pb2.py", "_pb2.pyi")))


def main() -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for path in generate(Path(tmp)):
            (PROTO_DIR / path.name).write_bytes(path.read_bytes())
            print(f"wrote {PROTO_DIR / path.name}", file=sys.stderr)


if __name__ == "__main__":
    main()
