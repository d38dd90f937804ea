#!/usr/bin/env python3
"""Checks the LibOSDP door's file layouts, hashes and MFG replies against every hex example of
PROTOCOL.md: it rebuilds the document's example door (Ana and Bo) with libosdp_pd.DoorDb, feeds it the
document's command bytes and compares each reply. Needs no LibOSDP.

    check_examples.py firmware-config/PROTOCOL.md      (exit 1 on any mismatch)
"""

import re
import struct
import sys

from libosdp_pd import FT_FACE, FT_RECORDS, PROTOCOL_VERSION, R_APPLIED, DoorDb, sha256


# Encoders for the example door (the door itself only decodes).
def encode_record(uid, policy, expire_at, face_sha, name):
    raw = name.encode("utf-8")
    return struct.pack("<IBq", uid, policy, expire_at) + face_sha + bytes([len(raw)]) + raw


def encode_record_file(records):
    body = b"DSRF" + bytes([PROTOCOL_VERSION]) + struct.pack("<H", len(records)) + b"".join(records)
    return body + sha256(body)


def encode_face_file(uid, jpeg):
    return (b"DSFF" + bytes([PROTOCOL_VERSION]) + struct.pack("<I", uid) + sha256(jpeg)
            + struct.pack("<I", len(jpeg)) + jpeg)



def doc_examples(text):
    """`label: <hex lines>` blocks of PROTOCOL.md, as {label: bytes}."""
    out = {}
    for m in re.finditer(r"^([^\n]+):\n((?:    [0-9A-F]{2}(?: [0-9A-F]{2})*\n)+)", text, re.M):
        out[m.group(1).strip()] = bytes.fromhex(m.group(2).replace("\n", " "))
    return out


def check_examples(path):
    """Rebuilds the example door of PROTOCOL.md and compares every hex example; exit 1 on a mismatch."""
    ex = doc_examples(open(path, encoding="utf-8").read())
    jpeg_ana, jpeg_bo = bytes.fromhex("FFD8FFD9"), bytes.fromhex("FFD800FFD9")
    ana = encode_record(1, 0, 1893456000, sha256(jpeg_ana), "Ana")
    bo = encode_record(65, 1, 0, sha256(jpeg_bo), "Bo")
    db = DoorDb(10000, 8192, 65536)
    failures = []

    def same(label, got):
        want = ex.get(label)
        if want != got:
            doc, ours = (b.hex() if b else None for b in (want, got))
            failures.append(f"{label}:\n  doc  {doc}\n  ours {ours}")

    same("record Ana (id 1)", ana)
    same("record hash of Ana", sha256(ana))
    same("record Bo (id 65)", bo)
    same("record file with Ana", encode_record_file([ana]))
    same("face file for Ana", encode_face_file(1, jpeg_ana))
    same("digest of an empty door", db.digest())
    assert db.apply_file(FT_RECORDS, encode_record_file([ana, bo])) == R_APPLIED
    assert db.apply_file(FT_FACE, encode_face_file(1, jpeg_ana)) == R_APPLIED
    same("digest of the example door", db.digest())
    for name in ["INFO", "DIGEST", "BUCKET_DIGESTS", "LIST", "FACE_STATUS", "DELETE", "CLEAR",
                 "CLEAR without confirm"]:
        command = ex.get(name if name.startswith("CLEAR without") else f"{name} command")
        if command is None:
            failures.append(f"{name}: no command example in the document")
            continue
        kind, data = db.handle_mfg(command[3:])
        if name in ("DELETE", "CLEAR") and kind != "ack":
            failures.append(f"{name}: answered {kind}, the document says osdp_ACK")
        got = command[:3] + data if kind == "reply" else None
        label = "its reply" if name.startswith("CLEAR without") else f"{name} reply"
        if label in ex or got is not None:
            same(label, got)
    print(f"{len(ex)} examples in {path}; {len(failures)} mismatches")
    for f in failures:
        print(f)
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(check_examples(sys.argv[1]))
