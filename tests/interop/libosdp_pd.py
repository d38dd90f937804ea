#!/usr/bin/env python3
"""A door unit speaking the doorsync vendor extension (firmware-config/PROTOCOL.md) on LibOSDP's PD.

The interop test runs this on the slave end of a pseudo-terminal while the agent's CP holds the master,
so the extension is proven against an OSDP stack we did not write. Everything below the OSDP layer
(file layouts, checks, hashes, MFG replies) is written from PROTOCOL.md alone, not from the Rust codec:
agreement between the two is the point.

    libosdp_pd.py --port /dev/pts/N --db door.json [--address 1] [--vendor-code 02:44:53] ...

check_examples.py checks this door's layouts and hashes against PROTOCOL.md's hex examples.

The database is written as JSON to --db (write, fsync, rename) at start, after every change and on
SIGTERM; the test reads it after stopping the door. SIGUSR1 makes the door lose its next reply (a
fault for the tests: the CP then resends a command LibOSDP already executed).

How LibOSDP 3.2.9 shapes this file:

- It counts fragment bytes to decide a file is complete and counts a resent fragment twice, so the file
  ops below track which bytes arrived and `close` applies a file only when every byte is there.
- Its Python command handler can only ACK, NAK or echo an osdp_MFG, so queries are answered with ACK
  and the real osdp_MFGREP is queued with submit_event from another thread (the refresh thread holds
  the lock while the handler runs); it goes out as the reply to the CP's next osdp_POLL.
- Its stock refresh loop sleeps 20 ms between turns, which adds up to 20 ms to every reply and
  dominates file-transfer time. This door sleeps --refresh-ms (default 1 ms) instead; replies stay far
  inside OSDP's 200 ms, and nothing in the protocol depends on the PD being slow.
"""

import argparse
import errno
import hashlib
import json
import os
import queue
import select
import signal
import struct
import sys
import termios
import threading
import time
import tty

FT_RECORDS = 0x81
FT_FACE = 0x82
PROTOCOL_VERSION = 1
BUCKETS = 64
NO_FACE = bytes(32)
CLEAR_CONFIRM = b"CLEARALL"
MAX_NAME_BYTES = 48
MAX_DELETE_IDS = 15
MAX_MFG_DATA = 64

# osdp_MFG ops (§6); a reply's op byte is op | 0x80.
OP_INFO, OP_DIGEST, OP_BUCKET_DIGESTS, OP_LIST, OP_FACE_STATUS = 0x01, 0x02, 0x03, 0x04, 0x05
OP_DELETE, OP_CLEAR = 0x10, 0x11
OP_NAMES = {
    OP_INFO: "INFO", OP_DIGEST: "DIGEST", OP_BUCKET_DIGESTS: "BUCKET_DIGESTS", OP_LIST: "LIST",
    OP_FACE_STATUS: "FACE_STATUS", OP_DELETE: "DELETE", OP_CLEAR: "CLEAR",
}
# Reply status codes (§6).
ST_OK, ST_MALFORMED, ST_UNKNOWN_OP, ST_BAD_CONFIRM, ST_OUT_OF_RANGE, ST_STORAGE = range(6)
# Last file results (§6, INFO).
(R_NONE, R_APPLIED, R_CORRUPT, R_TOO_LARGE, R_UNKNOWN_TYPE, R_CAPACITY, R_UNKNOWN_USER,
 R_FACE_MISMATCH, R_UNUSABLE) = range(9)


def sha256(data):
    return hashlib.sha256(data).digest()


class Corrupt(Exception):
    """A file that fails a check of PROTOCOL.md §3/§4 step 1."""


# --- Files (§3, §4) ---------------------------------------------------------------------------------

def parse_record(buf, pos):
    """The §3 record at buf[pos:]: (record dict, end). The record hash covers its bytes as sent."""
    if pos + 46 > len(buf):
        raise Corrupt("record truncated")
    uid, policy, expire_at = struct.unpack_from("<IBq", buf, pos)
    face_sha = bytes(buf[pos + 13:pos + 45])
    name_len = buf[pos + 45]
    end = pos + 46 + name_len
    if policy not in (0, 1) or expire_at < 0 or name_len > MAX_NAME_BYTES or end > len(buf):
        raise Corrupt("record field out of range")
    try:
        name = bytes(buf[pos + 46:end]).decode("utf-8")
    except UnicodeDecodeError:
        raise Corrupt("name is not UTF-8") from None
    record = {"id": uid, "policy": policy, "expire_at": expire_at, "face_sha256": face_sha,
              "name": name, "record_hash": sha256(bytes(buf[pos:end]))}
    return record, end


def decode_record_file(data):
    if len(data) < 7 + 32:
        raise Corrupt("record file too short")
    body, trailer = data[:-32], data[-32:]
    if body[:4] != b"DSRF" or body[4] != PROTOCOL_VERSION:
        raise Corrupt("bad magic or version")
    if sha256(body) != trailer:
        raise Corrupt("trailer is not sha256 of the file")
    (count,) = struct.unpack_from("<H", body, 5)
    pos, records = 7, []
    for _ in range(count):
        record, pos = parse_record(body, pos)
        records.append(record)
    if pos != len(body):
        raise Corrupt("bytes between the last record and the trailer")
    return records


def decode_face_file(data):
    if len(data) < 45 or data[:4] != b"DSFF" or data[4] != PROTOCOL_VERSION:
        raise Corrupt("bad magic, version or length")
    (uid,) = struct.unpack_from("<I", data, 5)
    sha = bytes(data[9:41])
    (jpeg_len,) = struct.unpack_from("<I", data, 41)
    if len(data) != 45 + jpeg_len:
        raise Corrupt("JPEG length does not match the file")
    if sha256(data[45:]) != sha:
        raise Corrupt("JPEG sha256 mismatch")
    return uid, sha, jpeg_len


# --- The door's database ----------------------------------------------------------------------------

class DoorDb:
    """Users by door-local id: record, record hash, and the face enrolled (sha256, length) or None.

    `persist` is called after every change and before the change is answered (PROTOCOL.md §1 rule 4);
    if it raises, the change is undone and reported as a storage failure.
    """

    def __init__(self, capacity, max_record_file, max_face_jpeg, persist=None):
        self.capacity = capacity
        self.max_record_file = max_record_file
        self.max_face_jpeg = max_face_jpeg
        self.persist = persist or (lambda db: None)
        self.users = {}
        self.last_file_type = 0
        self.last_file_result = R_NONE
        self.files = []          # history of completed/aborted files, for the test
        self.mfg_executed = {}   # op name -> times executed (LibOSDP re-runs a resent command)

    def _commit(self, change):
        before = {uid: dict(u) for uid, u in self.users.items()}
        change()
        try:
            self.persist(self)
            return True
        except OSError as e:
            print(f"door: storage failure, change undone: {e}", file=sys.stderr)
            self.users = before
            return False

    def max_file_bytes(self, ft_type):
        return self.max_record_file if ft_type == FT_RECORDS else 45 + self.max_face_jpeg

    def apply_file(self, ft_type, data):
        """Applies one complete file; returns the §6 result. A rejected file changes nothing."""
        if ft_type == FT_RECORDS:
            result = self._apply_records(data)
        elif ft_type == FT_FACE:
            result = self._apply_face(data)
        else:
            result = R_UNKNOWN_TYPE
        self.note_file(ft_type, len(data), result)
        return result

    def note_file(self, ft_type, size, result):
        self.last_file_type, self.last_file_result = ft_type, result
        self.files.append({"ft_type": ft_type, "size": size, "result": result})
        try:
            self.persist(self)
        except OSError as e:
            print(f"door: cannot store the file result: {e}", file=sys.stderr)

    def _apply_records(self, data):
        if len(data) > self.max_record_file:
            return R_TOO_LARGE
        try:
            records = decode_record_file(data)
        except Corrupt:
            return R_CORRUPT
        new_ids = {r["id"] for r in records} - self.users.keys()
        if len(self.users) + len(new_ids) > self.capacity:
            return R_CAPACITY

        def upsert():
            for r in records:  # file order: a later record with the same id wins
                face = self.users.get(r["id"], {}).get("face")  # an upsert keeps the face held
                self.users[r["id"]] = dict(r, face=face)
        return R_APPLIED if self._commit(upsert) else R_CORRUPT  # not stored: "corrupt" makes the CP resend

    def _apply_face(self, data):
        try:
            uid, sha, jpeg_len = decode_face_file(data)
        except Corrupt:
            return R_CORRUPT
        if jpeg_len > self.max_face_jpeg:
            return R_TOO_LARGE
        user = self.users.get(uid)
        if user is None:
            return R_UNKNOWN_USER
        if user["face_sha256"] != sha:
            return R_FACE_MISMATCH

        def enrol():
            self.users[uid] = dict(user, face=(sha, jpeg_len))
        return R_APPLIED if self._commit(enrol) else R_CORRUPT

    # §5 hashes
    def entries(self, ids=None):
        for uid in sorted(self.users if ids is None else ids):
            u = self.users[uid]
            yield uid, u["record_hash"], u["face"][0] if u["face"] else NO_FACE

    def digest(self, ids=None):
        h = hashlib.sha256()
        for uid, record_hash, face_hash in self.entries(ids):
            h.update(struct.pack("<I", uid) + record_hash + face_hash)
        return h.digest()

    def bucket_ids(self, bucket):
        return [uid for uid in self.users if uid % BUCKETS == bucket]

    # §6 commands
    def handle_mfg(self, data):
        """One osdp_MFG's vendor data → ("ack", None), ("reply", vendor data) or ("nak", None)."""
        if len(data) < 3:
            return "nak", None
        op, (request_id,) = data[0], struct.unpack_from("<H", data, 1)
        args = bytes(data[3:])
        name = OP_NAMES.get(op, f"0x{op:02x}")
        self.mfg_executed[name] = self.mfg_executed.get(name, 0) + 1

        def reply(status, payload=b""):
            head = bytes([op | 0x80]) + struct.pack("<H", request_id) + bytes([status])
            return "reply", head + (payload if status == ST_OK else b"")

        def want(n):
            return len(args) == n and len(data) <= MAX_MFG_DATA

        if op == OP_INFO and want(0):
            faces = sum(1 for u in self.users.values() if u["face"])
            return reply(ST_OK, struct.pack(
                "<BBIIIIIBB", PROTOCOL_VERSION, BUCKETS, self.capacity, len(self.users), faces,
                self.max_record_file, self.max_face_jpeg, self.last_file_type, self.last_file_result))
        if op == OP_DIGEST and want(0):
            return reply(ST_OK, struct.pack("<I", len(self.users)) + self.digest())
        if op == OP_BUCKET_DIGESTS and want(1):
            first = args[0]
            if first >= BUCKETS:
                return reply(ST_OUT_OF_RANGE)
            buckets = range(first, min(first + 5, BUCKETS))
            payload = bytes([BUCKETS, first, len(buckets)])
            for b in buckets:
                ids = self.bucket_ids(b)
                payload += struct.pack("<H", len(ids)) + self.digest(ids)[:8]
            return reply(ST_OK, payload)
        if op == OP_LIST and want(5):
            bucket, (cursor,) = args[0], struct.unpack_from("<I", args, 1)
            if bucket >= BUCKETS:
                return reply(ST_OUT_OF_RANGE)
            ids = sorted(uid for uid in self.bucket_ids(bucket) if uid >= cursor)
            page, more = ids[:4], len(ids) > 4
            payload = bytes([bucket, int(more)]) + struct.pack("<I", page[-1] + 1 if more else 0)
            payload += bytes([len(page)])
            for uid, record_hash, face_hash in self.entries(page):
                payload += struct.pack("<I", uid) + record_hash[:4] + face_hash[:4]
            return reply(ST_OK, payload)
        if op == OP_FACE_STATUS and want(4):
            (uid,) = struct.unpack_from("<I", args)
            u = self.users.get(uid)
            flags = (1 if u else 0) | (2 if u and u["face"] else 0)
            record_prefix = u["record_hash"][:16] if u else bytes(16)
            face = u["face"][0] if u and u["face"] else bytes(32)
            return reply(ST_OK, struct.pack("<IB", uid, flags) + record_prefix + face)
        if op == OP_DELETE and len(args) >= 1 and 1 <= args[0] <= MAX_DELETE_IDS and want(1 + 4 * args[0]):
            ids = struct.unpack_from(f"<{args[0]}I", args, 1)

            def delete():
                for uid in ids:
                    self.users.pop(uid, None)  # an absent id is not an error
            return ("ack", None) if self._commit(delete) else reply(ST_STORAGE)
        if op == OP_CLEAR and args[:8] != CLEAR_CONFIRM:
            return reply(ST_BAD_CONFIRM)
        if op == OP_CLEAR and want(8):
            return ("ack", None) if self._commit(self.users.clear) else reply(ST_STORAGE)
        if op not in OP_NAMES:
            return reply(ST_UNKNOWN_OP)
        return reply(ST_MALFORMED)

    def to_json(self):
        users = []
        for uid in sorted(self.users):
            u = self.users[uid]
            users.append({
                "id": uid, "policy": u["policy"], "expire_at": u["expire_at"], "name": u["name"],
                "face_sha256": u["face_sha256"].hex(), "record_hash": u["record_hash"].hex(),
                "face": {"sha256": u["face"][0].hex(), "len": u["face"][1]} if u["face"] else None,
            })
        return {"users": users, "last_file_type": self.last_file_type,
                "last_file_result": self.last_file_result, "files": self.files,
                "mfg_executed": self.mfg_executed}


# --- LibOSDP glue -----------------------------------------------------------------------------------

class FileReceiver:
    """LibOSDP file ops reassembling FtType 0x81/0x82 files by byte coverage (PROTOCOL.md §7)."""

    def __init__(self, db):
        self.db = db
        self._reset()

    def _reset(self):
        self.ft_type, self.size, self.buf = 0, 0, None
        self.reject = None   # result to record at close for a file refused at open
        self.covered = []    # sorted, disjoint [start, end) ranges received
        self.counted = 0     # bytes as LibOSDP counts them (a resent fragment twice)

    def open(self, file_id, size):
        self._reset()
        self.ft_type, self.size = file_id, size
        if file_id not in (FT_RECORDS, FT_FACE):
            self.reject = R_UNKNOWN_TYPE
        elif size <= 0 or size > self.db.max_file_bytes(file_id):
            # LibOSDP cannot send FTSTAT -3; accept the bytes, keep none, and record the refusal.
            self.reject = R_TOO_LARGE if size > 0 else R_CORRUPT
        else:
            self.buf = bytearray(size)
        return 0

    def write(self, data, offset):
        end = offset + len(data)
        if end > self.size:
            return -1  # runs past FtSizeTotal: refused (LibOSDP then sends no FTSTAT); bytes so far kept
        self.counted += len(data)
        if self.buf is None:
            return len(data)
        if offset == 0 and data:
            self.covered = []  # a fragment at offset 0 starts the file afresh
        self.buf[offset:end] = data
        self.covered = merge(self.covered, (offset, end))
        return len(data)

    def read(self, size, offset):
        return b""  # a PD never sends files

    def close(self, file_id):
        # LibOSDP calls close when its byte count equals FtSizeTotal, and on osdp_ABORT. Any other count
        # (short, or past the size after a resent fragment) means ABORT: dropped without a result.
        if self.counted != self.size:
            self.db.files.append({"ft_type": self.ft_type, "size": self.size, "aborted": True})
        elif self.reject is not None:
            self.db.note_file(self.ft_type, self.size, self.reject)
        elif self.covered != [(0, self.size)]:
            # The count was reached with bytes missing: a resent fragment was counted twice.
            self.db.note_file(self.ft_type, self.size, R_CORRUPT)
        else:
            self.db.apply_file(self.ft_type, bytes(self.buf))
        self._reset()
        return 0

    def ops(self):
        return {"open": self.open, "write": self.write, "read": self.read, "close": self.close}


def merge(ranges, new):
    out, (start, end) = [], new
    for a, b in ranges:
        if b < start or a > end:
            out.append((a, b))
        else:
            start, end = min(a, start), max(b, end)
    return sorted(out + [(start, end)])


def open_tty_channel(path, on_hangup):
    import osdp

    class TtyChannel(osdp.Channel):
        """The PD end of the serial line: a tty opened non-blocking and raw (docs/osdp.md §10).

        `lose_replies` is a fault for the tests: that many of the next replies are dropped as a noisy
        line would, so the CP resends a command LibOSDP has already executed.
        """

        def __init__(self):
            super().__init__()
            self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
            tty.setraw(self.fd)
            self.lose_replies = 0

        def read(self, max_bytes):
            try:
                return os.read(self.fd, max_bytes)
            except (BlockingIOError, InterruptedError):
                return b""
            except OSError as e:
                if e.errno == errno.EIO:  # the CP closed its end for good
                    on_hangup()
                return b""

        def write(self, buf):
            if self.lose_replies > 0:
                self.lose_replies -= 1
                return len(buf)
            view, done = memoryview(bytes(buf)), 0
            while done < len(view):
                try:
                    done += os.write(self.fd, view[done:])
                except BlockingIOError:
                    select.select([], [self.fd], [], 0.05)
                except OSError:
                    on_hangup()
                    return done
            return done

        def flush(self):
            termios.tcflush(self.fd, termios.TCIFLUSH)

    return TtyChannel()


def vendor_code_int(wire):
    """LibOSDP holds a vendor code as an integer built little-endian from its wire bytes."""
    return int.from_bytes(wire, "little")


def run(args):
    import osdp

    refresh_s = args.refresh_ms / 1000.0

    class Door(osdp.PeripheralDevice):
        @staticmethod
        def refresh(event, lock, ctx):
            while not event.is_set():
                with lock:
                    ctx.refresh()
                time.sleep(refresh_s)

    vendor = bytes.fromhex(args.vendor_code.replace(":", ""))
    store_lock = threading.Lock()

    def persist(db):
        with store_lock:
            tmp = args.db + ".tmp"
            with open(tmp, "w") as f:
                json.dump(db.to_json(), f, indent=1)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, args.db)

    db = DoorDb(args.capacity, args.max_record_file_bytes, args.max_face_jpeg_bytes, persist)
    replies = queue.Queue()
    stop = threading.Event()

    def on_command(cmd):
        if cmd.get("command") == osdp.Command.Manufacturer:
            if cmd.get("vendor_code") != vendor_code_int(vendor):
                return -1, None  # another vendor's command: NAK 0x09, do nothing
            kind, data = db.handle_mfg(cmd.get("data", b""))
            if kind == "nak":
                return -1, None
            if kind == "reply":
                replies.put(data)  # sent from another thread: the refresh thread holds the lock now
            return 0, None
        if cmd.get("command") == osdp.Command.FileTransfer:
            return 0, None  # any FtType is accepted here; FileReceiver decides at close
        if cmd.get("command") == osdp.Command.Keyset:
            return 0, None  # accept: LibOSDP then uses the new SCBK and leaves install mode
        return -1, None

    channel = open_tty_channel(args.port, stop.set)
    pd_id = osdp.PdId(1, 1, vendor_code_int(vendor), args.serial, 0x010000)
    flags = []
    if args.enforce_secure:
        flags.append(osdp.LibFlag.EnforceSecure)
    if args.install_mode:
        flags.append(osdp.LibFlag.InstallMode)
    scbk = bytes.fromhex(args.scbk) if args.scbk else None
    info = osdp.PDInfo(args.address, channel, scbk=scbk, flags=flags, id=pd_id)
    level = osdp.LogLevel.Debug if args.verbose else osdp.LogLevel.Warning
    pd = Door(info, osdp.PDCapabilities([]), log_level=level, command_handler=on_command)
    pd.start()
    pd.register_file_ops(FileReceiver(db).ops())  # only valid after start()

    def send_replies():
        while not stop.is_set():
            try:
                data = replies.get(timeout=0.1)
            except queue.Empty:
                continue
            event = {"event": osdp.Event.ManufacturerReply, "vendor_code": vendor_code_int(vendor),
                     "data": data}
            while pd.submit_event(event) is False and not stop.is_set():
                time.sleep(0.005)  # LibOSDP's event queue is full: wait for a POLL to drain it

    sender = threading.Thread(name="mfgrep", target=send_replies, daemon=True)
    sender.start()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    def lose_next_reply(*_):
        channel.lose_replies += 1
    signal.signal(signal.SIGUSR1, lose_next_reply)
    parent = os.getppid()
    persist(db)  # the file's existence tells the test the door is listening
    while not stop.wait(0.05):
        if os.getppid() != parent:
            break  # the test died without stopping us
    pd.stop()
    stop.set()
    persist(db)
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", help="tty path of the PD's end of the line")
    p.add_argument("--db", help="where to write the door's database as JSON")
    p.add_argument("--address", type=int, default=1)
    p.add_argument("--vendor-code", default="02:44:53", help="wire order, as in the firmware profile")
    p.add_argument("--serial", type=lambda s: int(s, 0), default=0x44530001)
    p.add_argument("--capacity", type=int, default=10000)
    p.add_argument("--max-record-file-bytes", type=int, default=8192)
    p.add_argument("--max-face-jpeg-bytes", type=int, default=65536)
    p.add_argument("--refresh-ms", type=float, default=1.0)
    p.add_argument("--verbose", action="store_true", help="LibOSDP debug logs on stderr")
    p.add_argument("--scbk", help="Secure Channel base key, 32 hex characters (none: install mode)")
    p.add_argument("--enforce-secure", action="store_true", help="refuse plain text except ID/CAP/handshake")
    p.add_argument("--install-mode", action="store_true", help="accept SCBK-D until osdp_KEYSET")
    args = p.parse_args()
    if not args.port or not args.db:
        p.error("--port and --db are required")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
