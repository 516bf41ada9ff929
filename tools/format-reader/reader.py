#!/usr/bin/env python3
"""An independent DugongStore reader, written from FORMAT.md alone (format version 4; reads 2
and 3) by a reviewer who did not read the engine's sources, and extended to version 5 (LZ4
blocks, decoded here from the block format FORMAT.md section 7 describes). tools/format-reader/check runs it on
stores the `dugong` tool makes, and compare.py checks what it decodes against the tool's
output, so that FORMAT.md and the engine cannot drift apart unnoticed.

usage: reader.py STORE [--dump-events FILE] [--quiet]
Prints a summary (not with --quiet), every departure from FORMAT.md it finds (lines starting
with 'ISSUE') and from the writer's policy ('POLICY'), then "writer policy departures: N" and
"issues: N". --dump-events FILE writes every event it decoded, one JSON object per line
(data and metadata in base64). Exits 1 when it had to stop reading, else 0.
"""
import ctypes, json, os, re, struct, sys, zlib, base64, datetime, collections

# ---------------------------------------------------------------- §5 CRC-32C
_T = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    _T.append(c)


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    t = _T
    for b in data:
        crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def mask(crc):
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283
assert mask(0xE3069283) == 0xC78AB0E5

ISSUES = []
FRAMELOG = []


def issue(msg):
    ISSUES.append(msg)
    print("ISSUE:", msg)


POLICY = []
WHERE = ["the store's files"]  # the frame being read, for an error that stops the reading


def policy(msg):
    """A departure from the writer's policy (FORMAT.md section 7), which readers do not depend
    on: not damage, but a store this project's writer made must show none."""
    POLICY.append(msg)
    print("POLICY:", msg)


# ---------------------------------------------------------------- zstd
_zstd = ctypes.CDLL("libzstd.so.1")
_zstd.ZSTD_createDCtx.restype = ctypes.c_void_p
_zstd.ZSTD_DCtx_refPrefix.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
_zstd.ZSTD_DCtx_refPrefix.restype = ctypes.c_size_t
_zstd.ZSTD_decompressDCtx.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t]
_zstd.ZSTD_decompressDCtx.restype = ctypes.c_size_t
_zstd.ZSTD_isError.argtypes = [ctypes.c_size_t]
_zstd.ZSTD_isError.restype = ctypes.c_uint
_zstd.ZSTD_getErrorName.argtypes = [ctypes.c_size_t]
_zstd.ZSTD_getErrorName.restype = ctypes.c_char_p
_zstd.ZSTD_DCtx_reset.argtypes = [ctypes.c_void_p, ctypes.c_int]
_zstd.ZSTD_DCtx_reset.restype = ctypes.c_size_t
_dctx = _zstd.ZSTD_createDCtx()

STATS = collections.Counter()


def zstd_frame_header(src):
    """Parse the RFC 8878 frame header. Returns dict."""
    if src[:4] != b"\x28\xb5\x2f\xfd":
        raise ValueError("not a zstd frame (magic %s)" % src[:4].hex())
    fhd = src[4]
    fcs_flag = fhd >> 6
    single = (fhd >> 5) & 1
    reserved = (fhd >> 3) & 1
    checksum = (fhd >> 2) & 1
    did_flag = fhd & 3
    p = 5
    window = None
    if not single:
        wd = src[p]; p += 1
        exp = wd >> 3; mant = wd & 7
        base = 1 << (10 + exp)
        window = base + (base // 8) * mant
    did_size = [0, 1, 2, 4][did_flag]
    did = int.from_bytes(src[p:p + did_size], "little") if did_size else None
    p += did_size
    fcs_size = [1 if single else 0, 2, 4, 8][fcs_flag]
    fcs = int.from_bytes(src[p:p + fcs_size], "little") if fcs_size else None
    if fcs_size == 2 and fcs is not None:
        fcs += 256
    p += fcs_size
    return dict(fhd=fhd, single=single, reserved=reserved, checksum=checksum, did=did,
                fcs=fcs, window=window, hdrlen=p)


def zstd_decompress(src, raw_len, prefix=None):
    h = zstd_frame_header(src)
    STATS["zstd_fhd_%02x" % h["fhd"]] += 1
    if h["window"] is not None:
        STATS["zstd_max_window"] = max(STATS["zstd_max_window"], h["window"])
    if h["fhd"] != 0:
        issue("zstd descriptor byte 0x%02x (spec: only 'version bits' possibly set)" % h["fhd"])
    if h["did"]:
        raise ValueError("dictionary id %d" % h["did"])
    if h["fcs"] is not None and h["fcs"] != raw_len:
        raise ValueError("content size mismatch")
    if h["window"] is not None and h["window"] > 8 << 20:
        issue("zstd window %d > 8 MiB" % h["window"])
    _zstd.ZSTD_DCtx_reset(_dctx, 1)
    if prefix is not None:
        r = _zstd.ZSTD_DCtx_refPrefix(_dctx, prefix, len(prefix))
        if _zstd.ZSTD_isError(r):
            raise ValueError("refPrefix: " + _zstd.ZSTD_getErrorName(r).decode())
    dst = ctypes.create_string_buffer(raw_len + 1)
    r = _zstd.ZSTD_decompressDCtx(_dctx, dst, raw_len + 1, src, len(src))
    if _zstd.ZSTD_isError(r):
        raise ValueError("zstd: " + _zstd.ZSTD_getErrorName(r).decode())
    if r != raw_len:
        raise ValueError("zstd produced %d bytes, raw length %d" % (r, raw_len))
    return dst.raw[:raw_len]


def lz4_block_decompress(src, raw_len, history=None):
    """One LZ4 block (FORMAT.md section 7), decoded here from the block format's description;
    `history`: the dictionary the block's offsets may reach into."""
    hist = bytes(history or b"")
    out = bytearray(hist)
    base = len(hist)
    end = base + raw_len
    i = 0
    n = len(src)
    while True:
        if i >= n: raise ValueError("lz4: block ends after a match")
        token = src[i]; i += 1
        lit = token >> 4
        if lit == 15:
            while True:
                if i >= n: raise ValueError("lz4: literal length runs past the block")
                b = src[i]; i += 1; lit += b
                if b != 255: break
        if i + lit > n: raise ValueError("lz4: literals run past the block")
        if len(out) + lit > end: raise ValueError("lz4: more than raw length")
        out += src[i:i + lit]; i += lit
        if i == n: break
        if len(out) > end - 12: raise ValueError("lz4: a match starts within the last 12 bytes")
        if i + 2 > n: raise ValueError("lz4: offset runs past the block")
        off = src[i] | src[i + 1] << 8; i += 2
        if off == 0: raise ValueError("lz4: offset 0")
        if off > len(out): raise ValueError("lz4: offset %d reaches before the history" % off)
        ml = token & 15
        if ml == 15:
            while True:
                if i >= n: raise ValueError("lz4: match length runs past the block")
                b = src[i]; i += 1; ml += b
                if b != 255: break
        ml += 4
        if len(out) + ml > end - 5: raise ValueError("lz4: a match ends within the last 5 bytes")
        for _ in range(ml): out.append(out[-off])
    if len(out) != end: raise ValueError("lz4: %d bytes, raw length %d" % (len(out) - base, raw_len))
    return bytes(out[base:])


def inflate(src, raw_len, zdict=None):
    d = zlib.decompressobj(wbits=-15, zdict=zdict) if zdict is not None else zlib.decompressobj(wbits=-15)
    out = d.decompress(src, raw_len + 1)
    if len(out) != raw_len:
        raise ValueError("inflate produced %d, raw %d" % (len(out), raw_len))
    if not d.eof or d.unused_data or d.unconsumed_tail:
        raise ValueError("deflate stream does not end exactly at stored length")
    return out


# ---------------------------------------------------------------- primitives
LIM62 = 1 << 62


class Buf:
    def __init__(self, b, pos=0):
        self.b = b; self.p = pos

    def need(self, n):
        if self.p + n > len(self.b):
            raise ValueError("truncated at %d (+%d of %d)" % (self.p, n, len(self.b)))

    def u8(self):
        self.need(1); v = self.b[self.p]; self.p += 1; return v

    def u16(self):
        self.need(2); v = struct.unpack_from("<H", self.b, self.p)[0]; self.p += 2; return v

    def u32(self):
        self.need(4); v = struct.unpack_from("<I", self.b, self.p)[0]; self.p += 4; return v

    def u64(self):
        self.need(8); v = struct.unpack_from("<Q", self.b, self.p)[0]; self.p += 8; return v

    def i64(self):
        self.need(8); v = struct.unpack_from("<q", self.b, self.p)[0]; self.p += 8; return v

    def raw(self, n):
        self.need(n); v = self.b[self.p:self.p + n]; self.p += n; return bytes(v)

    def varint(self, limit=LIM62):
        v = 0; shift = 0
        for i in range(10):
            c = self.u8()
            if i == 9 and c > 1:
                raise ValueError("varint 10th byte > 1")
            v |= (c & 0x7F) << shift
            shift += 7
            if not c & 0x80:
                if limit is not None and v > limit:
                    raise ValueError("varint %d above limit" % v)
                # non-minimal encoding check (spec silent)
                if i > 0 and c == 0:
                    STATS["nonminimal_varint"] += 1
                return v
        raise ValueError("varint too long")

    def bytes_(self, maxlen=None):
        n = self.varint()
        if maxlen is not None and n > maxlen:
            raise ValueError("bytes length %d > %d" % (n, maxlen))
        return self.raw(n)

    def text(self):
        b = self.bytes_()
        b.decode("utf-8")
        return b

    def name(self):
        b = self.text()
        if not (1 <= len(b) <= 1024) or b"\0" in b:
            raise ValueError("bad name %r" % b[:40])
        return b


def zigzag_dec(z):
    d = (z >> 1) ^ -(z & 1)
    return d


def wrap_i64(v):
    v &= (1 << 64) - 1
    return v - (1 << 64) if v >= 1 << 63 else v


# ---------------------------------------------------------------- §3a manifest
SEGNAME = re.compile(r"^(\d{20})(?:-([1-9]\d*))?\.dseg$")


def read_manifest(path):
    b = open(path, "rb").read()
    r = Buf(b)
    if r.raw(8) != b"DUGONGMF":
        raise ValueError("manifest magic")
    ver = r.u16()
    if ver != 2:
        raise ValueError("manifest version %d" % ver)
    if r.u16() != 0 or r.u32() != 0:
        raise ValueError("manifest reserved")
    gen = r.u64()
    S = r.varint()
    if S > 1 << 20:
        raise ValueError("too many segments")
    segs = []
    for _ in range(S):
        nm = r.text()
        if len(nm) > 64 or not SEGNAME.match(nm.decode()):
            raise ValueError("bad segment name %r" % nm)
        segs.append((nm.decode(), r.u64()))
    if len(set(n for n, _ in segs)) != len(segs):
        raise ValueError("duplicate names")
    end = r.p
    ck = r.u32()
    if ck != mask(crc32c(b[:end])):
        raise ValueError("manifest checksum")
    if r.p != len(b):
        issue("manifest has %d trailing bytes" % (len(b) - r.p))
    return dict(generation=gen, segments=segs, size=len(b))


# ---------------------------------------------------------------- §3b head
def read_head(path):
    b = open(path, "rb").read()
    if len(b) != 1024:
        issue("head file size %d" % len(b))
    slots = []
    for i in range(2):
        s = b[i * 512:(i + 1) * 512]
        if s == bytes(512):
            slots.append(None); continue
        r = Buf(s)
        ok = True
        try:
            if r.raw(8) != b"DUGONGHD": raise ValueError("magic")
            if r.u16() != 2: raise ValueError("version")
            if r.u16() != 0: raise ValueError("reserved")
            flags = r.u32()
            if flags & ~1: raise ValueError("flags")
            seq = r.u64(); salt = r.u64(); dend = r.u64(); npos = r.u64(); nb = r.u64()
            if r.u32() != 0: raise ValueError("reserved2")
            ck = r.u32()
            if ck != mask(crc32c(s[:60])): raise ValueError("checksum")
            if dend >= 1 << 31 or npos > LIM62 or nb > LIM62: raise ValueError("bounds")
            if s[64:] != bytes(448): raise ValueError("nonzero tail")
            if seq % 2 != i: raise ValueError("seq %d in slot %d" % (seq, i))
            slots.append(dict(slot=i, clean=bool(flags & 1), sequence=seq, salt=salt, durable_end=dend,
                              next_position=npos, next_batch=nb))
        except ValueError as e:
            issue("head slot %d not intact: %s" % (i, e))
            slots.append(None)
    good = [s for s in slots if s]
    if not good:
        issue("head file without intact record")
        return None, slots
    if any(s is None for s in slots) and max(x["sequence"] for x in good) > 1:
        issue("head: a zero slot although sequence > 1")
    return max(good, key=lambda s: s["sequence"]), slots


# ---------------------------------------------------------------- §3 segment header
def read_segment_header(name, data):
    r = Buf(data)
    if len(data) < 128:
        raise ValueError("file shorter than header")
    if r.raw(8) != b"DUGONGSG": raise ValueError("magic")
    ver = r.u16()
    if ver == 1: raise ValueError("version 1: needs dugong upgrade")
    if ver not in (2, 3, 4, 5): raise ValueError("format version %d cannot read" % ver)
    if struct.unpack_from("<I", data, 124)[0] != mask(crc32c(data[:124])):
        raise ValueError("header checksum")
    hs = r.u16()
    if hs != 128: raise ValueError("header size %d" % hs)
    flags = r.u32()
    if flags & ~1: raise ValueError("flags")
    firstpos = r.u64(); cap = r.u64(); created = r.i64(); salt = r.u64(); seq = r.u64(); psalt = r.u64(); pend = r.u64()
    if data[72:124] != bytes(52): raise ValueError("reserved")
    if salt == 0: raise ValueError("salt 0")
    if firstpos >= LIM62: raise ValueError("first position")
    if not (128 <= cap < 1 << 31): raise ValueError("capacity %d" % cap)
    if (pend == 0) != (psalt == 0): raise ValueError("previous end/salt")
    m = SEGNAME.match(name)
    if int(m.group(1)) != firstpos: raise ValueError("first position %d != name" % firstpos)
    return dict(version=ver, flags=flags, first_position=firstpos, capacity=cap, created=created, salt=salt,
                sequence=seq, prev_salt=psalt, prev_end=pend)


# ---------------------------------------------------------------- store model
class Stream:
    def __init__(self, name):
        self.name = name
        self.events = []          # list of event dicts
        self.version = 0
        self.trunc = 0            # truncate before (max)
        self.delete = 0
        self.vsa = 0
        self.tomb = False
        self.snaps = []           # (version, data, meta, seg, off, recidx)
        self.snap_hidden = 0
        self.ops = []
        self.first_record_order = None
        self.first_event_seen = False

    def visible_from(self):
        return max(self.trunc, self.delete, self.vsa, 1)

    def visible(self):
        if self.tomb: return []
        v = self.visible_from()
        return [e for e in self.events if e["version"] >= v]


class Store:
    def __init__(self, path):
        self.path = path
        self.streams = collections.OrderedDict()
        self.log = []  # events in log order
        self.next_pos = 0
        self.counts = collections.Counter()
        self.frame_bytes = 0
        self.raw_bytes = 0
        self.event_frames = []  # (segidx, off, firstpos, lastpos, cksum)
        self.seginfo = []
        self.last_batch = None
        self.prev_frame_ended_batch = True
        self.record_order = 0

    def stream(self, name):
        s = self.streams.get(name)
        if s is None:
            s = self.streams[name] = Stream(name)
        return s

    # ---------------------------------------------------------- records §6
    def decode_records(self, payload, fh, segver, segidx, off, seg_dicts):
        r = Buf(payload)
        prev_ev = None
        prev_pos = fh["first_position"] - 1
        nev = 0
        recs = []
        for ri in range(fh["record_count"]):
            t = r.u8()
            if t == 0x01:
                fl = r.u8()
                if fl & ~1: raise ValueError("event flags 0x%02x" % fl)
                delta = r.varint()
                pos = prev_pos + 1 + delta
                stream = r.name()
                ver = r.varint(LIM62 - 1)
                if ver < 1: raise ValueError("version 0")
                eid = r.raw(16)
                etype = r.name()
                ts = r.i64()
                data = r.bytes_()
                meta = r.bytes_()
                if nev == 0 and delta != 0:
                    STATS["first_event_nonzero_delta"] += 1
                    issue("seg %d off %d: frame's first event has position delta %d" % (segidx, off, delta))
                ev = dict(stream=stream, version=ver, position=pos, id=eid, type=etype, ts=ts, data=data,
                          meta=meta, last=bool(fl & 1), rec="event", seg=segidx, off=off)
                STATS["rec_event"] += 1
            elif t == 0x06:
                if segver == 2: raise ValueError("continuation in v2 segment")
                if prev_ev is None or recs[-1] is not prev_ev:
                    raise ValueError("continuation without preceding event record")
                fl = r.u8()
                if fl & ~3: raise ValueError("cont flags 0x%02x" % fl)
                eid = r.raw(16)
                etype = prev_ev["type"] if fl & 2 else r.name()
                z = r.varint(None)
                if z >= 1 << 64: raise ValueError("timestamp delta too big")
                d = zigzag_dec(z)
                ts = wrap_i64(prev_ev["ts"] + d)
                data = r.bytes_()
                meta = r.bytes_()
                pos = prev_ev["position"] + 1
                ver = prev_ev["version"] + 1
                if pos >= LIM62 or ver >= LIM62: raise ValueError("cont reaches 2^62")
                ev = dict(stream=prev_ev["stream"], version=ver, position=pos, id=eid, type=etype, ts=ts,
                          data=data, meta=meta, last=bool(fl & 1), rec="cont", seg=segidx, off=off)
                STATS["rec_continuation"] += 1
                if fl & 2: STATS["cont_same_type"] += 1
            elif t == 0x02:
                stream = r.name()
                op = r.u8()
                if op not in (1, 2, 3, 4): raise ValueError("op %d" % op)
                v = r.varint()
                recs.append(dict(rec="meta", stream=stream, op=op, v=v))
                STATS["rec_meta_op%d" % op] += 1
                continue
            elif t == 0x03:
                stream = r.name()
                v = r.varint()
                data = r.bytes_()
                meta = r.bytes_()
                recs.append(dict(rec="snap", stream=stream, v=v, data=data, meta=meta, seg=segidx, off=off, idx=ri))
                STATS["rec_snapshot"] += 1
                continue
            elif t == 0x04:
                d = r.bytes_()
                if not (1 <= len(d) <= 32768): raise ValueError("dictionary size %d" % len(d))
                recs.append(dict(rec="dict", data=d))
                STATS["rec_dictionary"] += 1
                continue
            elif t == 0x05:
                recs.append(dict(rec="close"))
                STATS["rec_close"] += 1
                continue
            else:
                raise ValueError("unknown record type 0x%02x" % t)
            if nev == 0 and pos != fh["first_position"]:
                raise ValueError("first event position %d != header %d" % (pos, fh["first_position"]))
            prev_pos = pos
            prev_ev = ev
            nev += 1
            recs.append(ev)
        if r.p != len(payload):
            raise ValueError("records consumed %d of raw %d" % (r.p, len(payload)))
        if nev != fh["event_count"]:
            raise ValueError("event count %d != %d" % (nev, fh["event_count"]))
        return recs

    def apply(self, recs, segidx, off, fh):
        for rec in recs:
            k = rec["rec"]
            if k in ("event", "cont"):
                s = self.stream(rec["stream"])
                if rec["position"] < self.next_pos:
                    raise ValueError("position %d goes back (next %d)" % (rec["position"], self.next_pos))
                if rec["position"] != self.next_pos:
                    STATS["position_gaps"] += 1
                if s.tomb:
                    issue("event after tombstone in %r" % s.name)
                if not s.first_event_seen and s.vsa:
                    if rec["version"] < s.vsa:
                        raise ValueError("version below versions-start-at")
                    if rec["version"] != s.vsa:
                        issue("%r first version %d != versions start at %d" % (s.name, rec["version"], s.vsa))
                elif not s.first_event_seen and rec["version"] != 1:
                    STATS["stream_starts_above_1_without_vsa"] += 1
                    issue("stream %r first event version %d with no 'versions start at' record" % (s.name, rec["version"]))
                elif s.first_event_seen and rec["version"] != s.version + 1:
                    raise ValueError("version %d does not continue %d in %r" % (rec["version"], s.version, s.name))
                s.first_event_seen = True
                s.version = rec["version"]
                s.events.append(rec)
                self.log.append(rec)
                self.next_pos = rec["position"] + 1
            elif k == "meta":
                s = self.stream(rec["stream"])
                s.ops.append((rec["op"], rec["v"]))
                if rec["op"] == 1:
                    s.trunc = max(s.trunc, rec["v"])
                elif rec["op"] == 2:
                    s.delete = max(s.delete, rec["v"])
                    s.snap_hidden = max(s.snap_hidden, rec["v"] - 1)
                    if rec["v"] != s.version + 1:
                        issue("delete of %r at %d while version %d" % (s.name, rec["v"], s.version))
                elif rec["op"] == 3:
                    if rec["v"] != 0: issue("tombstone with version %d" % rec["v"])
                    s.tomb = True
                elif rec["op"] == 4:
                    if s.first_event_seen:
                        raise ValueError("versions start at after the stream's first event")
                    if s.vsa and rec["v"] < s.vsa:
                        raise ValueError("versions-start-at decreasing")
                    s.vsa = rec["v"]
                    s.version = max(s.version, rec["v"] - 1)
            elif k == "snap":
                s = self.stream(rec["stream"])
                s.snaps.append(rec)


def served_log(st):
    """§8 Readers, step 2: events a reader without the lock may serve."""
    h = st.head
    if not st.seginfo or h is None:
        return list(st.log)
    last = len(st.seginfo) - 1
    names = [x["hdr"]["salt"] for x in st.seginfo]
    if h["salt"] == names[last]:
        lim = h["durable_end"]
    elif h["salt"] in names:
        lim = 128
    else:
        return list(st.log)
    return [e for e in st.log if e["seg"] != last or e["off"] < lim]


def iso(ms):
    dt = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc) + datetime.timedelta(milliseconds=ms)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (dt.microsecond // 1000)


def uuid_str(b):
    h = b.hex()
    return "%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])


# ---------------------------------------------------------------- version 1 (inferred, §11 gives no layout)
def scan_v1(path):
    """Version 1 layout INFERRED from the fixture (FORMAT.md §11 only lists differences):
    64-byte header = v2 header bytes 0..40 (magic, version 1, header size 64, flags, first position,
    capacity, created), zeros, masked CRC-32C of bytes 0..<60 at offset 60; 32-byte frame header =
    the v2 frame header without the batch field; frame checksum = masked CRC-32C of frame bytes
    4..end (no salt/offset); records and DEFLATE as in version 2."""
    st = Store(path)
    for si, name in enumerate(sorted(f for f in os.listdir(path) if SEGNAME.match(f))):
        data = open(os.path.join(path, name), "rb").read()
        if data[:8] != b"DUGONGSG" or struct.unpack_from("<HH", data, 8) != (1, 64):
            raise ValueError("not a v1 segment")
        if struct.unpack_from("<I", data, 60)[0] != mask(crc32c(data[:60])):
            raise ValueError("v1 header checksum")
        off = 64; cur = None
        while off + 32 <= len(data) and data[off:off + 32] != bytes(32):
            ck, slen, rlen, flags, enc, dchk, fpos, ecnt, rcnt = struct.unpack_from("<IIIBBHQII", data, off)
            if off + 32 + slen > len(data) or mask(crc32c(data[off + 4:off + 32 + slen])) != ck:
                issue("%s: v1 frame at %d invalid (torn tail?)" % (name, off)); break
            p = data[off + 32:off + 32 + slen]
            if flags & 1:
                p = inflate(p, rlen, cur if flags & 2 else None)
            fh = dict(first_position=fpos, event_count=ecnt, record_count=rcnt)
            recs = st.decode_records(p, fh, 2, si, off, [])
            st.apply(recs, si, off, fh)
            for r in recs:
                if r["rec"] == "dict": cur = r["data"]
            st.counts["frames"] += 1; st.counts["events"] += ecnt
            off += 32 + slen
        st.seginfo.append(dict(name=name, hdr=dict(version=1, capacity=struct.unpack_from("<Q", data, 24)[0], first_position=0,
                               sequence=0, flags=0), end=off, events=0, frames=0, dicts=[], filesize=len(data)))
    st.head = None; st.manifest = None; st.index = None
    return st


# ---------------------------------------------------------------- scanning
def scan_store(path, quiet=False):
    segs = sorted(f for f in os.listdir(path) if SEGNAME.match(f))
    if not os.path.exists(os.path.join(path, "dugong.manifest")) and segs:
        with open(os.path.join(path, segs[0]), "rb") as fh_:
            if fh_.read(10)[8:10] == b"\x01\x00":
                print("format version 1 store: decoding with the inferred v1 layout")
                return scan_v1(path)
    st = Store(path)
    files = sorted(os.listdir(path))
    mpath = os.path.join(path, "dugong.manifest")
    manifest = None
    if os.path.exists(mpath):
        manifest = read_manifest(mpath)
        seglist = manifest["segments"]
        listed = set(n for n, _ in seglist)
        for f in files:
            if SEGNAME.match(f) and f not in listed:
                issue("unlisted segment file %s" % f)
    else:
        issue("no manifest: using segment files in name order")
        seglist = [(f, None) for f in files if SEGNAME.match(f)]
    for f in files:
        if f not in ("dugong.lock", "dugong.manifest", "dugong.head", "dugong.index") and not SEGNAME.match(f):
            issue("unexpected file %s" % f)
    head = None
    if os.path.exists(os.path.join(path, "dugong.head")):
        head, slots = read_head(os.path.join(path, "dugong.head"))
        st.head_slots = slots
    st.head = head
    st.manifest = manifest
    prevhdr = None
    prev_seg_end = None
    prev_data = None
    for si, (name, msalt) in enumerate(seglist):
        data = open(os.path.join(path, name), "rb").read()
        hdr = read_segment_header(name, data)
        if msalt is not None and hdr["salt"] != msalt:
            issue("%s: salt differs from manifest" % name)
        cap = hdr["capacity"]
        if len(data) < cap:
            STATS["short_files"] += 1
            data = data + bytes(cap - len(data))
        elif len(data) > cap:
            issue("%s: file size %d > capacity %d" % (name, len(data), cap))
        # chain
        if prevhdr is None:
            if hdr["prev_salt"] != 0:
                issue("%s: first listed segment has previous salt" % name)
        else:
            if hdr["prev_salt"] == 0:
                issue("%s: previous salt 0 in the middle of the chain" % name)
            else:
                if hdr["prev_salt"] != prevhdr["salt"]: issue("%s: chain previous salt mismatch" % name)
                if hdr["sequence"] != prevhdr["sequence"] + 1: issue("%s: sequence %d after %d" % (name, hdr["sequence"], prevhdr["sequence"]))
                if hdr["prev_end"] != prev_seg_end:
                    issue("%s: previous end %d but predecessor frames end at %d" % (name, hdr["prev_end"], prev_seg_end))
                if prev_data is not None and any(prev_data[hdr["prev_end"]:]):
                    issue("%s: predecessor has nonzero bytes after previous end" % name)
        if hdr["flags"] & 1:
            STATS["segments_flag_gap"] += 1
        # frames
        dicts = []  # (offset, bytes)
        cur_dict = None
        off = 128
        seg_events = 0
        seg_frames = 0
        last_event_frame = (0, 0)
        is_last_seg = si == len(seglist) - 1
        while True:
            if off + 40 > cap:
                if off != cap and any(data[off:cap]):
                    issue("%s: nonzero bytes in last <40 bytes at %d" % (name, off))
                break
            h = data[off:off + 40]
            if h == bytes(40):
                break
            ck, slen, rlen, flags, enc, dchk, fpos, ecnt, rcnt, batch = struct.unpack_from("<IIIBBHQIIQ", data, off)
            fh = dict(stored_length=slen, raw_length=rlen, flags=flags, first_position=fpos, event_count=ecnt,
                      record_count=rcnt, batch=batch)
            try:
                if not (1 <= slen <= 1 << 30) or rlen > 1 << 30: raise ValueError("lengths")
                if off + 40 + slen > cap: raise ValueError("frame beyond capacity")
                if flags & 0xE0: raise ValueError("flags")
                if (flags & 0x10) and hdr["version"] < 5: raise ValueError("LZ4 flag in a version %d segment" % hdr["version"])
                if (flags & 0x12) and not (flags & 1): raise ValueError("dict or LZ4 flag without compressed")
                if not (flags & 1) and slen != rlen: raise ValueError("uncompressed length mismatch")
                if enc != 0: raise ValueError("encoding %d" % enc)
                if not (flags & 2) and dchk != 0: raise ValueError("dict check nonzero")
                if rcnt < 1 or rcnt < ecnt or rcnt > rlen: raise ValueError("record count")
                if batch >= LIM62 or fpos + ecnt > LIM62: raise ValueError("bounds")
                c = crc32c(struct.pack("<QQ", hdr["salt"], off))
                c = crc32c(data[off + 4:off + 40 + slen], c)
                if mask(c) != ck: raise ValueError("frame checksum")
            except ValueError as e:
                issue("%s: invalid frame at %d: %s" % (name, off, e))
                break
            payload = bytes(data[off + 40:off + 40 + slen])
            WHERE[0] = "%s@%d" % (name, off)
            if flags & 1:
                prefix = None
                if flags & 2:
                    if cur_dict is None: raise ValueError("no current dictionary")
                    if dchk != mask(crc32c(cur_dict)) & 0xFFFF:
                        issue("%s@%d: dictionary check %04x != %04x" % (name, off, dchk, mask(crc32c(cur_dict)) & 0xFFFF))
                    prefix = cur_dict
                    STATS["frames_with_dict"] += 1
                if flags & 0x10:
                    payload = lz4_block_decompress(payload, rlen, prefix)
                    STATS["frames_lz4"] += 1
                elif hdr["version"] >= 4:
                    payload = zstd_decompress(payload, rlen, prefix)
                else:
                    payload = inflate(payload, rlen, prefix)
                STATS["frames_compressed"] += 1
                if slen > rlen - rlen // 8:
                    policy("%s@%d compressed form %d > raw-raw/8 (%d)" % (name, off, slen, rlen))
                if rlen < 64:
                    policy("%s@%d compressed with raw < 64" % (name, off))
            else:
                STATS["frames_plain"] += 1
            # batch continuity
            if st.last_batch is not None:
                expect = st.last_batch + 1 if st.prev_frame_ended_batch else st.last_batch
                if batch != expect:
                    if st.prev_frame_ended_batch and batch > expect:
                        STATS["batch_jumps"] += 1
                        issue("%s@%d: batch %d, expected %d" % (name, off, batch, expect))
                    else:
                        issue("%s@%d: batch %d, expected %d" % (name, off, batch, expect))
            st.last_batch = batch
            st.prev_frame_ended_batch = bool(flags & 4)
            if flags & 8: STATS["frames_nosync"] += 1
            if fpos < st.next_pos:
                issue("%s@%d: frame first position %d < next %d" % (name, off, fpos, st.next_pos))
            recs = st.decode_records(payload, fh, hdr["version"], si, off, dicts)
            if ecnt == 0 and fpos != st.next_pos:
                issue("%s@%d: event-less frame first position %d != next position %d" % (name, off, fpos, st.next_pos))
            st.apply(recs, si, off, fh)
            FRAMELOG.append(dict(seg=si, name=name, off=off, flags=flags, slen=slen, rlen=rlen, batch=batch, fpos=fpos,
                                 ecnt=ecnt, rcnt=rcnt, recs=recs, segver=hdr["version"]))
            kinds = tuple(sorted(set(r["rec"] for r in recs)))
            STATS["frame_kinds_" + "+".join(kinds)] += 1
            for rr in recs:
                if rr["rec"] == "dict":
                    if len(recs) != 1: STATS["dict_frames_with_other_records"] += 1
                    dicts.append((off, rr["data"]))
            # dictionary applies after this frame
            for rr in recs:
                if rr["rec"] == "dict":
                    cur_dict = rr["data"]
            if ecnt:
                st.event_frames.append((si, off, fpos, recs_last_pos(recs), ck))
                last_event_frame = (off, ck)
            seg_events += ecnt
            seg_frames += 1
            st.frame_bytes += 40 + slen
            st.raw_bytes += rlen
            st.counts["frames"] += 1
            st.counts["events"] += ecnt
            off += 40 + slen
        # after end of data everything must be zero
        if any(data[off:cap]):
            nz = next(i for i in range(off, cap) if data[i])
            issue("%s: nonzero byte after end of data at %d (end %d)" % (name, nz, off))
        st.seginfo.append(dict(name=name, hdr=hdr, end=off, events=seg_events, frames=seg_frames, dicts=dicts,
                               last_event_frame=last_event_frame, filesize=os.path.getsize(os.path.join(path, name))))
        prevhdr = hdr
        prev_seg_end = off
        prev_data = data
    # head consistency
    if manifest is None and head and st.seginfo and not any(s["hdr"]["salt"] == head["salt"] for s in st.seginfo):
        issue("no manifest, and the head names a segment none of the files is: which belong cannot be told (§3a)")
    if head and st.seginfo and not any(s["hdr"]["salt"] == head["salt"] for s in st.seginfo) and newest and [r["rec"] for r in newest[-1]["recs"]] != ["close"]:
        issue("the head names no segment of the set while the newest segment holds frames a close marker does not end: damage (§8)")
    newest = [f for f in FRAMELOG if st.seginfo and f["seg"] == len(st.seginfo) - 1]
    newest_size = st.seginfo[-1]["filesize"] if st.seginfo else 0
    if head is None and (newest or newest_size > 128) and (not newest or [r["rec"] for r in newest[-1]["recs"]] != ["close"]):
        issue("no intact head record, and the newest segment's frames do not end with a close marker: damage (§8)")
    if head and not head["clean"]:
        print("NOTE: head is not a clean close (durable end %d, next position %d): frames after it are the unacknowledged last batch (§8)" % (head["durable_end"], head["next_position"]))
    elif head:
        last = st.seginfo[-1]
        named = [s for s in st.seginfo if s["hdr"]["salt"] == head["salt"]]
        if not named:
            issue("head names no listed segment")
        elif named[0] is last:
            if head["durable_end"] != last["end"]:
                issue("head durable end %d != end of frames %d" % (head["durable_end"], last["end"]))
        if head["next_position"] != st.next_pos:
            issue("head next position %d != %d" % (head["next_position"], st.next_pos))
        if st.last_batch is not None and head["next_batch"] != st.last_batch + 1:
            issue("head next batch %d != last batch + 1 = %d" % (head["next_batch"], st.last_batch + 1))
    st.index = None
    ipath = os.path.join(path, "dugong.index")
    if os.path.exists(ipath):
        st.index = read_index(ipath, st)
    return st


def recs_last_pos(recs):
    return [r for r in recs if r["rec"] in ("event", "cont")][-1]["position"]


# ---------------------------------------------------------------- §10 index file
def read_index(path, st):
    b = open(path, "rb").read()
    r = Buf(b)
    if r.raw(8) != b"DUGONGIX": raise ValueError("index magic")
    ver = r.u16()
    if ver != 3:
        print("index file version %d: ignored" % ver)
        return dict(version=ver)
    if r.u16() != 0 or r.u32() != 0: raise ValueError("index reserved")
    hseq = r.u64(); nbatch = r.u64()
    S = r.varint()
    segs = []
    for _ in range(S):
        nm = r.text().decode(); salt = r.u64(); lastoff = r.varint(); lastck = r.u32()
        D = r.varint(); ds = []
        for _ in range(D):
            o = r.varint(); d = r.bytes_(); ds.append((o, d))
        segs.append(dict(name=nm, salt=salt, lastoff=lastoff, lastck=lastck, dicts=ds))
    scanned_end = r.varint()
    npos = r.u64()
    nev = r.varint(); fbytes = r.varint(); rbytes = r.varint()
    F = r.varint(); frames = []; prevfp = 0
    for _ in range(F):
        sn = r.varint(); o = r.varint(); fp = prevfp + r.varint(); lp = fp + r.varint(); ck = r.u32()
        frames.append((sn, o, fp, lp, ck)); prevfp = fp
    N = r.varint(); streams = []
    for _ in range(N):
        nm = r.text(); tb = r.varint(); sh = r.varint(); fl = r.u8()
        snap = None; lastid = None
        if fl & ~7: raise ValueError("index stream flags %x" % fl)
        if fl & 2:
            snap = (r.varint(), r.varint(), r.varint(), r.varint())
        if fl & 4:
            lastid = r.raw(16)
        R = r.varint(); P = r.varint(); ps = []; prev = 0
        for _ in range(P):
            prev = prev + r.varint(); ps.append(prev)
        streams.append(dict(name=nm, tb=tb, sh=sh, flags=fl, snap=snap, lastid=lastid, R=R, positions=ps))
    C = r.varint(); cats = []
    for _ in range(C):
        c = r.text(); M = r.varint(); cats.append((c, [r.varint() for _ in range(M)]))
    end = r.p
    ck = r.u32()
    if ck != mask(crc32c(b[:end])): raise ValueError("index checksum")
    if r.p != len(b): issue("index trailing bytes %d" % (len(b) - r.p))
    ix = dict(version=ver, head_sequence=hseq, next_batch=nbatch, segments=segs, scanned_end=scanned_end,
              next_position=npos, counts=(nev, fbytes, rbytes), frames=frames, streams=streams, categories=cats)
    # cross-check with the scan
    chk = []
    head = st.head
    if head is None or head["sequence"] != hseq: chk.append("head sequence %s != %d" % (head and head["sequence"], hseq))
    if head and not head["clean"]: chk.append("head not clean")
    if nbatch != (st.last_batch + 1 if st.last_batch is not None else 0): chk.append("next batch %d vs %s" % (nbatch, st.last_batch))
    if head and nbatch != head["next_batch"]: chk.append("index next batch %d != head %d" % (nbatch, head["next_batch"]))
    if S > len(st.seginfo): chk.append("more segments than store")
    for i, s in enumerate(segs):
        si = st.seginfo[i]
        if s["name"] != si["name"] or s["salt"] != si["hdr"]["salt"]: chk.append("segment %d differs" % i)
        if (s["lastoff"], s["lastck"]) != si["last_event_frame"]:
            chk.append("segment %d last event frame %s vs scan %s" % (i, (s["lastoff"], s["lastck"]), si["last_event_frame"]))
        if [(o, d) for o, d in s["dicts"]] != si["dicts"]:
            chk.append("segment %d dictionaries differ (%s vs %s)" % (i, [o for o, _ in s["dicts"]], [o for o, _ in si["dicts"]]))
    if S and scanned_end != st.seginfo[S - 1]["end"]: chk.append("scanned end %d vs %d" % (scanned_end, st.seginfo[S - 1]["end"]))
    if head and S and head["durable_end"] != scanned_end: chk.append("head durable end %d != scanned end %d" % (head["durable_end"], scanned_end))
    if npos != st.next_pos: chk.append("next position %d vs %d" % (npos, st.next_pos))
    mycounts = (st.counts["events"], st.frame_bytes, st.raw_bytes)
    if (nev, fbytes, rbytes) != mycounts:
        chk.append("counts %s vs scan (events, frame bytes incl. headers, raw) %s" % ((nev, fbytes, rbytes), mycounts))
    if frames != st.event_frames:
        diff = [(a, b_) for a, b_ in zip(frames, st.event_frames) if a != b_][:3]
        chk.append("event frames differ: %d vs %d; first diffs %s" % (len(frames), len(st.event_frames), diff))
    names = list(st.streams.keys())
    if [s["name"] for s in streams] != names:
        chk.append("stream order/names differ: index %d streams, scan %d" % (len(streams), len(names)))
    for s in streams:
        ms = st.streams.get(s["name"])
        if ms is None: chk.append("index stream %r unknown" % s["name"]); continue
        myR = (ms.events[0]["version"] - 1) if ms.events else ms.version
        myP = [e["position"] for e in ms.events]
        mytb = max(ms.trunc, ms.delete, ms.vsa)
        if s["R"] != myR or s["positions"] != myP:
            chk.append("stream %r R/P %d/%d vs %d/%d" % (s["name"], s["R"], len(s["positions"]), myR, len(myP)))
        if s["tb"] != max(mytb, 1):
            chk.append("stream %r truncate-before %d vs my %d (trunc %d delete %d vsa %d)" % (s["name"], s["tb"], mytb, ms.trunc, ms.delete, ms.vsa))
        if s["sh"] != ms.snap_hidden:
            chk.append("stream %r snapshots-hidden-through %d vs my %d" % (s["name"], s["sh"], ms.snap_hidden))
        if bool(s["flags"] & 1) != ms.tomb: chk.append("stream %r tomb flag" % s["name"])
        if s["flags"] & 4:
            if not ms.events or ms.events[-1]["id"] != s["lastid"]: chk.append("stream %r last id" % s["name"])
        elif ms.events:
            chk.append("stream %r has events but no last id flag" % s["name"])
        if s["flags"] & 2:
            sn = latest_snapshot(ms)
            if not sn or (sn["seg"], sn["off"], sn["idx"], sn["v"]) != s["snap"]:
                chk.append("stream %r snapshot %s vs %s" % (s["name"], s["snap"], sn and (sn["seg"], sn["off"], sn["idx"], sn["v"])))
        elif latest_snapshot(ms):
            chk.append("stream %r: index has no snapshot, scan has" % s["name"])
    mycats = collections.OrderedDict()
    for i, n in enumerate(names):
        if b"/" in n:
            mycats.setdefault(n.split(b"/")[0], []).append(i)
    if sorted(cats) != sorted(mycats.items()):
        chk.append("categories differ: index %s... vs scan %s..." % (cats[:3], list(mycats.items())[:3]))
    for c in chk:
        issue("index: " + c)
    STATS["index_streams"] = len(streams); STATS["index_frames"] = len(frames); STATS["index_categories"] = len(cats)
    return ix


def latest_snapshot(s):
    best = None
    for sn in s.snaps:
        if best is None or sn["v"] >= best["v"]:
            best = sn
    if best is not None and best["v"] < s.snap_hidden + 1 and s.delete:
        pass
    return best


# ---------------------------------------------------------------- comparison helpers
def data_json(b):
    if not b:
        return None
    try:
        return ("json", json.loads(b.decode("utf-8")))
    except Exception:
        return ("raw", b)


def out_data(v):
    if v is None: return None
    if isinstance(v, dict) and list(v.keys()) == ["base64"]:
        return ("rawb64", base64.b64decode(v["base64"]))
    return ("json", v)


def same_data(stored, printed):
    a = data_json(stored); b = out_data(printed)
    if a is None or b is None: return a is None and b is None
    if b[0] == "rawb64":
        return stored == b[1] or (a[0] == "json" and a[1] == {"base64": printed["base64"]})
    return a[0] == "json" and a[1] == b[1]


def event_line_matches(e, o, with_pos=True):
    errs = []
    if o["stream"] != e["stream"].decode(): errs.append("stream")
    if o["version"] != e["version"]: errs.append("version")
    if with_pos and o.get("position") != e["position"]: errs.append("position")
    if o["id"].lower() != uuid_str(e["id"]): errs.append("id")
    if o["type"] != e["type"].decode(): errs.append("type")
    if o["timestamp"] != iso(e["ts"]): errs.append("timestamp %s vs %s" % (o["timestamp"], iso(e["ts"])))
    if not same_data(e["data"], o["data"]): errs.append("data")
    if not same_data(e["meta"], o["metadata"]): errs.append("metadata")
    return errs


def main():
    import argparse
    parser = argparse.ArgumentParser(
        prog="reader.py", description="An independent DugongStore reader, written from FORMAT.md.")
    parser.add_argument("store", help="the store's directory")
    parser.add_argument("--dump-events", metavar="FILE", help="write every decoded event to FILE as JSON Lines")
    parser.add_argument("--quiet", action="store_true", help="no summary: the ISSUE and POLICY lines and the totals only")
    arguments = parser.parse_args()
    if not os.path.isdir(arguments.store):
        parser.error("%s is not a directory" % arguments.store)
    try:
        st = scan_store(arguments.store, quiet=arguments.quiet)
    except ValueError as error:
        # Something FORMAT.md calls damage, met where this reader cannot go on (it does not
        # search for the next valid frame as the engine does): said as an issue, not a trace.
        issue("%s: stopped reading: %s" % (WHERE[0], error))
        print("writer policy departures:", len(POLICY))
        print("issues:", len(ISSUES))
        sys.exit(1)
    if not arguments.quiet:
        print("segments:", len(st.seginfo), "frames:", st.counts["frames"], "events:", st.counts["events"],
              "streams:", len(st.streams), "next position:", st.next_pos)
        for s in st.seginfo:
            h = s["hdr"]
            print("  %s v%d cap %d file %d first %d seq %d flags %d end %d frames %d events %d dicts %d" % (
                s["name"], h["version"], h["capacity"], s["filesize"], h["first_position"], h["sequence"], h["flags"],
                s["end"], s["frames"], s["events"], len(s["dicts"])))
        if st.head: print("head:", {k: v for k, v in st.head.items()})
        if st.manifest: print("manifest generation", st.manifest["generation"])
        print("stats:", dict(sorted(STATS.items())))
    if arguments.dump_events:
        with open(arguments.dump_events, "w") as f:
            for e in st.log:
                f.write(json.dumps(dict(stream=e["stream"].decode(), version=e["version"], position=e["position"],
                                        id=uuid_str(e["id"]), type=e["type"].decode(), ts=e["ts"],
                                        data=base64.b64encode(e["data"]).decode(),
                                        meta=base64.b64encode(e["meta"]).decode()), ensure_ascii=False) + "\n")
    print("writer policy departures:", len(POLICY))
    print("issues:", len(ISSUES))
    return st


if __name__ == "__main__":
    main()
